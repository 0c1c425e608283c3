//! What `[store]` resolves to once validated: the backend and, for
//! PostgreSQL, everything needed to connect (the password already read from
//! where the file said it is).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where shared state lives.
#[derive(Debug, Clone, Default)]
pub enum StoreSettings {
    /// SQLite files in `server.data_dir`: today's behaviour, one node.
    #[default]
    Sqlite,
    /// One PostgreSQL database shared by every node.
    Postgres(Arc<PgSettings>),
}

impl StoreSettings {
    pub fn postgres(&self) -> Option<&Arc<PgSettings>> {
        match self {
            Self::Sqlite => None,
            Self::Postgres(p) => Some(p),
        }
    }
}

/// A validated `[store]` with `backend = "postgres"`.
#[derive(Clone)]
pub struct PgSettings {
    /// Host, port, database, user and password (its `Debug` redacts it).
    pub pg: tokio_postgres::Config,
    /// The configuration file and the key the password came from, so a
    /// refused password names where to fix it.
    pub config_file: PathBuf,
    pub password_key: &'static str,
    /// PEM roots that the server's certificate must chain to; `Some` turns
    /// TLS on (required, hostname verified).
    pub ca_pem: Option<Vec<u8>>,
    pub pool_size: usize,
    pub connect_timeout: Duration,
    /// Bound on any one database call (checkout, query, commit).
    pub query_timeout: Duration,
    /// Apply pending migrations at start (else `portcullis store migrate`).
    pub auto_migrate: bool,
    /// This node's name in the store (config digests, logs).
    pub node: String,
    /// Concurrent accounting transactions on this node.
    pub accounting_writers: usize,
    /// Most records in one accounting transaction.
    pub accounting_batch: usize,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("target", &self.target())
            .field("tls", &self.ca_pem.is_some())
            .field("pool_size", &self.pool_size)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl PgSettings {
    /// `user@host:port/db` for messages: never the password.
    pub fn target(&self) -> String {
        use tokio_postgres::config::Host;
        let host = match self.pg.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.pg.get_ports().first().copied().unwrap_or(5432);
        format!(
            "{}@{host}:{port}/{}",
            self.pg.get_user().unwrap_or("?"),
            self.pg.get_dbname().unwrap_or("?")
        )
    }
}

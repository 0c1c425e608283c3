//! The PostgreSQL pool: connections made on demand (TLS by rustls when a CA
//! is configured), every call bounded by the configured timeouts, errors
//! turned into [`DbError`]s that say what to fix.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use tokio_postgres::error::SqlState;

use super::migrations::{MIGRATION_LOCK, MIGRATIONS, SCHEMA_TABLE, SCHEMA_VERSION, SchemaStatus};
use super::{DbError, PgSettings};

/// A pool of connections to the shared database. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    settings: Arc<PgSettings>,
    gate: Arc<Gate>,
}

/// Closed until [`PgStore::prepare`] has found the schema good, for a store
/// made by [`PgStore::until_prepared`]: a node that started during an
/// outage writes nothing (accounting above all) into a database whose
/// schema it has not checked.
#[derive(Debug)]
struct Gate {
    open: AtomicBool,
    /// Why the last attempt to open failed ([`DbError::summary`]).
    reason: Mutex<&'static str>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.settings.target())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Builds the pool; nothing connects until the first call. Call on a
    /// tokio runtime (the pool's timeouts use it).
    pub fn new(settings: Arc<PgSettings>) -> Result<Self, DbError> {
        let mut pg = settings.pg.clone();
        pg.connect_timeout(settings.connect_timeout);
        // A database host that vanishes without a reset is noticed in
        // seconds, not after the kernel's two hours.
        pg.keepalives(true);
        pg.keepalives_idle(Duration::from_secs(10));
        pg.application_name(format!("portcullis {}", settings.node));
        let mc = ManagerConfig {
            // A query on checkout costs a round trip per batch; a broken
            // connection is found by the call that uses it, and replaced.
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &settings.ca_pem {
            None => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
                Manager::from_config(pg, tokio_postgres::NoTls, mc)
            }
            Some(pem) => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Require);
                Manager::from_config(pg, tls_connector(pem)?, mc)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .wait_timeout(Some(settings.query_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.connect_timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| DbError::Connect {
                target: settings.target(),
                cause: e.to_string(),
            })?;
        Ok(Self {
            pool,
            settings,
            gate: Arc::new(Gate {
                open: AtomicBool::new(true),
                reason: Mutex::new(""),
            }),
        })
    }

    /// The same pool, answering [`DbError::NotOpen`] to every call but the
    /// schema's own until [`prepare`](Self::prepare) succeeds: what a node
    /// serving before its store answered is built on.
    pub fn until_prepared(self) -> Self {
        self.gate.open.store(false, Ordering::Release);
        *self
            .gate
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = "not connected yet";
        self
    }

    /// Whether the schema has been found good (always, for a store not
    /// made by [`until_prepared`](Self::until_prepared)).
    pub fn is_open(&self) -> bool {
        self.gate.open.load(Ordering::Acquire)
    }

    /// Records why opening failed, for the calls refused meanwhile.
    pub fn not_open_because(&self, e: &DbError) {
        *self
            .gate
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = e.summary();
    }

    pub fn settings(&self) -> &Arc<PgSettings> {
        &self.settings
    }

    /// A connection from the pool, once the schema is known good.
    pub async fn client(&self) -> Result<Object, DbError> {
        if !self.is_open() {
            let reason = *self
                .gate
                .reason
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            return Err(DbError::NotOpen { reason });
        }
        self.raw_client().await
    }

    /// A connection whatever the gate says: the schema check's.
    async fn raw_client(&self) -> Result<Object, DbError> {
        self.pool.get().await.map_err(|e| self.pool_error(e))
    }

    /// Runs `fut` within the query timeout.
    pub async fn timed<T>(
        &self,
        what: &'static str,
        fut: impl Future<Output = Result<T, DbError>>,
    ) -> Result<T, DbError> {
        let after = self.settings.query_timeout;
        tokio::time::timeout(after, fut)
            .await
            .unwrap_or(Err(DbError::Timeout { what, after }))
    }

    /// A query error, with what was being done.
    pub fn query_error(&self, what: &'static str, e: tokio_postgres::Error) -> DbError {
        if e.is_closed() || e.code().is_none() && e.as_db_error().is_none() {
            return DbError::Connect {
                target: self.settings.target(),
                cause: describe(&e),
            };
        }
        DbError::Query {
            what,
            cause: Arc::new(e),
        }
    }

    fn pool_error(&self, e: PoolError) -> DbError {
        let target = self.settings.target();
        let user = self.settings.pg.get_user().unwrap_or("?").to_string();
        match e {
            PoolError::Backend(e) => match e.code() {
                Some(c) if *c == SqlState::INVALID_PASSWORD => DbError::BadPassword {
                    target,
                    user,
                    key: self.settings.password_key,
                    file: self.settings.config_file.clone(),
                },
                Some(c)
                    if *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                        || *c == SqlState::INVALID_CATALOG_NAME =>
                {
                    DbError::Refused {
                        target,
                        user,
                        cause: describe(&e),
                    }
                }
                // A certificate that does not verify is a setting to fix,
                // not an outage to wait out.
                _ if tls_refused(&e) => {
                    DbError::Tls(format!("TLS to {target} failed: {}", describe(&e)))
                }
                _ => DbError::Connect {
                    target,
                    cause: describe(&e),
                },
            },
            PoolError::Timeout(_) => DbError::Timeout {
                what: "connection checkout",
                after: self.settings.query_timeout,
            },
            other => DbError::Connect {
                target,
                cause: other.to_string(),
            },
        }
    }

    /// `SELECT 1` on a pooled connection.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.timed("ping", async {
            let c = self.client().await?;
            c.simple_query("SELECT 1")
                .await
                .map_err(|e| self.query_error("ping", e))?;
            Ok(())
        })
        .await
    }

    /// Applies the missing migrations, one transaction for all of them,
    /// under an advisory lock. Refuses a schema newer than this build.
    pub async fn migrate(&self) -> Result<SchemaStatus, DbError> {
        self.schema(true).await
    }

    /// The schema's state, changing nothing; an error when the schema is
    /// newer than this build.
    pub async fn check(&self) -> Result<SchemaStatus, DbError> {
        self.schema(false).await
    }

    async fn schema(&self, apply: bool) -> Result<SchemaStatus, DbError> {
        let what = if apply { "migration" } else { "schema check" };
        // Migrations may run longer than one query: a generous bound.
        let after = self.settings.query_timeout.max(Duration::from_secs(60));
        let work = async {
            let mut c = self.raw_client().await?;
            let q = |e| self.query_error(what, e);
            let tx = c.transaction().await.map_err(q)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(q)?;
            let exists: bool = tx
                .query_one("SELECT to_regclass('portcullis_schema') IS NOT NULL", &[])
                .await
                .map_err(q)?
                .get(0);
            let found: i32 = if exists {
                tx.query_one(
                    "SELECT COALESCE(MAX(version), 0) FROM portcullis_schema",
                    &[],
                )
                .await
                .map_err(q)?
                .get(0)
            } else {
                0
            };
            if found > SCHEMA_VERSION {
                return Err(DbError::SchemaTooNew {
                    found,
                    known: SCHEMA_VERSION,
                });
            }
            let mut status = SchemaStatus {
                found,
                known: SCHEMA_VERSION,
                applied: Vec::new(),
            };
            if !apply {
                return Ok(status);
            }
            tx.batch_execute(SCHEMA_TABLE).await.map_err(q)?;
            for m in MIGRATIONS.iter().filter(|m| m.version > found) {
                tx.batch_execute(m.sql).await.map_err(q)?;
                tx.execute(
                    "INSERT INTO portcullis_schema (version, name) VALUES ($1, $2)",
                    &[&m.version, &m.name],
                )
                .await
                .map_err(q)?;
                status.applied.push(m.version);
            }
            tx.commit().await.map_err(q)?;
            Ok(status)
        };
        tokio::time::timeout(after, work)
            .await
            .unwrap_or(Err(DbError::Timeout { what, after }))
    }

    /// Refuses to run on a schema other than this build's, applying what is
    /// missing when `store.auto_migrate` is on.
    /// Opens the gate of [`until_prepared`](Self::until_prepared) on success.
    pub async fn prepare(&self) -> Result<SchemaStatus, DbError> {
        let s = if self.settings.auto_migrate {
            self.migrate().await?
        } else {
            let s = self.check().await?;
            if s.found < s.known {
                return Err(DbError::SchemaBehind {
                    found: s.found,
                    known: s.known,
                });
            }
            s
        };
        self.gate.open.store(true, Ordering::Release);
        Ok(s)
    }
}

/// The error and its causes on one line (tokio-postgres keeps the useful
/// part, such as "Connection refused", in the source).
fn describe(e: &tokio_postgres::Error) -> String {
    use std::error::Error;
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    s
}

/// Whether rustls refused the handshake (an unknown issuer, a name that
/// does not match), as opposed to the network failing under it.
fn tls_refused(e: &tokio_postgres::Error) -> bool {
    use std::error::Error;
    let mut cause = e.source();
    while let Some(c) = cause {
        if c.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.get_ref().is_some_and(|i| i.is::<rustls::Error>())
        {
            return true;
        }
        cause = c.source();
    }
    false
}

fn tls_connector(pem: &[u8]) -> Result<tokio_postgres_rustls::MakeRustlsConnect, DbError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| DbError::Tls(format!("not PEM certificates: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| DbError::Tls(format!("unusable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(DbError::Tls("no certificate in the file".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Settings for a database on a loopback port nothing listens on: every
/// connection is refused at once. For tests of what happens without one.
#[cfg(test)]
pub(crate) fn unreachable_settings() -> Arc<PgSettings> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut pg = tokio_postgres::Config::new();
    pg.host("127.0.0.1").port(port).user("u").dbname("d");
    Arc::new(PgSettings {
        pg,
        config_file: "portcullis.toml".into(),
        password_key: "store.password",
        ca_pem: None,
        pool_size: 1,
        connect_timeout: Duration::from_secs(2),
        query_timeout: Duration::from_secs(2),
        auto_migrate: true,
        node: "t".into(),
        accounting_writers: 1,
        accounting_batch: 10,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Arc<PgSettings> {
        unreachable_settings()
    }

    #[tokio::test]
    async fn a_store_not_prepared_refuses_every_call_as_an_outage() {
        let store = PgStore::new(settings()).unwrap().until_prepared();
        assert!(!store.is_open());
        let e = store.client().await.unwrap_err();
        assert!(matches!(e, DbError::NotOpen { .. }) && e.is_outage(), "{e}");
        assert_eq!(e.summary(), "not connected yet");
        // The schema's own call does try, and says why it failed.
        let e = store.prepare().await.unwrap_err();
        assert!(matches!(e, DbError::Connect { .. }) && e.is_outage(), "{e}");
        store.not_open_because(&e);
        let e = store.client().await.unwrap_err();
        assert_eq!(e.summary(), "cannot connect to the database");
        assert!(!store.is_open());
        // A store made the ordinary way (the CLI's) is open.
        assert!(PgStore::new(settings()).unwrap().is_open());
    }
}

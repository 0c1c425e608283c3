//! Shared server state and lifecycle: the current configuration behind an
//! atomic pointer (a reload swaps it; requests in flight keep the one they
//! started with), the listeners bound from it, and orderly shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::accounting::{AccountingSink, Archive};
use crate::authn::Argon2Pool;
use crate::config::{self, Config, ConfigErrors};
use crate::identity::IdentityStore;
use crate::metrics::Metrics;
use crate::radius::engine::Port;

/// What every listener shares.
#[derive(Debug)]
pub struct Server {
    current: ArcSwap<Config>,
    path: PathBuf,
    metrics: Metrics,
    pool: Argon2Pool,
    generation: AtomicU64,
    accounting: Option<Arc<dyn AccountingSink>>,
    identity: Option<IdentityStore>,
}

impl std::fmt::Debug for dyn AccountingSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountingSink")
    }
}

/// The outcome of a reload that was applied.
#[derive(Debug)]
pub struct Reloaded {
    pub generation: u64,
    pub warnings: Vec<config::ConfigError>,
    /// Listener addresses cannot move without a restart.
    pub listen_changed: bool,
}

impl Server {
    /// `accounting`: where accounting records go; without one, accounting
    /// requests are dropped unanswered (never acknowledged unstored).
    pub fn new(
        config: Config,
        metrics: Metrics,
        accounting: Option<Arc<dyn AccountingSink>>,
        identity: Option<IdentityStore>,
    ) -> Arc<Self> {
        let pool = Argon2Pool::new(
            config.server.argon2_threads,
            config.server.argon2_queue,
            metrics.authn.clone(),
        );
        metrics.config_generation.set(1);
        Arc::new(Self {
            path: config.path.clone(),
            current: ArcSwap::from_pointee(config),
            metrics,
            pool,
            generation: AtomicU64::new(1),
            accounting,
            identity,
        })
    }

    /// The configuration to use for one request; hold it for the request's
    /// whole life so a reload cannot change the rules half-way.
    pub fn config(&self) -> arc_swap::Guard<Arc<Config>> {
        self.current.load()
    }

    pub fn config_arc(&self) -> Arc<Config> {
        self.current.load_full()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn pool(&self) -> &Argon2Pool {
        &self.pool
    }

    /// External users (web logins through an identity provider).
    pub fn identity(&self) -> Option<IdentityStore> {
        self.identity.clone()
    }

    pub fn accounting(&self) -> Option<&dyn AccountingSink> {
        self.accounting.as_deref()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Re-reads the file. A valid configuration replaces the current one
    /// atomically; an invalid one is refused and the current one stays.
    pub fn reload(&self) -> Result<Reloaded, ConfigErrors> {
        match config::load(&self.path) {
            Ok(loaded) => {
                let listen_changed = loaded.config.listen != self.current.load().listen;
                self.current.store(Arc::new(loaded.config));
                // The previous generation was just freed (unless a request
                // still holds it); its pages go back too, not only the parse's.
                config::release_free_memory();
                let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
                self.metrics.config_generation.set(generation as i64);
                self.metrics.reload_success.inc();
                Ok(Reloaded {
                    generation,
                    warnings: loaded.warnings,
                    listen_changed,
                })
            }
            Err(e) => {
                self.metrics.reload_failure.inc();
                Err(e)
            }
        }
    }
}

/// Sockets bound from a configuration, before anything is served, so that
/// port 0 can be resolved and reported.
#[derive(Debug)]
pub struct Bound {
    pub http: Option<TcpListener>,
    pub radius_auth: Vec<std::net::UdpSocket>,
    pub radius_acct: Vec<std::net::UdpSocket>,
    pub tacacs: Option<TcpListener>,
}

/// The addresses actually bound (port 0 resolved).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BoundAddrs {
    pub http: Option<SocketAddr>,
    pub radius_auth: Option<SocketAddr>,
    pub radius_acct: Option<SocketAddr>,
    pub tacacs: Option<SocketAddr>,
}

impl Bound {
    pub async fn bind(config: &Config) -> std::io::Result<Self> {
        let listen = &config.listen;
        let r = &config.radius;
        let udp = |a: Option<SocketAddr>| match a {
            Some(a) => crate::radius::udp::bind_reuseport(a, r.workers, r.recv_buffer),
            None => Ok(Vec::new()),
        };
        let http = match listen.http {
            Some(a) => Some(TcpListener::bind(a).await?),
            None => None,
        };
        let tacacs = match listen.tacacs {
            Some(a) => Some(TcpListener::bind(a).await?),
            None => None,
        };
        Ok(Self {
            http,
            radius_auth: udp(listen.radius_auth)?,
            radius_acct: udp(listen.radius_acct)?,
            tacacs,
        })
    }

    pub fn addrs(&self) -> BoundAddrs {
        BoundAddrs {
            http: self.http.as_ref().and_then(|l| l.local_addr().ok()),
            radius_auth: self.radius_auth.first().and_then(|s| s.local_addr().ok()),
            radius_acct: self.radius_acct.first().and_then(|s| s.local_addr().ok()),
            tacacs: self.tacacs.as_ref().and_then(|l| l.local_addr().ok()),
        }
    }
}

/// Runs every bound listener until `stop` is cancelled, then waits for them
/// to finish what they hold.
pub async fn run(
    server: Arc<Server>,
    bound: Bound,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let mut tasks: JoinSet<std::io::Result<()>> = JoinSet::new();
    if let Some(l) = bound.http {
        tasks.spawn(crate::http::serve(l, server.clone(), stop.clone()));
    }
    if let Some(l) = bound.tacacs {
        let service = Arc::new(crate::tacacs::service::Service::new(
            server.clone(),
            server.metrics().tacacs.clone(),
        ));
        tasks.spawn(crate::tacacs::engine::run(l, service, stop.clone()));
    }
    if !bound.radius_auth.is_empty() || !bound.radius_acct.is_empty() {
        let service = Arc::new(crate::radius::service::Service::new(
            server.clone(),
            server.metrics().radius.clone(),
        ));
        for (sockets, port) in [
            (bound.radius_auth, Port::Auth),
            (bound.radius_acct, Port::Acct),
        ] {
            for s in sockets {
                tasks.spawn(crate::radius::engine::run_worker(
                    s,
                    port,
                    service.clone(),
                    stop.clone(),
                ));
            }
        }
    }
    while let Some(res) = tasks.join_next().await {
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                stop.cancel();
                return Err(e);
            }
            Err(e) => {
                stop.cancel();
                return Err(std::io::Error::other(e));
            }
        }
    }
    Ok(())
}

/// How often records older than `accounting.retention_days` are pruned.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Prunes the accounting store every hour, reading the retention from the
/// current configuration each time so a reload changes it. Pruning runs on
/// the blocking pool in small transactions, so writers wait milliseconds.
pub fn spawn_pruner(server: Arc<Server>, archive: Archive) -> tokio::task::JoinHandle<()> {
    let archive = Arc::new(archive);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(retention) = server.config().accounting.retention else {
                continue;
            };
            let Some(cutoff) = std::time::SystemTime::now().checked_sub(retention) else {
                continue;
            };
            let a = archive.clone();
            match tokio::task::spawn_blocking(move || a.prune(cutoff)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(records = n, "accounting records pruned"),
                Ok(Err(e)) => tracing::warn!(error = %e, "accounting prune failed"),
                Err(e) => tracing::warn!(error = %e, "accounting prune task failed"),
            }
        }
    })
}

//! The one composition root: builds every service from exactly what it
//! uses, binds the listeners, reloads the configuration and stops in order.
//! Only `main.rs` imports this module; nothing in the library reaches back
//! into it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::accounting::{AccountingMetrics, AccountingSink, Archive};
use crate::authn::{Argon2Pool, Credentials, PoolMetrics};
use crate::clock::System;
use crate::config::{self, Config, ConfigErrors, ConfigHandle};
use crate::http::HttpMetrics;
use crate::http::{SharedSessions, Web, WebParts};
use crate::identity::{Identities, IdentityStore};
use crate::metrics::{Exposition, ResultLabel};
use crate::oidc::OidcMetrics;
use crate::radius::engine::Port;
use crate::radius::metrics::RadiusMetrics;
use crate::store::{StoreHealth, StoreMetrics};
use crate::tacacs::metrics::TacacsMetrics;

/// Everything the server counts, registered once under `portcullis_`; each
/// service is handed its own part.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub reload_success: Counter,
    pub reload_failure: Counter,
    pub config_generation: Gauge,
    pub authn: PoolMetrics,
    pub directories: crate::authn::DirectoryMetrics,
    pub radius: RadiusMetrics,
    pub tacacs: TacacsMetrics,
    pub accounting: AccountingMetrics,
    pub oidc: OidcMetrics,
    pub saml: OidcMetrics,
    pub http: HttpMetrics,
    pub idp: crate::idp::IdpMetrics,
    pub store: StoreMetrics,
    pub throttle_sync: crate::store::ThrottleSyncMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        registry.register(
            "build",
            "Build information",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let reloads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads by result (success, failure)",
            reloads.clone(),
        );
        // Both series exist from the start so alerts on failure see a zero.
        let reload_success = reloads
            .get_or_create(&ResultLabel { result: "success" })
            .clone();
        let reload_failure = reloads
            .get_or_create(&ResultLabel { result: "failure" })
            .clone();
        let config_generation = Gauge::default();
        registry.register(
            "config_generation",
            "How many configurations have been loaded (1 at start, +1 per successful reload)",
            config_generation.clone(),
        );
        Self {
            authn: PoolMetrics::register(&mut registry),
            directories: crate::authn::DirectoryMetrics::register(&mut registry),
            radius: RadiusMetrics::register(&mut registry),
            tacacs: TacacsMetrics::register(&mut registry),
            accounting: AccountingMetrics::register(&mut registry),
            oidc: OidcMetrics::register(&mut registry),
            saml: OidcMetrics::register_saml(&mut registry),
            http: HttpMetrics::register(&mut registry),
            idp: crate::idp::IdpMetrics::register(&mut registry),
            store: StoreMetrics::register(&mut registry),
            throttle_sync: crate::store::ThrottleSyncMetrics::register(&mut registry),
            registry,
            reload_success,
            reload_failure,
            config_generation,
        }
    }
}

/// The running server's parts: the configuration handle every service
/// shares, and what a reload needs.
#[derive(Debug)]
pub struct Server {
    config: ConfigHandle,
    path: PathBuf,
    credentials: Credentials,
    accounting: Option<Arc<dyn AccountingSink>>,
    identity: Option<Identities>,
    radius: RadiusMetrics,
    tacacs: TacacsMetrics,
    oidc: OidcMetrics,
    saml: OidcMetrics,
    http: HttpMetrics,
    idp: Option<Arc<crate::idp::Provider>>,
    reload_success: Counter,
    reload_failure: Counter,
    config_generation: Gauge,
    exposition: Exposition,
    /// With a shared store: whether it answers (for `/healthz`).
    store_health: Option<StoreHealth>,
    /// With a shared store: browser sessions there.
    shared_sessions: Option<SharedSessions>,
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
    /// requests are never acknowledged.
    pub fn new(
        config: Config,
        metrics: Metrics,
        accounting: Option<Arc<dyn AccountingSink>>,
        identity: Option<IdentityStore>,
        idp: Option<Arc<dyn crate::idp::IdpStore>>,
    ) -> Arc<Self> {
        Self::with_store(
            config,
            metrics,
            accounting,
            identity.map(Identities::from),
            idp,
            None,
            None,
        )
    }

    /// As [`new`](Self::new), on a shared store whose health `/healthz`
    /// reports and that keeps the browser sessions.
    pub fn with_store(
        config: Config,
        metrics: Metrics,
        accounting: Option<Arc<dyn AccountingSink>>,
        identity: Option<Identities>,
        idp: Option<Arc<dyn crate::idp::IdpStore>>,
        store_health: Option<StoreHealth>,
        shared_sessions: Option<SharedSessions>,
    ) -> Arc<Self> {
        let pool = Argon2Pool::new(
            config.server.argon2_threads,
            config.server.argon2_queue,
            metrics.authn.clone(),
        );
        metrics.config_generation.set(1);
        Arc::new(Self {
            path: config.path.clone(),
            config: ConfigHandle::new(config),
            credentials: Credentials::new(Arc::new(pool))
                .with_directory_metrics(metrics.directories),
            accounting,
            identity,
            radius: metrics.radius,
            tacacs: metrics.tacacs,
            oidc: metrics.oidc,
            saml: metrics.saml,
            http: metrics.http,
            idp: idp.map(|s| Arc::new(crate::idp::Provider::new(s, metrics.idp))),
            reload_success: metrics.reload_success,
            reload_failure: metrics.reload_failure,
            config_generation: metrics.config_generation,
            exposition: Exposition::new(metrics.registry),
            store_health,
            shared_sessions,
        })
    }

    /// Re-reads the file. A valid configuration replaces the current one
    /// atomically; an invalid one is refused and the current one stays.
    pub fn reload(&self) -> Result<Reloaded, ConfigErrors> {
        match config::load(&self.path) {
            Ok(loaded) => {
                let listen_changed = loaded.config.listen != self.config.load().listen;
                let generation = self.config.replace(loaded.config);
                // The previous generation was just freed (unless a request
                // still holds it); its pages go back too, not only the parse's.
                config::release_free_memory();
                self.config_generation.set(generation as i64);
                self.reload_success.inc();
                Ok(Reloaded {
                    generation,
                    warnings: loaded.warnings,
                    listen_changed,
                })
            }
            Err(e) => {
                self.reload_failure.inc();
                Err(e)
            }
        }
    }

    fn web(&self) -> Web {
        Web::new(WebParts {
            config: self.config.clone(),
            credentials: self.credentials.for_web(),
            identity: self.identity.clone(),
            exposition: self.exposition.clone(),
            oidc_metrics: self.oidc.clone(),
            saml_metrics: self.saml.clone(),
            http_metrics: self.http.clone(),
            idp: self.idp.clone(),
            store_health: self.store_health.clone(),
            shared_sessions: self.shared_sessions.clone(),
        })
    }

    /// The configuration in force (a shared store's monitor reads its digest).
    pub fn config(&self) -> ConfigHandle {
        self.config.clone()
    }

    /// The credential checker the doors share (its throttle is synced
    /// between nodes on a shared store).
    pub fn credentials(&self) -> Credentials {
        self.credentials.clone()
    }

    fn tacacs(&self) -> crate::tacacs::service::Service {
        crate::tacacs::service::Service::new(
            self.credentials.clone(),
            self.accounting.clone(),
            self.tacacs.clone(),
            Arc::new(System),
        )
    }

    fn radius(&self) -> crate::radius::service::Service {
        crate::radius::service::Service::new(
            self.credentials.clone(),
            self.accounting.clone(),
            self.radius.clone(),
            Arc::new(System),
            Arc::new(System),
        )
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
        tasks.spawn(crate::http::serve(l, Arc::new(server.web()), stop.clone()));
    }
    if let Some(l) = bound.tacacs {
        let service = Arc::new(server.tacacs());
        tasks.spawn(crate::tacacs::engine::run(
            l,
            service,
            server.config.clone(),
            stop.clone(),
        ));
    }
    if !bound.radius_auth.is_empty() || !bound.radius_acct.is_empty() {
        let service = Arc::new(server.radius());
        for (sockets, port) in [
            (bound.radius_auth, Port::Auth),
            (bound.radius_acct, Port::Acct),
        ] {
            for s in sockets {
                tasks.spawn(crate::radius::engine::run_worker(
                    s,
                    port,
                    service.clone(),
                    server.config.clone(),
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
            let Some(retention) = server.config.load().accounting.retention else {
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

/// How often the consoles' metadata URLs are looked at (each is fetched
/// only when its own `metadata_refresh` is due).
const METADATA_TICK: std::time::Duration = std::time::Duration::from_secs(5);

/// Checks each console's SP metadata URL every `metadata_refresh`; when
/// what it says has changed, reloads the configuration (which fetches it
/// anew, keeps the copy and swaps the configuration as SIGHUP does). A
/// failed check changes nothing: the configuration keeps the last good
/// metadata. The fetches run on the blocking pool.
pub fn spawn_metadata_refresh(server: Arc<Server>) -> tokio::task::JoinHandle<()> {
    use std::collections::HashMap;
    use tokio::time::Instant;
    tokio::spawn(async move {
        // (console, URL) -> when it was last checked (or first seen).
        let mut checked: HashMap<(String, String), Instant> = HashMap::new();
        loop {
            let config = server.config.load_full();
            let now = Instant::now();
            let mut next = now + METADATA_TICK;
            let mut due = Vec::new();
            for c in &config.consoles {
                let Some(src) = c.saml.as_ref().and_then(|s| s.metadata.clone()) else {
                    continue;
                };
                let Some(every) = src.refresh else { continue };
                let last = checked
                    .entry((c.name.clone(), src.url.clone()))
                    .or_insert(now);
                if *last + every <= now {
                    *last = now;
                    due.push((c.name.clone(), src));
                } else {
                    next = next.min(*last + every);
                }
            }
            drop(config);
            if due.is_empty() {
                tokio::time::sleep_until(next).await;
                continue;
            }
            let changed = tokio::task::spawn_blocking(move || {
                let mut changed = Vec::new();
                for (name, src) in due {
                    match crate::idp::saml::sp_fetch::changed(&src) {
                        Ok(true) => changed.push(name),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(
                            console = %name,
                            error = %e,
                            "SP metadata check failed; the last good metadata stays"
                        ),
                    }
                }
                changed
            })
            .await
            .unwrap_or_default();
            if changed.is_empty() {
                continue;
            }
            tracing::info!(consoles = ?changed, "SP metadata changed; reloading the configuration");
            reload_logged(&server).await;
        }
    })
}

/// Reloads the configuration on the blocking pool (it reads files and may
/// fetch consoles' SP metadata, each fetch bounded by its timeout) and logs
/// the outcome: warnings and refusals with their file, line and key. For
/// SIGHUP and for a changed SP metadata alike.
pub async fn reload_logged(server: &Arc<Server>) {
    use tracing::{error, info, warn};
    let s = server.clone();
    match tokio::task::spawn_blocking(move || s.reload()).await {
        Err(e) => error!(error = %e, "configuration reload failed"),
        Ok(Ok(r)) => {
            for w in &r.warnings {
                warn!(file = %w.file.display(), line = w.line, key = %w.key, "{}", w.message);
            }
            if r.listen_changed {
                warn!("listener addresses changed; they take effect only after a restart");
            }
            info!(generation = r.generation, "configuration reloaded");
        }
        Ok(Err(errors)) => {
            for e in &errors.0 {
                error!(file = %e.file.display(), line = e.line, key = %e.key, "{}", e.message);
            }
            error!(
                errors = errors.0.len(),
                "configuration reload refused; the previous configuration stays in force"
            );
        }
    }
}

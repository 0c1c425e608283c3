//! Watches the shared database from each node: a ping every second sets
//! [`StoreHealth`] (what `/healthz` reports), and this node's config digest
//! is published beside its peers', so a node whose configuration differs
//! from the others' says so in a metric and a warning.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::PgStore;
use crate::config::ConfigHandle;

/// Whether the shared store answers, and if not, why. Cheap to clone;
/// written by the monitor and by whoever sees a database call fail.
#[derive(Clone, Debug, Default)]
pub struct StoreHealth(Arc<HealthInner>);

#[derive(Debug, Default)]
struct HealthInner {
    down: AtomicBool,
    reason: Mutex<String>,
    /// `portcullis_store_up`, kept in step, so `/metrics` and `/healthz`
    /// agree whoever noticed the change (the ping or a failed commit).
    up: Option<Gauge>,
}

impl StoreHealth {
    pub fn new() -> Self {
        Self::default()
    }

    /// Health that also sets `up` to 1 or 0.
    pub fn with_gauge(up: Gauge) -> Self {
        Self(Arc::new(HealthInner {
            up: Some(up),
            ..HealthInner::default()
        }))
    }

    /// Marks the store unreachable; returns true if it was up until now.
    pub fn set_down(&self, reason: impl std::fmt::Display) -> bool {
        *self.0.reason.lock().unwrap_or_else(PoisonError::into_inner) = reason.to_string();
        if let Some(g) = &self.0.up {
            g.set(0);
        }
        !self.0.down.swap(true, Ordering::AcqRel)
    }

    /// Marks the store reachable; returns true if it was down until now.
    pub fn set_up(&self) -> bool {
        if let Some(g) = &self.0.up {
            g.set(1);
        }
        self.0.down.swap(false, Ordering::AcqRel)
    }

    /// `None` when healthy, else why not.
    pub fn problem(&self) -> Option<String> {
        self.0.down.load(Ordering::Acquire).then(|| {
            self.0
                .reason
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        })
    }
}

#[derive(Clone, Debug)]
pub struct StoreMetrics {
    pub up: Gauge,
    pub config_mismatch: Gauge,
    pub peers: Gauge,
    pub outages: Counter,
}

impl StoreMetrics {
    pub fn register(reg: &mut Registry) -> Self {
        let m = Self {
            up: Gauge::default(),
            config_mismatch: Gauge::default(),
            peers: Gauge::default(),
            outages: Counter::default(),
        };
        reg.register(
            "store_up",
            "1 when the shared PostgreSQL store answers this node; 0 when it does not, or when the node has none (SQLite files)",
            m.up.clone(),
        );
        reg.register(
            "store_config_mismatch",
            "Peers seen in the last minute whose configuration digest differs from this node's",
            m.config_mismatch.clone(),
        );
        reg.register(
            "store_peers",
            "Other nodes that published to the shared store in the last minute",
            m.peers.clone(),
        );
        reg.register(
            "store_outages",
            "Times the shared store went from reachable to unreachable",
            m.outages.clone(),
        );
        m
    }
}

/// A digest of what must be the same on every node: the configuration file
/// without what is per node by nature (listen addresses, data directory,
/// node name). Secrets kept in env or files are compared by reference.
pub fn config_digest(text: &str) -> String {
    let Ok(mut t) = text.parse::<toml::Table>() else {
        return hex(&Sha256::digest(text.as_bytes()));
    };
    t.remove("listen");
    if let Some(toml::Value::Table(s)) = t.get_mut("server") {
        s.remove("data_dir");
    }
    if let Some(toml::Value::Table(s)) = t.get_mut("store") {
        s.remove("node");
    }
    let canonical = toml::to_string(&t).unwrap_or_default();
    hex(&Sha256::digest(canonical.as_bytes()))
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(2 * b.len()), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

const PING_EVERY: Duration = Duration::from_secs(1);
/// Pings between two publications of the digest.
const PUBLISH_EVERY: u32 = 5;

/// Pings the store every second and publishes this node's digest every
/// few, until `stop`.
pub fn spawn_monitor(
    store: PgStore,
    config: ConfigHandle,
    health: StoreHealth,
    metrics: StoreMetrics,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PING_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n: u32 = 0;
        let mut digest: Option<(u64, String)> = None;
        let mut mismatched: Vec<String> = Vec::new();
        let mut was_up = true;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            match store.ping().await {
                Ok(()) => {
                    metrics.up.set(1);
                    was_up = true;
                    if health.set_up() {
                        info!(store = %store.settings().target(), "shared store reachable again");
                    }
                }
                Err(e) => {
                    metrics.up.set(0);
                    health.set_down(e.summary());
                    if std::mem::replace(&mut was_up, false) {
                        metrics.outages.inc();
                        warn!(error = %e, "shared store unreachable: accounting is not acknowledged and web logins fail until it is back");
                    }
                    continue;
                }
            }
            let c = config.load();
            let changed = digest.as_ref().is_none_or(|(g, _)| *g != c.generation);
            if changed {
                let text = tokio::fs::read_to_string(&c.path).await.unwrap_or_default();
                digest = Some((c.generation, config_digest(&text)));
            }
            drop(c);
            if !changed && !n.is_multiple_of(PUBLISH_EVERY) {
                n = n.wrapping_add(1);
                continue;
            }
            n = n.wrapping_add(1);
            let Some((_, d)) = &digest else { continue };
            match publish(&store, d).await {
                Ok((peers, differ)) => {
                    metrics.peers.set(peers as i64);
                    metrics.config_mismatch.set(differ.len() as i64);
                    if !differ.is_empty() && differ != mismatched {
                        warn!(
                            peers = ?differ,
                            digest = %d,
                            "this node's configuration differs from its peers' (same file on every node expected, but for [listen], server.data_dir and store.node)"
                        );
                    } else if differ.is_empty() && !mismatched.is_empty() {
                        info!("configuration now matches every peer's");
                    }
                    mismatched = differ;
                }
                Err(e) => warn!(error = %e, "publishing the config digest failed"),
            }
        }
    })
}

/// Writes this node's digest; returns how many peers were seen in the
/// last minute and the names of those whose digest differs.
async fn publish(store: &PgStore, digest: &str) -> Result<(usize, Vec<String>), super::DbError> {
    let node = store.settings().node.clone();
    store
        .timed("config digest", async {
            let c = store.client().await?;
            let q = |e| store.query_error("config digest", e);
            c.execute(
                "INSERT INTO portcullis_nodes (node, config_digest, version, seen_at)
                 VALUES ($1, $2, $3, now())
                 ON CONFLICT (node) DO UPDATE SET config_digest = excluded.config_digest,
                     version = excluded.version, seen_at = excluded.seen_at",
                &[&node, &digest, &env!("CARGO_PKG_VERSION")],
            )
            .await
            .map_err(q)?;
            let rows = c
                .query(
                    "SELECT node, config_digest FROM portcullis_nodes
                      WHERE node <> $1 AND seen_at > now() - interval '60 seconds'
                      ORDER BY node",
                    &[&node],
                )
                .await
                .map_err(q)?;
            let differ = rows
                .iter()
                .filter(|r| r.get::<_, &str>(1) != digest)
                .map(|r| r.get::<_, String>(0))
                .collect();
            Ok((rows.len(), differ))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ignores_per_node_settings_only() {
        let a = "[listen]\nhttp = \"127.0.0.1:1\"\n[server]\ndata_dir = \"/a\"\n[store]\nnode = \"a\"\nurl = \"x\"\n[[user]]\nname = \"alice\"\n";
        let b = "[store]\nurl = \"x\"\nnode = \"b\"\n[listen]\nhttp = \"127.0.0.1:2\"\n[server]\ndata_dir = \"/b\"\n[[user]]\nname = \"alice\"\n";
        assert_eq!(config_digest(a), config_digest(b));
        let c = b.replace("alice", "bob");
        assert_ne!(config_digest(a), config_digest(&c));
    }

    #[test]
    fn health_transitions_are_reported_once() {
        let h = StoreHealth::new();
        assert_eq!(h.problem(), None);
        assert!(h.set_down("connection refused"));
        assert!(!h.set_down("still refused"));
        assert_eq!(h.problem().as_deref(), Some("still refused"));
        assert!(h.set_up());
        assert!(!h.set_up());
        assert_eq!(h.problem(), None);
        let up = Gauge::default();
        let h = StoreHealth::with_gauge(up.clone());
        h.set_down("connection refused");
        assert_eq!(up.get(), 0);
        h.set_up();
        assert_eq!(up.get(), 1);
    }
}

//! Login throttling across nodes: each node's throttle decides alone, from
//! memory, so no RADIUS or TACACS+ login waits on the database; every
//! second this task publishes the node's new failures and resets to
//! `login_failures` and folds the cluster's counts back in. A guesser
//! spreading attempts over the nodes is locked out within about one
//! interval of the total passing `login_failures`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{DbError, PgStore};
use crate::authn::{Credentials, ThrottleChange, ThrottleKey};
use crate::config::ConfigHandle;

/// How often changes go out and the cluster's counts come in.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Keys written in one statement.
const BATCH: usize = 1000;
/// Keys published per round at most; the rest wait for the next.
const MAX_PER_ROUND: usize = 10 * BATCH;
/// Rows read per round at most; the rest come next round.
const READ_LIMIT: i64 = 10_000;
/// Rounds between two sweeps of rows nobody touched for a long while.
const PRUNE_EVERY: u32 = 60;
/// Longest key stored; a longer name is kept to this node.
const MAX_KEY: usize = 512;

// One statement per batch, rows taken in key order (bytewise, as Rust sorts
// the batches: one order on every node, so two nodes publishing at once
// cannot deadlock): a key reset here
// starts from this node's failures since; a count left quiet longer than
// `lockout_max` starts afresh (as it does in memory); else they add up.
const PUBLISH: &str = r#"
INSERT INTO login_failures AS f (key, failures, updated_at)
SELECT k, n, clock_timestamp() FROM unnest($1::text[], $2::int4[]) AS u(k, n) ORDER BY k COLLATE "C"
ON CONFLICT (key) DO UPDATE SET
    failures = CASE
        WHEN excluded.key = ANY($3::text[])
          OR f.updated_at < clock_timestamp() - make_interval(secs => $4)
        THEN excluded.failures
        ELSE LEAST(f.failures::int8 + excluded.failures, 2147483647)::int4
    END,
    updated_at = excluded.updated_at"#;

#[derive(Clone, Debug)]
pub struct ThrottleSyncMetrics {
    pub published: Counter,
    pub received: Counter,
    pub failures: Counter,
    pub dropped: Counter,
}

impl ThrottleSyncMetrics {
    pub fn register(reg: &mut Registry) -> Self {
        let m = Self {
            published: Counter::default(),
            received: Counter::default(),
            failures: Counter::default(),
            dropped: Counter::default(),
        };
        reg.register(
            "throttle_sync_published",
            "Login-throttle changes (failures, resets) of this node written to the shared store",
            m.published.clone(),
        );
        reg.register(
            "throttle_sync_received",
            "Login-throttle entries changed here by the shared store's counts",
            m.received.clone(),
        );
        reg.register(
            "throttle_sync_failures",
            "Login-throttle sync rounds skipped because the shared store failed (retried next round)",
            m.failures.clone(),
        );
        reg.register(
            "throttle_sync_dropped",
            "Login-throttle changes not shared because too many keys were waiting",
            m.dropped.clone(),
        );
        m
    }
}

fn encode(k: &ThrottleKey) -> Option<String> {
    let s = match k {
        ThrottleKey::User(u) => format!("u:{u}"),
        ThrottleKey::Source(a) => format!("s:{a}"),
    };
    // PostgreSQL text holds no NUL; a huge name is not worth a row.
    (s.len() <= MAX_KEY && !s.contains('\0')).then_some(s)
}

fn decode(s: &str) -> Option<ThrottleKey> {
    match s.split_at_checked(2)? {
        ("u:", u) => Some(ThrottleKey::User(u.into())),
        ("s:", a) => a.parse::<IpAddr>().ok().map(ThrottleKey::Source),
        _ => None,
    }
}

/// Publishes this node's throttle changes and folds in the cluster's
/// every [`SYNC_EVERY`], until `stop`. A round that fails (an outage)
/// keeps its changes for the next and is counted.
pub fn spawn_throttle_sync(
    store: PgStore,
    credentials: Credentials,
    config: ConfigHandle,
    metrics: ThrottleSyncMetrics,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SYNC_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sync = Sync {
            store,
            credentials,
            metrics,
            since: None,
            rounds: 0,
            failing: false,
        };
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            let s = *config.load().users.throttle();
            sync.round(&s).await;
        }
    })
}

struct Sync {
    store: PgStore,
    credentials: Credentials,
    metrics: ThrottleSyncMetrics,
    /// Rows changed at or after this (seconds since the epoch, the
    /// database's clock) are read next; `None`: all that still count.
    since: Option<f64>,
    rounds: u32,
    failing: bool,
}

impl Sync {
    async fn round(&mut self, s: &crate::authn::ThrottleSettings) {
        let (changes, dropped) = self.credentials.throttle().take_changes(MAX_PER_ROUND);
        self.metrics.dropped.inc_by(dropped);
        let n = changes.len();
        let outcome = match self.publish(&changes, s).await {
            Ok(()) => {
                self.metrics.published.inc_by(n as u64);
                self.read(s).await
            }
            Err(e) => {
                self.credentials.throttle().restore_changes(changes);
                Err(e)
            }
        };
        match outcome {
            Ok(()) => {
                if std::mem::replace(&mut self.failing, false) {
                    info!("login throttle shared with the other nodes again");
                }
            }
            Err(e) => {
                self.metrics.failures.inc();
                if !std::mem::replace(&mut self.failing, true) {
                    warn!(error = %e, "login throttle not shared: each node counts its own failures until the store answers");
                }
                return;
            }
        }
        self.rounds = self.rounds.wrapping_add(1);
        if self.rounds.is_multiple_of(PRUNE_EVERY)
            && let Err(e) = self.prune(s).await
        {
            warn!(error = %e, "sweeping old login failures failed");
        }
    }

    /// One transaction; keys in order, so nodes lock rows alike.
    async fn publish(
        &self,
        changes: &[(ThrottleKey, ThrottleChange)],
        s: &crate::authn::ThrottleSettings,
    ) -> Result<(), DbError> {
        let mut rows: Vec<(String, ThrottleChange)> = changes
            .iter()
            .filter_map(|(k, c)| Some((encode(k)?, *c)))
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let quiet = s.max.as_secs_f64();
        let st = &self.store;
        st.timed("login failures publish", async {
            let mut c = st.client().await?;
            let q = |e| st.query_error("login failures publish", e);
            let tx = c.transaction().await.map_err(q)?;
            for chunk in rows.chunks(BATCH) {
                let keys: Vec<&str> = chunk.iter().map(|(k, _)| k.as_str()).collect();
                let counts: Vec<i32> = chunk
                    .iter()
                    .map(|(_, c)| i32::try_from(c.failures).unwrap_or(i32::MAX))
                    .collect();
                // Resets are rare (a right password after failures, a
                // clear): a short list looked up per row.
                let reset: Vec<&str> = chunk
                    .iter()
                    .filter(|(_, c)| c.reset)
                    .map(|(k, _)| k.as_str())
                    .collect();
                tx.execute(PUBLISH, &[&keys, &counts, &reset, &quiet])
                    .await
                    .map_err(q)?;
            }
            tx.commit().await.map_err(q)
        })
        .await
    }

    /// Reads the rows changed since the last round and folds them in.
    async fn read(&mut self, s: &crate::authn::ThrottleSettings) -> Result<(), DbError> {
        // A transaction commits after it stamps its rows: look back far
        // enough that one still committing at the last read is not missed.
        let slack = self.store.settings().query_timeout.as_secs_f64() + 1.0;
        let st = &self.store;
        let since = self.since;
        let (rows, now) = st
            .timed("login failures read", async {
                let c = st.client().await?;
                let q = |e| st.query_error("login failures read", e);
                let now: f64 = c
                    .query_one("SELECT extract(epoch FROM clock_timestamp())::float8", &[])
                    .await
                    .map_err(q)?
                    .get(0);
                // The first round takes every count that can still lock.
                let from = since.unwrap_or(now - s.max.as_secs_f64());
                let rows = c
                    .query(
                        "SELECT key, failures, extract(epoch FROM updated_at)::float8
                           FROM login_failures
                          WHERE updated_at >= to_timestamp($1)
                          ORDER BY updated_at LIMIT $2",
                        &[&from, &READ_LIMIT],
                    )
                    .await
                    .map_err(q)?;
                Ok((rows, now))
            })
            .await?;
        let full = rows.len() as i64 >= READ_LIMIT;
        let mut last = None;
        let shared: Vec<(ThrottleKey, u32, Duration)> = rows
            .iter()
            .filter_map(|r| {
                let at: f64 = r.get(2);
                last = Some(at);
                let key = decode(r.get(0))?;
                let failures = u32::try_from(r.get::<_, i32>(1)).unwrap_or(0);
                let age = Duration::try_from_secs_f64((now - at).max(0.0)).unwrap_or_default();
                Some((key, failures, age))
            })
            .collect();
        // Paging: a full page goes on from its last row next round.
        self.since = match (full, last) {
            (true, Some(at)) => Some(at),
            _ => Some(now - slack),
        };
        let changed = self.credentials.throttle().fold(&shared, s, Instant::now());
        self.metrics.received.inc_by(changed as u64);
        Ok(())
    }

    /// Rows quiet for longer than any lockout lasts count for nothing.
    async fn prune(&self, s: &crate::authn::ThrottleSettings) -> Result<(), DbError> {
        let keep = s.max.as_secs_f64() + 60.0;
        let st = &self.store;
        st.timed("login failures sweep", async {
            let c = st.client().await?;
            c.execute(
                "DELETE FROM login_failures
                  WHERE updated_at < clock_timestamp() - make_interval(secs => $1)",
                &[&keep],
            )
            .await
            .map_err(|e| st.query_error("login failures sweep", e))?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_odd_ones_stay_local() {
        for k in [
            ThrottleKey::User("bob".into()),
            ThrottleKey::User("u:with:colons".into()),
            ThrottleKey::Source(IpAddr::from([192, 0, 2, 1])),
            ThrottleKey::Source("2001:db8::1".parse().unwrap()),
        ] {
            assert_eq!(decode(&encode(&k).unwrap()), Some(k));
        }
        assert_eq!(encode(&ThrottleKey::User("a\0b".into())), None);
        assert_eq!(encode(&ThrottleKey::User("x".repeat(600).into())), None);
        assert_eq!(decode("x:bob"), None);
        assert_eq!(decode("s:not-an-address"), None);
        assert_eq!(decode("é"), None);
    }
}

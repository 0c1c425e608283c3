//! PostgreSQL backend, shared by every node: writer tasks doing group
//! commit (what queues while one transaction commits joins the next), a
//! request acknowledged only after COMMIT, and dedup by a key table that
//! every node inserts into, so a retransmission to another node is stored
//! once. [`PgArchive`] reads and prunes.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Mutex, mpsc, oneshot};
use tracing::warn;

use super::{
    AccountingMetrics, AccountingSink, ActiveSession, Bound, DedupKey, Durable, Filter, Pending,
    Record, StoreError, StoredRecord, format_time, from_unix_micros, unix_micros,
};
use crate::store::{DbError, PgStore, StoreHealth};

/// How long a dedup key is kept: as [`super::SqliteConfig::dedup_window`],
/// it covers an appliance's retransmissions (RFC 5080 §2.2.2).
const DEDUP_WINDOW: Duration = Duration::from_secs(300);

// The batch arrives as arrays, one per column, sorted by dedup key so that
// two nodes inserting overlapping batches take the key locks in the same
// order. A key already in acct_dedup (committed by any node, or being
// committed: the insert waits for that transaction) yields no record.
const INSERT: &str = "
WITH input AS (
    SELECT * FROM unnest($1::bytea[], $2::int8[], $3::text[], $4::text[], $5::text[],
                         $6::int4[], $7::text[], $8::text[], $9::text[], $10::text[])
        AS t(dedup_key, received_at_us, protocol, client, client_addr, src_port,
             username, session_id, status, attributes)
), fresh AS (
    INSERT INTO acct_dedup (dedup_key, received_at_us)
    SELECT dedup_key, received_at_us FROM input
    ON CONFLICT DO NOTHING
    RETURNING dedup_key
)
INSERT INTO acct_records (dedup_key, received_at_us, protocol, client, client_addr, src_port,
                          username, session_id, status, attributes, node)
SELECT i.dedup_key, i.received_at_us, i.protocol, i.client, i.client_addr, i.src_port,
       i.username, i.session_id, i.status, i.attributes::json, $11
  FROM input i JOIN fresh f ON f.dedup_key = i.dedup_key
 ORDER BY i.received_at_us
RETURNING dedup_key";

const COLUMNS: &str = "id, received_at_us, protocol, client, client_addr, src_port, username,
    session_id, status, attributes::text, dedup_key";

/// Rows deleted per prune statement, so a prune holds no lock for long.
const PRUNE_BATCH: i64 = 5000;

#[derive(Clone, Debug)]
pub struct PgSinkConfig {
    /// Records waiting for a writer before `submit` answers `QueueFull`.
    pub queue_capacity: usize,
    /// Transactions in flight at once (each on its own connection).
    pub writers: usize,
    /// Most records in one transaction.
    pub max_batch: usize,
    pub metrics: Option<AccountingMetrics>,
}

struct Job {
    row: Row,
    done: oneshot::Sender<Result<Durable, StoreError>>,
}

/// A record as its columns, converted by the submitting task.
struct Row {
    key: DedupKey,
    received_us: i64,
    protocol: &'static str,
    client: String,
    client_addr: String,
    src_port: i32,
    user: String,
    session_id: String,
    status: String,
    attributes: String,
}

impl Row {
    fn new(r: Record) -> Result<Self, serde_json::Error> {
        Ok(Self {
            key: r.dedup_key,
            received_us: unix_micros(r.received_at),
            protocol: r.protocol.as_str(),
            client: text(r.client),
            client_addr: r.client_addr.to_string(),
            src_port: i32::from(r.src_port),
            user: text(r.user),
            session_id: text(r.session_id),
            status: r.status.to_string(),
            // serde_json escapes control characters, so no NUL gets through.
            attributes: serde_json::to_string(&r.attributes)?,
        })
    }
}

/// PostgreSQL text cannot hold NUL; an appliance can send one. Replaced so
/// one odd record cannot fail the batch it shares with others.
fn text(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{fffd}")
    } else {
        s
    }
}

/// The shared accounting sink. Dropping it stops taking records;
/// [`close`](Self::close) also waits for what is queued to be committed.
pub struct PgSink {
    tx: Option<mpsc::Sender<Job>>,
    capacity: usize,
    writers: Vec<tokio::task::JoinHandle<()>>,
    metrics: Option<AccountingMetrics>,
}

impl std::fmt::Debug for PgSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSink")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl PgSink {
    /// Starts the writer tasks; call on the runtime. The schema must be in
    /// place ([`PgStore::prepare`]).
    pub fn start(store: PgStore, health: StoreHealth, config: PgSinkConfig) -> Self {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let shared = Arc::new(Shared {
            store,
            health,
            metrics: config.metrics.clone(),
            max_batch: config.max_batch.max(1),
            last_warning: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        let writers = (0..config.writers.max(1))
            .map(|_| tokio::spawn(shared.clone().run(rx.clone())))
            .collect();
        Self {
            tx: Some(tx),
            capacity: config.queue_capacity,
            writers,
            metrics: config.metrics,
        }
    }

    /// Stops taking records and waits until everything queued is committed
    /// (or failed) and answered.
    pub async fn close(mut self) {
        drop(self.tx.take());
        for w in self.writers.drain(..) {
            let _ = w.await;
        }
    }
}

impl AccountingSink for PgSink {
    fn submit(&self, rec: Record) -> Result<Pending, StoreError> {
        let Some(tx) = &self.tx else {
            return Err(StoreError::Closed);
        };
        let (done, pending) = Pending::channel();
        let row = match Row::new(rec) {
            Ok(r) => r,
            Err(e) => {
                let _ = done.send(Err(StoreError::Background(format!(
                    "record attributes cannot be written as JSON: {e}"
                ))));
                return Ok(pending);
            }
        };
        if let Some(m) = &self.metrics {
            m.queue_depth.inc();
        }
        match tx.try_send(Job { row, done }) {
            Ok(()) => Ok(pending),
            Err(e) => {
                if let Some(m) = &self.metrics {
                    m.queue_depth.dec();
                }
                match e {
                    mpsc::error::TrySendError::Full(_) => {
                        if let Some(m) = &self.metrics {
                            m.dropped.inc();
                        }
                        Err(StoreError::QueueFull {
                            capacity: self.capacity,
                        })
                    }
                    mpsc::error::TrySendError::Closed(_) => Err(StoreError::Closed),
                }
            }
        }
    }
}

struct Shared {
    store: PgStore,
    health: StoreHealth,
    metrics: Option<AccountingMetrics>,
    max_batch: usize,
    /// Seconds since `epoch`, plus one, of the last failure logged (0:
    /// none yet), so an outage under load logs one line every few seconds,
    /// not one per batch.
    last_warning: AtomicU64,
    epoch: Instant,
}

impl Shared {
    async fn run(self: Arc<Self>, rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
        loop {
            let mut batch = Vec::new();
            {
                // One writer collects at a time; while the others commit,
                // records pile up here and the next batch takes them all.
                let mut rx = rx.lock().await;
                match rx.recv().await {
                    Some(j) => batch.push(j),
                    None => return,
                }
                while batch.len() < self.max_batch {
                    match rx.try_recv() {
                        Ok(j) => batch.push(j),
                        Err(_) => break,
                    }
                }
            }
            if let Some(m) = &self.metrics {
                m.queue_depth.dec_by(batch.len() as i64);
            }
            self.commit(batch).await;
        }
    }

    async fn commit(&self, mut batch: Vec<Job>) {
        let started = Instant::now();
        batch.sort_by_key(|j| j.row.key.0);
        // A retransmission queued beside its original: only the first is
        // sent (the insert would store both, as neither is committed yet).
        let mut seen = HashSet::with_capacity(batch.len());
        let first: Vec<bool> = batch.iter().map(|j| seen.insert(j.row.key)).collect();
        let result = self
            .store
            .timed("accounting commit", self.insert(&batch, &first))
            .await;
        match result {
            Ok(stored) => {
                let mut new = 0u64;
                for (job, is_first) in batch.into_iter().zip(first) {
                    let fresh = is_first && stored.contains(&job.row.key);
                    new += u64::from(fresh);
                    let _ = job.done.send(Ok(Durable { duplicate: !fresh }));
                }
                if let Some(m) = &self.metrics {
                    let n = seen.len() as u64;
                    m.records_stored.inc_by(new);
                    m.duplicates.inc_by(n.saturating_sub(new));
                    m.commit_batch_size.observe(n as f64);
                    m.commit_seconds.observe(started.elapsed().as_secs_f64());
                }
            }
            Err(e) => {
                if let Some(m) = &self.metrics {
                    m.commit_failures.inc();
                }
                if e.is_outage() {
                    self.health.set_down(e.summary());
                }
                self.warn(batch.len(), &e);
                for job in batch {
                    let _ = job.done.send(Err(StoreError::Database(e.clone())));
                }
            }
        }
    }

    fn warn(&self, records: usize, e: &DbError) {
        let now = self.epoch.elapsed().as_secs() + 1;
        let last = self.last_warning.load(Ordering::Relaxed);
        if (last == 0 || now >= last + 5)
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            warn!(records, error = %e, "accounting batch not stored; its requests go unanswered and the appliances retransmit");
        }
    }

    /// One transaction; returns the keys stored as new rows.
    async fn insert(&self, batch: &[Job], first: &[bool]) -> Result<HashSet<DedupKey>, DbError> {
        let rows: Vec<&Row> = batch
            .iter()
            .zip(first)
            .filter(|(_, f)| **f)
            .map(|(j, _)| &j.row)
            .collect();
        let keys: Vec<&[u8]> = rows.iter().map(|r| &r.key.0[..]).collect();
        let received: Vec<i64> = rows.iter().map(|r| r.received_us).collect();
        let protocol: Vec<&str> = rows.iter().map(|r| r.protocol).collect();
        let client: Vec<&str> = rows.iter().map(|r| r.client.as_str()).collect();
        let addr: Vec<&str> = rows.iter().map(|r| r.client_addr.as_str()).collect();
        let port: Vec<i32> = rows.iter().map(|r| r.src_port).collect();
        let user: Vec<&str> = rows.iter().map(|r| r.user.as_str()).collect();
        let session: Vec<&str> = rows.iter().map(|r| r.session_id.as_str()).collect();
        let status: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
        let attrs: Vec<&str> = rows.iter().map(|r| r.attributes.as_str()).collect();
        let node = self.store.settings().node.as_str();
        let q = |e| self.store.query_error("accounting commit", e);
        let mut c = self.store.client().await?;
        let tx = c.transaction().await.map_err(q)?;
        let stmt = tx.prepare_cached(INSERT).await.map_err(q)?;
        let stored = tx
            .query(
                &stmt,
                &[
                    &keys, &received, &protocol, &client, &addr, &port, &user, &session, &status,
                    &attrs, &node,
                ],
            )
            .await
            .map_err(q)?;
        // Acknowledged only once this returns: the COMMIT is durable.
        tx.commit().await.map_err(q)?;
        Ok(stored
            .iter()
            .filter_map(|r| <[u8; 16]>::try_from(r.get::<_, &[u8]>(0)).ok())
            .map(DedupKey)
            .collect())
    }
}

/// Queries and pruning on the shared database.
#[derive(Clone, Debug)]
pub struct PgArchive {
    store: PgStore,
}

impl PgArchive {
    pub fn new(store: PgStore) -> Self {
        Self { store }
    }

    fn err(&self, what: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
        move |e| StoreError::Database(self.store.query_error(what, e))
    }

    /// As [`super::Archive::list`]; the user and session filters are
    /// indexed together with the arrival time.
    pub async fn list(&self, filter: &Filter) -> Result<Vec<StoredRecord>, StoreError> {
        use tokio_postgres::types::ToSql;
        let (sql, args) = filter.query(&format!("SELECT {COLUMNS} FROM acct_records"), |n| {
            format!("${n}")
        });
        let params: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|a| match a {
                Bound::Text(t) => t as &(dyn ToSql + Sync),
                Bound::Int(i) => i as &(dyn ToSql + Sync),
            })
            .collect();
        let c = self.client().await?;
        let rows = c.query(&sql, &params).await.map_err(self.err("list"))?;
        rows.iter().map(decode).collect()
    }

    /// As [`super::Archive::active_sessions`]: sessions with a Start and
    /// neither a Stop nor a later Accounting-On/Off of their appliance. It
    /// reads every record (no sessions table is kept on this backend), so
    /// pair it with a retention.
    pub async fn active_sessions(&self) -> Result<Vec<ActiveSession>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "WITH s AS (
                    SELECT client_addr, session_id, username,
                           max(received_at_us) FILTER (WHERE status = 'Start') AS started,
                           bool_or(status = 'Stop') AS stopped,
                           max(received_at_us) AS last_seen,
                           (array_agg(protocol ORDER BY received_at_us DESC))[1] AS protocol,
                           (array_agg(client ORDER BY received_at_us DESC))[1] AS client
                      FROM acct_records
                     GROUP BY client_addr, session_id, username),
                 reboots AS (
                    SELECT client_addr, max(received_at_us) AS at FROM acct_records
                     WHERE status IN ('Accounting-On', 'Accounting-Off')
                     GROUP BY client_addr)
                 SELECT s.protocol, s.client, s.client_addr, s.username, s.session_id,
                        s.started, s.last_seen
                   FROM s LEFT JOIN reboots r ON r.client_addr = s.client_addr
                  WHERE s.started IS NOT NULL AND NOT s.stopped
                    AND (r.at IS NULL OR r.at < s.started)
                  ORDER BY s.started, s.session_id",
                &[],
            )
            .await
            .map_err(self.err("active sessions"))?;
        rows.iter()
            .map(|r| {
                let bad = |column, detail: String| StoreError::Corrupt {
                    id: 0,
                    column,
                    detail,
                };
                Ok(ActiveSession {
                    protocol: r
                        .get::<_, &str>(0)
                        .parse()
                        .map_err(|e| bad("protocol", e))?,
                    client: r.get(1),
                    client_addr: r
                        .get::<_, &str>(2)
                        .parse()
                        .map_err(|e: std::net::AddrParseError| bad("client_addr", e.to_string()))?,
                    user: r.get(3),
                    session_id: r.get(4),
                    started_at: from_unix_micros(r.get(5)),
                    last_seen: from_unix_micros(r.get(6)),
                })
            })
            .collect()
    }

    /// Records stored (all nodes).
    pub async fn count(&self) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let n: i64 = c
            .query_one("SELECT count(*) FROM acct_records", &[])
            .await
            .map_err(self.err("count"))?
            .get(0);
        Ok(n.max(0) as u64)
    }

    /// Deletes records that arrived before `older_than`, and dedup keys
    /// older than the dedup window; returns how many records went.
    pub async fn prune(&self, older_than: SystemTime) -> Result<usize, StoreError> {
        let cutoff = unix_micros(older_than);
        let mut total = 0usize;
        loop {
            let c = self.client().await?;
            let n = c
                .execute(
                    "DELETE FROM acct_records WHERE id IN (
                        SELECT id FROM acct_records WHERE received_at_us < $1 LIMIT $2)",
                    &[&cutoff, &PRUNE_BATCH],
                )
                .await
                .map_err(self.err("prune"))?;
            total += n as usize;
            if n < PRUNE_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    /// Forgets dedup keys older than the window (every node's retransmissions
    /// are over by then).
    pub async fn prune_dedup(&self, now: SystemTime) -> Result<u64, StoreError> {
        let cutoff = unix_micros(now) - DEDUP_WINDOW.as_micros() as i64;
        let c = self.client().await?;
        c.execute(
            "DELETE FROM acct_dedup WHERE received_at_us < $1",
            &[&cutoff],
        )
        .await
        .map_err(self.err("dedup prune"))
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.store.client().await.map_err(StoreError::Database)
    }
}

fn decode(r: &tokio_postgres::Row) -> Result<StoredRecord, StoreError> {
    let id: i64 = r.get(0);
    let corrupt = |column, detail: String| StoreError::Corrupt { id, column, detail };
    let addr: &str = r.get(4);
    let attrs: &str = r.get(9);
    let key: &[u8] = r.get(10);
    Ok(StoredRecord {
        id,
        received_at: from_unix_micros(r.get(1)),
        protocol: r
            .get::<_, &str>(2)
            .parse()
            .map_err(|e| corrupt("protocol", e))?,
        client: r.get(3),
        client_addr: addr
            .parse::<IpAddr>()
            .map_err(|e| corrupt("client_addr", e.to_string()))?,
        src_port: u16::try_from(r.get::<_, i32>(5))
            .map_err(|e| corrupt("src_port", e.to_string()))?,
        user: r.get(6),
        session_id: r.get(7),
        status: r
            .get::<_, &str>(8)
            .parse()
            .map_err(|e| corrupt("status", e))?,
        attributes: serde_json::from_str(attrs)
            .map_err(|e| corrupt("attributes", e.to_string()))?,
        dedup_key: DedupKey(
            <[u8; 16]>::try_from(key).map_err(|_| corrupt("dedup_key", "not 16 bytes".into()))?,
        ),
    })
}

/// How often retention and the dedup window are applied on the database.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Prunes every minute: dedup keys past their window always, records when
/// `retention` (read anew each time, so a reload changes it) says so. Every
/// node runs one; deleting what another node already deleted costs nothing.
pub fn spawn_pg_pruner(
    archive: PgArchive,
    retention: impl Fn() -> Option<Duration> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = SystemTime::now();
            if let Err(e) = archive.prune_dedup(now).await {
                warn!(error = %e, "accounting dedup prune failed");
            }
            let Some(cutoff) = retention().and_then(|r| now.checked_sub(r)) else {
                continue;
            };
            match archive.prune(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    records = n,
                    before = %format_time(cutoff),
                    "accounting records pruned"
                ),
                Err(e) => warn!(error = %e, "accounting prune failed"),
            }
        }
    })
}

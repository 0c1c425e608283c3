//! SQLite backend: one writer thread doing group commit, and [`Archive`] for
//! queries and pruning on a separate connection (WAL lets it read while the
//! writer commits, from this process or from the CLI in another).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use rusqlite::types::Value;
use rusqlite::{
    Connection, OpenFlags, Row, Statement, TransactionBehavior, params, params_from_iter,
};
use tokio::sync::oneshot;

use super::{
    AccountingMetrics, AccountingSink, ActiveSession, Bound, DedupKey, Durable, Filter, Pending,
    Record, Status, StoreError, StoredRecord, format_time, from_unix_micros, unix_micros,
};

/// File name inside the data directory.
pub const DB_FILE: &str = "accounting.sqlite3";

const SCHEMA_VERSION: i64 = 2;

// Every index with a scattered key (dedup key, user, session) cost each
// record a page write of its own per commit, which capped group commit at
// ~14k records/s. So `records` is append-only: rowids ascend with arrival and
// the only index, on arrival time, grows at its right edge, so a batch
// dirties a handful of pages however large it is.
//
// - Deduplication lives in the writer's memory (see `DedupCache`); the dedup
//   key is stored but not indexed.
// - `sessions` holds one row per (address, session id, user) with a Start or
//   Stop still stored, written only for those statuses (a few percent of the
//   traffic); `nas_reboots` the latest Accounting-On/Off per address.
// - The interim updates that move a session's last_seen are folded into
//   `sessions` in bulk every so often (`session_sync.through_id` says up to
//   which record); active_sessions() reads the records after that point.
// - list() by user, client or session scans the selected time range.
const SCHEMA: &str = "
CREATE TABLE records (
    id             INTEGER PRIMARY KEY,
    protocol       TEXT    NOT NULL,
    client         TEXT    NOT NULL,
    client_addr    TEXT    NOT NULL,
    src_port       INTEGER NOT NULL,
    username       TEXT    NOT NULL,
    session_id     TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    received_at_us INTEGER NOT NULL,
    received_at    TEXT    NOT NULL,
    attributes     TEXT    NOT NULL,
    dedup_key      BLOB    NOT NULL
);
CREATE INDEX records_received ON records (received_at_us);
CREATE TABLE sessions (
    client_addr   TEXT    NOT NULL,
    session_id    TEXT    NOT NULL,
    username      TEXT    NOT NULL,
    protocol      TEXT    NOT NULL,
    client        TEXT    NOT NULL,
    start_id      INTEGER,
    started_at_us INTEGER,
    stopped       INTEGER NOT NULL,
    last_seen_us  INTEGER NOT NULL,
    touched_us    INTEGER NOT NULL,
    PRIMARY KEY (client_addr, session_id, username)
) WITHOUT ROWID;
CREATE INDEX sessions_open ON sessions (started_at_us)
    WHERE stopped = 0 AND start_id IS NOT NULL;
CREATE INDEX sessions_touched ON sessions (touched_us);
CREATE TABLE nas_reboots (
    client_addr TEXT    PRIMARY KEY,
    last_us     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE session_sync (
    one        INTEGER PRIMARY KEY CHECK (one = 0),
    through_id INTEGER NOT NULL
);
INSERT INTO session_sync VALUES (0, 0);
";

const INSERT: &str = "INSERT INTO records (protocol, client, client_addr, src_port, username,
    session_id, status, received_at_us, received_at, attributes, dedup_key)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

// The latest Start to arrive is the session's start (as a Stop closes it
// whenever it arrived, `stopped` is left alone). `touched_us` is the newest
// Start or Stop, so pruning knows when none is left.
const UPSERT_START: &str = "INSERT INTO sessions (client_addr, session_id, username, protocol,
    client, start_id, started_at_us, stopped, last_seen_us, touched_us)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?7, ?7)
    ON CONFLICT DO UPDATE SET protocol = excluded.protocol, client = excluded.client,
        start_id = excluded.start_id, started_at_us = excluded.started_at_us,
        last_seen_us = MAX(last_seen_us, excluded.last_seen_us),
        touched_us = MAX(touched_us, excluded.touched_us)";

const UPSERT_STOP: &str = "INSERT INTO sessions (client_addr, session_id, username, protocol,
    client, start_id, started_at_us, stopped, last_seen_us, touched_us)
    VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL, 1, ?6, ?6)
    ON CONFLICT DO UPDATE SET stopped = 1,
        last_seen_us = MAX(last_seen_us, excluded.last_seen_us),
        touched_us = MAX(touched_us, excluded.touched_us)";

const UPSERT_REBOOT: &str = "INSERT INTO nas_reboots (client_addr, last_us) VALUES (?1, ?2)
    ON CONFLICT DO UPDATE SET last_us = MAX(last_us, excluded.last_us)";

// A session's last_seen is the newest of all its records: its Start is one of
// them, so that is never older than the start, which is what last_seen means.
// The writer keeps the newest arrival per session in memory; this reads it
// back from the records only for those a previous process left unfolded.
const FOLD_TAIL: &str = "UPDATE sessions SET last_seen_us = t.m
    FROM (SELECT client_addr, session_id, username, MAX(received_at_us) AS m
            FROM records WHERE id > ?1 AND id <= ?2
           GROUP BY client_addr, session_id, username) AS t
   WHERE sessions.client_addr = t.client_addr AND sessions.session_id = t.session_id
     AND sessions.username = t.username AND t.m > sessions.last_seen_us";

const FOLD_ONE: &str = "UPDATE sessions SET last_seen_us = ?4
    WHERE client_addr = ?1 AND session_id = ?2 AND username = ?3 AND last_seen_us < ?4";

const SET_THROUGH: &str = "UPDATE session_sync SET through_id = ?1";

const COLUMNS: &str = "id, protocol, client, client_addr, src_port, username, session_id, status,
    received_at_us, attributes, dedup_key";

/// Deleting in slices keeps each prune transaction to a few milliseconds, so
/// the writer's group commits wait at most that long for the lock.
const PRUNE_BATCH: usize = 500;

/// Sessions seen since the last fold past which the next batch folds, so
/// the batch carrying it is only a few milliseconds late.
const FOLD_SESSIONS: usize = 4096;
/// Records since the last fold past which the next batch folds, bounding
/// what active_sessions() reads besides the sessions table.
const FOLD_RECORDS: i64 = 65_536;

#[derive(Clone, Debug)]
pub struct SqliteConfig {
    /// Records waiting for the writer before `submit` answers `QueueFull`.
    pub queue_capacity: usize,
    /// Most records in one transaction.
    pub max_batch: usize,
    /// Longest a batch waits for more records when the previous batch was
    /// larger; further capped at half the recent commit time. Zero disables.
    pub max_linger: Duration,
    /// How long a connection waits for another's write lock (a prune, the CLI).
    pub busy_timeout: Duration,
    /// How long a dedup key is remembered after its record arrived, in this
    /// process and across a restart (keys of records stored within the
    /// window are reloaded at open). RADIUS clients retransmit for tens of
    /// seconds (RFC 5080 §2.2.2); a retransmission arriving later than this
    /// is stored a second time.
    pub dedup_window: Duration,
    /// Most dedup keys remembered, about 64 bytes each. When the window holds
    /// more, the oldest are forgotten early and counted in
    /// [`StoreStats::dedup_evictions`].
    pub dedup_capacity: usize,
    /// How often interim updates are folded into the sessions table's
    /// last_seen. Until then [`Archive::active_sessions`] reads them from the
    /// records since the last fold, so a longer interval writes less and
    /// makes that query read more.
    pub session_sync_interval: Duration,
    pub metrics: Option<AccountingMetrics>,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 8192,
            max_batch: 1024,
            max_linger: Duration::from_millis(2),
            busy_timeout: Duration::from_secs(5),
            dedup_window: Duration::from_secs(300),
            dedup_capacity: 1_000_000,
            session_sync_interval: Duration::from_secs(1),
            metrics: None,
        }
    }
}

/// Counters since the store was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Committed transactions.
    pub commits: u64,
    /// Records in committed transactions (new rows + duplicates).
    pub records: u64,
    pub duplicates: u64,
    /// Transactions that failed; their records were not acknowledged.
    pub failed_commits: u64,
    pub failed_records: u64,
    /// Dedup keys forgotten before their window ended because
    /// `dedup_capacity` was reached; a retransmission of one is stored again.
    pub dedup_evictions: u64,
}

#[derive(Default)]
struct Stats {
    commits: AtomicU64,
    records: AtomicU64,
    duplicates: AtomicU64,
    failed_commits: AtomicU64,
    failed_records: AtomicU64,
    dedup_evictions: AtomicU64,
}

struct Job {
    row: NewRow,
    done: oneshot::Sender<Result<Durable, StoreError>>,
}

/// A record as its columns, converted by the submitting thread: the single
/// writer thread is what bounds throughput, so it only binds and inserts.
/// The text columns share one allocation, because freeing memory that
/// another thread allocated is slow and the writer frees every row.
struct NewRow {
    dedup_key: DedupKey,
    status: Status,
    protocol: &'static str,
    src_port: u16,
    received_us: i64,
    /// client, client_addr, user, session_id, status, received_at and
    /// attributes, back to back; `ends` says where each stops.
    text: String,
    ends: [usize; 7],
}

impl NewRow {
    fn new(r: Record) -> Result<Self, serde_json::Error> {
        use std::io::Write;
        let mut buf = Vec::with_capacity(
            r.client.len() + r.user.len() + r.session_id.len() + 96 + 64 * r.attributes.len(),
        );
        let mut ends = [0; 7];
        buf.extend_from_slice(r.client.as_bytes());
        ends[0] = buf.len();
        let _ = write!(buf, "{}", r.client_addr);
        ends[1] = buf.len();
        buf.extend_from_slice(r.user.as_bytes());
        ends[2] = buf.len();
        buf.extend_from_slice(r.session_id.as_bytes());
        ends[3] = buf.len();
        let _ = write!(buf, "{}", r.status);
        ends[4] = buf.len();
        buf.extend_from_slice(format_time(r.received_at).as_bytes());
        ends[5] = buf.len();
        serde_json::to_writer(&mut buf, &r.attributes)?;
        ends[6] = buf.len();
        Ok(Self {
            dedup_key: r.dedup_key,
            status: r.status,
            protocol: r.protocol.as_str(),
            src_port: r.src_port,
            received_us: unix_micros(r.received_at),
            // Valid: pieces of strings and JSON, which is UTF-8.
            text: String::from_utf8(buf).map_err(serde::ser::Error::custom)?,
            ends,
        })
    }

    fn field(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    fn client(&self) -> &str {
        self.field(0)
    }

    fn client_addr(&self) -> &str {
        self.field(1)
    }

    fn user(&self) -> &str {
        self.field(2)
    }

    fn session_id(&self) -> &str {
        self.field(3)
    }

    fn status_text(&self) -> &str {
        self.field(4)
    }

    fn received_text(&self) -> &str {
        self.field(5)
    }

    fn attributes(&self) -> &str {
        self.field(6)
    }
}

/// The durable store. Dropping it (or [`close`](Self::close)) commits
/// everything already queued and resolves its `Pending`s before returning.
pub struct SqliteStore {
    path: PathBuf,
    busy_timeout: Duration,
    capacity: usize,
    tx: Option<SyncSender<Job>>,
    writer: Option<JoinHandle<()>>,
    answerer: Option<JoinHandle<()>>,
    checkpointer: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    stats: Arc<Stats>,
    metrics: Option<AccountingMetrics>,
}

impl SqliteStore {
    /// Opens or creates `<data_dir>/accounting.sqlite3` and starts the writer.
    /// Returns once the dedup keys of the last `dedup_window` are reloaded.
    pub fn open(data_dir: impl AsRef<Path>, config: SqliteConfig) -> Result<Self, StoreError> {
        if config.queue_capacity == 0 {
            return Err(StoreError::Config("queue_capacity must be at least 1"));
        }
        if config.max_batch == 0 {
            return Err(StoreError::Config("max_batch must be at least 1"));
        }
        if config.dedup_capacity == 0 {
            return Err(StoreError::Config("dedup_capacity must be at least 1"));
        }
        let path = db_path(data_dir.as_ref())?;
        let conn = open_conn(&path, config.busy_timeout)?;
        // Checkpoints are left to the Checkpointer, off the commit path.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0")
            .map_err(|e| StoreError::Open {
                path: path.clone(),
                cause: Arc::new(e),
            })?;
        let stats = Arc::new(Stats::default());
        let rewind = Arc::new(AtomicBool::new(false));
        let checkpointer = Checkpointer {
            conn: open_conn(&path, config.busy_timeout)?,
            stats: stats.clone(),
            rewind: rewind.clone(),
        };
        let (stop_tx, stop_rx) = mpsc::channel();
        let ckpt_thread = std::thread::Builder::new()
            .name("acct-checkpoint".into())
            .spawn(move || checkpointer.run(&stop_rx))
            .map_err(|e| StoreError::Writer(format!("cannot start the checkpointer: {e}")))?;
        let (answers, answers_rx) = mpsc::channel();
        let answerer = std::thread::Builder::new()
            .name("acct-answer".into())
            .spawn(move || answer(&answers_rx))
            .map_err(|e| StoreError::Writer(format!("cannot start the answerer: {e}")))?;
        let (tx, rx) = mpsc::sync_channel(config.queue_capacity);
        let (ready_tx, ready_rx) = mpsc::channel();
        let writer = Writer {
            max_batch: config.max_batch,
            max_linger: config.max_linger,
            sync_interval: config.session_sync_interval,
            dedup: DedupCache::new(config.dedup_window, config.dedup_capacity),
            last_seen: LastSeen::default(),
            answers,
            rewind,
            stats: stats.clone(),
            metrics: config.metrics.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("acct-writer".into())
            .spawn(move || writer.run(&conn, &rx, &ready_tx))
            .map_err(|e| StoreError::Writer(format!("cannot start: {e}")))?;
        let mut store = Self {
            path,
            busy_timeout: config.busy_timeout,
            capacity: config.queue_capacity,
            tx: Some(tx),
            writer: Some(handle),
            answerer: Some(answerer),
            checkpointer: Some((stop_tx, ckpt_thread)),
            stats,
            metrics: config.metrics,
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(store),
            Ok(Err(e)) => {
                let _ = store.shutdown();
                Err(StoreError::Open {
                    path: store.path.clone(),
                    cause: Arc::new(e),
                })
            }
            Err(_) => {
                let _ = store.shutdown();
                Err(StoreError::Writer("exited while starting".into()))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A query connection to the same database.
    pub fn archive(&self) -> Result<Archive, StoreError> {
        Archive::open_file(self.path.clone(), self.busy_timeout)
    }

    pub fn stats(&self) -> StoreStats {
        let s = &self.stats;
        StoreStats {
            commits: s.commits.load(Ordering::Relaxed),
            records: s.records.load(Ordering::Relaxed),
            duplicates: s.duplicates.load(Ordering::Relaxed),
            failed_commits: s.failed_commits.load(Ordering::Relaxed),
            failed_records: s.failed_records.load(Ordering::Relaxed),
            dedup_evictions: s.dedup_evictions.load(Ordering::Relaxed),
        }
    }

    /// Commits what is queued, then stops the writer. Blocks until then, so
    /// on an async runtime call it from `spawn_blocking`.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), StoreError> {
        // The writer drains the queue, then sees the channel disconnected;
        // the answerer ends once the writer is gone and all is answered.
        drop(self.tx.take());
        let writer = self.writer.take().map(JoinHandle::join);
        if let Some(handle) = self.answerer.take() {
            let _ = handle.join();
        }
        if let Some((stop, handle)) = self.checkpointer.take() {
            drop(stop);
            let _ = handle.join();
        }
        match writer {
            Some(Err(_)) => Err(StoreError::Writer("panicked".into())),
            _ => Ok(()),
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl AccountingSink for SqliteStore {
    fn submit(&self, rec: Record) -> Result<Pending, StoreError> {
        let Some(tx) = &self.tx else {
            return Err(StoreError::Closed);
        };
        let (done, pending) = Pending::channel();
        let row = match NewRow::new(rec) {
            Ok(row) => row,
            Err(e) => {
                // Only this record is refused; it never reaches a batch.
                let _ = done.send(Err(StoreError::Commit {
                    records: 1,
                    cause: Arc::new(rusqlite::Error::ToSqlConversionFailure(Box::new(e))),
                }));
                return Ok(pending);
            }
        };
        // Counted before sending so the writer's decrement never runs first.
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
                    TrySendError::Full(_) => {
                        if let Some(m) = &self.metrics {
                            m.dropped.inc();
                        }
                        Err(StoreError::QueueFull {
                            capacity: self.capacity,
                        })
                    }
                    TrySendError::Disconnected(_) => Err(StoreError::Closed),
                }
            }
        }
    }
}

/// Dedup keys of the records that arrived within the window, oldest first.
/// Only the writer thread touches it, so a key is checked and claimed in the
/// same step, and a retransmission queued in the same batch as its original
/// is caught as well. Keys claimed by a batch whose commit fails are
/// released again, so the retransmission that follows is stored.
struct DedupCache {
    window: Duration,
    capacity: usize,
    /// Arrival times are microseconds since `epoch`, a monotonic clock, so a
    /// wall-clock step neither expires everything nor keeps it forever. Keys
    /// reloaded at open are placed before it by their records' age.
    epoch: Instant,
    keys: HashSet<DedupKey>,
    order: VecDeque<(i64, DedupKey)>,
    /// Keys claimed by the open batch: the newest `claimed` entries of `order`.
    claimed: usize,
    /// Batch arrival time, read once per batch.
    now: i64,
    evictions: u64,
}

impl DedupCache {
    fn new(window: Duration, capacity: usize) -> Self {
        Self {
            window,
            capacity,
            epoch: Instant::now(),
            keys: HashSet::new(),
            order: VecDeque::new(),
            claimed: 0,
            now: 0,
            evictions: 0,
        }
    }

    fn elapsed_us(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(i64::MAX)
    }

    fn window_us(&self) -> i64 {
        i64::try_from(self.window.as_micros()).unwrap_or(i64::MAX)
    }

    /// Remembers a stored record's key, `age` after it arrived. Called in
    /// arrival order, oldest first, before the first batch.
    fn reload(&mut self, key: DedupKey, age: Duration) {
        let age = i64::try_from(age.as_micros()).unwrap_or(i64::MAX);
        if self.keys.insert(key) {
            self.order.push_back((self.now.saturating_sub(age), key));
            self.evict_over_capacity();
        }
    }

    /// Starts a batch: forgets keys older than the window.
    fn begin(&mut self) {
        self.begin_at(self.elapsed_us());
    }

    fn begin_at(&mut self, now: i64) {
        self.claimed = 0;
        self.now = now;
        let oldest = self.now.saturating_sub(self.window_us());
        while let Some(&(t, key)) = self.order.front() {
            if t > oldest {
                break;
            }
            self.order.pop_front();
            self.keys.remove(&key);
        }
    }

    /// True if `key` is new (and now claimed), false for a duplicate.
    fn claim(&mut self, key: DedupKey) -> bool {
        if !self.keys.insert(key) {
            return false;
        }
        self.order.push_back((self.now, key));
        self.claimed += 1;
        self.evict_over_capacity();
        true
    }

    fn evict_over_capacity(&mut self) {
        while self.order.len() > self.capacity {
            if let Some((_, key)) = self.order.pop_front() {
                self.keys.remove(&key);
                self.evictions += 1;
            }
        }
        self.claimed = self.claimed.min(self.order.len());
    }

    /// The batch did not commit: its keys were never stored.
    fn rollback(&mut self) {
        for _ in 0..self.claimed {
            if let Some((_, key)) = self.order.pop_back() {
                self.keys.remove(&key);
            }
        }
        self.claimed = 0;
    }

    fn len(&self) -> usize {
        self.order.len()
    }
}

struct Statements<'c> {
    begin: Statement<'c>,
    insert: Statement<'c>,
    commit: Statement<'c>,
    start: Statement<'c>,
    stop: Statement<'c>,
    reboot: Statement<'c>,
    fold: Statement<'c>,
    set_through: Statement<'c>,
}

impl<'c> Statements<'c> {
    // Prepared once for the thread's life: rusqlite's statement cache is
    // behind a feature not enabled here.
    fn prepare(conn: &'c Connection) -> rusqlite::Result<Self> {
        Ok(Self {
            begin: conn.prepare("BEGIN IMMEDIATE")?,
            insert: conn.prepare(INSERT)?,
            commit: conn.prepare("COMMIT")?,
            start: conn.prepare(UPSERT_START)?,
            stop: conn.prepare(UPSERT_STOP)?,
            reboot: conn.prepare(UPSERT_REBOOT)?,
            fold: conn.prepare(FOLD_ONE)?,
            set_through: conn.prepare(SET_THROUGH)?,
        })
    }

    /// Inserts the record and keeps the session tables in step; returns its id.
    fn store(&mut self, r: &NewRow) -> rusqlite::Result<i64> {
        let id = self.insert.insert(params![
            r.protocol,
            r.client(),
            r.client_addr(),
            r.src_port,
            r.user(),
            r.session_id(),
            r.status_text(),
            r.received_us,
            r.received_text(),
            r.attributes(),
            &r.dedup_key.0[..],
        ])?;
        let us = r.received_us;
        match r.status {
            Status::Start => {
                self.start.execute(params![
                    r.client_addr(),
                    r.session_id(),
                    r.user(),
                    r.protocol,
                    r.client(),
                    id,
                    us
                ])?;
            }
            Status::Stop => {
                self.stop.execute(params![
                    r.client_addr(),
                    r.session_id(),
                    r.user(),
                    r.protocol,
                    r.client(),
                    us
                ])?;
            }
            Status::AccountingOn | Status::AccountingOff => {
                self.reboot.execute(params![r.client_addr(), us])?;
            }
            _ => {}
        }
        Ok(id)
    }
}

/// Newest arrival per session among the records after the fold point. The
/// writer keeps it so that a fold writes one row per session, rather than
/// reading the records back and sorting them (which cost the writer a third
/// of its time in the load test).
#[derive(Default)]
struct LastSeen {
    /// Of committed records.
    committed: HashMap<Vec<u8>, i64>,
    /// Of the open batch; merged into `committed` once it commits.
    batch: HashMap<Vec<u8>, i64>,
    /// Sessions in `batch` but not in `committed`.
    batch_only: usize,
    /// Reused to build lookup keys without allocating.
    key: Vec<u8>,
}

impl LastSeen {
    /// (address, session id, user), length-prefixed so that no two differ
    /// only in where one string ends and the next begins.
    fn key(buf: &mut Vec<u8>, r: &NewRow) {
        buf.clear();
        for part in [r.client_addr(), r.session_id()] {
            buf.extend_from_slice(&part.len().to_le_bytes());
            buf.extend_from_slice(part.as_bytes());
        }
        buf.extend_from_slice(r.user().as_bytes());
    }

    fn parts(key: &[u8]) -> [Cow<'_, str>; 3] {
        const LEN: usize = usize::BITS as usize / 8;
        let mut rest = key;
        let mut take = || {
            let (len, tail) = rest.split_at(LEN.min(rest.len()));
            let len = usize::from_le_bytes(len.try_into().unwrap_or_default());
            let (part, tail) = tail.split_at(len.min(tail.len()));
            rest = tail;
            String::from_utf8_lossy(part)
        };
        let addr = take();
        let session = take();
        [addr, session, String::from_utf8_lossy(rest)]
    }

    fn note(&mut self, r: &NewRow) {
        Self::key(&mut self.key, r);
        match self.batch.get_mut(self.key.as_slice()) {
            Some(us) => *us = (*us).max(r.received_us),
            None => {
                self.batch_only += usize::from(!self.committed.contains_key(&self.key));
                self.batch.insert(self.key.clone(), r.received_us);
            }
        }
    }

    /// Sessions to fold.
    fn len(&self) -> usize {
        self.committed.len() + self.batch_only
    }

    fn fold(&self, stmt: &mut Statement<'_>) -> rusqlite::Result<()> {
        for (key, us) in self.committed.iter().chain(&self.batch) {
            let [addr, session, user] = Self::parts(key);
            stmt.execute(params![addr, session, user, us])?;
        }
        Ok(())
    }

    fn commit(&mut self, folded: bool) {
        self.batch_only = 0;
        if folded {
            self.committed.clear();
            self.batch.clear();
            return;
        }
        for (key, us) in self.batch.drain() {
            let newest = self.committed.entry(key).or_insert(us);
            *newest = (*newest).max(us);
        }
    }

    fn rollback(&mut self) {
        self.batch_only = 0;
        self.batch.clear();
    }
}

/// Where the writer's transactions have got to; changed only by a commit.
#[derive(Clone, Copy)]
struct Progress {
    /// Records up to this id are folded into `sessions.last_seen_us`.
    through_id: i64,
    /// Highest record id written (or found at open).
    last_id: i64,
    last_fold: Instant,
}

/// A finished batch's records and what to answer them.
enum Outcome {
    /// Committed; whether each record was new (not a duplicate).
    Committed(Vec<Job>, Vec<bool>),
    Failed(Vec<Job>, StoreError),
}

/// Resolves the `Pending`s of finished batches. On its own thread because
/// waking the waiting tasks takes about as long as inserting their records,
/// and meanwhile the writer already inserts the next records of those
/// answered first.
fn answer(outcomes: &Receiver<Outcome>) {
    for outcome in outcomes {
        // A receiver gone means the request was abandoned; the row stays.
        match outcome {
            Outcome::Committed(jobs, fresh) => {
                for (job, new) in jobs.into_iter().zip(fresh) {
                    let _ = job.done.send(Ok(Durable { duplicate: !new }));
                }
            }
            Outcome::Failed(jobs, err) => {
                for job in jobs {
                    let _ = job.done.send(Err(err.clone()));
                }
            }
        }
    }
}

/// The batch being collected, its transaction open.
struct Batch {
    jobs: Vec<Job>,
    /// Per record written so far: new, or a duplicate.
    fresh: Vec<bool>,
    /// What failed the transaction. Records taken after it are only
    /// gathered, to be failed with the rest.
    error: Option<rusqlite::Error>,
    /// First and last row id written.
    ids: Option<(i64, i64)>,
}

struct Writer {
    max_batch: usize,
    max_linger: Duration,
    sync_interval: Duration,
    dedup: DedupCache,
    last_seen: LastSeen,
    answers: mpsc::Sender<Outcome>,
    rewind: Arc<AtomicBool>,
    stats: Arc<Stats>,
    metrics: Option<AccountingMetrics>,
}

impl Writer {
    fn run(
        mut self,
        conn: &Connection,
        rx: &Receiver<Job>,
        ready: &mpsc::Sender<Result<(), rusqlite::Error>>,
    ) {
        let started = (|| {
            let stmts = Statements::prepare(conn)?;
            let mut progress = Progress {
                through_id: conn
                    .query_row("SELECT through_id FROM session_sync", [], |r| r.get(0))?,
                last_id: conn
                    .query_row("SELECT COALESCE(MAX(id), 0) FROM records", [], |r| r.get(0))?,
                last_fold: Instant::now(),
            };
            self.reload_dedup(conn)?;
            // What the last process committed after its last fold is not in
            // `last_seen`, so it is folded from the records once, here.
            if progress.last_id > progress.through_id {
                conn.execute_batch("BEGIN IMMEDIATE")?;
                let folded = (|| {
                    conn.execute(FOLD_TAIL, [progress.through_id, progress.last_id])?;
                    conn.execute(SET_THROUGH, [progress.last_id])?;
                    conn.execute_batch("COMMIT")
                })();
                if folded.is_err() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                folded?;
                progress.through_id = progress.last_id;
            }
            Ok((stmts, progress))
        })();
        let (mut stmts, mut progress) = match started {
            Ok(s) => {
                let _ = ready.send(Ok(()));
                s
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let mut last_batch = 0;
        let mut commit_ewma = Duration::ZERO;
        // Group commit: the first record opens a transaction, and whatever
        // queues up while it is written joins it; one fsync pays for all of
        // them. Records are written as they are taken, so the writer works
        // while the waiters it answered last are still sending.
        loop {
            let idle = Instant::now();
            let Ok(first) = rx.recv() else { break };
            self.taken();
            if idle.elapsed() > commit_ewma {
                // Quiet spell: nobody is about to come back.
                last_batch = 0;
            }
            let started = Instant::now();
            let evictions = self.dedup.evictions;
            let mut b = self.begin(&mut stmts, last_batch);
            self.add(&mut stmts, &mut b, first);
            self.drain(&mut stmts, rx, &mut b);
            // Waiters just answered tend to come straight back (an appliance
            // with its next request). Without a pause the first of them
            // would get a commit of its own while the rest queue behind it.
            // Bounded by a fraction of a commit, so it costs a lone record
            // little, and it never applies when traffic is light.
            if b.jobs.len() < last_batch && b.error.is_none() && !self.max_linger.is_zero() {
                let deadline = Instant::now() + self.max_linger.min(commit_ewma / 2);
                while b.jobs.len() < last_batch.min(self.max_batch) {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(left) {
                        Ok(job) => {
                            self.taken();
                            self.add(&mut stmts, &mut b, job);
                            self.drain(&mut stmts, rx, &mut b);
                        }
                        Err(_) => break,
                    }
                }
            }
            last_batch = b.jobs.len();
            let committing = Instant::now();
            let result = self.commit(&mut stmts, progress, &mut b);
            commit_ewma = (commit_ewma * 7 + committing.elapsed()) / 8;
            match result {
                Ok((p, folded)) => {
                    self.last_seen.commit(folded);
                    progress = p;
                    self.completed(b, started.elapsed());
                }
                Err(e) => {
                    if !conn.is_autocommit() {
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                    self.dedup.rollback();
                    self.last_seen.rollback();
                    self.failed(b, e);
                }
            }
            let evicted = self.dedup.evictions - evictions;
            if evicted > 0 {
                self.stats
                    .dedup_evictions
                    .fetch_add(evicted, Ordering::Relaxed);
                if let Some(m) = &self.metrics {
                    m.dedup_evictions.inc_by(evicted);
                }
            }
            // Between transactions, with the batch committed and handed to
            // the answerer, a checkpoint copies the WAL's tail to the end,
            // and the next commit rewinds the WAL. Records arriving meanwhile
            // wait one short copy and join the next batch.
            if self.rewind.swap(false, Ordering::Relaxed) {
                let _ = checkpoint(conn);
            }
        }
        // Folding what is left spares the next open from reading it back.
        if progress.last_id > progress.through_id {
            let folded = (|| {
                stmts.begin.execute([])?;
                self.last_seen.fold(&mut stmts.fold)?;
                stmts.set_through.execute([progress.last_id])?;
                stmts.commit.execute([])
            })();
            if folded.is_err() && !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
    }

    /// Keys of the records that arrived within the window, by their stored
    /// arrival time: a retransmission after a crash or restart is still
    /// recognised. The arrival-time index gives the first row of the window;
    /// reading rows from there in rowid order takes half the time of looking
    /// each one up from the index (records arrive in rowid order, nearly, and
    /// the few older ones in between are skipped).
    fn reload_dedup(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let now = unix_micros(SystemTime::now());
        let window = i64::try_from(self.dedup.window.as_micros()).unwrap_or(i64::MAX);
        let cutoff = now.saturating_sub(window);
        let first: Option<i64> = conn.query_row(
            "SELECT MIN(id) FROM records INDEXED BY records_received WHERE received_at_us > ?1",
            [cutoff],
            |r| r.get(0),
        )?;
        let Some(first) = first else {
            return Ok(());
        };
        // Unary + keeps SQLite from using the arrival-time index for this term.
        let mut stmt = conn.prepare(
            "SELECT dedup_key, received_at_us FROM records
              WHERE id >= ?1 AND +received_at_us > ?2 ORDER BY id DESC LIMIT ?3",
        )?;
        let limit = i64::try_from(self.dedup.capacity).unwrap_or(i64::MAX);
        let mut rows = stmt.query(params![first, cutoff, limit])?;
        let mut keys = Vec::new();
        while let Some(row) = rows.next()? {
            // A malformed key could not match a submitted one anyway.
            if let Ok(k) = <[u8; 16]>::try_from(row.get_ref(0)?.as_blob()?) {
                keys.push((row.get::<_, i64>(1)?, DedupKey(k)));
            }
        }
        keys.sort_unstable_by_key(|&(at, _)| at);
        self.dedup.keys.reserve(keys.len());
        self.dedup.order.reserve(keys.len());
        self.dedup.begin();
        for (at, key) in keys {
            let age = Duration::from_micros(now.saturating_sub(at).max(0).unsigned_abs());
            self.dedup.reload(key, age);
        }
        Ok(())
    }

    fn taken(&self) {
        if let Some(m) = &self.metrics {
            m.queue_depth.dec();
        }
    }

    /// Opens the batch's transaction.
    fn begin(&mut self, s: &mut Statements<'_>, expected: usize) -> Batch {
        self.dedup.begin();
        let capacity = expected.max(16).min(self.max_batch);
        Batch {
            jobs: Vec::with_capacity(capacity),
            fresh: Vec::with_capacity(capacity),
            error: s.begin.execute([]).err(),
            ids: None,
        }
    }

    /// Writes the record (unless a duplicate) with its session changes.
    fn add(&mut self, s: &mut Statements<'_>, b: &mut Batch, job: Job) {
        if b.error.is_none() {
            let new = self.dedup.claim(job.row.dedup_key);
            if new {
                match s.store(&job.row) {
                    Ok(id) => {
                        self.last_seen.note(&job.row);
                        b.ids = Some((b.ids.map_or(id, |(first, _)| first), id));
                    }
                    Err(e) => b.error = Some(e),
                }
            }
            b.fresh.push(new);
        }
        b.jobs.push(job);
    }

    fn drain(&mut self, s: &mut Statements<'_>, rx: &Receiver<Job>, b: &mut Batch) {
        while b.jobs.len() < self.max_batch {
            match rx.try_recv() {
                Ok(job) => {
                    self.taken();
                    self.add(s, b, job);
                }
                Err(_) => break,
            }
        }
    }

    /// Ends the batch's transaction, folding last_seen in when due. Returns
    /// the progress it made and whether it folded.
    fn commit(
        &mut self,
        s: &mut Statements<'_>,
        mut p: Progress,
        b: &mut Batch,
    ) -> rusqlite::Result<(Progress, bool)> {
        if let Some(e) = b.error.take() {
            return Err(e);
        }
        if let Some((first, last)) = b.ids {
            if first <= p.through_id {
                // Rowids go back below the fold point only when a prune
                // deleted the newest records (all of them, typically): the
                // fold must not take the new ones for folded.
                p.through_id = first - 1;
                p.last_id = last;
                s.set_through.execute([p.through_id])?;
            } else {
                p.last_id = p.last_id.max(last);
            }
        }
        let backlog = p.last_id - p.through_id;
        let fold = backlog > 0
            && (self.last_seen.len() >= FOLD_SESSIONS
                || backlog >= FOLD_RECORDS
                || p.last_fold.elapsed() >= self.sync_interval);
        if fold {
            self.last_seen.fold(&mut s.fold)?;
            s.set_through.execute([p.last_id])?;
            p.through_id = p.last_id;
            p.last_fold = Instant::now();
        }
        s.commit.execute([])?;
        Ok((p, fold))
    }

    fn completed(&self, b: Batch, elapsed: Duration) {
        let n = b.jobs.len() as u64;
        let dups = b.fresh.iter().filter(|f| !**f).count() as u64;
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.stats.records.fetch_add(n, Ordering::Relaxed);
        self.stats.duplicates.fetch_add(dups, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.records_stored.inc_by(n - dups);
            m.duplicates.inc_by(dups);
            m.dedup_keys.set(self.dedup.len() as i64);
            m.commit_batch_size.observe(n as f64);
            m.commit_seconds.observe(elapsed.as_secs_f64());
        }
        let _ = self.answers.send(Outcome::Committed(b.jobs, b.fresh));
    }

    fn failed(&self, b: Batch, cause: rusqlite::Error) {
        let n = b.jobs.len();
        let err = StoreError::Commit {
            records: n,
            cause: Arc::new(cause),
        };
        self.stats.failed_commits.fetch_add(1, Ordering::Relaxed);
        self.stats
            .failed_records
            .fetch_add(n as u64, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.commit_failures.inc();
        }
        let _ = self.answers.send(Outcome::Failed(b.jobs, err));
    }
}

/// How often the checkpointer copies the WAL back while commits come in.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// WAL length (frames, 32 MiB of 2 KiB pages) past which the writer has it
/// rewound. Each rewind holds up the records queued during it, so rarer is
/// better for the ack tail: in the load test 8192 gave p99 ~20 ms, 16384 ~10 ms.
const REWIND_FRAMES: i64 = 16_384;

/// Copies the WAL back into the database beside the writer, so commits do
/// not wait for it. A checkpoint running beside a writer never quite catches
/// up, and SQLite only rewinds a fully copied WAL; so once the WAL is long,
/// it asks the writer to copy the small remainder between two transactions
/// (see `Writer::run`), after which the next commit starts the WAL over.
struct Checkpointer {
    conn: Connection,
    stats: Arc<Stats>,
    rewind: Arc<AtomicBool>,
}

impl Checkpointer {
    fn run(self, stop: &Receiver<()>) {
        let mut seen = 0;
        while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
            let commits = self.stats.commits.load(Ordering::Relaxed);
            if commits == seen {
                continue;
            }
            seen = commits;
            // A failure (another checkpoint running) is retried next round.
            if let Ok(frames) = checkpoint(&self.conn)
                && frames > REWIND_FRAMES
            {
                self.rewind.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// PASSIVE never waits for readers or the writer; what an old reader still
/// needs is copied next time. Returns the WAL's length in frames.
fn checkpoint(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
}

fn db_path(data_dir: &Path) -> Result<PathBuf, StoreError> {
    crate::datadir::private_dir(data_dir).map_err(|e| StoreError::CreateDir {
        path: data_dir.to_path_buf(),
        cause: Arc::new(e),
    })?;
    let path = data_dir.join(DB_FILE);
    crate::datadir::private_db(&path).map_err(|e| StoreError::Private {
        path: path.clone(),
        cause: Arc::new(e),
    })?;
    Ok(path)
}

fn open_conn(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let open_err = |e| StoreError::Open {
        path: path.to_path_buf(),
        cause: Arc::new(e),
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_err)?;
    conn.busy_timeout(busy_timeout).map_err(open_err)?;
    // Only takes effect on a new database. A commit writes each page it
    // touched in full, and besides the new rows those are mostly partly
    // filled pages at the right edge of the table and its index, so smaller
    // pages write less: 2 KiB pages wrote ~12% fewer bytes per record than
    // 4 KiB in the load test (64 submitters), while rows up to ~2 KiB of
    // attributes still fit inline.
    conn.execute_batch("PRAGMA page_size = 2048")
        .map_err(open_err)?;
    // WAL: readers never block the writer; FULL: a commit is on disk (WAL
    // fsynced) before it returns, which is what an acknowledgement promises.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(open_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(open_err(rusqlite::Error::InvalidParameterName(format!(
            "journal_mode is {mode}, WAL refused"
        ))));
    }
    // The size limit sits above the longest WAL between rewinds, so a rewound
    // WAL is overwritten in place rather than truncated and grown again.
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA journal_size_limit = 134217728;")
        .map_err(open_err)?;
    let version = || {
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .map_err(open_err)
    };
    let mut found = version()?;
    if found == 0 {
        // Read again under the write lock: the server and the CLI may both
        // be creating a new database.
        conn.execute_batch("BEGIN IMMEDIATE").map_err(open_err)?;
        let created = version().and_then(|v| {
            if v == 0 {
                conn.execute_batch(&format!("{SCHEMA} PRAGMA user_version = {SCHEMA_VERSION};"))
                    .map_err(open_err)?;
            }
            conn.execute_batch("COMMIT").map_err(open_err)
        });
        if created.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        created?;
        found = version()?;
    }
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    if found < SCHEMA_VERSION {
        // Version 1 (unique dedup index, per-user indexes) never left
        // development, so it is refused rather than migrated.
        return Err(open_err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!(
                "schema version {found} is older than this build's {SCHEMA_VERSION} \
                 and is not migrated; move the file away to start a new one"
            )),
        )));
    }
    Ok(conn)
}

/// Queries and pruning on their own connection. Also what the CLI opens while
/// the server runs.
pub struct Archive {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Archive {
    /// Opens (creating if need be) `<data_dir>/accounting.sqlite3`.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = db_path(data_dir.as_ref())?;
        Self::open_file(path, SqliteConfig::default().busy_timeout)
    }

    fn open_file(path: PathBuf, busy_timeout: Duration) -> Result<Self, StoreError> {
        let conn = open_conn(&path, busy_timeout)?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic mid-query leaves no Rust-side state to distrust.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records matching `filter`, oldest first (newest last). Only the time
    /// bounds are indexed: other conditions are checked on every record in
    /// the time range (with `limit`, from the newest until enough matched).
    pub fn list(&self, filter: &Filter) -> Result<Vec<StoredRecord>, StoreError> {
        let (sql, args) = filter.query(&format!("SELECT {COLUMNS} FROM records"), |_| "?".into());
        let args = args.into_iter().map(|a| match a {
            Bound::Text(t) => Value::Text(t.to_string()),
            Bound::Int(i) => Value::Integer(i),
        });
        let q = |e| StoreError::Query {
            what: "list",
            cause: Arc::new(e),
        };
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql).map_err(q)?;
        let mut rows = stmt.query(params_from_iter(args)).map_err(q)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(q)? {
            out.push(decode_record(row).map_err(|e| e.or_query("list"))?);
        }
        Ok(out)
    }

    /// The first stored record with this dedup key, if any. Dedup keys are
    /// not indexed (deduplication happens in the writer's memory), so this
    /// reads the whole table: meant for tests and the CLI.
    pub fn find(&self, key: &DedupKey) -> Result<Option<StoredRecord>, StoreError> {
        let q = |e| StoreError::Query {
            what: "find",
            cause: Arc::new(e),
        };
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM records WHERE dedup_key = ?1 ORDER BY id LIMIT 1"
            ))
            .map_err(q)?;
        let mut rows = stmt.query([&key.0[..]]).map_err(q)?;
        match rows.next().map_err(q)? {
            Some(row) => Ok(Some(decode_record(row).map_err(|e| e.or_query("find"))?)),
            None => Ok(None),
        }
    }

    /// Number of stored records.
    pub fn count(&self) -> Result<u64, StoreError> {
        self.conn()
            .query_row("SELECT COUNT(*) FROM records", [], |r| r.get::<_, i64>(0))
            .map(|n| n.unsigned_abs())
            .map_err(|e| StoreError::Query {
                what: "count",
                cause: Arc::new(e),
            })
    }

    /// Sessions with a Start and no Stop, keyed by (appliance address,
    /// session id, user), oldest first.
    ///
    /// Keyed by address rather than client name because one client entry may
    /// cover a whole subnet of appliances, while session ids are only unique
    /// per appliance. A Stop closes the session whenever it arrived (UDP may
    /// reorder it before its Start). An Accounting-On or -Off from the same
    /// address received at or after the (latest) Start closes it as well: the
    /// appliance rebooted or stopped accounting, and will never send that Stop.
    /// Pruning a session's Start removes it from this list.
    pub fn active_sessions(&self) -> Result<Vec<ActiveSession>, StoreError> {
        // One statement, so one snapshot: the sessions table and the records
        // not yet folded into its last_seen agree.
        const SQL: &str = "
            SELECT s.start_id, s.protocol, s.client, s.client_addr, s.username, s.session_id,
                   s.started_at_us, MAX(s.last_seen_us, COALESCE(t.m, 0))
              FROM sessions s
              LEFT JOIN (SELECT client_addr, session_id, username, MAX(received_at_us) AS m
                           FROM records
                          WHERE id > (SELECT through_id FROM session_sync)
                          GROUP BY client_addr, session_id, username) AS t
                ON t.client_addr = s.client_addr AND t.session_id = s.session_id
                   AND t.username = s.username
             WHERE s.stopped = 0 AND s.start_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM nas_reboots n
                                WHERE n.client_addr = s.client_addr
                                  AND n.last_us >= s.started_at_us)
             ORDER BY s.started_at_us, s.start_id";
        let q = |e| StoreError::Query {
            what: "active sessions",
            cause: Arc::new(e),
        };
        let conn = self.conn();
        let mut stmt = conn.prepare(SQL).map_err(q)?;
        let mut rows = stmt.query([]).map_err(q)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(q)? {
            let id: i64 = row.get(0).map_err(q)?;
            let protocol: String = row.get(1).map_err(q)?;
            let addr: String = row.get(3).map_err(q)?;
            out.push(ActiveSession {
                protocol: protocol.parse().map_err(|d| corrupt(id, "protocol", d))?,
                client: row.get(2).map_err(q)?,
                client_addr: parse_addr(id, &addr)?,
                user: row.get(4).map_err(q)?,
                session_id: row.get(5).map_err(q)?,
                started_at: from_unix_micros(row.get(6).map_err(q)?),
                last_seen: from_unix_micros(row.get(7).map_err(q)?),
            });
        }
        Ok(out)
    }

    /// Deletes records received before `older_than`, a few hundred per
    /// transaction so the writer is never kept waiting long. Returns how many.
    pub fn prune(&self, older_than: SystemTime) -> Result<usize, StoreError> {
        let cutoff = unix_micros(older_than);
        let q = |e| StoreError::Query {
            what: "prune",
            cause: Arc::new(e),
        };
        let mut total = 0;
        loop {
            let n = {
                let mut conn = self.conn();
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(q)?;
                let n = tx
                    .execute(
                        "DELETE FROM records WHERE id IN (SELECT id FROM records
                          WHERE received_at_us < ?1 ORDER BY received_at_us LIMIT ?2)",
                        params![cutoff, PRUNE_BATCH as i64],
                    )
                    .map_err(q)?;
                // Every record older than the oldest one left is gone, so a
                // session whose newest Start or Stop is older has none left,
                // nor does an appliance whose latest reboot is older.
                const LEFT: &str =
                    "MIN(?1, COALESCE((SELECT MIN(received_at_us) FROM records), ?1))";
                tx.execute(
                    &format!("DELETE FROM sessions WHERE touched_us < {LEFT}"),
                    [cutoff],
                )
                .map_err(q)?;
                tx.execute(
                    &format!("DELETE FROM nas_reboots WHERE last_us < {LEFT}"),
                    [cutoff],
                )
                .map_err(q)?;
                tx.commit().map_err(q)?;
                n
            };
            total += n;
            if n < PRUNE_BATCH {
                return Ok(total);
            }
            // SQLite's lock wait is polling, not a queue: step aside so a
            // waiting group commit gets the lock before the next slice.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Prunes records older than `retention` every `every`, on the blocking pool,
/// until the returned task is aborted. Each outcome goes to `on_result` (to
/// log or count). Cutoffs come from the wall clock.
pub fn spawn_pruner<F>(
    archive: Arc<Archive>,
    retention: Duration,
    every: Duration,
    on_result: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(Result<usize, StoreError>) + Send + 'static,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(cutoff) = SystemTime::now().checked_sub(retention) else {
                continue;
            };
            let a = archive.clone();
            let r = tokio::task::spawn_blocking(move || a.prune(cutoff)).await;
            on_result(r.unwrap_or_else(|e| Err(StoreError::Background(format!("prune: {e}")))));
        }
    })
}

enum DecodeError {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl DecodeError {
    fn or_query(self, what: &'static str) -> StoreError {
        match self {
            Self::Sql(e) => StoreError::Query {
                what,
                cause: Arc::new(e),
            },
            Self::Store(e) => e,
        }
    }
}

impl From<rusqlite::Error> for DecodeError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<StoreError> for DecodeError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn corrupt(id: i64, column: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        id,
        column,
        detail: detail.to_string(),
    }
}

fn parse_addr(id: i64, s: &str) -> Result<IpAddr, StoreError> {
    s.parse().map_err(|e| corrupt(id, "client_addr", e))
}

fn decode_record(row: &Row<'_>) -> Result<StoredRecord, DecodeError> {
    let id: i64 = row.get(0)?;
    let protocol: String = row.get(1)?;
    let addr: String = row.get(3)?;
    let status: String = row.get(7)?;
    let attributes: String = row.get(9)?;
    let key: Vec<u8> = row.get(10)?;
    Ok(StoredRecord {
        id,
        received_at: from_unix_micros(row.get(8)?),
        protocol: protocol.parse().map_err(|d| corrupt(id, "protocol", d))?,
        client: row.get(2)?,
        client_addr: parse_addr(id, &addr)?,
        src_port: row.get(4)?,
        user: row.get(5)?,
        session_id: row.get(6)?,
        status: status.parse().map_err(|d| corrupt(id, "status", d))?,
        attributes: serde_json::from_str(&attributes).map_err(|e| corrupt(id, "attributes", e))?,
        dedup_key: DedupKey(
            key.try_into()
                .map_err(|k: Vec<u8>| corrupt(id, "dedup_key", format!("{} bytes", k.len())))?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::{Attributes, Protocol};

    fn key(n: u8) -> DedupKey {
        DedupKey([n; 16])
    }

    fn consistent(d: &DedupCache) -> bool {
        d.keys.len() == d.order.len() && d.order.iter().all(|(_, k)| d.keys.contains(k))
    }

    #[test]
    fn dedup_cache_claims_releases_and_expires() {
        let mut d = DedupCache::new(Duration::from_secs(10), 100);
        d.begin_at(0);
        assert!(d.claim(key(1)));
        assert!(!d.claim(key(1)), "a duplicate in the same batch");
        assert!(d.claim(key(2)));
        d.begin_at(1_000_000);
        assert!(d.claim(key(3)));
        assert!(!d.claim(key(1)));
        d.rollback();
        // Only the failed batch's own key is released.
        assert!(consistent(&d) && d.len() == 2);
        d.begin_at(2_000_000);
        assert!(d.claim(key(3)));
        // Keys 1 and 2 arrived at 0 s: forgotten once 10 s have passed.
        d.begin_at(9_999_999);
        assert!(!d.claim(key(1)));
        d.begin_at(10_000_000);
        assert!(d.claim(key(1)) && d.claim(key(2)) && !d.claim(key(3)));
        assert!(consistent(&d) && d.evictions == 0);
    }

    #[test]
    fn dedup_cache_over_capacity_in_one_batch_then_rolled_back() {
        let mut d = DedupCache::new(Duration::from_secs(10), 2);
        d.begin_at(0);
        assert!(d.claim(key(1)));
        d.begin_at(1);
        for n in 2..=5 {
            assert!(d.claim(key(n)));
        }
        assert_eq!((d.len(), d.evictions), (2, 3));
        d.rollback();
        assert!(consistent(&d) && d.len() == 0);
        d.begin_at(2);
        assert!(d.claim(key(1)) && d.claim(key(5)));
    }

    #[test]
    fn dedup_cache_reload_ages_keys() {
        let mut d = DedupCache::new(Duration::from_secs(10), 100);
        d.begin_at(50_000_000);
        d.reload(key(1), Duration::from_secs(9));
        d.reload(key(2), Duration::from_secs(1));
        d.reload(key(2), Duration::from_secs(1));
        assert!(consistent(&d) && d.len() == 2);
        d.begin_at(51_000_000);
        assert!(d.claim(key(1)), "9 s old at load, 10 s now");
        assert!(!d.claim(key(2)));
    }

    fn row(addr: &str, session: &str, user: &str, us: i64) -> NewRow {
        NewRow::new(Record {
            protocol: Protocol::Radius,
            client: "c".into(),
            client_addr: addr.parse().unwrap(),
            src_port: 1,
            user: user.into(),
            session_id: session.into(),
            status: Status::InterimUpdate,
            received_at: from_unix_micros(us),
            attributes: Attributes::new(),
            dedup_key: key(0),
        })
        .unwrap()
    }

    #[test]
    fn last_seen_folds_committed_batches_only() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        // Ends and starts of the address and session id shifted against each
        // other: the keys must still differ.
        let sessions = [("10.0.0.1", "23"), ("10.0.0.12", "3")];
        for (addr, session) in sessions {
            conn.execute(
                "INSERT INTO sessions VALUES (?1, ?2, 'u', 'radius', 'c', 1, 0, 0, 0, 0)",
                [addr, session],
            )
            .unwrap();
        }
        let mut seen = LastSeen::default();
        let [a, b] = sessions;
        seen.note(&row(a.0, a.1, "u", 10));
        seen.commit(false);
        seen.note(&row(a.0, a.1, "u", 50));
        seen.note(&row(b.0, b.1, "u", 60));
        seen.rollback();
        assert_eq!(seen.len(), 1);
        seen.note(&row(b.0, b.1, "u", 20));
        seen.note(&row(a.0, a.1, "u", 8));
        assert_eq!(seen.len(), 2);
        seen.fold(&mut conn.prepare(FOLD_ONE).unwrap()).unwrap();
        seen.commit(true);
        assert_eq!(seen.len(), 0);
        let got: Vec<(String, i64)> = conn
            .prepare("SELECT client_addr, last_seen_us FROM sessions ORDER BY client_addr")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got, [(a.0.to_string(), 10), (b.0.to_string(), 20)]);
    }
}

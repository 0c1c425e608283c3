//! SQLite backend: one writer thread doing group commit, and [`Archive`] for
//! queries and pruning on a separate connection (WAL lets it read while the
//! writer commits, from this process or from the CLI in another).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, Row, params, params_from_iter};
use tokio::sync::oneshot;

use super::{
    AccountingMetrics, AccountingSink, ActiveSession, DedupKey, Durable, Filter, Pending, Record,
    StoreError, StoredRecord, format_time, from_unix_micros, unix_micros,
};

/// File name inside the data directory.
pub const DB_FILE: &str = "accounting.sqlite3";

const SCHEMA_VERSION: i64 = 1;

// Every index with a scattered key (dedup key, user) costs each record a page
// write of its own per commit. So the session index holds only Start and Stop
// rows, all that active_sessions() needs, and not the interim updates that
// are most of the traffic (a third less written per record in the load test).
// Listing one session's records goes by user or time instead.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
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
    dedup_key      BLOB    NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS records_user ON records (username, received_at_us);
CREATE INDEX IF NOT EXISTS records_client ON records (client, received_at_us);
CREATE INDEX IF NOT EXISTS records_received ON records (received_at_us);
CREATE INDEX IF NOT EXISTS records_session ON records (client_addr, session_id, username, status)
    WHERE status IN ('Start', 'Stop');
CREATE INDEX IF NOT EXISTS records_nas_reboots ON records (client_addr, received_at_us)
    WHERE status IN ('Accounting-On', 'Accounting-Off');
";

const INSERT: &str = "INSERT INTO records (protocol, client, client_addr, src_port, username,
    session_id, status, received_at_us, received_at, attributes, dedup_key)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
    ON CONFLICT (dedup_key) DO NOTHING";

const COLUMNS: &str = "id, protocol, client, client_addr, src_port, username, session_id, status,
    received_at_us, attributes, dedup_key";

/// Deleting in slices keeps each prune transaction to a few milliseconds, so
/// the writer's group commits wait at most that long for the lock.
const PRUNE_BATCH: usize = 500;

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
    pub metrics: Option<AccountingMetrics>,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 8192,
            max_batch: 1024,
            max_linger: Duration::from_millis(2),
            busy_timeout: Duration::from_secs(5),
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
}

#[derive(Default)]
struct Stats {
    commits: AtomicU64,
    records: AtomicU64,
    duplicates: AtomicU64,
    failed_commits: AtomicU64,
    failed_records: AtomicU64,
}

struct Job {
    rec: Record,
    done: oneshot::Sender<Result<Durable, StoreError>>,
}

/// The durable store. Dropping it (or [`close`](Self::close)) commits
/// everything already queued and resolves its `Pending`s before returning.
pub struct SqliteStore {
    path: PathBuf,
    busy_timeout: Duration,
    capacity: usize,
    tx: Option<SyncSender<Job>>,
    writer: Option<JoinHandle<()>>,
    checkpointer: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    stats: Arc<Stats>,
    metrics: Option<AccountingMetrics>,
}

impl SqliteStore {
    /// Opens or creates `<data_dir>/accounting.sqlite3` and starts the writer.
    pub fn open(data_dir: impl AsRef<Path>, config: SqliteConfig) -> Result<Self, StoreError> {
        if config.queue_capacity == 0 {
            return Err(StoreError::Config("queue_capacity must be at least 1"));
        }
        if config.max_batch == 0 {
            return Err(StoreError::Config("max_batch must be at least 1"));
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
        let (tx, rx) = mpsc::sync_channel(config.queue_capacity);
        let (ready_tx, ready_rx) = mpsc::channel();
        let writer = Writer {
            max_batch: config.max_batch,
            max_linger: config.max_linger,
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
        }
    }

    /// Commits what is queued, then stops the writer. Blocks until then, so
    /// on an async runtime call it from `spawn_blocking`.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), StoreError> {
        // The writer drains the queue, then sees the channel disconnected.
        drop(self.tx.take());
        let writer = self.writer.take().map(JoinHandle::join);
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
        // Counted before sending so the writer's decrement never runs first.
        if let Some(m) = &self.metrics {
            m.queue_depth.inc();
        }
        match tx.try_send(Job { rec, done }) {
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

struct Writer {
    max_batch: usize,
    max_linger: Duration,
    rewind: Arc<AtomicBool>,
    stats: Arc<Stats>,
    metrics: Option<AccountingMetrics>,
}

impl Writer {
    fn run(
        self,
        conn: &Connection,
        rx: &Receiver<Job>,
        ready: &mpsc::Sender<Result<(), rusqlite::Error>>,
    ) {
        // Prepared once for the thread's life: rusqlite's statement cache is
        // behind a feature not enabled here, and one statement is all we need.
        let prepared = (|| {
            Ok::<_, rusqlite::Error>((
                conn.prepare("BEGIN IMMEDIATE")?,
                conn.prepare(INSERT)?,
                conn.prepare("COMMIT")?,
            ))
        })();
        let (mut begin, mut insert, mut commit) = match prepared {
            Ok(s) => {
                let _ = ready.send(Ok(()));
                s
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let mut batch: Vec<Job> = Vec::with_capacity(self.max_batch);
        let mut fresh: Vec<bool> = Vec::with_capacity(self.max_batch);
        let mut last_batch = 0;
        let mut commit_ewma = Duration::ZERO;
        // Group commit: wait for the first record, then take whatever else
        // queued up meanwhile; one fsync pays for all of them.
        loop {
            let idle = Instant::now();
            let Ok(first) = rx.recv() else { break };
            if idle.elapsed() > commit_ewma {
                // Quiet spell: nobody is about to come back.
                last_batch = 0;
            }
            batch.push(first);
            self.drain(rx, &mut batch);
            // Waiters just acknowledged tend to come straight back (an
            // appliance with its next request). Without a pause the first of
            // them would get a commit of its own while the rest queue behind
            // it. Bounded by a fraction of a commit, so it costs a lone
            // record little, and it never applies when traffic is light.
            if batch.len() < last_batch && !self.max_linger.is_zero() {
                let deadline = Instant::now() + self.max_linger.min(commit_ewma / 2);
                while batch.len() < last_batch.min(self.max_batch) {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(left) {
                        Ok(job) => {
                            batch.push(job);
                            self.drain(rx, &mut batch);
                        }
                        Err(_) => break,
                    }
                }
            }
            last_batch = batch.len();
            if let Some(m) = &self.metrics {
                m.queue_depth.dec_by(batch.len() as i64);
            }
            let started = Instant::now();
            fresh.clear();
            let result = (|| {
                begin.execute([])?;
                for job in &batch {
                    fresh.push(insert_one(&mut insert, &job.rec)? == 1);
                }
                commit.execute([])
            })();
            let elapsed = started.elapsed();
            commit_ewma = (commit_ewma * 7 + elapsed) / 8;
            match result {
                Ok(_) => self.completed(&mut batch, &fresh, elapsed),
                Err(e) => {
                    if !conn.is_autocommit() {
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                    self.failed(&mut batch, e);
                }
            }
            // Between transactions, with the batch already acknowledged, a
            // checkpoint copies the WAL's tail to the end, and the next
            // commit rewinds the WAL. Records arriving meanwhile wait one
            // short copy and join the next batch.
            if self.rewind.swap(false, Ordering::Relaxed) {
                let _ = checkpoint(conn);
            }
        }
    }

    fn drain(&self, rx: &Receiver<Job>, batch: &mut Vec<Job>) {
        while batch.len() < self.max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
    }

    fn completed(&self, batch: &mut Vec<Job>, fresh: &[bool], elapsed: Duration) {
        let n = batch.len() as u64;
        let dups = fresh.iter().filter(|f| !**f).count() as u64;
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.stats.records.fetch_add(n, Ordering::Relaxed);
        self.stats.duplicates.fetch_add(dups, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.records_stored.inc_by(n - dups);
            m.duplicates.inc_by(dups);
            m.commit_batch_size.observe(n as f64);
            m.commit_seconds.observe(elapsed.as_secs_f64());
        }
        for (job, &new) in batch.drain(..).zip(fresh) {
            // A receiver gone means the request was abandoned; the row stays.
            let _ = job.done.send(Ok(Durable { duplicate: !new }));
        }
    }

    fn failed(&self, batch: &mut Vec<Job>, cause: rusqlite::Error) {
        let err = StoreError::Commit {
            records: batch.len(),
            cause: Arc::new(cause),
        };
        self.stats.failed_commits.fetch_add(1, Ordering::Relaxed);
        self.stats
            .failed_records
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.commit_failures.inc();
        }
        for job in batch.drain(..) {
            let _ = job.done.send(Err(err.clone()));
        }
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

fn insert_one(stmt: &mut rusqlite::Statement<'_>, r: &Record) -> rusqlite::Result<usize> {
    let attributes = serde_json::to_string(&r.attributes)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let us = unix_micros(r.received_at);
    stmt.execute(params![
        r.protocol.as_str(),
        r.client,
        r.client_addr.to_string(),
        r.src_port,
        r.user,
        r.session_id,
        r.status.to_string(),
        us,
        format_time(r.received_at),
        attributes,
        &r.dedup_key.0[..],
    ])
}

fn db_path(data_dir: &Path) -> Result<PathBuf, StoreError> {
    std::fs::create_dir_all(data_dir).map_err(|e| StoreError::CreateDir {
        path: data_dir.to_path_buf(),
        cause: Arc::new(e),
    })?;
    Ok(data_dir.join(DB_FILE))
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
    // Only takes effect on a new database. Most of what a commit writes is
    // one index leaf per scattered key per record, so smaller pages write
    // less: in the load test 2 KiB pages gave ~20% more records/s than 4 KiB
    // and a lower p99, while rows up to ~2 KiB of attributes still fit inline.
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
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(open_err)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    if version < SCHEMA_VERSION {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))
        .map_err(open_err)?;
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

    /// Records matching `filter`, oldest first (newest last).
    pub fn list(&self, filter: &Filter) -> Result<Vec<StoredRecord>, StoreError> {
        let mut conds = Vec::new();
        let mut args: Vec<Value> = Vec::new();
        let mut cond = |sql: &'static str, v: Value| {
            conds.push(sql);
            args.push(v);
        };
        if let Some(u) = &filter.user {
            cond("username = ?", Value::Text(u.clone()));
        }
        if let Some(c) = &filter.client {
            cond("client = ?", Value::Text(c.clone()));
        }
        if let Some(s) = &filter.session_id {
            cond("session_id = ?", Value::Text(s.clone()));
        }
        if let Some(t) = filter.since {
            cond("received_at_us >= ?", Value::Integer(unix_micros(t)));
        }
        if let Some(t) = filter.until {
            cond("received_at_us < ?", Value::Integer(unix_micros(t)));
        }
        let mut sql = format!("SELECT {COLUMNS} FROM records");
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        if let Some(limit) = filter.limit {
            // Newest `limit`, then turned around so the newest prints last.
            sql = format!(
                "SELECT * FROM ({sql} ORDER BY received_at_us DESC, id DESC LIMIT ?)
                 ORDER BY received_at_us, id"
            );
            args.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        } else {
            sql.push_str(" ORDER BY received_at_us, id");
        }
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

    /// The stored record with this dedup key, if any.
    pub fn find(&self, key: &DedupKey) -> Result<Option<StoredRecord>, StoreError> {
        let q = |e| StoreError::Query {
            what: "find",
            cause: Arc::new(e),
        };
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM records WHERE dedup_key = ?1"
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
        // The inner query reads only the partial session index (covering);
        // its `status IN (...)` term is spelled as in the index so SQLite
        // sees the index applies.
        const SQL: &str = "
            SELECT r.id, r.protocol, r.client, r.client_addr, r.username, r.session_id,
                   r.received_at_us,
                   (SELECT MAX(x.received_at_us) FROM records x
                     WHERE x.username = r.username AND x.received_at_us >= r.received_at_us
                       AND x.client_addr = r.client_addr AND x.session_id = r.session_id)
              FROM (SELECT MAX(CASE WHEN status = 'Start' THEN id END) AS start_id
                      FROM records
                     WHERE status IN ('Start', 'Stop')
                     GROUP BY client_addr, session_id, username
                    HAVING start_id IS NOT NULL AND SUM(status = 'Stop') = 0) AS open
              JOIN records r ON r.id = open.start_id
             WHERE NOT EXISTS (SELECT 1 FROM records o
                                WHERE o.status IN ('Accounting-On', 'Accounting-Off')
                                  AND o.client_addr = r.client_addr
                                  AND o.received_at_us >= r.received_at_us)
             ORDER BY r.received_at_us, r.id";
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
        let mut total = 0;
        loop {
            let n = self
                .conn()
                .execute(
                    "DELETE FROM records WHERE id IN (SELECT id FROM records
                      WHERE received_at_us < ?1 ORDER BY received_at_us LIMIT ?2)",
                    params![cutoff, PRUNE_BATCH as i64],
                )
                .map_err(|e| StoreError::Query {
                    what: "prune",
                    cause: Arc::new(e),
                })?;
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

//! Durable accounting: an appliance's accounting request is answered only once
//! its record is committed. [`AccountingSink::submit`] queues a record and hands
//! back a [`Pending`] that resolves when the transaction holding it has committed.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};
use tokio::sync::oneshot;

use crate::clock::unix_micros;

mod memory;
mod metrics;
mod postgres;
mod render;
mod sqlite;
#[cfg(test)]
mod tests;

pub use self::memory::MemorySink;
pub use self::metrics::AccountingMetrics;
pub use self::postgres::{PgArchive, PgSink, PgSinkConfig, spawn_pg_pruner};
pub use self::render::{write_csv, write_json_lines, write_sessions_table, write_table};
pub use self::sqlite::{Archive, DB_FILE, SqliteConfig, SqliteStore, StoreStats, spawn_pruner};

/// Attribute name → value, or → array of values when an attribute repeats.
pub type Attributes = serde_json::Map<String, serde_json::Value>;

/// Where records go. A server database (PostgreSQL) can implement this later.
pub trait AccountingSink: Send + Sync {
    /// Queues `rec`. Fails at once with [`StoreError::QueueFull`] instead of
    /// waiting: the caller drops the request unanswered and the appliance
    /// retransmits. Acknowledge the request only after the `Pending` is `Ok`.
    fn submit(&self, rec: Record) -> Result<Pending, StoreError>;
}

impl fmt::Debug for dyn AccountingSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountingSink")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Radius,
    Tacacs,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Radius => "radius",
            Self::Tacacs => "tacacs",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "radius" => Ok(Self::Radius),
            "tacacs" => Ok(Self::Tacacs),
            _ => Err(format!("unknown protocol {s:?}")),
        }
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Kind of accounting record. Stored as text (`Start`, `Interim-Update`, …,
/// `Other-N`) so the database reads well in the `sqlite3` shell too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Start,
    Stop,
    InterimUpdate,
    AccountingOn,
    AccountingOff,
    Watchdog,
    Other(u32),
}

impl Status {
    /// From a RADIUS Acct-Status-Type value (RFC 2866 §5.1).
    pub fn from_radius(code: u32) -> Self {
        match code {
            1 => Self::Start,
            2 => Self::Stop,
            3 => Self::InterimUpdate,
            7 => Self::AccountingOn,
            8 => Self::AccountingOff,
            n => Self::Other(n),
        }
    }

    /// From TACACS+ accounting flags (RFC 8907 §7.2: START 0x02, STOP 0x04,
    /// WATCHDOG 0x08; WATCHDOG with START is a watchdog that carries an update).
    pub fn from_tacacs_flags(flags: u8) -> Self {
        match flags & 0x0e {
            0x04 => Self::Stop,
            0x08 | 0x0a => Self::Watchdog,
            0x02 => Self::Start,
            _ => Self::Other(u32::from(flags)),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Start => "Start",
            Self::Stop => "Stop",
            Self::InterimUpdate => "Interim-Update",
            Self::AccountingOn => "Accounting-On",
            Self::AccountingOff => "Accounting-Off",
            Self::Watchdog => "Watchdog",
            Self::Other(_) => "Other",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Other(n) => write!(f, "Other-{n}"),
            s => f.write_str(s.name()),
        }
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "Start" => Self::Start,
            "Stop" => Self::Stop,
            "Interim-Update" => Self::InterimUpdate,
            "Accounting-On" => Self::AccountingOn,
            "Accounting-Off" => Self::AccountingOff,
            "Watchdog" => Self::Watchdog,
            _ => match s.strip_prefix("Other-").map(str::parse) {
                Some(Ok(n)) => Self::Other(n),
                _ => return Err(format!("unknown accounting status {s:?}")),
            },
        })
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Identity of one request as the appliance sent it (RFC 5080 §2.2.2), so a
/// retransmission stores nothing new even after a restart lost the in-memory
/// duplicate cache (within [`SqliteConfig::dedup_window`] of the original,
/// which covers an appliance's retransmissions). The caller hashes it: for RADIUS (client, source port,
/// Identifier, Request Authenticator); for TACACS+ session id + seq_no + body.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DedupKey(pub [u8; 16]);

impl DedupKey {
    pub fn to_hex(&self) -> String {
        use fmt::Write;
        let mut s = String::with_capacity(32);
        for b in self.0 {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 32 || !s.is_ascii() {
            return None;
        }
        let mut k = [0u8; 16];
        for (i, b) in k.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(k))
    }
}

impl fmt::Debug for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DedupKey({})", self.to_hex())
    }
}

impl Serialize for DedupKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// One accounting request as received.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub protocol: Protocol,
    /// The configured client (appliance entry) the request matched.
    pub client: String,
    pub client_addr: IpAddr,
    /// The appliance's UDP/TCP source port.
    pub src_port: u16,
    pub user: String,
    pub session_id: String,
    pub status: Status,
    /// Set by the caller when the request arrived; the store never reads the
    /// clock for record content, so a queued record keeps its arrival time.
    pub received_at: SystemTime,
    pub attributes: Attributes,
    pub dedup_key: DedupKey,
}

/// A record read back, with its row id.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredRecord {
    pub id: i64,
    #[serde(serialize_with = "ser_time")]
    pub received_at: SystemTime,
    pub protocol: Protocol,
    pub client: String,
    pub client_addr: IpAddr,
    pub src_port: u16,
    pub user: String,
    pub session_id: String,
    pub status: Status,
    pub attributes: Attributes,
    pub dedup_key: DedupKey,
}

/// A session with a Start and neither a Stop nor a later reboot of its appliance.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActiveSession {
    pub protocol: Protocol,
    pub client: String,
    pub client_addr: IpAddr,
    pub user: String,
    pub session_id: String,
    #[serde(serialize_with = "ser_time")]
    pub started_at: SystemTime,
    /// Latest record of any status for this session (interim updates move it).
    #[serde(serialize_with = "ser_time")]
    pub last_seen: SystemTime,
}

/// Selection for [`Archive::list`]. `since` is inclusive, `until` exclusive;
/// `limit` keeps the newest records. Results are oldest first, newest last.
/// Only the time bounds are indexed (the write path keeps no other index):
/// `user`, `client` and `session_id` are checked against every record in the
/// time range, newest first until `limit` matched, so on a large archive pair
/// them with `since`/`until` or a `limit`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub user: Option<String>,
    pub client: Option<String>,
    pub session_id: Option<String>,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    pub limit: Option<usize>,
}

/// A value a [`Filter`] query binds: text or a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bound<'a> {
    Text(&'a str),
    Int(i64),
}

impl Filter {
    /// The query for `list` on a records table, with the values to bind in
    /// placeholder order; `placeholder(n)` spells the n-th (1-based) in the
    /// backend's dialect. Oldest first; with `limit`, the newest `limit`.
    pub(crate) fn query(
        &self,
        select: &str,
        placeholder: impl Fn(usize) -> String,
    ) -> (String, Vec<Bound<'_>>) {
        let mut args = Vec::new();
        let mut conds = Vec::new();
        let texts = [
            ("username", &self.user),
            ("client", &self.client),
            ("session_id", &self.session_id),
        ];
        for (column, v) in texts {
            if let Some(v) = v {
                args.push(Bound::Text(v));
                conds.push(format!("{column} = {}", placeholder(args.len())));
            }
        }
        let times = [(">=", self.since), ("<", self.until)];
        for (op, t) in times {
            if let Some(t) = t {
                args.push(Bound::Int(unix_micros(t)));
                conds.push(format!("received_at_us {op} {}", placeholder(args.len())));
            }
        }
        let mut sql = select.to_string();
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        if let Some(limit) = self.limit {
            // Newest `limit`, then turned around so the newest prints last.
            args.push(Bound::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
            sql = format!(
                "SELECT * FROM ({sql} ORDER BY received_at_us DESC, id DESC LIMIT {}) AS newest
                 ORDER BY received_at_us, id",
                placeholder(args.len())
            );
        } else {
            sql.push_str(" ORDER BY received_at_us, id");
        }
        (sql, args)
    }
}

/// Proof that a record is committed: only now may the request be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Durable {
    /// The dedup key was already stored (a retransmission); still safe to ack.
    pub duplicate: bool,
}

/// Resolves once the transaction holding the record has committed, or with
/// the error that kept it from committing.
#[must_use = "a record is acknowledged only once its Pending resolves Ok"]
#[derive(Debug)]
pub struct Pending {
    rx: oneshot::Receiver<Result<Durable, StoreError>>,
}

impl Pending {
    /// For sink implementations: the sender completes the returned `Pending`.
    /// A sender dropped without sending resolves it to [`StoreError::Closed`].
    pub fn channel() -> (oneshot::Sender<Result<Durable, StoreError>>, Self) {
        let (tx, rx) = oneshot::channel();
        (tx, Self { rx })
    }

    /// Waits on a plain thread. Panics if called on an async runtime thread.
    pub fn wait_blocking(self) -> Result<Durable, StoreError> {
        self.rx.blocking_recv().unwrap_or(Err(StoreError::Closed))
    }
}

impl Future for Pending {
    type Output = Result<Durable, StoreError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(StoreError::Closed)))
    }
}

/// Errors carry their cause in the message, because logs print `Display`.
/// Clone because one failed commit is reported to every waiter of the batch.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("accounting queue is full ({capacity} records waiting); request dropped unanswered")]
    QueueFull { capacity: usize },
    #[error("accounting store is closed")]
    Closed,
    #[error("invalid accounting store configuration: {0}")]
    Config(&'static str),
    #[error("cannot create accounting directory {}: {cause}", path.display())]
    CreateDir {
        path: PathBuf,
        cause: Arc<std::io::Error>,
    },
    #[error("cannot make accounting database {} private: {cause}", path.display())]
    Private {
        path: PathBuf,
        cause: Arc<std::io::Error>,
    },
    #[error("cannot open accounting database {}: {cause}", path.display())]
    Open {
        path: PathBuf,
        cause: Arc<rusqlite::Error>,
    },
    #[error("accounting database {} has schema version {found}; this build knows up to {known}", path.display())]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("committing a batch of {records} accounting records failed: {cause}")]
    Commit {
        records: usize,
        cause: Arc<rusqlite::Error>,
    },
    #[error("accounting {what} failed: {cause}")]
    Query {
        what: &'static str,
        cause: Arc<rusqlite::Error>,
    },
    #[error("stored accounting record {id} has an unreadable {column}: {detail}")]
    Corrupt {
        id: i64,
        column: &'static str,
        detail: String,
    },
    #[error("accounting writer thread: {0}")]
    Writer(String),
    #[error("accounting background task failed: {0}")]
    Background(String),
    #[error("accounting database: {0}")]
    Database(crate::store::DbError),
}

fn ser_time<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(*t))
}

fn from_unix_micros(us: i64) -> SystemTime {
    let d = Duration::from_micros(us.unsigned_abs());
    if us >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}

/// RFC 3339 UTC with microseconds, e.g. `2024-05-01T12:34:56.123456Z`.
pub fn format_time(t: SystemTime) -> String {
    let us = unix_micros(t);
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS[.fraction]` with an optional
/// `Z` (UTC only; a space may replace the `T`), for CLI time filters.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut it = date.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut us = days_from_civil(y, m, d) * 86_400 * 1_000_000;
    if let Some(t) = time {
        let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
        let mut it = hms.splitn(3, ':');
        let h: i64 = it.next()?.parse().ok()?;
        let mi: i64 = it.next()?.parse().ok()?;
        let sec: i64 = it.next().map_or(Some(0), |x| x.parse().ok())?;
        if h > 23 || mi > 59 || sec > 60 || frac.len() > 9 {
            return None;
        }
        us += (h * 3600 + mi * 60 + sec) * 1_000_000;
        if !frac.is_empty() {
            if !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let digits: String = frac.chars().chain("000000".chars()).take(6).collect();
            us += digits.parse::<i64>().ok()?;
        }
    }
    Some(from_unix_micros(us))
}

// Howard Hinnant's civil calendar algorithms: exact for any proleptic
// Gregorian date, and they spare a date-time dependency.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

//! Short-lived web login state that whichever node a browser reaches must
//! find: started logins waiting for the browser (taken once), assertion IDs
//! already used (replay), and which consoles a session logged in to (single
//! logout). In this process's memory on one machine, in PostgreSQL with
//! `[store] backend = "postgres"`; the web side makes the same calls either way.
//! It sits in `store` beside the sessions because the PostgreSQL side shares
//! their pool, their id hashing and (for a console's logout) their table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::{DbError, PgStore};
use crate::clock::unix_micros;
use crate::pending::{self, Pending};

/// What a pending entry is: a closed set, the `kind` column in PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An AuthnRequest we sent to an upstream SAML IdP, by its ID.
    SamlRequest,
    /// A console login waiting for the person to log in, by `rid`.
    ConsoleLogin,
    /// A console's AuthnRequest waiting for the person to log in.
    SamlIdpRequest,
    /// An OIDC login sent to an upstream IdP, by its `state`.
    OidcLogin,
}

impl Kind {
    pub const fn label(self) -> &'static str {
        match self {
            Self::SamlRequest => "saml_request",
            Self::ConsoleLogin => "console_login",
            Self::SamlIdpRequest => "saml_idp_request",
            Self::OidcLogin => "oidc_login",
        }
    }
}

type Hash = [u8; 32];

/// The SHA-256 of an id, as the sessions table keys its rows.
fn hash(id: &str) -> Hash {
    Sha256::digest(id.as_bytes()).into()
}

/// Sweeping expired rows on about one write in sixteen keeps the tables
/// bounded without a task of its own; the hash is random, so is the draw.
fn sweep_now(h: &Hash) -> bool {
    h[0] < 16
}

fn corrupt(kind: Kind, e: &serde_json::Error) -> DbError {
    DbError::Corrupt(format!("{} entry: {e}", kind.label()))
}

/// Where one kind of state lives: this process's memory (`M`), or
/// PostgreSQL. Each method answers from memory at once or runs its query.
enum Backend<M> {
    Memory(M),
    Shared(PgStore),
}

impl<M> Backend<M> {
    const fn label(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Shared(_) => "postgres",
        }
    }
}

/// Started logins of one kind, each taken once. Bounded per source address
/// ([`pending::PER_SOURCE`]: that address's oldest gives way) and in all
/// ([`pending::MAX`]: the oldest give way), in memory as in PostgreSQL.
pub struct PendingStore<V> {
    kind: Kind,
    /// In memory, with each value how long it may wait.
    backend: Backend<Pending<(V, Duration)>>,
}

impl<V> std::fmt::Debug for PendingStore<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingStore")
            .field("kind", &self.kind)
            .field("backend", &self.backend.label())
            .finish()
    }
}

impl<V> PendingStore<V>
where
    V: Serialize + DeserializeOwned + Clone,
{
    pub fn in_memory(kind: Kind) -> Self {
        Self::bounded(kind, pending::PER_SOURCE, pending::MAX)
    }

    /// In memory, with other bounds (tests).
    pub fn bounded(kind: Kind, per_source: usize, max: usize) -> Self {
        Self {
            kind,
            backend: Backend::Memory(Pending::new(per_source, max)),
        }
    }

    pub fn shared(kind: Kind, store: PgStore) -> Self {
        Self {
            kind,
            backend: Backend::Shared(store),
        }
    }

    /// Keeps `value` under `id` for `ttl`.
    pub async fn put(
        &self,
        id: &str,
        source: IpAddr,
        value: V,
        ttl: Duration,
    ) -> Result<(), DbError> {
        let s = match &self.backend {
            Backend::Memory(m) => {
                m.insert(id.to_string(), source, (value, ttl), ttl);
                return Ok(());
            }
            Backend::Shared(s) => s,
        };
        let data = serde_json::to_string(&value).map_err(|e| corrupt(self.kind, &e))?;
        let (kind, h) = (self.kind.label(), hash(id));
        let keep = (pending::PER_SOURCE as i64 - 1).max(0);
        s.timed("login state", async {
            let c = s.client().await?;
            let q = |e| s.query_error("login state", e);
            // One statement: the address's oldest beyond its bound go as
            // this one comes in. Nodes inserting for one address at the
            // same instant may each keep one more, never more than that.
            c.execute(
                "WITH evicted AS (
                    DELETE FROM web_login_state WHERE kind = $1 AND id_hash IN (
                        SELECT id_hash FROM web_login_state
                         WHERE kind = $1 AND source = $3
                         ORDER BY created_at DESC OFFSET $6))
                 INSERT INTO web_login_state (kind, id_hash, source, data, expires_at)
                 VALUES ($1, $2, $3, $4::text::json, now() + make_interval(secs => $5))
                 ON CONFLICT (kind, id_hash) DO NOTHING",
                &[&kind, &&h[..], &source, &data, &ttl.as_secs_f64(), &keep],
            )
            .await
            .map_err(q)?;
            if sweep_now(&h) {
                c.execute("DELETE FROM web_login_state WHERE expires_at < now()", &[])
                    .await
                    .map_err(q)?;
                // A flood from many addresses: the oldest of this kind go.
                c.execute(
                    "DELETE FROM web_login_state WHERE kind = $1 AND id_hash IN (
                        SELECT id_hash FROM web_login_state WHERE kind = $1
                         ORDER BY created_at DESC OFFSET $2)",
                    &[&kind, &(pending::MAX as i64)],
                )
                .await
                .map_err(q)?;
            }
            Ok(())
        })
        .await
    }

    /// Takes the entry out if it has not expired: a second take finds
    /// nothing, whichever node it reaches.
    pub async fn take(&self, id: &str) -> Result<Option<V>, DbError> {
        let s = match &self.backend {
            Backend::Memory(m) => {
                return Ok(m
                    .take(id)
                    .and_then(|((v, ttl), at)| (at.elapsed() < ttl).then_some(v)));
            }
            Backend::Shared(s) => s,
        };
        let (kind, h) = (self.kind.label(), hash(id));
        let row = s
            .timed("login state", async {
                let c = s.client().await?;
                c.query_opt(
                    "DELETE FROM web_login_state WHERE kind = $1 AND id_hash = $2
                     RETURNING data::text, expires_at > now()",
                    &[&kind, &&h[..]],
                )
                .await
                .map_err(|e| s.query_error("login state", e))
            })
            .await?;
        self.decode(row.filter(|r| r.get::<_, bool>(1)))
    }

    /// The entry, left in place, if it has not expired.
    pub async fn peek(&self, id: &str) -> Result<Option<V>, DbError> {
        let s = match &self.backend {
            Backend::Memory(m) => {
                return Ok(m
                    .get(id, |(v, ttl), at| (at.elapsed() < *ttl).then(|| v.clone()))
                    .flatten());
            }
            Backend::Shared(s) => s,
        };
        let (kind, h) = (self.kind.label(), hash(id));
        let row = s
            .timed("login state", async {
                let c = s.client().await?;
                c.query_opt(
                    "SELECT data::text FROM web_login_state
                      WHERE kind = $1 AND id_hash = $2 AND expires_at > now()",
                    &[&kind, &&h[..]],
                )
                .await
                .map_err(|e| s.query_error("login state", e))
            })
            .await?;
        self.decode(row)
    }

    fn decode(&self, row: Option<tokio_postgres::Row>) -> Result<Option<V>, DbError> {
        row.map(|r| serde_json::from_str(r.get(0)).map_err(|e| corrupt(self.kind, &e)))
            .transpose()
    }

    /// Entries held in memory.
    #[cfg(test)]
    fn len(&self) -> usize {
        match &self.backend {
            Backend::Memory(m) => m.len(),
            Backend::Shared(_) => unreachable!("tests use memory"),
        }
    }
}

/// IDs already used, each until it could no longer be replayed anyway.
/// Entries come only from verified assertions of a configured IdP, so an
/// outsider cannot fill it; in memory it is bounded all the same.
pub struct ReplayCache {
    backend: Backend<Mutex<HashMap<(String, String), SystemTime>>>,
}

/// Entries in memory before expired ones are dropped.
const MAX_SEEN: usize = 100_000;

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("backend", &self.backend.label())
            .finish_non_exhaustive()
    }
}

impl ReplayCache {
    pub fn in_memory() -> Self {
        Self {
            backend: Backend::Memory(Mutex::default()),
        }
    }

    pub fn shared(store: PgStore) -> Self {
        Self {
            backend: Backend::Shared(store),
        }
    }

    /// Whether `id` was used in `scope` and could still be replayed at `now`.
    pub async fn is_seen(&self, scope: &str, id: &str, now: SystemTime) -> Result<bool, DbError> {
        let s = match &self.backend {
            Backend::Memory(m) => {
                let m = m.lock().unwrap_or_else(PoisonError::into_inner);
                let key = (scope.to_string(), id.to_string());
                return Ok(m.get(&key).is_some_and(|t| *t > now));
            }
            Backend::Shared(s) => s,
        };
        let h = hash(id);
        s.timed("replay cache", async {
            let c = s.client().await?;
            let row = c
                .query_opt(
                    "SELECT 1 FROM web_replay WHERE scope = $1 AND id_hash = $2 AND until_us > $3",
                    &[&scope, &&h[..], &unix_micros(now)],
                )
                .await
                .map_err(|e| s.query_error("replay cache", e))?;
            Ok(row.is_some())
        })
        .await
    }

    /// Records `id` as used until `until`; false when it already was (on
    /// any node). One statement, so two nodes cannot both see a first use.
    pub async fn first_use(
        &self,
        scope: &str,
        id: &str,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<bool, DbError> {
        let s = match &self.backend {
            Backend::Memory(m) => {
                let mut m = m.lock().unwrap_or_else(PoisonError::into_inner);
                let key = (scope.to_string(), id.to_string());
                if m.get(&key).is_some_and(|t| *t > now) {
                    return Ok(false);
                }
                if m.len() >= MAX_SEEN {
                    m.retain(|_, t| *t > now);
                }
                m.insert(key, until);
                return Ok(true);
            }
            Backend::Shared(s) => s,
        };
        let h = hash(id);
        let (until, now) = (unix_micros(until), unix_micros(now));
        s.timed("replay cache", async {
            let c = s.client().await?;
            let q = |e| s.query_error("replay cache", e);
            // A row whose time is up is taken over, not a replay.
            let row = c
                .query_opt(
                    "INSERT INTO web_replay (scope, id_hash, until_us) VALUES ($1, $2, $3)
                     ON CONFLICT (scope, id_hash) DO UPDATE SET until_us = EXCLUDED.until_us
                      WHERE web_replay.until_us <= $4
                     RETURNING 1",
                    &[&scope, &&h[..], &until, &now],
                )
                .await
                .map_err(q)?;
            if sweep_now(&h) {
                c.execute("DELETE FROM web_replay WHERE until_us < $1", &[&now])
                    .await
                    .map_err(q)?;
            }
            Ok(row.is_some())
        })
        .await
    }
}

/// A console a session logged in to: what a LogoutRequest to it must name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ConsoleLogin {
    pub console: String,
    pub name_id: String,
    pub name_id_format: String,
    pub session_index: String,
}

/// Which consoles each browser session logged in to, by session id (in
/// PostgreSQL by its hash, as the sessions table), one record per console.
pub struct ConsoleLogins {
    backend: Backend<Mutex<HashMap<String, Vec<Remembered>>>>,
}

/// Sessions remembered in memory; at the bound expired records go, then
/// the oldest session's.
const MAX_LOGINS: usize = 100_000;

struct Remembered {
    login: ConsoleLogin,
    at: Instant,
    expires: Instant,
}

impl std::fmt::Debug for ConsoleLogins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleLogins")
            .field("backend", &self.backend.label())
            .finish_non_exhaustive()
    }
}

impl ConsoleLogins {
    pub fn in_memory() -> Self {
        Self {
            backend: Backend::Memory(Mutex::default()),
        }
    }

    pub fn shared(store: PgStore) -> Self {
        Self {
            backend: Backend::Shared(store),
        }
    }

    /// Records that session `sid` logged in to `login.console` (replacing
    /// an earlier record for that console); kept at most `ttl`, the
    /// session's own life.
    pub async fn remember(
        &self,
        sid: &str,
        login: ConsoleLogin,
        ttl: Duration,
    ) -> Result<(), DbError> {
        let s = match &self.backend {
            Backend::Memory(m) => {
                let now = Instant::now();
                let mut m = m.lock().unwrap_or_else(PoisonError::into_inner);
                if m.len() >= MAX_LOGINS && !m.contains_key(sid) {
                    m.retain(|_, v| {
                        v.retain(|r| r.expires > now);
                        !v.is_empty()
                    });
                    if m.len() >= MAX_LOGINS
                        && let Some(k) = m
                            .iter()
                            .filter_map(|(k, v)| v.iter().map(|r| r.at).max().map(|t| (t, k)))
                            .min()
                            .map(|(_, k)| k.clone())
                    {
                        m.remove(&k);
                    }
                }
                let v = m.entry(sid.to_string()).or_default();
                v.retain(|r| r.login.console != login.console);
                v.push(Remembered {
                    login,
                    at: now,
                    expires: now + ttl,
                });
                return Ok(());
            }
            Backend::Shared(s) => s,
        };
        let h = hash(sid);
        s.timed("console logins", async {
            let c = s.client().await?;
            let q = |e| s.query_error("console logins", e);
            c.execute(
                "INSERT INTO web_console_logins
                    (sid_hash, console, name_id, name_id_format, session_index, expires_at)
                 VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
                 ON CONFLICT (sid_hash, console) DO UPDATE
                    SET name_id = EXCLUDED.name_id, name_id_format = EXCLUDED.name_id_format,
                        session_index = EXCLUDED.session_index,
                        created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at",
                &[
                    &&h[..],
                    &login.console,
                    &login.name_id,
                    &login.name_id_format,
                    &login.session_index,
                    &ttl.as_secs_f64(),
                ],
            )
            .await
            .map_err(q)?;
            if sweep_now(&h) {
                c.execute(
                    "DELETE FROM web_console_logins WHERE expires_at < now()",
                    &[],
                )
                .await
                .map_err(q)?;
            }
            Ok(())
        })
        .await
    }

    /// The consoles session `sid` logged in to, oldest first, leaving them.
    pub async fn list(&self, sid: &str) -> Result<Vec<ConsoleLogin>, DbError> {
        let s = match &self.backend {
            Backend::Memory(m) => {
                let m = m.lock().unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                return Ok(m
                    .get(sid)
                    .map(|v| {
                        v.iter()
                            .filter(|r| r.expires > now)
                            .map(|r| r.login.clone())
                            .collect()
                    })
                    .unwrap_or_default());
            }
            Backend::Shared(s) => s,
        };
        let h = hash(sid);
        s.timed("console logins", async {
            let c = s.client().await?;
            let rows = c
                .query(
                    "SELECT console, name_id, name_id_format, session_index
                       FROM web_console_logins
                      WHERE sid_hash = $1 AND expires_at > now()
                      ORDER BY created_at",
                    &[&&h[..]],
                )
                .await
                .map_err(|e| s.query_error("console logins", e))?;
            Ok(rows
                .iter()
                .map(|r| ConsoleLogin {
                    console: r.get(0),
                    name_id: r.get(1),
                    name_id_format: r.get(2),
                    session_index: r.get(3),
                })
                .collect())
        })
        .await
    }

    /// Takes the session's most recent console record out, if any.
    pub async fn pop(&self, sid: &str) -> Result<Option<ConsoleLogin>, DbError> {
        let s = match &self.backend {
            Backend::Memory(m) => {
                let mut m = m.lock().unwrap_or_else(PoisonError::into_inner);
                let Some(v) = m.get_mut(sid) else {
                    return Ok(None);
                };
                let now = Instant::now();
                v.retain(|r| r.expires > now);
                let next = v.pop().map(|r| r.login);
                if v.is_empty() {
                    m.remove(sid);
                }
                return Ok(next);
            }
            Backend::Shared(s) => s,
        };
        let h = hash(sid);
        s.timed("console logins", async {
            let c = s.client().await?;
            let row = c
                .query_opt(
                    "DELETE FROM web_console_logins WHERE (sid_hash, console) IN (
                        SELECT sid_hash, console FROM web_console_logins
                         WHERE sid_hash = $1 AND expires_at > now()
                         ORDER BY created_at DESC LIMIT 1 FOR UPDATE SKIP LOCKED)
                     RETURNING console, name_id, name_id_format, session_index",
                    &[&&h[..]],
                )
                .await
                .map_err(|e| s.query_error("console logins", e))?;
            Ok(row.map(|r| ConsoleLogin {
                console: r.get(0),
                name_id: r.get(1),
                name_id_format: r.get(2),
                session_index: r.get(3),
            }))
        })
        .await
    }

    /// A console's logout: forgets every session that logged in to
    /// `console` as `name_id` (with one of `indexes`, when given) and ends
    /// those sessions, in memory through `end_local` (which says whether
    /// one ended), in PostgreSQL in the sessions table, in the same
    /// statement. Returns how many sessions ended.
    pub async fn end_sessions(
        &self,
        console: &str,
        name_id: &str,
        indexes: &[String],
        mut end_local: impl FnMut(&str) -> bool,
    ) -> Result<usize, DbError> {
        let s = match &self.backend {
            Backend::Memory(m) => {
                let ids: Vec<String> = {
                    let mut m = m.lock().unwrap_or_else(PoisonError::into_inner);
                    let ids: Vec<String> = m
                        .iter()
                        .filter(|(_, v)| {
                            v.iter().any(|r| {
                                let c = &r.login;
                                c.console == console
                                    && c.name_id == name_id
                                    && (indexes.is_empty() || indexes.contains(&c.session_index))
                            })
                        })
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in &ids {
                        m.remove(k);
                    }
                    ids
                };
                return Ok(ids.iter().filter(|k| end_local(k)).count());
            }
            Backend::Shared(s) => s,
        };
        s.timed("console logins", async {
            let c = s.client().await?;
            let n = c
                .execute(
                    "WITH gone AS (
                        DELETE FROM web_console_logins WHERE sid_hash IN (
                            SELECT sid_hash FROM web_console_logins
                             WHERE console = $1 AND name_id = $2
                               AND (cardinality($3::text[]) = 0 OR session_index = ANY($3)))
                        RETURNING sid_hash)
                     DELETE FROM web_sessions WHERE id_hash IN (SELECT sid_hash FROM gone)",
                    &[&console, &name_id, &indexes],
                )
                .await
                .map_err(|e| s.query_error("console logout", e))?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(600);

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[tokio::test]
    async fn a_pending_entry_is_taken_once_and_a_flood_displaces_only_its_own() {
        let p: PendingStore<String> = PendingStore::bounded(Kind::ConsoleLogin, 4, 100);
        p.put("victim", ip(1), "v".into(), TTL).await.unwrap();
        for i in 0..1000 {
            p.put(&format!("flood{i}"), ip(66), "f".into(), TTL)
                .await
                .unwrap();
        }
        assert_eq!(p.len(), 5);
        assert_eq!(p.peek("victim").await.unwrap().as_deref(), Some("v"));
        assert_eq!(p.take("victim").await.unwrap().as_deref(), Some("v"));
        assert_eq!(p.take("victim").await.unwrap(), None);
        assert!(p.take("flood999").await.unwrap().is_some());
        assert!(p.take("flood995").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_expired_entry_is_neither_seen_nor_taken() {
        let p: PendingStore<String> = PendingStore::in_memory(Kind::SamlRequest);
        p.put("a", ip(1), "x".into(), Duration::ZERO).await.unwrap();
        assert_eq!(p.peek("a").await.unwrap(), None);
        assert_eq!(p.take("a").await.unwrap(), None);
        assert_eq!(p.len(), 0, "taking it removed it");
    }

    #[tokio::test]
    async fn an_id_is_used_once_per_scope_until_its_time_is_up() {
        let r = ReplayCache::in_memory();
        let now = SystemTime::now();
        let until = now + TTL;
        assert!(!r.is_seen("corp", "_a1", now).await.unwrap());
        assert!(r.first_use("corp", "_a1", until, now).await.unwrap());
        assert!(r.is_seen("corp", "_a1", now).await.unwrap());
        assert!(!r.first_use("corp", "_a1", until, now).await.unwrap());
        assert!(r.first_use("other", "_a1", until, now).await.unwrap());
        // Past its time it could not be replayed anyway.
        let later = until + Duration::from_secs(1);
        assert!(!r.is_seen("corp", "_a1", later).await.unwrap());
        assert!(
            r.first_use("corp", "_a1", later + TTL, later)
                .await
                .unwrap()
        );
    }

    fn login(console: &str, name_id: &str, index: &str) -> ConsoleLogin {
        ConsoleLogin {
            console: console.into(),
            name_id: name_id.into(),
            name_id_format: "unspecified".into(),
            session_index: index.into(),
        }
    }

    #[tokio::test]
    async fn console_logins_pop_newest_first_and_a_console_logout_ends_the_sessions() {
        let l = ConsoleLogins::in_memory();
        l.remember("s1", login("c1", "bob", "i1"), TTL)
            .await
            .unwrap();
        l.remember("s1", login("c2", "bob", "i2"), TTL)
            .await
            .unwrap();
        // A second login to c1 replaces the first record.
        l.remember("s1", login("c1", "bob", "i3"), TTL)
            .await
            .unwrap();
        l.remember("s2", login("c1", "bob", "i4"), TTL)
            .await
            .unwrap();
        l.remember("s3", login("c1", "eve", "i5"), TTL)
            .await
            .unwrap();
        assert_eq!(l.pop("s1").await.unwrap(), Some(login("c1", "bob", "i3")));
        assert_eq!(l.pop("s1").await.unwrap(), Some(login("c2", "bob", "i2")));
        assert_eq!(l.pop("s1").await.unwrap(), None);
        // c1's logout of bob with index i4 ends s2 only.
        let mut ended = Vec::new();
        let n = l
            .end_sessions("c1", "bob", &["i4".into()], |s| {
                ended.push(s.to_string());
                true
            })
            .await
            .unwrap();
        assert_eq!((n, ended), (1, vec!["s2".to_string()]));
        assert_eq!(l.pop("s2").await.unwrap(), None);
        assert!(l.pop("s3").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn an_expired_console_login_is_not_popped() {
        let l = ConsoleLogins::in_memory();
        l.remember("s1", login("c1", "bob", "i1"), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(l.pop("s1").await.unwrap(), None);
    }
}

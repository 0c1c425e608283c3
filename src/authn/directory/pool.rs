//! One directory at run time: a bounded pool of LDAP connections with
//! failover over the server URLs, the bind / search exchanges, the short
//! group cache, and a back-off so a dead directory costs one timeout per
//! retry interval rather than one per login.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions};
use tokio::sync::{OnceCell, Semaphore};
use tracing::{info, warn};

use super::metrics::{DirLabel, DirResult, DirServer};
use super::text::{fill_bind, fill_filter, filter_value};
use super::{BindMethod, DirectoryMetrics, DirectorySettings, GroupLookup, Transport};
use crate::metrics::Name;

/// What a directory said about a user.
#[derive(Debug)]
pub(crate) struct Found {
    pub dn: Arc<str>,
    /// (name as given, whether it is a DN to take the first RDN of).
    pub groups: Vec<(String, bool)>,
    pub email: Arc<str>,
    pub full_name: Arc<str>,
}

/// Why a directory did not vouch for a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DirError {
    /// No such entry (or more than one: the filter is ambiguous).
    NotFound,
    BadPassword,
    /// The directory could not answer; the reason is a metric label.
    Unavailable(&'static str),
    /// Too many checks already wait for a connection: shed, not queued.
    Busy,
}

/// At most this many groups are read for one user.
const MAX_GROUPS: i32 = 1000;
/// Group cache entries beyond which stale ones are dropped on insert.
const MAX_CACHED: usize = 100_000;
/// Checks that may wait for a connection, per pooled connection; beyond,
/// checks are shed (the appliance retransmits) rather than piling up.
const WAITING_PER_CONNECTION: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    Anonymous,
    Service,
    User,
}

struct Conn {
    ldap: Ldap,
    bound: Bound,
}

#[derive(Clone)]
struct Cached {
    found: Arc<Found>,
    fetched: Instant,
}

/// A check in progress that identical checks wait on.
type Flight = Arc<OnceCell<Result<Arc<Found>, DirError>>>;

pub(crate) struct Directory {
    settings: Arc<DirectorySettings>,
    label: Name,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
    down_until: Mutex<Option<Instant>>,
    groups: Mutex<HashMap<Box<str>, Cached>>,
    /// Password checks in progress, by a keyed MAC of (name, password).
    flights: Mutex<HashMap<[u8; 16], Flight>>,
    metrics: DirectoryMetrics,
}

/// Takes a flight off the table when the check that started it ends or is
/// dropped half-way; callers still waiting on it keep their handle (one of
/// them finishes the check), and later arrivals start afresh.
struct Landing<'a> {
    flights: &'a Mutex<HashMap<[u8; 16], Flight>>,
    key: [u8; 16],
    flight: Flight,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        let mut f = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if f.get(&self.key)
            .is_some_and(|x| Arc::ptr_eq(x, &self.flight))
        {
            f.remove(&self.key);
        }
    }
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("name", &self.settings.name)
            .finish_non_exhaustive()
    }
}

/// One check counted as waiting for a connection until it stops waiting,
/// whichever way (a timeout drops it half-way).
struct Queued<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Takes a connection's share of the pool gauge back, whichever way the
/// check ends (a timeout drops it half-way).
struct InUse<'a>(&'a Directory);

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        self.0
            .metrics
            .pool_in_use
            .get_or_create(&DirLabel {
                directory: self.0.label.clone(),
            })
            .dec();
    }
}

impl Directory {
    pub(crate) fn new(settings: Arc<DirectorySettings>, metrics: DirectoryMetrics) -> Self {
        Self {
            label: Name(settings.name.clone()),
            permits: Semaphore::new(settings.pool_size),
            waiting: Default::default(),
            settings,
            idle: Mutex::default(),
            down_until: Mutex::default(),
            groups: Mutex::default(),
            flights: Mutex::default(),
            metrics,
        }
    }

    /// The settings this directory runs under.
    pub(crate) fn settings(&self) -> &Arc<DirectorySettings> {
        &self.settings
    }

    /// Takes over what `old` (the previous generation's) had that is still
    /// good: its idle connections and back-off when they were made under the
    /// same connection settings, its group cache when entries were read the
    /// same way.
    pub(crate) fn inherit(&self, old: &Self, same_connection: bool, same_lookup: bool) {
        if same_connection {
            let idle =
                std::mem::take(&mut *old.idle.lock().unwrap_or_else(PoisonError::into_inner));
            *self.idle.lock().unwrap_or_else(PoisonError::into_inner) = idle;
            *self
                .down_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = *old
                .down_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
        }
        if same_lookup {
            let groups = old.groups.lock().unwrap_or_else(PoisonError::into_inner);
            let mut mine = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
            mine.extend(groups.iter().map(|(k, c)| (k.clone(), c.clone())));
        }
    }

    /// Whether this is the live form of `settings` (the same generation's).
    pub(crate) fn serves(&self, settings: &Arc<DirectorySettings>) -> bool {
        Arc::ptr_eq(&self.settings, settings)
    }

    /// What was read about `name` lately, and how long ago.
    pub(crate) fn cached(&self, name: &str) -> Option<(Arc<Found>, std::time::Duration)> {
        let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let c = groups.get(name)?;
        Some((c.found.clone(), c.fetched.elapsed()))
    }

    pub(crate) fn forget(&self, name: &str) {
        self.groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    fn remember(&self, name: &str, found: Arc<Found>) {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        if groups.len() >= MAX_CACHED {
            let ttl = self.settings.group_cache_ttl;
            groups.retain(|_, c| c.fetched.elapsed() < ttl);
        }
        groups.insert(
            name.into(),
            Cached {
                found,
                fetched: Instant::now(),
            },
        );
    }

    /// Checks `password` with a bind and reads the user's groups. Identical
    /// checks arriving while one runs wait for its answer instead of
    /// binding again: a burst of the
    /// same cold login (a person retrying, several appliances at once) costs
    /// the directory one bind. `key` names (name, password) and nothing
    /// else; a keyed MAC, so the table holds no password.
    pub(crate) async fn check_once(
        &self,
        key: [u8; 16],
        name: &str,
        password: &str,
    ) -> Result<Arc<Found>, DirError> {
        let (flight, leader) = {
            let mut f = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            match f.get(&key) {
                Some(x) => (x.clone(), false),
                None => {
                    let x = Flight::default();
                    f.insert(key, x.clone());
                    (x, true)
                }
            }
        };
        let _landing = leader.then(|| Landing {
            flights: &self.flights,
            key,
            flight: flight.clone(),
        });
        if !leader {
            self.metrics.shared_check(&self.label);
        }
        flight
            .get_or_init(|| self.run(name, Some(password), true))
            .await
            .clone()
    }

    /// Reads the user's groups again for a password verified earlier: with
    /// the service account, or (bind template) a bind with that password.
    pub(crate) async fn refresh(&self, name: &str, password: &str) -> Result<Arc<Found>, DirError> {
        self.run(name, Some(password), false).await
    }

    /// Reads the user's groups without a password (the service account
    /// only; `NotFound` for a bind template).
    pub(crate) async fn lookup(&self, name: &str) -> Result<Arc<Found>, DirError> {
        if matches!(self.settings.bind, BindMethod::Template(_)) {
            return Err(DirError::NotFound);
        }
        self.run(name, None, false).await
    }

    async fn run(
        &self,
        name: &str,
        password: Option<&str>,
        verify: bool,
    ) -> Result<Arc<Found>, DirError> {
        let started = Instant::now();
        let down = self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|t| Instant::now() < t);
        let result = if down {
            Err(DirError::Unavailable("down"))
        } else {
            tokio::time::timeout(self.settings.timeout, self.exchange(name, password, verify))
                .await
                .unwrap_or(Err(DirError::Unavailable("timeout")))
        };
        self.metrics
            .latency
            .get_or_create(&DirLabel {
                directory: self.label.clone(),
            })
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(found) => {
                self.remember(name, found.clone());
                *self
                    .down_until
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
            }
            Err(DirError::NotFound) => {
                self.forget(name);
                self.metrics.failure(&self.label, "not_found");
            }
            Err(DirError::BadPassword) => self.forget(name),
            Err(DirError::Busy) => self.metrics.failure(&self.label, "busy"),
            Err(DirError::Unavailable(reason)) => {
                if *reason != "down" {
                    self.metrics.failure(&self.label, reason);
                }
                if matches!(*reason, "connect" | "tls" | "timeout") {
                    *self
                        .down_until
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) =
                        Some(Instant::now() + self.settings.retry_interval);
                }
            }
        }
        result
    }

    async fn exchange(
        &self,
        name: &str,
        password: Option<&str>,
        verify: bool,
    ) -> Result<Arc<Found>, DirError> {
        use std::sync::atomic::Ordering;
        let limit = self.settings.pool_size * WAITING_PER_CONNECTION;
        let queued = Queued(&self.waiting);
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= limit {
            return Err(DirError::Busy);
        }
        let permit = self.permits.acquire().await;
        drop(queued);
        let _permit = permit.map_err(|_| DirError::Busy)?;
        self.metrics
            .pool_in_use
            .get_or_create(&DirLabel {
                directory: self.label.clone(),
            })
            .inc();
        let _in_use = InUse(self);
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut conn = match idle {
            Some(mut c) => {
                if c.ldap.is_closed() {
                    self.connect().await?
                } else {
                    c
                }
            }
            None => self.connect().await?,
        };
        let result = self.converse(&mut conn, name, password, verify).await;
        match result {
            Err(DirError::Unavailable(_) | DirError::Busy) => {}
            _ => self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn),
        }
        result.map(Arc::new)
    }

    async fn connect(&self) -> Result<Conn, DirError> {
        let s = &self.settings;
        let mut last = "connect";
        for (i, server) in s.servers.iter().enumerate() {
            let mut cs = LdapConnSettings::new().set_conn_timeout(s.timeout);
            if server.transport == Transport::StartTls {
                cs = cs.set_starttls(true);
            }
            if let Some(tls) = &s.tls {
                cs = cs.set_config(tls.clone());
            }
            match LdapConnAsync::with_settings(cs, &server.url).await {
                Ok((conn, ldap)) => {
                    tokio::spawn(async move {
                        let _ = conn.drive().await;
                    });
                    for (j, other) in s.servers.iter().enumerate() {
                        self.metrics
                            .server_in_use
                            .get_or_create(&DirServer {
                                directory: self.label.clone(),
                                server: other.label.clone(),
                            })
                            .set(i64::from(i == j));
                    }
                    return Ok(Conn {
                        ldap,
                        bound: Bound::Anonymous,
                    });
                }
                Err(e) => {
                    let text = e.to_string();
                    last = if matches!(e, ldap3::LdapError::Timeout { .. }) {
                        "timeout"
                    } else if text.contains("certificate")
                        || text.contains("TLS")
                        || text.contains("tls")
                        || text.contains("Tls")
                    {
                        "tls"
                    } else {
                        "connect"
                    };
                    warn!(
                        directory = %s.name,
                        server = %server.url,
                        reason = last,
                        error = %text,
                        "directory server could not be used"
                    );
                }
            }
        }
        Err(DirError::Unavailable(last))
    }

    /// A simple bind; `Ok(false)` for invalidCredentials (49).
    async fn bind(&self, conn: &mut Conn, dn: &str, password: &str) -> Result<bool, DirError> {
        let r = conn
            .ldap
            .simple_bind(dn, password)
            .await
            .map_err(|_| DirError::Unavailable("protocol"))?;
        match r.rc {
            0 => Ok(true),
            49 => Ok(false),
            10 => Err(DirError::Unavailable("referral")),
            51..=53 => Err(DirError::Unavailable("busy")),
            _ => Err(DirError::Unavailable("protocol")),
        }
    }

    async fn converse(
        &self,
        conn: &mut Conn,
        name: &str,
        password: Option<&str>,
        verify: bool,
    ) -> Result<Found, DirError> {
        let s = &self.settings;
        match &s.bind {
            BindMethod::SearchThenBind {
                dn,
                password: service,
            } => {
                if conn.bound != Bound::Service {
                    let pw = std::str::from_utf8(service.expose())
                        .map_err(|_| DirError::Unavailable("service_bind"))?;
                    conn.bound = Bound::Anonymous;
                    if !self.bind(conn, dn, pw).await? {
                        warn!(directory = %s.name, "the service account's bind was refused");
                        return Err(DirError::Unavailable("service_bind"));
                    }
                    conn.bound = Bound::Service;
                }
                let entry = self
                    .find_user(conn, name)
                    .await?
                    .ok_or(DirError::NotFound)?;
                let found = self.found(conn, name, entry).await?;
                if verify {
                    let password = password.ok_or(DirError::BadPassword)?;
                    conn.bound = Bound::User;
                    let ok = self.bind(conn, &found.dn, password).await?;
                    self.count_bind(ok);
                    if !ok {
                        return Err(DirError::BadPassword);
                    }
                }
                Ok(found)
            }
            BindMethod::Template(t) => {
                let password = password.ok_or(DirError::NotFound)?;
                let dn = fill_bind(t, name);
                conn.bound = Bound::User;
                let ok = self.bind(conn, &dn, password).await?;
                self.count_bind(ok);
                if !ok {
                    return Err(DirError::BadPassword);
                }
                match self.find_user(conn, name).await? {
                    Some(entry) => self.found(conn, name, entry).await,
                    // Bound, but the entry is not visible to the user: a
                    // valid login with no groups.
                    None => Ok(Found {
                        dn: dn.into(),
                        groups: Vec::new(),
                        email: "".into(),
                        full_name: "".into(),
                    }),
                }
            }
        }
    }

    fn count_bind(&self, ok: bool) {
        self.metrics
            .binds
            .get_or_create(&DirResult {
                directory: self.label.clone(),
                result: if ok { "ok" } else { "bad_password" },
            })
            .inc();
    }

    fn referral(&self, name: &str) -> DirError {
        info!(directory = %self.settings.name, user = name, "the directory answered with a referral, which is not followed");
        DirError::Unavailable("referral")
    }

    /// The one entry the user filter finds; `None` when there is none,
    /// refused when there are several.
    async fn find_user(
        &self,
        conn: &mut Conn,
        name: &str,
    ) -> Result<Option<SearchEntry>, DirError> {
        let s = &self.settings;
        let filter = fill_filter(&s.user_filter, name);
        let mut attrs = vec![s.email_attribute.as_str(), s.name_attribute.as_str()];
        if s.group_lookup == GroupLookup::MemberOf {
            attrs.push("memberOf");
        }
        let r = conn
            .ldap
            .with_search_options(SearchOptions::new().sizelimit(2))
            .search(&s.user_base, Scope::Subtree, &filter, attrs)
            .await
            .map_err(|_| DirError::Unavailable("protocol"))?;
        let (entries, res) = (r.0, r.1);
        match res.rc {
            0 | 32 => {}
            4 => {
                info!(directory = %s.name, user = name, "the user filter matches more than one entry; refused");
                self.metrics.failure(&self.label, "ambiguous");
                return Err(DirError::NotFound);
            }
            10 => return Err(self.referral(name)),
            _ => return Err(DirError::Unavailable("protocol")),
        }
        if entries.is_empty() && !res.refs.is_empty() {
            return Err(self.referral(name));
        }
        let mut entries = entries.into_iter();
        let first = entries.next().map(SearchEntry::construct);
        if entries.next().is_some() {
            self.metrics.failure(&self.label, "ambiguous");
            return Err(DirError::NotFound);
        }
        Ok(first)
    }

    async fn found(
        &self,
        conn: &mut Conn,
        name: &str,
        entry: SearchEntry,
    ) -> Result<Found, DirError> {
        let s = &self.settings;
        let attr = |e: &SearchEntry, a: &str| -> Vec<String> {
            e.attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(a))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let groups = match s.group_lookup {
            GroupLookup::MemberOf => attr(&entry, "memberOf")
                .into_iter()
                .take(MAX_GROUPS as usize)
                .map(|g| (g, true))
                .collect(),
            lookup => {
                let filter = match lookup {
                    GroupLookup::Member => format!("(member={})", filter_value(&entry.dn)),
                    GroupLookup::UniqueMember => {
                        format!("(uniqueMember={})", filter_value(&entry.dn))
                    }
                    GroupLookup::MemberUid => format!("(memberUid={})", filter_value(name)),
                    _ => format!(
                        "(member:1.2.840.113556.1.4.1941:={})",
                        filter_value(&entry.dn)
                    ),
                };
                let r = conn
                    .ldap
                    .with_search_options(SearchOptions::new().sizelimit(MAX_GROUPS))
                    .search(
                        &s.group_base,
                        Scope::Subtree,
                        &filter,
                        vec![s.group_name_attribute.as_str()],
                    )
                    .await
                    .map_err(|_| DirError::Unavailable("protocol"))?;
                match r.1.rc {
                    0 | 4 | 32 => {}
                    10 => return Err(DirError::Unavailable("referral")),
                    _ => return Err(DirError::Unavailable("protocol")),
                }
                r.0.into_iter()
                    .map(SearchEntry::construct)
                    .map(
                        |g| match attr(&g, &s.group_name_attribute).into_iter().next() {
                            Some(n) => (n, false),
                            None => (g.dn, true),
                        },
                    )
                    .collect()
            }
        };
        let first = |a: &str| -> Arc<str> {
            attr(&entry, a)
                .into_iter()
                .next()
                .unwrap_or_default()
                .into()
        };
        Ok(Found {
            email: first(&s.email_attribute),
            full_name: first(&s.name_attribute),
            dn: entry.dn.as_str().into(),
            groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::authn::directory::ServerUrl;

    impl Directory {
        /// A check sharing with no other: each call its own flight.
        async fn check(&self, name: &str, password: &str) -> Result<Arc<Found>, DirError> {
            static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(
                &N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    .to_le_bytes(),
            );
            self.check_once(key, name, password).await
        }
    }

    #[test]
    fn a_reload_keeps_the_group_cache_unless_the_lookup_changed() {
        let rt = crate::authn::directory::Runtime::default();
        let base = || crate::authn::directory::tests::settings(&[], None);
        let d = rt.get(&Arc::new(base()));
        d.remember(
            "dave",
            Arc::new(Found {
                dn: "uid=dave".into(),
                groups: vec![("netadmins".into(), false)],
                email: "".into(),
                full_name: "".into(),
            }),
        );
        // A new generation whose only change is a rename: the cache stays.
        let renamed = crate::authn::directory::tests::settings(&[("netadmins", "ops")], None);
        let d2 = rt.get(&Arc::new(renamed));
        assert!(!Arc::ptr_eq(&d, &d2));
        assert_eq!(d2.cached("dave").unwrap().0.dn.as_ref(), "uid=dave");
        // Another user filter may find another entry: the cache goes.
        let mut other = base();
        other.user_filter = "(cn={user})".into();
        let d3 = rt.get(&Arc::new(other));
        assert!(d3.cached("dave").is_none());
    }

    /// A directory on a listener that accepts and never answers.
    fn silent(pool_size: usize, timeout: Duration) -> (Directory, std::net::TcpListener) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ldap://{}", l.local_addr().unwrap());
        let mut s = crate::authn::directory::tests::settings(&[], None);
        s.servers = vec![ServerUrl {
            label: Name(url.as_str().into()),
            url,
            transport: Transport::Plain,
        }];
        s.pool_size = pool_size;
        s.timeout = timeout;
        (Directory::new(Arc::new(s), DirectoryMetrics::default()), l)
    }

    #[tokio::test]
    async fn checks_beyond_the_waiting_room_are_shed_and_a_timeout_frees_its_place() {
        let (d, _l) = silent(1, Duration::from_secs(30));
        let d = Arc::new(d);
        let mut held = Vec::new();
        // One holds the connection (talking to a silent server), 64 wait.
        for _ in 0..=WAITING_PER_CONNECTION {
            let d = d.clone();
            held.push(tokio::spawn(async move { d.check("dave", "pw").await }));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while d.waiting.load(std::sync::atomic::Ordering::Acquire) < WAITING_PER_CONNECTION {
            assert!(Instant::now() < deadline, "the checks never queued");
            tokio::task::yield_now().await;
        }
        assert_eq!(d.check("erin", "pw").await.unwrap_err(), DirError::Busy);
        assert_eq!(d.metrics.failures("corp", "busy"), 1);
        // Dropped waiters leave the room.
        for h in &held {
            h.abort();
        }
        for h in held {
            let _ = h.await;
        }
        assert_eq!(d.waiting.load(std::sync::atomic::Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_silent_server_costs_one_timeout_then_the_directory_is_left_alone() {
        let (d, _l) = silent(2, Duration::from_millis(200));
        assert_eq!(
            d.check("dave", "pw").await.unwrap_err(),
            DirError::Unavailable("timeout")
        );
        let t = Instant::now();
        assert_eq!(
            d.check("dave", "pw").await.unwrap_err(),
            DirError::Unavailable("down")
        );
        assert!(t.elapsed() < Duration::from_millis(100));
        assert_eq!(d.metrics.failures("corp", "timeout"), 1);
    }
}

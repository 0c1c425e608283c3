//! The credential checker the doors hold, one per process: the argon2 pool,
//! the verified-credential cache and the checks in flight, shared by every
//! configuration generation and asked about the users of whichever
//! generation a request holds. A reload therefore keeps what was verified
//! (for users whose stored hash did not change), and concurrent checks of
//! one (user, password, hash) wait on a single argon2 run.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{
    Argon2Pool, AuthnError, CredentialCache, Door, Fingerprint, LocalUser, LocalUsers, Lockout,
    Throttle, ThrottleKey,
};

/// A verification in flight: its result once there is one.
type Outcome = Option<Result<bool, AuthnError>>;

#[derive(Debug, Clone)]
pub struct Credentials {
    pub(super) pool: Arc<Argon2Pool>,
    pub(super) shared: Arc<Shared>,
    door: Door,
    /// Directory pools and group caches, shared like the cache.
    pub(super) directories: Arc<super::directory::Runtime>,
}

#[derive(Debug, Default)]
pub(super) struct Shared {
    pub(super) cache: CredentialCache,
    pub(super) throttle: Throttle,
    inflight: Mutex<HashMap<Fingerprint, watch::Receiver<Outcome>>>,
}

/// Takes a finished (or abandoned) verification out of the in-flight map,
/// also when the future running it is dropped half-way.
struct Leading<'a> {
    shared: &'a Shared,
    fp: Fingerprint,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.shared
            .inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.fp);
    }
}

impl Credentials {
    pub fn new(pool: Arc<Argon2Pool>) -> Self {
        Self {
            pool,
            shared: Arc::default(),
            door: Door::Network,
            directories: Arc::default(),
        }
    }

    /// The same checker, its directories counted in `metrics`.
    pub fn with_directory_metrics(self, metrics: super::DirectoryMetrics) -> Self {
        Self {
            directories: Arc::new(super::directory::Runtime::new(metrics)),
            ..self
        }
    }

    /// The same checker (cache, checks in flight) for the web side, which
    /// gets only a share of the argon2 threads.
    pub fn for_web(&self) -> Self {
        Self {
            door: Door::Web,
            ..self.clone()
        }
    }

    /// Checks a cleartext password (PAP, ASCII login, web form): from the
    /// verified-credential cache, else argon2 off the async workers, run
    /// once for all concurrent checks of the same credential.
    pub async fn password<'u>(
        &self,
        users: &'u LocalUsers,
        name: &str,
        password: &[u8],
    ) -> Result<&'u LocalUser, AuthnError> {
        self.password_from(users, name, password, None).await
    }

    /// As [`Self::password`], for a check whose source address counts
    /// towards throttling too (a browser's; a NAS speaks for many people).
    pub async fn password_from<'u>(
        &self,
        users: &'u LocalUsers,
        name: &str,
        password: &[u8],
        source: Option<IpAddr>,
    ) -> Result<&'u LocalUser, AuthnError> {
        let user = users.active(name);
        if let Ok(user) = user {
            let fp = self.fingerprint(users, user, password);
            if !users.cache_ttl().is_zero() && self.shared.cache.contains(&fp) {
                self.pool.metrics().cache_hit();
                return Ok(user);
            }
        }
        let t = users.throttle();
        let throttle = &self.shared.throttle;
        let now = Instant::now();
        // Names the attempt, so identical checks running at once count once.
        let attempt = self.shared.cache.fingerprint(name, password, 0).mac();
        let Some(by_name) =
            throttle.begin(ThrottleKey::User(name.into()), attempt, t.failures, t, now)
        else {
            self.pool.metrics().throttled();
            return Err(AuthnError::Throttled);
        };
        let by_source = match source {
            Some(ip) => {
                match throttle.begin(ThrottleKey::Source(ip), attempt, t.source_failures, t, now) {
                    Some(r) => Some(r),
                    None => {
                        self.pool.metrics().throttled();
                        return Err(AuthnError::Throttled);
                    }
                }
            }
            None => None,
        };
        self.pool.metrics().cache_miss();
        let verdict = match user {
            Ok(user) => {
                let fp = self.fingerprint(users, user, password);
                let ttl = users.cache_ttl();
                match self.verify_once(users, user, fp, password, ttl).await? {
                    true => Ok(user),
                    false => Err(AuthnError::BadPassword),
                }
            }
            Err(refused) => {
                // The same argon2 a real check runs, so an unknown or
                // disabled name is refused no faster than a wrong password.
                let _ = self
                    .pool
                    .verify_at(self.door, users.decoy_check(), password)
                    .await?;
                Err(refused)
            }
        };
        let now = Instant::now();
        by_name.finish(verdict.is_ok(), t.failures, t, now);
        if let Some(r) = by_source {
            r.finish(verdict.is_ok(), t.source_failures, t, now);
        }
        verdict
    }

    /// Names and sources locked out now.
    pub fn lockouts(&self) -> Vec<Lockout> {
        self.shared.throttle.lockouts(Instant::now())
    }

    /// Ends a lockout; whether there was one.
    pub fn clear_lockout(&self, key: &ThrottleKey) -> bool {
        self.shared.throttle.clear(key)
    }

    /// The login throttle, for the shared store's sync with other nodes.
    pub fn throttle(&self) -> &Throttle {
        &self.shared.throttle
    }

    /// Whether (user, password) passed argon2 recently, counted as a cache
    /// hit when it did: lets a repeat login skip the pool entirely.
    pub fn cached(&self, users: &LocalUsers, name: &str, password: &[u8]) -> bool {
        let Some(user) = users.get(name) else {
            return false;
        };
        if users.cache_ttl().is_zero() {
            return false;
        }
        let hit = self
            .shared
            .cache
            .contains(&self.fingerprint(users, user, password));
        if hit {
            self.pool.metrics().cache_hit();
        }
        hit
    }

    /// The cache key names the stored hash too, so an entry outlives a
    /// reload exactly when the user's credential did not change.
    fn fingerprint(&self, users: &LocalUsers, user: &LocalUser, password: &[u8]) -> Fingerprint {
        let tag = users.credential_tag(user);
        self.shared.cache.fingerprint(&user.name, password, tag)
    }

    async fn verify_once(
        &self,
        users: &LocalUsers,
        user: &LocalUser,
        fp: Fingerprint,
        password: &[u8],
        ttl: Duration,
    ) -> Result<bool, AuthnError> {
        loop {
            let waiting = {
                let mut inflight = self
                    .shared
                    .inflight
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                match inflight.get(&fp) {
                    Some(rx) => Err(rx.clone()),
                    // A leader that just finished put its result in the
                    // cache before leaving this map: look there first, or
                    // a check that missed the cache a moment ago would run
                    // argon2 a second time.
                    None if !ttl.is_zero() && self.shared.cache.contains(&fp) => return Ok(true),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        inflight.insert(fp, rx);
                        Ok(tx)
                    }
                }
            };
            match waiting {
                Ok(tx) => {
                    let _leading = Leading {
                        shared: &self.shared,
                        fp,
                    };
                    let result = self
                        .pool
                        .verify_at(self.door, users.password_check(user), password)
                        .await;
                    if result == Ok(true) && !ttl.is_zero() {
                        self.shared.cache.insert(fp, ttl);
                    }
                    let _ = tx.send(Some(result));
                    return result;
                }
                Err(mut rx) => match rx.wait_for(Option::is_some).await {
                    Ok(outcome) => return (*outcome).expect("waited for Some"),
                    // The one running it went away (its request was
                    // dropped) before a result: run it ourselves.
                    Err(_) => continue,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::authn::hash::tests::cheap;
    use crate::authn::{LocalUsersBuilder, NewUser, PoolMetrics, ThrottleSettings};

    /// A generation's users: `alice` with a hash of `password` (salt fixed
    /// by `cheap`, so equal passwords give equal hashes), `bob` with `pw`.
    fn users(password: &[u8], ttl: Duration) -> LocalUsers {
        let mut b = LocalUsersBuilder::with_capacity(2);
        for (name, pw) in [("alice", password), ("bob", b"pw".as_slice())] {
            let hash = b.hash(&cheap(pw, argon2::Algorithm::Argon2id, 32)).unwrap();
            let user = NewUser {
                name,
                groups: &[0],
                enabled: true,
                full_name: "",
                email: "",
                cleartext_password: None,
            };
            b.push(user, hash).unwrap();
        }
        b.finish(ttl)
    }

    fn checker(threads: usize) -> (Credentials, PoolMetrics) {
        let metrics = PoolMetrics::default();
        let pool = Argon2Pool::new(threads, 1024, metrics.clone());
        (Credentials::new(Arc::new(pool)), metrics)
    }

    const TTL: Duration = Duration::from_secs(300);

    #[tokio::test]
    async fn a_reload_keeps_what_was_verified_for_unchanged_credentials() {
        let (c, m) = checker(1);
        let first = users(b"alice-pw", TTL);
        assert!(c.password(&first, "alice", b"alice-pw").await.is_ok());
        assert!(c.password(&first, "bob", b"pw").await.is_ok());
        assert_eq!(m.verifications(), 2);
        // The next generation: alice's credential is the same, bob's is new.
        let second = users(b"alice-pw", TTL);
        let mut b = LocalUsersBuilder::with_capacity(1);
        let hash = b
            .hash(&cheap(b"new-pw", argon2::Algorithm::Argon2id, 32))
            .unwrap();
        b.push(
            NewUser {
                name: "bob",
                groups: &[0],
                enabled: true,
                full_name: "",
                email: "",
                cleartext_password: None,
            },
            hash,
        )
        .unwrap();
        let third = b.finish(TTL);
        assert!(c.cached(&second, "alice", b"alice-pw"));
        assert!(c.password(&second, "alice", b"alice-pw").await.is_ok());
        assert_eq!(m.verifications(), 2, "answered from the cache");
        // bob's old password against his new hash is checked, and fails.
        assert!(!c.cached(&third, "bob", b"pw"));
        assert_eq!(
            c.password(&third, "bob", b"pw").await.unwrap_err(),
            AuthnError::BadPassword
        );
        assert_eq!(m.verifications(), 3);
    }

    #[tokio::test]
    async fn unknown_and_disabled_names_cost_one_argon2_like_a_wrong_password() {
        let (c, m) = checker(1);
        let mut b = LocalUsersBuilder::with_capacity(1);
        let hash = b
            .hash(&cheap(b"pw", argon2::Algorithm::Argon2id, 32))
            .unwrap();
        let user = NewUser {
            name: "mallory",
            groups: &[0],
            enabled: false,
            full_name: "",
            email: "",
            cleartext_password: None,
        };
        b.push(user, hash).unwrap();
        let u = b.finish(TTL);
        for (name, pw, refused, runs) in [
            ("mallory", "pw", AuthnError::Disabled, 1),
            ("nobody", "pw", AuthnError::UnknownUser, 2),
            ("nobody", "", AuthnError::UnknownUser, 3),
        ] {
            assert_eq!(
                c.password(&u, name, pw.as_bytes()).await.unwrap_err(),
                refused
            );
            assert_eq!(m.verifications(), runs, "{name}");
        }
        // Nothing about them is remembered.
        assert!(!c.cached(&u, "mallory", b"pw"));
    }

    #[tokio::test]
    async fn failed_logins_lock_the_name_out_without_argon2() {
        let (c, m) = checker(1);
        let u = users(b"alice-pw", TTL);
        // alice's right password is cached before the guessing starts.
        assert!(c.password(&u, "alice", b"alice-pw").await.is_ok());
        for _ in 0..5 {
            assert_eq!(
                c.password(&u, "bob", b"guess").await.unwrap_err(),
                AuthnError::BadPassword
            );
        }
        let runs = m.verifications();
        // Locked: even bob's right password is refused, and no argon2 runs.
        assert_eq!(
            c.password(&u, "bob", b"pw").await.unwrap_err(),
            AuthnError::Throttled
        );
        assert_eq!(m.verifications(), runs);
        // Unknown names are counted the same way.
        for _ in 0..5 {
            let _ = c.password(&u, "nobody", b"x").await;
        }
        assert_eq!(
            c.password(&u, "nobody", b"x").await.unwrap_err(),
            AuthnError::Throttled
        );
        // Others are untouched, and guessing alice cannot lock out her
        // cached login.
        for _ in 0..6 {
            let _ = c.password(&u, "alice", b"guess").await;
        }
        assert!(c.password(&u, "alice", b"alice-pw").await.is_ok());
        let locked: Vec<_> = c.lockouts().into_iter().map(|l| l.key).collect();
        assert!(
            locked.contains(&ThrottleKey::User("bob".into())),
            "{locked:?}"
        );
        assert!(c.clear_lockout(&ThrottleKey::User("bob".into())));
        assert!(c.password(&u, "bob", b"pw").await.is_ok());
    }

    #[tokio::test]
    async fn one_web_source_trying_many_names_is_locked_out() {
        let (c, _) = checker(1);
        let u = users(b"alice-pw", TTL);
        let from = Some(IpAddr::from([192, 0, 2, 9]));
        for i in 0..20 {
            let name = format!("user{i}");
            let _ = c.password_from(&u, &name, b"x", from).await;
        }
        assert_eq!(
            c.password_from(&u, "bob", b"pw", from).await.unwrap_err(),
            AuthnError::Throttled
        );
        // The same name from elsewhere, and over the network doors, is fine.
        assert!(
            c.password_from(&u, "bob", b"pw", Some(IpAddr::from([192, 0, 2, 10])))
                .await
                .is_ok()
        );
        assert!(c.password(&u, "bob", b"pw").await.is_ok());
    }

    #[tokio::test]
    async fn a_zero_ttl_remembers_nothing() {
        let (c, m) = checker(1);
        let u = users(b"alice-pw", Duration::ZERO);
        for _ in 0..2 {
            assert!(c.password(&u, "alice", b"alice-pw").await.is_ok());
        }
        assert!(!c.cached(&u, "alice", b"alice-pw"));
        assert_eq!(m.verifications(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_identical_checks_run_one_argon2() {
        let (c, m) = checker(2);
        // Without throttling: the wrong passwords would lock alice out.
        let off = ThrottleSettings {
            failures: 0,
            source_failures: 0,
            ..ThrottleSettings::default()
        };
        let u = Arc::new(users(b"alice-pw", TTL).with_throttle(off));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..256 {
            let (c, u) = (c.clone(), u.clone());
            tasks.spawn(async move {
                // Every fourth one with a wrong password: those share a
                // verification of their own, and fail.
                let pw: &[u8] = if i % 4 == 3 { b"wrong" } else { b"alice-pw" };
                (i, c.password(&u, "alice", pw).await.is_ok())
            });
        }
        while let Some(r) = tasks.join_next().await {
            let (i, ok) = r.unwrap();
            assert_eq!(ok, i % 4 != 3, "check {i}");
        }
        // One for the right password (then cached); the wrong ones ran as
        // one flight, or a few if they came after one another finished.
        let runs = m.verifications();
        assert!((2..=64).contains(&runs), "{runs} argon2 runs");
        assert!(c.shared.inflight.lock().unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_identical_right_passwords_on_a_cold_cache_run_exactly_one() {
        let (c, m) = checker(2);
        let u = Arc::new(users(b"alice-pw", TTL));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..256 {
            let (c, u) = (c.clone(), u.clone());
            tasks.spawn(async move { c.password(&u, "alice", b"alice-pw").await.is_ok() });
        }
        while let Some(r) = tasks.join_next().await {
            assert!(r.unwrap());
        }
        assert_eq!(m.verifications(), 1);
    }

    #[tokio::test]
    async fn a_follower_runs_the_check_itself_when_the_leader_goes_away() {
        let (c, m) = checker(1);
        let u = users(b"alice-pw", TTL);
        // The pool's one thread is busy, so the leader's check stays in
        // flight (waiting for it) for as long as the test wants.
        let busy = c.pool.occupy();
        let mut leader = Box::pin(c.password(&u, "alice", b"alice-pw"));
        let mut follower = Box::pin(c.password(&u, "alice", b"alice-pw"));
        assert!(futures_poll(&mut leader).is_none());
        assert!(futures_poll(&mut follower).is_none());
        assert_eq!(c.shared.inflight.lock().unwrap().len(), 1);
        // The leader's request is dropped half-way.
        drop(leader);
        assert!(c.shared.inflight.lock().unwrap().is_empty());
        drop(busy);
        assert!(follower.await.is_ok());
        assert_eq!(m.verifications(), 1, "only the follower's ran");
    }

    /// Polls a future once.
    fn futures_poll<F: Future + Unpin>(f: &mut F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match std::pin::Pin::new(f).poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}

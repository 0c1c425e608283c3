//! argon2 off the async runtime: verifications run on tokio's blocking pool,
//! at most `threads` at once, with at most `queue` waiting; anything beyond
//! is shed (counted) rather than queued without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use argon2::Block;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{AuthnError, PasswordCheck};

#[derive(Debug, Clone, Default)]
pub struct PoolMetrics {
    cache_hits: Counter,
    cache_misses: Counter,
    verifications: Counter,
    shed: Counter,
    waiting: Gauge,
    throttled: Counter,
}

impl PoolMetrics {
    pub fn register(reg: &mut Registry) -> Self {
        let m = Self::default();
        reg.register(
            "credential_cache_hits",
            "Password checks answered from the verified-credential cache",
            m.cache_hits.clone(),
        );
        reg.register(
            "credential_cache_misses",
            "Password checks that needed argon2",
            m.cache_misses.clone(),
        );
        reg.register(
            "argon2_verifications",
            "argon2 verifications run",
            m.verifications.clone(),
        );
        reg.register(
            "argon2_shed",
            "Password checks refused because the argon2 pool and its queue were full",
            m.shed.clone(),
        );
        reg.register(
            "login_throttled",
            "Password checks refused without argon2 because the name or the source is locked out after failed logins",
            m.throttled.clone(),
        );
        reg.register(
            "argon2_waiting",
            "Password checks waiting for an argon2 thread",
            m.waiting.clone(),
        );
        m
    }

    /// argon2 verifications run so far.
    pub fn verifications(&self) -> u64 {
        self.verifications.get()
    }

    pub(crate) fn throttled(&self) {
        self.throttled.inc();
    }

    pub(crate) fn cache_hit(&self) {
        self.cache_hits.inc();
    }

    pub(crate) fn cache_miss(&self) {
        self.cache_misses.inc();
    }
}

/// One check in the waiting queue, until it leaves it whichever way.
struct Queued<'a> {
    waiting: &'a AtomicUsize,
    gauge: &'a Gauge,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        self.gauge.dec();
    }
}

/// Where a password check came from: the web side gets only a share of the
/// pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// RADIUS and TACACS+.
    Network,
    Web,
}

/// Shared by every configuration generation: reloads do not reset the
/// bound on concurrent argon2 work.
#[derive(Debug)]
pub struct Argon2Pool {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    metrics: PoolMetrics,
    /// Web checks also take one of these first: at most half the threads
    /// (at least one), so a flood of web logins leaves RADIUS and TACACS+
    /// the other half.
    web: Arc<Semaphore>,
    web_waiting: AtomicUsize,
    /// argon2 working memory, one buffer per verification running: at most
    /// `threads` of them, reused, so memory is bounded by the pool size and
    /// not by how many logins arrive at once.
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
}

impl Argon2Pool {
    pub fn new(threads: usize, queue: usize, metrics: PoolMetrics) -> Self {
        let threads = threads.max(1);
        Self {
            permits: Arc::new(Semaphore::new(threads)),
            waiting: AtomicUsize::new(0),
            max_waiting: queue,
            metrics,
            web: Arc::new(Semaphore::new((threads / 2).max(1))),
            web_waiting: AtomicUsize::new(0),
            memory: Arc::default(),
        }
    }

    pub fn metrics(&self) -> &PoolMetrics {
        &self.metrics
    }

    /// Takes every thread, as if that many checks were running; for tests
    /// that need a check to stay in flight.
    #[cfg(test)]
    pub(crate) fn occupy(&self) -> OwnedSemaphorePermit {
        let n = self.permits.available_permits() as u32;
        self.permits
            .clone()
            .try_acquire_many_owned(n)
            .expect("idle pool")
    }

    /// Bytes of argon2 working memory the pool holds for reuse.
    pub fn memory_held(&self) -> usize {
        let m = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        m.iter().map(|b| b.capacity() * Block::SIZE).sum()
    }

    /// A permit of `sem` now, or after waiting in a queue of at most
    /// `max_waiting`; beyond it the check is shed.
    async fn admit(
        &self,
        sem: &Arc<Semaphore>,
        waiting: &AtomicUsize,
    ) -> Result<OwnedSemaphorePermit, AuthnError> {
        if let Ok(p) = sem.clone().try_acquire_owned() {
            return Ok(p);
        }
        if waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            waiting.fetch_sub(1, Ordering::AcqRel);
            self.metrics.shed.inc();
            return Err(AuthnError::Overloaded);
        }
        self.metrics.waiting.inc();
        // Counted out however the wait ends, also when the request waiting
        // is dropped (a TACACS+ connection closing mid-login): otherwise the
        // queue would fill with ghosts and shed every check.
        let _queued = Queued {
            waiting,
            gauge: &self.metrics.waiting,
        };
        sem.clone()
            .acquire_owned()
            .await
            .map_err(|_| AuthnError::Overloaded)
    }

    /// Checks `password` against a stored hash off the async workers.
    pub async fn verify(&self, check: PasswordCheck, password: &[u8]) -> Result<bool, AuthnError> {
        self.verify_at(Door::Network, check, password).await
    }

    /// As [`Self::verify`], for a check that came through `door`.
    pub async fn verify_at(
        &self,
        door: Door,
        check: PasswordCheck,
        password: &[u8],
    ) -> Result<bool, AuthnError> {
        let web = match door {
            Door::Web => Some(self.admit(&self.web, &self.web_waiting).await?),
            Door::Network => None,
        };
        let permit = self.admit(&self.permits, &self.waiting).await?;
        self.metrics.verifications.inc();
        let password = password.to_vec();
        let memory = self.memory.clone();
        tokio::task::spawn_blocking(move || {
            let _permits = (permit, web);
            let take = || memory.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let mut buffer = take().unwrap_or_default();
            let result = check.verify_in(&password, &mut buffer);
            memory
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(buffer);
            result
        })
        .await
        .map_err(|_| AuthnError::BadHash)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::hash::tests::check_of;

    fn poll_once<F: Future + Unpin>(f: &mut F) -> Option<F::Output> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::pin::Pin::new(f).poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }

    #[tokio::test]
    async fn web_checks_leave_the_network_its_share_of_the_threads() {
        let pool = Argon2Pool::new(2, 8, PoolMetrics::default());
        // A web check running: it holds the web share (one of two threads).
        let running = pool.web.clone().try_acquire_owned().unwrap();
        let _thread = pool.permits.clone().try_acquire_owned().unwrap();
        // Another web check waits for the web share...
        let mut web = Box::pin(pool.verify_at(Door::Web, check_of(b"pw", 1), b"pw"));
        assert!(poll_once(&mut web).is_none());
        assert_eq!(pool.web_waiting.load(Ordering::Acquire), 1);
        assert_eq!(
            pool.permits.available_permits(),
            1,
            "the web took no thread"
        );
        // ...while a network check has a thread of its own.
        assert_eq!(pool.verify(check_of(b"pw", 2), b"pw").await, Ok(true));
        drop(running);
        assert_eq!(web.await, Ok(true));
    }

    #[tokio::test]
    async fn a_check_dropped_while_waiting_leaves_the_queue() {
        let pool = Argon2Pool::new(1, 1, PoolMetrics::default());
        let busy = pool.occupy();
        for _ in 0..3 {
            let mut waiting = Box::pin(pool.verify(check_of(b"pw", 1), b"pw"));
            assert!(poll_once(&mut waiting).is_none());
            assert_eq!(pool.waiting.load(Ordering::Acquire), 1);
            drop(waiting);
            assert_eq!(pool.waiting.load(Ordering::Acquire), 0);
            assert_eq!(pool.metrics.waiting.get(), 0);
        }
        drop(busy);
        // The queue of one has room: nothing was shed.
        assert_eq!(pool.verify(check_of(b"pw", 1), b"pw").await, Ok(true));
        assert_eq!(pool.metrics.shed.get(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn working_memory_is_bounded_by_the_threads() {
        let pool = Arc::new(Argon2Pool::new(2, 64, PoolMetrics::default()));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..32u8 {
            let pool = pool.clone();
            tasks.spawn(async move { pool.verify(check_of(b"pw", i), b"pw").await });
        }
        while let Some(r) = tasks.join_next().await {
            assert_eq!(r.unwrap(), Ok(true));
        }
        // Two buffers of 8 blocks at most, however many checks came at once.
        assert!(
            pool.memory_held() <= 2 * 8 * Block::SIZE,
            "{}",
            pool.memory_held()
        );
        assert!(pool.memory_held() >= 8 * Block::SIZE);
    }
}

//! argon2 off the async runtime: verifications run on tokio's blocking pool,
//! at most `threads` at once, with at most `queue` waiting; anything beyond
//! is shed (counted) rather than queued without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use argon2::Block;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;

use super::{AuthnError, PasswordCheck};

#[derive(Debug, Clone, Default)]
pub struct PoolMetrics {
    cache_hits: Counter,
    cache_misses: Counter,
    verifications: Counter,
    shed: Counter,
    waiting: Gauge,
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

    pub(crate) fn cache_hit(&self) {
        self.cache_hits.inc();
    }

    pub(crate) fn cache_miss(&self) {
        self.cache_misses.inc();
    }
}

/// Shared by every configuration generation: reloads do not reset the
/// bound on concurrent argon2 work.
#[derive(Debug)]
pub struct Argon2Pool {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    metrics: PoolMetrics,
    /// argon2 working memory, one buffer per verification running: at most
    /// `threads` of them, reused, so memory is bounded by the pool size and
    /// not by how many logins arrive at once.
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
}

impl Argon2Pool {
    pub fn new(threads: usize, queue: usize, metrics: PoolMetrics) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(threads.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting: queue,
            metrics,
            memory: Arc::default(),
        }
    }

    pub fn metrics(&self) -> &PoolMetrics {
        &self.metrics
    }

    /// Bytes of argon2 working memory the pool holds for reuse.
    pub fn memory_held(&self) -> usize {
        let m = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        m.iter().map(|b| b.capacity() * Block::SIZE).sum()
    }

    /// Checks `password` against a stored hash off the async workers.
    pub async fn verify(&self, check: PasswordCheck, password: &[u8]) -> Result<bool, AuthnError> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    self.metrics.shed.inc();
                    return Err(AuthnError::Overloaded);
                }
                self.metrics.waiting.inc();
                let p = self.permits.clone().acquire_owned().await;
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                self.metrics.waiting.dec();
                p.map_err(|_| AuthnError::Overloaded)?
            }
        };
        self.metrics.verifications.inc();
        let password = password.to_vec();
        let memory = self.memory.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
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

//! Accounting store metrics. Handles are cloned into the writer thread, so
//! counting is an atomic add.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug)]
pub struct AccountingMetrics {
    pub records_stored: Counter,
    pub duplicates: Counter,
    pub dropped: Counter,
    pub dedup_evictions: Counter,
    pub dedup_keys: Gauge,
    pub commit_failures: Counter,
    pub queue_depth: Gauge,
    pub commit_batch_size: Histogram,
    pub commit_seconds: Histogram,
}

impl AccountingMetrics {
    pub fn register(reg: &mut Registry) -> Self {
        let m = Self {
            records_stored: Counter::default(),
            duplicates: Counter::default(),
            dropped: Counter::default(),
            dedup_evictions: Counter::default(),
            dedup_keys: Gauge::default(),
            commit_failures: Counter::default(),
            queue_depth: Gauge::default(),
            // 1 .. 1024, the batch limit.
            commit_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            // 50 µs .. ~1.6 s: an fsync sits around the bottom, a stalled disk at the top.
            commit_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
        };
        reg.register(
            "accounting_records_stored",
            "Accounting records committed as new rows",
            m.records_stored.clone(),
        );
        reg.register(
            "accounting_duplicates",
            "Accounting records whose dedup key was already stored (retransmissions), acknowledged without a new row",
            m.duplicates.clone(),
        );
        reg.register(
            "accounting_dropped",
            "Accounting records refused because the queue was full; the request went unanswered",
            m.dropped.clone(),
        );
        reg.register(
            "accounting_dedup_evictions",
            "Dedup keys forgotten before their window ended because the cache was full; a retransmission of one is stored again",
            m.dedup_evictions.clone(),
        );
        reg.register(
            "accounting_dedup_keys",
            "Dedup keys remembered by the writer (records received within the dedup window)",
            m.dedup_keys.clone(),
        );
        reg.register(
            "accounting_commit_failures",
            "Accounting batches whose transaction failed; none of their records was acknowledged",
            m.commit_failures.clone(),
        );
        reg.register(
            "accounting_queue_depth",
            "Accounting records queued and not yet taken by the writer",
            m.queue_depth.clone(),
        );
        reg.register(
            "accounting_commit_batch_size",
            "Accounting records per committed transaction",
            m.commit_batch_size.clone(),
        );
        reg.register(
            "accounting_commit_seconds",
            "Time to write and commit one accounting batch",
            m.commit_seconds.clone(),
        );
        m
    }
}

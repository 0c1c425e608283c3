//! Metric building blocks every module shares: the latency buckets, label
//! types that count without allocating, and the exposition of the one
//! registry. It imports nothing of the crate, so any module may use it; the
//! registry itself is filled by the composition root (`server`).

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Request-latency buckets, seconds: 25 µs .. 1 s. A cached login lives at
/// the bottom, an argon2 verification in the middle.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0,
];

/// A histogram over [`LATENCY_BUCKETS`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// A configured name (a client, a provider) as a label value without
/// copying it. Only names from the configuration go here, never a request's.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Name(pub Arc<str>);

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(&self.0)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// The registry, finished and shared read-only: what `/metrics` serves.
#[derive(Debug, Clone)]
pub struct Exposition(Arc<Registry>);

impl Exposition {
    pub fn new(registry: Registry) -> Self {
        Self(Arc::new(registry))
    }

    /// The text exposition format (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.0);
        out
    }
}

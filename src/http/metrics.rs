//! HTTP listener counters: open connections, connections refused by the
//! per-address cap, requests cut off by the request deadline or refused
//! for the size of their body. Label
//! values are a closed set.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Debug, Default, Clone)]
pub struct HttpMetrics {
    pub(super) open: Gauge,
    refused: Family<Reason, Counter>,
    pub(super) timed_out: Counter,
    pub(super) too_large: Counter,
}

impl HttpMetrics {
    /// Registers `portcullis_http_connections_open`,
    /// `portcullis_http_connections_refused_total{reason}` and
    /// `portcullis_http_requests_timed_out_total`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "http_connections_open",
            "HTTP connections open now",
            m.open.clone(),
        );
        registry.register(
            "http_connections_refused",
            "HTTP connections closed on arrival, by reason (per_address: the address holds web.max_connections_per_address)",
            m.refused.clone(),
        );
        registry.register(
            "http_requests_too_large",
            "HTTP requests answered 413 because their body was over web.max_body",
            m.too_large.clone(),
        );
        registry.register(
            "http_requests_timed_out",
            "HTTP requests answered 408 because they took longer than web.request_timeout",
            m.timed_out.clone(),
        );
        // The series exists from the start, so an alert sees a zero.
        drop(m.refused.get_or_create(&Reason {
            reason: "per_address",
        }));
        m
    }

    pub(super) fn refused_per_address(&self) {
        self.refused
            .get_or_create(&Reason {
                reason: "per_address",
            })
            .inc();
    }
}

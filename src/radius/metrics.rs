//! RADIUS counters: requests by client, packet type and result; drops by
//! reason; latency. Label values are `&'static str` or shared `Arc<str>`, so
//! counting never allocates.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::metrics::{Name, ReasonLabel, latency_histogram};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub client: Name,
    pub r#type: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug)]
pub struct RadiusMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub drops: Family<ReasonLabel, Counter>,
    pub auth: Family<MethodLabels, Counter>,
    pub duplicates: Counter,
    pub latency: Histogram,
    /// From the kernel's receive timestamp, so time queued in the socket
    /// (the server busy or not scheduled) counts too.
    pub kernel_latency: Histogram,
}

impl RadiusMetrics {
    pub fn register(reg: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            drops: Family::default(),
            auth: Family::default(),
            duplicates: Counter::default(),
            latency: latency_histogram(),
            kernel_latency: latency_histogram(),
        };
        reg.register(
            "radius_requests",
            "RADIUS requests answered, by client, packet type and result",
            m.requests.clone(),
        );
        reg.register(
            "radius_drops",
            "RADIUS packets dropped without an answer, by reason",
            m.drops.clone(),
        );
        reg.register(
            "radius_authentications",
            "RADIUS authentication attempts by method and result",
            m.auth.clone(),
        );
        reg.register(
            "radius_duplicates",
            "Retransmissions answered from the duplicate cache (RFC 5080)",
            m.duplicates.clone(),
        );
        reg.register(
            "radius_request_seconds",
            "Time from receiving a RADIUS request to sending its answer",
            m.latency.clone(),
        );
        reg.register(
            "radius_kernel_to_reply_seconds",
            "Time from the kernel receiving a RADIUS request (SO_TIMESTAMPNS) to its answer being sent; includes socket queueing",
            m.kernel_latency.clone(),
        );
        m
    }

    pub fn drop(&self, reason: super::service::DropReason) {
        let reason = reason.label();
        self.drops.get_or_create(&ReasonLabel { reason }).inc();
    }
}

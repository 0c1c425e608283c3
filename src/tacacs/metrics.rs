//! TACACS+ counters: requests by client, packet type and result; connections
//! open; drops and protocol errors by reason; latency.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::metrics::{Name, ReasonLabel, latency_histogram};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub client: Name,
    pub r#type: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug)]
pub struct TacacsMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub errors: Family<ReasonLabel, Counter>,
    pub connections_open: Gauge,
    pub connections: Counter,
    pub latency: Histogram,
    pub kernel_to_reply: Histogram,
}

impl TacacsMetrics {
    pub fn register(reg: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            errors: Family::default(),
            connections_open: Gauge::default(),
            connections: Counter::default(),
            latency: latency_histogram(),
            kernel_to_reply: latency_histogram(),
        };
        reg.register(
            "tacacs_requests",
            "TACACS+ requests answered, by client, packet type and result",
            m.requests.clone(),
        );
        reg.register(
            "tacacs_errors",
            "TACACS+ connections refused or closed and packets dropped, by reason",
            m.errors.clone(),
        );
        reg.register(
            "tacacs_connections_open",
            "TACACS+ connections open now",
            m.connections_open.clone(),
        );
        reg.register(
            "tacacs_connections",
            "TACACS+ connections accepted",
            m.connections.clone(),
        );
        reg.register(
            "tacacs_request_seconds",
            "Time from a complete TACACS+ request to its reply being handed to the socket",
            m.latency.clone(),
        );
        reg.register(
            "tacacs_kernel_to_reply_seconds",
            "Time from the kernel receiving a TACACS+ request (SO_TIMESTAMPNS) to its reply being handed to the socket; includes time queued in the socket",
            m.kernel_to_reply.clone(),
        );
        m
    }

    pub fn error(&self, reason: super::engine::Closed) {
        let reason = reason.label();
        self.errors.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn request(&self, client: &std::sync::Arc<str>, kind: &'static str, result: &'static str) {
        self.requests
            .get_or_create(&RequestLabels {
                client: Name(client.clone()),
                r#type: kind,
                result,
            })
            .inc();
    }
}

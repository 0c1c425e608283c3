//! What each directory is counted by. Labels are the configured directory
//! name and server URL, or a closed set of results and reasons.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::metrics::{Name, latency_histogram};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct DirLabel {
    pub(super) directory: Name,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct DirResult {
    pub(super) directory: Name,
    pub(super) result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct DirReason {
    pub(super) directory: Name,
    pub(super) reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct DirServer {
    pub(super) directory: Name,
    pub(super) server: Name,
}

type Histograms = Family<DirLabel, Histogram, fn() -> Histogram>;

#[derive(Debug, Clone)]
pub struct DirectoryMetrics {
    pub(super) binds: Family<DirResult, Counter>,
    pub(super) failures: Family<DirReason, Counter>,
    pub(super) latency: Histograms,
    pub(super) pool_in_use: Family<DirLabel, Gauge>,
    pub(super) server_in_use: Family<DirServer, Gauge>,
    pub(super) shared: Family<DirLabel, Counter>,
}

impl Default for DirectoryMetrics {
    fn default() -> Self {
        Self {
            binds: Family::default(),
            failures: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            pool_in_use: Family::default(),
            server_in_use: Family::default(),
            shared: Family::default(),
        }
    }
}

impl DirectoryMetrics {
    pub fn register(reg: &mut Registry) -> Self {
        let m = Self::default();
        reg.register(
            "directory_binds",
            "Password binds against a directory, by result (ok, bad_password)",
            m.binds.clone(),
        );
        reg.register(
            "directory_failures",
            "Directory checks that failed, by reason (connect, tls, timeout, busy, referral, service_bind, not_found, ambiguous, protocol)",
            m.failures.clone(),
        );
        reg.register(
            "directory_latency_seconds",
            "Time one directory check took (connect, binds, searches)",
            m.latency.clone(),
        );
        reg.register(
            "directory_checks_shared",
            "Password checks that waited for an identical check already running instead of binding again",
            m.shared.clone(),
        );
        reg.register(
            "directory_pool_in_use",
            "Directory connections in use",
            m.pool_in_use.clone(),
        );
        reg.register(
            "directory_server_in_use",
            "1 for the server URL a directory's newest connection went to",
            m.server_in_use.clone(),
        );
        m
    }

    /// A failure of that reason, counted for the directory.
    pub(super) fn shared_check(&self, directory: &Name) {
        self.shared
            .get_or_create(&DirLabel {
                directory: directory.clone(),
            })
            .inc();
    }

    pub fn failure(&self, directory: &Name, reason: &'static str) {
        self.failures
            .get_or_create(&DirReason {
                directory: directory.clone(),
                reason,
            })
            .inc();
    }

    /// Failures of that reason so far (tests).
    pub fn failures(&self, directory: &str, reason: &'static str) -> u64 {
        self.failures
            .get_or_create(&DirReason {
                directory: Name(directory.into()),
                reason,
            })
            .get()
    }

    /// Binds with that result so far (tests).
    pub fn binds(&self, directory: &str, result: &'static str) -> u64 {
        self.binds
            .get_or_create(&DirResult {
                directory: Name(directory.into()),
                result,
            })
            .get()
    }
}

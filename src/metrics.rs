//! The one Prometheus registry, every name prefixed `portcullis_`. Each
//! module registers its own family struct here once; handles are cloned into
//! the hot paths, so counting is an atomic add, never a lookup by name.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::authn::PoolMetrics;

/// Request-latency buckets, seconds: 25 µs .. 1 s. A cached login lives at
/// the bottom, an argon2 verification in the middle.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

/// Everything the server counts.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub reload_success: Counter,
    pub reload_failure: Counter,
    pub config_generation: Gauge,
    pub authn: PoolMetrics,
    pub radius: crate::radius::metrics::RadiusMetrics,
    pub tacacs: crate::tacacs::metrics::TacacsMetrics,
    pub accounting: crate::accounting::AccountingMetrics,
    pub oidc: crate::oidc::OidcMetrics,
    pub saml: crate::oidc::OidcMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        registry.register(
            "build",
            "Build information",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let reloads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads by result (success, failure)",
            reloads.clone(),
        );
        // Both series exist from the start so alerts on failure see a zero.
        let reload_success = reloads
            .get_or_create(&ResultLabel { result: "success" })
            .clone();
        let reload_failure = reloads
            .get_or_create(&ResultLabel { result: "failure" })
            .clone();
        let config_generation = Gauge::default();
        registry.register(
            "config_generation",
            "How many configurations have been loaded (1 at start, +1 per successful reload)",
            config_generation.clone(),
        );
        let authn = PoolMetrics::register(&mut registry);
        let radius = crate::radius::metrics::RadiusMetrics::register(&mut registry);
        let tacacs = crate::tacacs::metrics::TacacsMetrics::register(&mut registry);
        let accounting = crate::accounting::AccountingMetrics::register(&mut registry);
        let oidc = crate::oidc::OidcMetrics::register(&mut registry);
        let saml = crate::oidc::OidcMetrics::register_saml(&mut registry);
        Self {
            accounting,
            oidc,
            saml,
            radius,
            tacacs,
            registry,
            reload_success,
            reload_failure,
            config_generation,
            authn,
        }
    }

    /// Lets a module register its families before the registry is shared.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The text exposition format (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

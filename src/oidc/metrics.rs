//! The web-login counters (OIDC, and SAML with its own names). Label values are provider names (from config) and the
//! fixed `reason()` labels, so cardinality is bounded by configuration.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

#[derive(Debug, Default, Clone)]
pub struct OidcMetrics {
    logins: Family<Labels, Counter>,
    verify_failures: Family<Labels, Counter>,
}

impl OidcMetrics {
    /// Registers `portcullis_oidc_logins_total{provider,result}` and
    /// `portcullis_oidc_token_verification_failures_total{provider,reason}`
    /// (the registry adds the `portcullis_` prefix when the caller gives one).
    pub fn register(registry: &mut Registry) -> Self {
        Self::register_named(
            registry,
            (
                "oidc_logins",
                "OIDC logins by provider and result (success, or the failure reason)",
            ),
            (
                "oidc_token_verification_failures",
                "ID tokens refused, by provider and reason",
            ),
        )
    }

    /// The same pair of counters for SAML:
    /// `portcullis_saml_logins_total{provider,result}` and
    /// `portcullis_saml_verification_failures_total{provider,reason}`.
    pub fn register_saml(registry: &mut Registry) -> Self {
        Self::register_named(
            registry,
            (
                "saml_logins",
                "SAML logins by provider and result (success, or the failure reason)",
            ),
            (
                "saml_verification_failures",
                "SAML responses refused, by provider and reason",
            ),
        )
    }

    fn register_named(
        registry: &mut Registry,
        logins: (&str, &str),
        failures: (&str, &str),
    ) -> Self {
        let m = Self::default();
        registry.register(logins.0, logins.1, m.logins.clone());
        registry.register(failures.0, failures.1, m.verify_failures.clone());
        m
    }

    pub fn login(&self, provider: &str, result: &str) {
        self.logins
            .get_or_create(&vec![
                ("provider".into(), provider.into()),
                ("result".into(), result.into()),
            ])
            .inc();
    }

    pub fn verify_failure(&self, provider: &str, reason: &str) {
        self.verify_failures
            .get_or_create(&vec![
                ("provider".into(), provider.into()),
                ("reason".into(), reason.into()),
            ])
            .inc();
    }
}

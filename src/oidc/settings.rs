//! Per-provider settings, as the config layer hands them over (already
//! validated), and the Okta-style issuer resolution.

use std::fmt;
use std::time::Duration;

/// The OAuth client secret. Its `Debug` and `Display` never show the value,
/// so settings can be logged and errors formatted without leaking it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The only way to read the value; grep for it when auditing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

impl fmt::Display for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the issuer comes from in the configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerSource {
    /// `issuer = "https://..."`, used verbatim (the `iss` claim must match it
    /// byte for byte, so no normalisation happens here).
    Url(String),
    /// Okta-style `domain` + `server_id`.
    Okta { domain: String, server_id: String },
}

/// Resolves an Okta `domain` + `server_id` to the issuer URL.
///
/// `server_id = ""` is the org authorization server (`https://DOMAIN`);
/// `default` or a custom authorization server name gives
/// `https://DOMAIN/oauth2/SERVER_ID`. A domain given with a scheme or a
/// trailing slash is tolerated because operators paste it from the browser.
pub fn okta_issuer(domain: &str, server_id: &str) -> String {
    let d = domain.trim();
    let d = d
        .strip_prefix("https://")
        .or_else(|| d.strip_prefix("http://"))
        .unwrap_or(d);
    let d = d.trim_end_matches('/');
    let s = server_id.trim().trim_matches('/');
    if s.is_empty() {
        format!("https://{d}")
    } else {
        format!("https://{d}/oauth2/{s}")
    }
}

impl IssuerSource {
    pub fn resolve(&self) -> String {
        match self {
            Self::Url(u) => u.clone(),
            Self::Okta { domain, server_id } => okta_issuer(domain, server_id),
        }
    }
}

/// Token endpoint client authentication (RFC 6749 2.3.1, OIDC Core 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with form-urlencoded id and secret.
    Basic,
    /// `client_secret_post`: id and secret in the form body.
    Post,
}

pub const DEFAULT_SCOPES: &[&str] = &["openid", "profile", "email", "groups"];
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";
pub const DEFAULT_USERNAME_CLAIM: &str = "preferred_username";

/// One `[[oidc.provider]]` entry, validated.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    pub name: String,
    /// The resolved issuer (see [`IssuerSource::resolve`]).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: ClientSecret,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    /// The ID token's expected `aud`; `None` means the client id (the usual
    /// case: OIDC Core says the ID token's audience is the client).
    pub audience: Option<String>,
    pub groups_claim: String,
    pub username_claim: String,
    /// Tolerated clock difference with the IdP, applied to `exp`, `nbf` and
    /// `iat`.
    pub clock_skew: Duration,
    /// HS256 is accepted only when this is set (a secret shared out of band
    /// with the IdP). It is never derived from a JWKS public key.
    pub hmac_secret: Option<ClientSecret>,
    /// How to authenticate at the token endpoint; `None` picks from the
    /// discovery document (basic first). Set it when the IdP registered the
    /// client for one method only (Okta and oidc-provider enforce that).
    pub client_auth: Option<ClientAuth>,
    /// Bound on every HTTP exchange with the IdP (connect + response).
    pub http_timeout: Duration,
    /// Least time between two JWKS fetches caused by an unknown `kid`, so a
    /// stream of forged tokens cannot make us hammer the IdP.
    pub jwks_min_refetch: Duration,
    /// How long a started login (state/nonce/PKCE) stays usable.
    pub login_timeout: Duration,
}

impl ProviderSettings {
    /// Settings with every documented default; the config layer overrides
    /// what the file sets.
    pub fn new(
        name: impl Into<String>,
        issuer: &IssuerSource,
        client_id: impl Into<String>,
        client_secret: ClientSecret,
        redirect_uri: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            issuer: issuer.resolve(),
            client_id: client_id.into(),
            client_secret,
            redirect_uri: redirect_uri.into(),
            scopes: DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
            audience: None,
            groups_claim: DEFAULT_GROUPS_CLAIM.to_string(),
            username_claim: DEFAULT_USERNAME_CLAIM.to_string(),
            clock_skew: Duration::from_secs(60),
            hmac_secret: None,
            client_auth: None,
            http_timeout: Duration::from_secs(10),
            jwks_min_refetch: Duration::from_secs(60),
            login_timeout: Duration::from_secs(600),
        }
    }

    pub fn expected_audience(&self) -> &str {
        self.audience.as_deref().unwrap_or(&self.client_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn okta_default_server() {
        assert_eq!(
            okta_issuer("acme.okta.com", "default"),
            "https://acme.okta.com/oauth2/default"
        );
    }

    #[test]
    fn okta_custom_server() {
        assert_eq!(
            okta_issuer("acme.okta.com", "aus1a2b3c4D5e6F7g8h9"),
            "https://acme.okta.com/oauth2/aus1a2b3c4D5e6F7g8h9"
        );
    }

    #[test]
    fn okta_org_server_when_server_id_empty() {
        assert_eq!(okta_issuer("acme.okta.com", ""), "https://acme.okta.com");
        assert_eq!(okta_issuer("acme.okta.com", "  "), "https://acme.okta.com");
    }

    #[test]
    fn okta_domain_pasted_with_scheme_and_slash() {
        assert_eq!(
            okta_issuer("https://acme.okta.com/", "default"),
            "https://acme.okta.com/oauth2/default"
        );
        assert_eq!(
            okta_issuer("https://acme.okta.com/", ""),
            "https://acme.okta.com"
        );
    }

    #[test]
    fn issuer_url_verbatim() {
        let s = IssuerSource::Url("https://login.example.com/tenant/".into());
        assert_eq!(s.resolve(), "https://login.example.com/tenant/");
    }

    #[test]
    fn defaults() {
        let s = ProviderSettings::new(
            "okta",
            &IssuerSource::Okta {
                domain: "acme.okta.com".into(),
                server_id: "default".into(),
            },
            "cid",
            ClientSecret::new("s3cret"),
            "https://aaa.example.com/login/okta/callback",
        );
        assert_eq!(s.scopes, ["openid", "profile", "email", "groups"]);
        assert_eq!(s.groups_claim, "groups");
        assert_eq!(s.username_claim, "preferred_username");
        assert_eq!(s.expected_audience(), "cid");
        assert!(s.hmac_secret.is_none());
    }

    #[test]
    fn secret_never_in_debug() {
        let mut s = ProviderSettings::new(
            "okta",
            &IssuerSource::Url("https://x".into()),
            "cid",
            ClientSecret::new("s3cret-value"),
            "https://r",
        );
        s.hmac_secret = Some(ClientSecret::new("hmac-value"));
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("s3cret-value") && !dbg.contains("hmac-value"));
        assert!(dbg.contains("<redacted>"));
    }
}

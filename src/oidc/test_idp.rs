//! `portcullis idp test --provider NAME`: checks a provider's configuration
//! against the live IdP and reports every problem found, not just the first,
//! so an operator can fix them in one round.

use std::fmt;

use super::provider::{
    Metadata, authenticate, describe, endpoint_url, fetch_metadata, get_doc, http_client,
};
use super::settings::ProviderSettings;
use super::verify::KeySet;

/// Algorithms we verify with public keys (HS256 needs no JWKS).
const PUBLIC_KEY_ALGS: &[&str] = &["RS256", "ES256"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            ok: true,
            detail: detail.into(),
        }
    }
    pub fn fail(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            ok: false,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:<22} {}",
            if self.ok { "ok  " } else { "FAIL" },
            self.name,
            self.detail
        )
    }
}

pub fn all_ok(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.ok)
}

/// Runs every check; never fails as a whole (failures are checks).
pub async fn idp_test(s: &ProviderSettings) -> Vec<Check> {
    let mut out = Vec::new();
    let http = match http_client(s.http_timeout) {
        Ok(h) => h,
        Err(e) => {
            out.push(Check::fail("http_client", e.to_string()));
            return out;
        }
    };

    let md = match fetch_metadata(&http, &s.issuer).await {
        Ok(md) => {
            out.push(Check::pass(
                "discovery",
                "discovery document fetched and parsed",
            ));
            md
        }
        Err(e) => {
            out.push(Check::fail("discovery", e.to_string()));
            // Everything else is read from the discovery document.
            return out;
        }
    };

    out.push(if md.issuer == s.issuer {
        Check::pass("issuer", s.issuer.clone())
    } else {
        Check::fail(
            "issuer",
            format!(
                "provider says {:?}, configured {:?} (must match exactly)",
                md.issuer, s.issuer
            ),
        )
    });

    out.push(
        match endpoint_url(
            "authorization_endpoint",
            md.authorization_endpoint.as_deref(),
        ) {
            Ok(u) => Check::pass("authorization_endpoint", u.to_string()),
            Err(e) => Check::fail("authorization_endpoint", e.to_string()),
        },
    );
    out.push(
        match endpoint_url("token_endpoint", md.token_endpoint.as_deref()) {
            Ok(u) => Check::pass("token_endpoint", u.to_string()),
            Err(e) => Check::fail("token_endpoint", e.to_string()),
        },
    );
    out.push(check_list(
        "response_type_code",
        md.response_types_supported.as_deref(),
        &["code".to_string()],
        "response_types_supported",
    ));
    out.push(match md.code_challenge_methods_supported.as_deref() {
        Some(m) if m.iter().any(|x| x == "S256") => Check::pass("pkce_s256", "S256 supported"),
        Some(m) => Check::fail("pkce_s256", format!("S256 not among {m:?}")),
        None => Check::fail(
            "pkce_s256",
            "provider does not advertise code_challenge_methods_supported",
        ),
    });
    out.push(check_signing_algs(s, &md));
    out.push(check_jwks(&http, &md).await);
    out.push(check_list(
        "scopes",
        md.scopes_supported.as_deref(),
        &s.scopes,
        "scopes_supported",
    ));
    let claims = [s.groups_claim.clone(), s.username_claim.clone()];
    out.push(check_list(
        "claims",
        md.claims_supported.as_deref(),
        &claims,
        "claims_supported",
    ));
    out.push(check_client(&http, s, &md).await);
    out
}

/// Checks `wanted ⊆ advertised`; a list the provider does not publish is
/// not a failure (publishing is optional, and Okta hides custom claims).
fn check_list(
    name: &'static str,
    advertised: Option<&[String]>,
    wanted: &[String],
    field: &str,
) -> Check {
    let Some(adv) = advertised else {
        return Check::pass(name, format!("`{field}` not advertised; not checked"));
    };
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|w| !adv.contains(w))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        Check::pass(name, format!("{wanted:?} advertised"))
    } else {
        Check::fail(name, format!("not in `{field}`: {missing:?}"))
    }
}

fn check_signing_algs(s: &ProviderSettings, md: &Metadata) -> Check {
    let mut ours: Vec<&str> = PUBLIC_KEY_ALGS.to_vec();
    if s.hmac_secret.is_some() {
        ours.push("HS256");
    }
    match md.id_token_signing_alg_values_supported.as_deref() {
        None => Check::fail(
            "id_token_signing_alg",
            "`id_token_signing_alg_values_supported` missing",
        ),
        Some(adv) if adv.iter().any(|a| ours.contains(&a.as_str())) => Check::pass(
            "id_token_signing_alg",
            format!("provider offers {adv:?}, we accept {ours:?}"),
        ),
        Some(adv) => Check::fail(
            "id_token_signing_alg",
            format!("provider offers {adv:?}, we accept only {ours:?}"),
        ),
    }
}

async fn check_jwks(http: &reqwest::Client, md: &Metadata) -> Check {
    let url = match endpoint_url("jwks_uri", md.jwks_uri.as_deref()) {
        Ok(u) => u,
        Err(e) => return Check::fail("jwks", e.to_string()),
    };
    let body = match get_doc(http, url.as_str()).await {
        Ok(b) => b,
        Err(e) => return Check::fail("jwks", e.to_string()),
    };
    match KeySet::from_jwks_json(&body) {
        Err(e) => Check::fail("jwks", e.to_string()),
        Ok(k) if k.is_empty() => Check::fail(
            "jwks",
            format!("{url}: no usable RS256 or ES256 signing key"),
        ),
        Ok(k) => Check::pass(
            "jwks",
            format!("{} usable key(s) for {:?}", k.len(), k.algorithms()),
        ),
    }
}

/// Sends a token request with a code that cannot exist. A provider answers
/// `invalid_client` when the client id or secret is wrong, and
/// `invalid_grant` once the client authenticated, so this tests the
/// credentials without a browser login.
async fn check_client(http: &reqwest::Client, s: &ProviderSettings, md: &Metadata) -> Check {
    const NAME: &str = "client_credentials";
    let Ok(url) = endpoint_url("token_endpoint", md.token_endpoint.as_deref()) else {
        return Check::fail(NAME, "no usable token endpoint");
    };
    let Some(auth) = s.client_auth.or_else(|| md.client_auth()) else {
        return Check::fail(
            NAME,
            "token endpoint supports neither client_secret_basic nor client_secret_post",
        );
    };
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", "portcullis-idp-test-invalid-code"),
        ("redirect_uri", s.redirect_uri.as_str()),
        (
            "code_verifier",
            "portcullis-idp-test-code-verifier-0123456789abcdef",
        ),
    ];
    let req = authenticate(http.post(url), &mut form, s, auth);
    let resp = match req.form(&form).send().await {
        Ok(r) => r,
        Err(e) => return Check::fail(NAME, describe(&e)),
    };
    let status = resp.status();
    let body = super::provider::read_limited(resp)
        .await
        .unwrap_or_default();
    let err = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_default();
    match err.as_str() {
        "invalid_grant" => Check::pass(
            NAME,
            "client id and secret accepted (a test code was refused as expected)",
        ),
        "invalid_client" | "unauthorized_client" => Check::fail(
            NAME,
            format!("HTTP {status} {err}: client id or secret rejected"),
        ),
        _ => Check::fail(NAME, format!("unexpected answer HTTP {status} {err:?}")),
    }
}

//! `portcullis idp test --provider NAME` for a SAML provider: metadata
//! reachable and parseable, each signing certificate usable and not about
//! to expire, the SSO endpoint answering.

use std::time::{Duration, SystemTime};

use super::metadata::IdpInfo;
use super::provider::fetch_metadata;
use super::settings::{IdpSource, SamlSettings};
use crate::oidc::Check;

/// Certificates expiring sooner than this fail the check: enough time to
/// arrange a rollover with the IdP admin.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30 * 86_400);

/// Runs every check at `now`; failures are checks, never an error.
pub async fn idp_test(s: &SamlSettings, now: SystemTime) -> Vec<Check> {
    let mut out = Vec::new();
    let http = match reqwest::Client::builder()
        .timeout(s.http_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(h) => h,
        Err(e) => return vec![Check::fail("http client", e.to_string())],
    };
    let info: IdpInfo = match &s.idp {
        IdpSource::Static(i) => {
            out.push(Check::pass(
                "metadata",
                "configured (file or SSO URL + certificate)",
            ));
            (**i).clone()
        }
        IdpSource::MetadataUrl { url, entity_id, .. } => {
            match fetch_metadata(&http, url, entity_id.as_deref()).await {
                Ok(i) => {
                    out.push(Check::pass(
                        "metadata",
                        format!("{url}: entity {}", i.entity_id),
                    ));
                    i
                }
                Err(e) => {
                    out.push(Check::fail("metadata", e.to_string()));
                    return out;
                }
            }
        }
    };
    for c in &info.certs {
        let left = c.not_after.duration_since(now).unwrap_or_default();
        let days = left.as_secs() / 86_400;
        if left.is_zero() {
            out.push(Check::fail(
                "certificate",
                format!("{}: expired", c.subject),
            ));
        } else if left < EXPIRY_MARGIN {
            out.push(Check::fail(
                "certificate",
                format!("{}: expires in {days} days", c.subject),
            ));
        } else {
            out.push(Check::pass(
                "certificate",
                format!("{} ({:?}), {days} days left", c.subject, c.kind),
            ));
        }
    }
    // Any HTTP answer proves the endpoint is there; without a SAMLRequest
    // most IdPs answer 400, which is fine.
    match http.get(&info.sso_url).send().await {
        Ok(r) if r.status().is_server_error() => out.push(Check::fail(
            "sso endpoint",
            format!("{}: HTTP {}", info.sso_url, r.status()),
        )),
        Ok(r) => out.push(Check::pass(
            "sso endpoint",
            format!("{}: HTTP {}", info.sso_url, r.status()),
        )),
        Err(e) => out.push(Check::fail(
            "sso endpoint",
            format!("{}: {e}", info.sso_url),
        )),
    }
    if s.sp_key.is_some() {
        out.push(Check::pass(
            "sp key",
            if s.sign_requests {
                "AuthnRequests are signed; encrypted assertions can be decrypted"
            } else {
                "encrypted assertions can be decrypted (requests unsigned)"
            },
        ));
    }
    out
}

//! Cross-site request forgery: every state-changing form carries a token
//! that must match the browser's own `portcullis_csrf` cookie, and a POST
//! whose `Origin` or `Sec-Fetch-Site` says another site sent it is refused.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::warn;

use super::pages::page;
use super::session::random_id;
use super::state::Web;

const CSRF_COOKIE: &str = "portcullis_csrf";
/// The form field that carries the token.
pub(super) const FIELD: &str = "csrf";
const LIFETIME: Duration = Duration::from_secs(8 * 3600);

impl Web {
    /// The token for a form on this page, and the cookie to set when the
    /// browser has none yet.
    pub(super) fn csrf_token(&self, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
        match self.cookie(headers, CSRF_COOKIE) {
            Some(t) => (t, None),
            None => {
                let t = random_id();
                let c = self.set_cookie(CSRF_COOKIE, &t, LIFETIME);
                (t, Some(c))
            }
        }
    }

    /// Whether a posted form came from our own page in this browser: the
    /// token matches the cookie and no header names another origin.
    pub(super) fn csrf_ok(&self, headers: &HeaderMap, token: &str) -> bool {
        if !same_origin(headers) {
            return false;
        }
        let Some(expected) = self.cookie(headers, CSRF_COOKIE) else {
            return false;
        };
        subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), token.as_bytes()).into()
    }
}

/// False when the browser says the request comes from another site:
/// `Sec-Fetch-Site` other than `same-origin` (or `none`, a typed URL), or an
/// `Origin` whose host is not the `Host` asked for. Clients that send
/// neither (scripts, curl) pass; they hold no victim's cookies.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST) else {
        return false;
    };
    match origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, authority)| authority)
    {
        Some(authority) => authority.as_bytes().eq_ignore_ascii_case(host.as_bytes()),
        // `Origin: null` (sandboxed frames, some redirects) names no one.
        None => false,
    }
}

/// The answer to a form that failed the check.
pub(super) fn refused(what: &str) -> Response {
    warn!(
        form = what,
        "form refused: cross-site or without a valid token"
    );
    (
        StatusCode::FORBIDDEN,
        page(
            "Form expired",
            "<p>This form came from another site or has expired. \
             <a href=\"/login\">Start again</a>.</p>",
        ),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn origin_and_fetch_site_decide() {
        assert!(same_origin(&h(&[])));
        assert!(same_origin(&h(&[("host", "127.0.0.1:8080")])));
        assert!(same_origin(&h(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!same_origin(&h(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ])));
        assert!(!same_origin(&h(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8081"),
        ])));
        assert!(!same_origin(&h(&[("host", "a"), ("origin", "null")])));
        assert!(!same_origin(&h(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&h(&[("sec-fetch-site", "same-site")])));
        assert!(!same_origin(&h(&[("origin", "http://a")])));
    }
}

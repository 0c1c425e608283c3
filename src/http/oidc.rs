//! The OpenID Connect code flow's routes: start (to the IdP with state,
//! nonce and PKCE) and callback (code exchanged, ID token verified, groups
//! synced, a session).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::pages::{idp_unavailable, login_refused};
use super::session::{LOGIN_COOKIE, store_unavailable};
use super::state::{Via, Web};
use crate::clock::unix_micros;
use crate::identity::Profile;
use crate::oidc::{PendingLogin, PkceVerifier};

/// A started OIDC login, as it waits for the callback (in memory, or as
/// JSON in the shared store).
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct OidcPending {
    provider: String,
    nonce: String,
    pkce_verifier: String,
    /// When it started, in µs since the epoch: `login_timeout` counts from
    /// here whichever node the callback reaches.
    started_us: i64,
}

impl std::fmt::Debug for OidcPending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcPending")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// GET /auth/oidc/{provider}/start: to the IdP with state, nonce and PKCE.
pub(super) async fn oidc_start(
    State(web): State<Arc<Web>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
) -> Response {
    let config = web.config.load_full();
    let Some(provider) = web.provider(&config, &name) else {
        return (StatusCode::NOT_FOUND, "no such identity provider").into_response();
    };
    match provider.begin().await {
        Ok((url, pending)) => {
            let state = pending.state.clone();
            let ttl = provider.settings().login_timeout;
            let waiting = OidcPending {
                provider: name.clone(),
                nonce: pending.nonce,
                pkce_verifier: pending.pkce_verifier.expose().to_string(),
                started_us: unix_micros(SystemTime::now()),
            };
            if let Err(e) = web.pending.put(&state, from.ip(), waiting, ttl).await {
                warn!(provider = %name, error = %e, "oidc login could not start: the shared store does not answer");
                return store_unavailable();
            }
            (
                [(
                    header::SET_COOKIE,
                    web.set_cookie(LOGIN_COOKIE, &state, ttl),
                )],
                Redirect::to(url.as_str()),
            )
                .into_response()
        }
        Err(e) => {
            warn!(provider = %name, reason = e.reason(), error = %e, "oidc login could not start");
            web.metrics.login(&name, e.reason());
            idp_unavailable()
        }
    }
}

#[derive(Deserialize)]
pub(super) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// GET /auth/oidc/{provider}/callback: the code exchanged, the ID token
/// verified, the user created or updated with their groups, a session.
pub(super) async fn oidc_callback(
    State(web): State<Arc<Web>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    // Only configured names may become metric labels: a name from the URL
    // that no provider has is a 404, counted nowhere.
    if !web.config.load().oidc.iter().any(|p| p.name == name) {
        return (StatusCode::NOT_FOUND, "no such identity provider").into_response();
    }
    let refuse = |reason: &'static str, detail: &str| {
        warn!(provider = %name, reason, detail, "oidc login refused");
        web.metrics.login(&name, reason);
        login_refused(LOGIN_COOKIE, None)
    };
    if let Some(e) = &q.error {
        let detail = format!("{e}: {}", q.error_description.as_deref().unwrap_or(""));
        return refuse("idp_error", &detail);
    }
    let (Some(code), Some(state)) = (&q.code, &q.state) else {
        return refuse("bad_request", "code or state missing");
    };
    // The state must be the one this browser started with...
    let bound = web.cookie(&headers, LOGIN_COOKIE);
    let same_browser = bound.as_deref().is_some_and(|b| {
        bool::from(subtle::ConstantTimeEq::ct_eq(
            b.as_bytes(),
            state.as_bytes(),
        ))
    });
    if !same_browser {
        return refuse("state", "state does not match this browser's login");
    }
    // ...and one we issued and have not used yet: taking it out makes a
    // replayed callback fail.
    let taken = match web.pending.take(state).await {
        Ok(found) => found.map(|p| {
            let age_us = unix_micros(SystemTime::now()).saturating_sub(p.started_us);
            let age = Duration::from_micros(u64::try_from(age_us).unwrap_or(0));
            (
                p.provider,
                PendingLogin {
                    state: state.clone(),
                    nonce: p.nonce,
                    pkce_verifier: PkceVerifier::from_stored(p.pkce_verifier),
                    created: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
                },
            )
        }),
        Err(e) => {
            warn!(provider = %name, error = %e, "oidc callback: the shared store does not answer");
            return store_unavailable();
        }
    };
    let Some((for_provider, pending)) = taken else {
        return refuse("state", "unknown or already used state");
    };
    if for_provider != name {
        return refuse("state", "state was issued for another provider");
    }
    let config = web.config.load_full();
    let Some(provider) = web.provider(&config, &name) else {
        return refuse("unknown_provider", "provider not configured");
    };
    // Logged and counted by the provider, with the reason.
    let login = match provider.complete(code, state, &pending).await {
        Ok(l) => l,
        Err(e) => return login_refused(LOGIN_COOKIE, Some(e.reason())),
    };
    let external = Profile {
        provider: &name,
        subject: &login.sub,
        username: &login.username,
        email: login.email.as_deref(),
        full_name: login.full_name.as_deref(),
        groups: login.groups.as_deref(),
    };
    let who = match web.admit_external(Via::Oidc, &external).await {
        Ok(who) => who,
        Err(r) => return r,
    };
    let session = match web.open_session(who, None).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut h = HeaderMap::new();
    h.append(header::SET_COOKIE, session);
    h.append(header::SET_COOKIE, Web::clear_cookie(LOGIN_COOKIE));
    let to = web.after_login(&headers).await;
    (h, Redirect::to(&to)).into_response()
}

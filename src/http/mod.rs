//! The HTTP side: `/metrics` for Prometheus, `/healthz` for load balancers,
//! browser logins (local form, OpenID Providers, SAML IdPs) with `/api/me`,
//! and the read-only administration API. One file per concern:
//! - `state`: what the routes share ([`Web`]), who a session user is now;
//! - `session`: sessions and signed cookies;
//! - `pages`: login page, local login, home, logout, `/api/me`;
//! - `csrf`: the token and origin checks every state-changing form passes;
//! - `listen`: the listener, its connection caps and header deadline;
//! - `oidc`, `saml`: the routes toward the organisation's identity provider;
//! - `api`: the administration API.
//!
//! The provider side for appliance consoles (portcullis as OAuth/OIDC
//! server, JWT issuer, SAML IdP) goes beside these as its own files.

mod api;
mod console;
mod console_saml;
mod console_slo;
mod csrf;
#[cfg(test)]
mod gate_tests;
mod listen;
mod metrics;
mod oidc;
mod pages;
mod saml;
mod session;
mod state;

pub use metrics::HttpMetrics;
pub use session::SessionUser;
pub use state::{Decision, Resolved, SharedSessions, Web, WebParts};

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub fn router(web: Arc<Web>) -> Router {
    let limits = web.config.load().web.limits;
    let http_metrics = web.http_metrics.clone();
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/", get(pages::home))
        .route("/login", get(pages::login_page).post(pages::local_login))
        .route("/logout", get(pages::logout_page).post(pages::logout))
        .route("/auth/oidc/{provider}/start", get(oidc::oidc_start))
        .route("/auth/oidc/{provider}/callback", get(oidc::oidc_callback))
        .route("/auth/saml/{provider}/start", get(saml::saml_start))
        .route("/auth/saml/{provider}/acs", post(saml::saml_acs))
        .route("/auth/saml/{provider}/metadata", get(saml::saml_metadata))
        .route("/auth/saml/{provider}/slo", get(saml::saml_slo))
        .route("/api/me", get(pages::me))
        .route("/api/users", get(api::users))
        .route("/api/groups", get(api::groups))
        .route("/api/roles", get(api::roles))
        .route("/api/mappings", get(api::mappings))
        .route("/api/lockouts", get(api::lockouts))
        .route("/api/lockouts/clear", post(api::clear_lockout))
        .merge(console::routes())
        .merge(console_saml::routes())
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            store_gate,
        ))
        .layer(DefaultBodyLimit::max(limits.max_body))
        .layer(axum::middleware::from_fn_with_state(
            (limits.request_timeout, http_metrics),
            deadline,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(web)
}

/// A node that started while its shared store was down has no cookie key
/// the other nodes share yet: every page but health and metrics says the
/// store is unavailable until the store has answered once.
async fn store_gate(
    State(web): State<Arc<Web>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if web.waiting_for_store() && !matches!(req.uri().path(), "/metrics" | "/healthz") {
        return session::store_unavailable();
    }
    next.run(req).await
}

/// A request, body and answer included, gets `web.request_timeout`: a
/// client trickling its body cannot hold a handler (and what it holds).
/// Bodies over `web.max_body` (refused 413 by the extractors) are counted
/// and logged here, whichever route refused them.
async fn deadline(
    State((limit, m)): State<(Duration, HttpMetrics)>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = req.uri().path().to_owned();
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                m.too_large.inc();
                tracing::warn!(%path, "request refused: body over web.max_body");
            }
            r
        }
        Err(_) => {
            m.timed_out.inc();
            (StatusCode::REQUEST_TIMEOUT, "request took too long").into_response()
        }
    }
}

/// On every answer: no framing (clickjacking of the login form), no MIME
/// sniffing, no referrer beyond this origin; and nothing a browser or a
/// proxy may store, but for what Prometheus and load balancers poll.
async fn security_headers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let cacheable = matches!(req.uri().path(), "/metrics" | "/healthz");
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !cacheable {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

async fn metrics(State(web): State<Arc<Web>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        web.exposition.encode(),
    )
}

async fn healthz(State(web): State<Arc<Web>>) -> impl IntoResponse {
    let mut body = serde_json::json!({
        "status": "ok",
        "config_generation": web.config.load().generation,
        "version": env!("CARGO_PKG_VERSION"),
    });
    // A node whose shared store is down still answers RADIUS and TACACS+
    // for local and cached users, so it stays 200; the body says degraded.
    if let Some(problem) = web.store_health.as_ref().and_then(|h| h.problem()) {
        body["status"] = "degraded".into();
        body["reason"] = format!("shared store unreachable: {problem}").into();
    }
    (StatusCode::OK, axum::Json(body))
}

/// Serves until `stop` is cancelled; open requests are allowed to finish.
/// The `[web]` connection limits and timeouts are read here, at start.
pub async fn serve(
    listener: TcpListener,
    web: Arc<Web>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let limits = web.config.load().web.limits;
    let metrics = web.http_metrics.clone();
    listen::serve(listener, router(web), limits, metrics, stop).await
}

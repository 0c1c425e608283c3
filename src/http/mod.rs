//! The HTTP side: `/metrics` for Prometheus, `/healthz` for load balancers,
//! browser logins (local form, OpenID Providers, SAML IdPs) with `/api/me`, and the
//! read-only administration API.

mod api;
pub mod web;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::server::Server;

pub fn router(server: Arc<Server>) -> Router {
    let web = Arc::new(web::Web::new(server.clone(), server.identity()));
    let browser = Router::new()
        .route("/", get(web::home))
        .route("/login", get(web::login_page).post(web::local_login))
        .route("/logout", get(web::logout).post(web::logout))
        .route("/auth/oidc/{provider}/start", get(web::oidc_start))
        .route("/auth/oidc/{provider}/callback", get(web::oidc_callback))
        .route("/auth/saml/{provider}/start", get(web::saml_start))
        .route("/auth/saml/{provider}/acs", post(web::saml_acs))
        .route("/auth/saml/{provider}/metadata", get(web::saml_metadata))
        .route("/auth/saml/{provider}/slo", get(web::saml_slo))
        .route("/api/me", get(web::me))
        .route("/api/users", get(api::users))
        .route("/api/groups", get(api::groups))
        .route("/api/roles", get(api::roles))
        .route("/api/mappings", get(api::mappings))
        .with_state(web);
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(server)
        .merge(browser)
}

async fn metrics(State(server): State<Arc<Server>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        server.metrics().encode(),
    )
}

async fn healthz(State(server): State<Arc<Server>>) -> impl IntoResponse {
    let body = serde_json::json!({
        "status": "ok",
        "config_generation": server.generation(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    (StatusCode::OK, axum::Json(body))
}

/// Serves until `stop` is cancelled; open requests are allowed to finish.
pub async fn serve(
    listener: TcpListener,
    server: Arc<Server>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(server))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}

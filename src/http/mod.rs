//! The HTTP side: `/metrics` for Prometheus and `/healthz` for load balancers
//! and orchestrators. Web login and the admin API grow here.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::server::Server;

pub fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(server)
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

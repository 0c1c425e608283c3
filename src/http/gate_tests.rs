//! The web side of a node whose shared store has not answered yet: every
//! page but health and metrics is the store-unavailable page, until the
//! shared cookie key arrives.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower_service::Service;

use super::{SharedSessions, Web, WebParts, router};
use crate::config::ConfigHandle;
use crate::metrics::Exposition;
use crate::oidc::OidcMetrics;
use crate::store::{PgSessions, PgStore, StoreHealth, unreachable_settings};
use crate::testkit;

async fn get(web: &Arc<Web>, path: &str) -> (StatusCode, String) {
    let mut app = router(web.clone());
    let req = Request::get(path).body(Body::empty()).unwrap();
    let r = app.call(req).await.unwrap();
    let status = r.status();
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn pages_wait_for_the_shared_cookie_key_and_health_says_why() {
    let store = PgStore::new(unreachable_settings())
        .unwrap()
        .until_prepared();
    let key = Arc::new(std::sync::OnceLock::new());
    let health = StoreHealth::new();
    health.set_down("cannot connect to the database");
    let web = Arc::new(Web::new(WebParts {
        config: ConfigHandle::new(testkit::config_from("")),
        credentials: testkit::credentials(),
        identity: None,
        exposition: Exposition::new(Default::default()),
        oidc_metrics: OidcMetrics::default(),
        saml_metrics: OidcMetrics::default(),
        http_metrics: Default::default(),
        idp: None,
        store_health: Some(health.clone()),
        shared_sessions: Some(SharedSessions {
            sessions: PgSessions::new(store),
            cookie_key: key.clone(),
        }),
    }));
    for path in ["/login", "/", "/api/me", "/api/lockouts"] {
        let (status, page) = get(&web, path).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {page}");
        assert!(page.contains("session store does not answer"), "{page}");
    }
    let (status, body) = get(&web, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("\"degraded\"")
            && body.contains("shared store unreachable: cannot connect to the database"),
        "{body}"
    );
    assert_eq!(get(&web, "/metrics").await.0, StatusCode::OK);
    // The store answered: the key is known, the pages are back.
    key.set([7; 32]).unwrap();
    health.set_up();
    let (status, page) = get(&web, "/login").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(get(&web, "/healthz").await.1.contains("\"ok\""));
    // Cookies are signed with the shared key now.
    assert_eq!(web.key(), &[7; 32]);
}

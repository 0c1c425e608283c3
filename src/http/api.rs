//! The read-only administration API: users (local and external), groups,
//! roles and mappings, for callers whose role has `admin = true`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::state::Web;
use crate::authn::ThrottleKey;

/// The caller's resolved identity if they may administer, else the answer.
async fn admin(web: &Web, headers: &HeaderMap) -> Result<(), Response> {
    let Some(user) = web.current(headers).await else {
        return Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "not logged in"})),
        )
            .into_response());
    };
    match web.resolve(&user).await {
        Some(r) if r.is_admin() => Ok(()),
        _ => Err((
            StatusCode::FORBIDDEN,
            Json(json!({"error": "your role does not allow administration"})),
        )
            .into_response()),
    }
}

pub(super) async fn users(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if let Err(r) = admin(&web, &headers).await {
        return r;
    }
    let config = web.config.load_full();
    let mut out: Vec<Value> = config
        .users
        .iter()
        .map(|u| {
            json!({
                "user": u.name.as_ref(),
                "source": "local",
                "enabled": u.enabled,
                "groups": u.groups.iter().map(|g| config.policy.group_name(*g)).collect::<Vec<_>>(),
                "email": config.users.email(u),
                "full_name": config.users.full_name(u),
            })
        })
        .collect();
    out.sort_by(|a, b| a["user"].as_str().cmp(&b["user"].as_str()));
    if let Some(store) = web.identity() {
        match store.list().await {
            Ok(list) => out.extend(list.into_iter().map(|u| {
                json!({
                    "user": u.username,
                    "source": "external",
                    "provider": u.provider,
                    "subject": u.subject,
                    "groups": u.groups,
                    "email": u.email,
                    "full_name": u.full_name,
                    "last_login": u.last_login,
                })
            })),
            _ => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({"error": "identity store unreadable"})),
                )
                    .into_response();
            }
        }
    }
    Json(out).into_response()
}

pub(super) async fn groups(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if let Err(r) = admin(&web, &headers).await {
        return r;
    }
    let config = web.config.load_full();
    let out: Vec<Value> = config
        .policy
        .groups()
        .iter()
        .map(|g| json!({"name": g.as_ref(), "builtin": g.as_ref() == crate::policy::ALL_USERS}))
        .collect();
    Json(out).into_response()
}

pub(super) async fn roles(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if let Err(r) = admin(&web, &headers).await {
        return r;
    }
    let config = web.config.load_full();
    let default = config.policy.default_role();
    let out: Vec<Value> = config
        .policy
        .roles()
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({
                "name": r.name.as_ref(),
                "priv-lvl": r.priv_lvl,
                "rbac-roles": r.rbac_roles.as_ref(),
                "rbac-aag": r.rbac_aag.as_ref(),
                "tacacs-role": r.tacacs_role.map(|t| t.as_str()),
                "admin": r.admin,
                "default": default.is_some_and(|d| usize::from(d) == i),
            })
        })
        .collect();
    Json(out).into_response()
}

pub(super) async fn mappings(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if let Err(r) = admin(&web, &headers).await {
        return r;
    }
    let config = web.config.load_full();
    let out: Vec<Value> = config
        .policy
        .mappings()
        .iter()
        .enumerate()
        .map(|(i, m)| {
            json!({
                "order": i + 1,
                "group": config.policy.group_name(m.group),
                "role": config.policy.role(m.role).name.as_ref(),
            })
        })
        .collect();
    Json(out).into_response()
}

/// GET /api/lockouts: names and addresses locked out after failed logins.
pub(super) async fn lockouts(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if let Err(r) = admin(&web, &headers).await {
        return r;
    }
    let out: Vec<Value> = web
        .credentials
        .lockouts()
        .into_iter()
        .map(|l| {
            let (kind, who) = match l.key {
                ThrottleKey::User(u) => ("user", u.to_string()),
                ThrottleKey::Source(a) => ("source", a.to_string()),
            };
            json!({kind: who, "failures": l.failures, "remaining_seconds": l.remaining.as_secs()})
        })
        .collect();
    Json(out).into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct Clear {
    user: Option<String>,
    source: Option<std::net::IpAddr>,
}

/// POST /api/lockouts/clear?user=NAME or ?source=ADDRESS: ends a lockout.
pub(super) async fn clear_lockout(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<Clear>,
) -> Response {
    // Changes state under the caller's cookie: not from another site's page.
    if !super::csrf::same_origin(&headers) {
        return super::csrf::refused("lockouts/clear");
    }
    if let Err(r) = admin(&web, &headers).await {
        return r;
    }
    let key = match (q.user, q.source) {
        (Some(u), None) => ThrottleKey::User(u.into()),
        (None, Some(a)) => ThrottleKey::Source(a),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "give exactly one of user or source"})),
            )
                .into_response();
        }
    };
    let cleared = web.credentials.clear_lockout(&key);
    tracing::info!(?key, cleared, "lockout cleared by an administrator");
    Json(json!({"cleared": cleared})).into_response()
}

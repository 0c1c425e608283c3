//! The pages a person sees: the login page (a button per identity
//! provider, the local form), the local login, home, logout and `/api/me`.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Form;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use tracing::{info, warn};

use super::csrf;
use super::session::{LOGOUT_COOKIE, SESSION_COOKIE, SessionUser};
use super::state::Web;

pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

pub(super) fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;max-width:28em;margin:4em auto}}\
         .b{{display:block;margin:.5em 0;padding:.6em;border:1px solid #888;text-align:center;text-decoration:none}}\
         input{{display:block;width:100%;margin:.3em 0 .8em}}</style></head>\
         <body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    ))
}

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    local: Option<String>,
    error: Option<String>,
}

/// GET /login: a button per provider, and the local form unless hidden
/// (`web.local_login = false`); `?local=1` always shows it, for break-glass.
pub(super) async fn login_page(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let config = web.config.load();
    let mut body = String::new();
    if let Some(e) = &q.error {
        let _ = write!(body, "<p role=\"alert\">{}</p>", escape(e));
    }
    for p in &config.oidc {
        let _ = write!(
            body,
            "<a class=\"b\" href=\"/auth/oidc/{n}/start\">Log in with {n}</a>",
            n = escape(&p.name)
        );
    }
    for p in &config.saml {
        let _ = write!(
            body,
            "<a class=\"b\" href=\"/auth/saml/{n}/start\">Log in with {n}</a>",
            n = escape(&p.name)
        );
    }
    let mut set = None;
    if config.web.local_login || q.local.is_some() {
        // The break-glass form posts back to the break-glass path.
        let action = if config.web.local_login {
            "/login"
        } else {
            "/login?local=1"
        };
        let (token, cookie) = web.csrf_token(&headers);
        set = cookie;
        let _ = write!(
            body,
            "<form method=\"post\" action=\"{action}\">\
             <input type=\"hidden\" name=\"{}\" value=\"{token}\">",
            csrf::FIELD
        );
        body.push_str(
            "<label>User name\
             <input name=\"username\" autocomplete=\"username\" required></label>\
             <label>Password<input name=\"password\" type=\"password\" \
             autocomplete=\"current-password\" required></label>\
             <button type=\"submit\">Log in</button></form>",
        );
    } else {
        body.push_str("<p><a href=\"/login?local=1\">Local account (break-glass)</a></p>");
    }
    with_cookie(set, page("portcullis", &body))
}

/// A page, with the CSRF cookie its form needs when the browser had none.
fn with_cookie(set: Option<HeaderValue>, page: Html<String>) -> Response {
    match set {
        Some(c) => ([(header::SET_COOKIE, c)], page).into_response(),
        None => page.into_response(),
    }
}

#[derive(Deserialize)]
pub(super) struct LocalLogin {
    username: String,
    password: String,
    #[serde(default)]
    csrf: String,
}

/// POST /login: a local user of the table, argon2 off the runtime. With
/// `web.local_login = false` only the break-glass form (`?local=1`) is
/// taken, and only from `web.break_glass_cidrs` when those are set.
pub(super) async fn local_login(
    State(web): State<Arc<Web>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
    Form(f): Form<LocalLogin>,
) -> Response {
    // Before the password is looked at: a forged login must not even count
    // as a failure against the user's lockout.
    if !web.csrf_ok(&headers, &f.csrf) {
        return csrf::refused("login");
    }
    let config = web.config.load_full();
    if !config.web.local_login {
        let nets = &config.web.break_glass_cidrs;
        let allowed =
            q.local.is_some() && (nets.is_empty() || nets.iter().any(|n| n.contains(&from.ip())));
        if !allowed {
            warn!(user = %f.username, %from, "web login (local) refused: not the break-glass path");
            return (
                StatusCode::FORBIDDEN,
                page(
                    "Local login unavailable",
                    "<p>Log in through your identity provider. Local accounts are for \
                     break-glass use, from the networks set for it.</p>",
                ),
            )
                .into_response();
        }
        warn!(user = %f.username, %from, "break-glass local login attempt");
    }
    match web
        .credentials
        .password_from(
            &config.users,
            &f.username,
            f.password.as_bytes(),
            Some(from.ip()),
        )
        .await
    {
        Ok(u) => {
            info!(user = %u.name, "web login (local)");
            let cookie = match web
                .open_session(
                    SessionUser::Local {
                        name: u.name.to_string(),
                    },
                    None,
                )
                .await
            {
                Ok(c) => c,
                Err(r) => return r,
            };
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        Err(crate::authn::AuthnError::Throttled) => {
            warn!(user = %f.username, %from, "web login (local) refused: locked out after failed logins");
            Redirect::to(
                "/login?local=1&error=Too%20many%20failed%20logins%3B%20try%20again%20later",
            )
            .into_response()
        }
        Err(e) => {
            info!(user = %f.username, reason = e.label(), "web login (local) refused");
            Redirect::to("/login?local=1&error=Login%20failed").into_response()
        }
    }
}

/// A login through an identity provider that could not be completed: 401,
/// the login-binding `cookie` cleared, and the reason when it may be shown.
pub(super) fn login_refused(cookie: &str, reason: Option<&str>) -> Response {
    let why = reason.map_or_else(String::new, |r| format!(" ({})", escape(r)));
    (
        StatusCode::UNAUTHORIZED,
        [(header::SET_COOKIE, Web::clear_cookie(cookie))],
        page(
            "Login refused",
            &format!(
                "<p>The login could not be completed{why}. <a href=\"/login\">Start again</a>.</p>"
            ),
        ),
    )
        .into_response()
}

/// An identity provider vouched for the person, but the table gives them no
/// role: a clear answer and no session.
pub(super) fn no_role(cookie: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::SET_COOKIE, Web::clear_cookie(cookie))],
        page(
            "No access",
            "<p>Your identity provider logged you in, but none of your groups maps to a role \
             here and there is no default role. Ask your administrator to map one of your \
             groups.</p>",
        ),
    )
        .into_response()
}

pub(super) fn idp_unavailable() -> Response {
    (
        StatusCode::BAD_GATEWAY,
        page(
            "Login unavailable",
            "<p>The identity provider cannot be reached. Try again later.</p>",
        ),
    )
        .into_response()
}

/// GET /logout: a button that posts the logout, so a link or an image on
/// another site cannot log anyone out.
pub(super) async fn logout_page(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if web.current(&headers).await.is_none() {
        return Redirect::to("/login").into_response();
    }
    let (token, set) = web.csrf_token(&headers);
    with_cookie(set, page("Log out", &logout_form(&token)))
}

fn logout_form(token: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/logout\">\
         <input type=\"hidden\" name=\"{}\" value=\"{token}\">\
         <button type=\"submit\">Log out</button></form>",
        csrf::FIELD
    )
}

#[derive(Deserialize)]
pub(super) struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// POST /logout.
/// A SAML session continues to the IdP's single-logout endpoint (when it
/// has one) after ours has ended.
pub(super) async fn logout(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(f): Form<LogoutForm>,
) -> Response {
    if !web.csrf_ok(&headers, &f.csrf) {
        return csrf::refused("logout");
    }
    continue_logout(&web, &headers).await
}

/// The logout after its form was checked, and again each time a SAML
/// console answers ours: consoles this session logged in to hear of it
/// first, one by one (the browser carries a cookie saying a logout is under
/// way, so a LogoutResponse alone cannot end anyone's session); then the
/// session ends here.
pub(super) async fn continue_logout(web: &Web, headers: &HeaderMap) -> Response {
    if let Some((to, awaiting)) = web.next_console_logout(headers).await {
        // The chain names the session and the LogoutRequest just sent, so
        // only this browser's logout goes on, and only on that answer.
        let binding = super::console_slo::session_chain(web, headers, awaiting);
        return match binding {
            Some(c) => ([(header::SET_COOKIE, c)], Redirect::to(&to)).into_response(),
            None => Redirect::to(&to).into_response(),
        };
    }
    let ended = web.close_session(headers).await;
    let mut to = "/login".to_string();
    if let Some(saml) = ended.and_then(|s| s.saml) {
        let config = web.config.load_full();
        if let Some(p) = web.saml_provider(&config, &saml.provider)
            && let Some(url) = p
                .logout_url(
                    &saml.name_id,
                    saml.name_id_format.as_deref(),
                    saml.session_index.as_deref(),
                )
                .await
        {
            to = url;
        }
    }
    (
        // AppendHeaders: an array of pairs would send only the last cookie.
        axum::response::AppendHeaders([
            (header::SET_COOKIE, Web::clear_cookie(SESSION_COOKIE)),
            (header::SET_COOKIE, Web::clear_cookie(LOGOUT_COOKIE)),
        ]),
        Redirect::to(&to),
    )
        .into_response()
}

/// Whether this browser's logout is under way (it posted `/logout` and was
/// sent to a console): the chain's cookie names its current session.
pub(super) fn logout_under_way(web: &Web, headers: &HeaderMap) -> bool {
    match (
        super::console_slo::chain_session(web, headers),
        web.cookie(headers, SESSION_COOKIE),
    ) {
        (Some(a), Some(b)) => subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()).into(),
        _ => false,
    }
}

/// GET /: who is logged in, or to the login page.
pub(super) async fn home(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let Some(user) = web.current(&headers).await else {
        return Redirect::to("/login").into_response();
    };
    let Some(r) = web.resolve(&user).await else {
        // Disabled, removed, or their provider gone: the session ends.
        web.close_session(&headers).await;
        return (
            [(header::SET_COOKIE, Web::clear_cookie(SESSION_COOKIE))],
            Redirect::to("/login"),
        )
            .into_response();
    };
    let role = r.decision.as_ref().map_or_else(
        || "no role".to_string(),
        |d| format!("{} (priv-lvl {})", d.role, d.priv_lvl),
    );
    let (token, set) = web.csrf_token(&headers);
    with_cookie(
        set,
        page(
            "portcullis",
            &format!(
                "<p>Logged in as <b>{}</b> ({}), role {}.</p><p><a href=\"/api/me\">/api/me</a></p>{}",
                escape(&r.user),
                r.source.as_str(),
                escape(&role),
                logout_form(&token)
            ),
        ),
    )
}

/// GET /api/me: the caller as the table sees them.
pub(super) async fn me(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let Some(user) = web.current(&headers).await else {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "not logged in"})),
        )
            .into_response();
    };
    match web.resolve(&user).await {
        Some(r) => axum::Json(r.to_json()).into_response(),
        None => {
            // Disabled, removed, or their provider gone: the session ends.
            web.close_session(&headers).await;
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"error": "account no longer valid"})),
            )
                .into_response()
        }
    }
}

//! The provider side for appliance consoles: discovery and JWKS, the OAuth
//! authorization and token endpoints, userinfo, revocation, RP-initiated
//! logout, and the JWT-mode login. A person without a session goes through
//! the console login page (the local form and the upstream providers the
//! console allows) and comes back; the table decides on every token.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::pages::{escape, page};
use super::session::{SESSION_COOKIE, SessionUser, random_id, store_unavailable};
use super::state::{Resolved, Web};
use crate::config::Config;
use crate::idp::oauth::{self, AuthorizeError, Params, Person, Reason};
use crate::idp::store::{AccessRecord, CodeRecord, CodeTake, Family, RefreshTake};
use crate::idp::{ConsoleSettings, JwtAlg, LoginMethod, Mode, Provider, Subject, now};
use crate::store::ephemeral::{Kind, PendingStore};
use crate::store::{DbError, PgStore};

/// Binds a console login in progress to the browser that started it.
const CONSOLE_COOKIE: &str = "portcullis_console";
/// How long a started console login waits for the person to log in.
const LOGIN_WAIT: Duration = Duration::from_secs(600);

/// Console logins waiting for the person to log in, by random id: in this
/// process, or in the shared store so the login may finish on any node.
#[derive(Debug)]
pub(super) struct ConsoleState {
    pending: PendingStore<Pending>,
}

impl ConsoleState {
    pub(super) fn new(store: Option<&PgStore>) -> Self {
        Self {
            pending: match store {
                Some(s) => PendingStore::shared(Kind::ConsoleLogin, s.clone()),
                None => PendingStore::in_memory(Kind::ConsoleLogin),
            },
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Pending {
    console: String,
    /// Where the browser resumes once logged in (our own path).
    resume: String,
    /// The `access_denied` redirect to the registered URI, if the console
    /// takes one (OAuth mode); JWT mode shows a page instead.
    denied: Option<String>,
}

pub(super) fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oauth2/jwks", get(jwks))
        .route("/oauth2/authorize", get(authorize))
        .route("/oauth2/login", get(login_page).post(local_login))
        .route("/oauth2/token", post(token))
        .route("/oauth2/userinfo", get(userinfo).post(userinfo))
        .route("/oauth2/revoke", post(revoke))
        .route("/oauth2/logout", get(logout).post(logout_confirmed))
        .route("/console/{name}/jwt", get(jwt_login))
}

/// The `iss` of our tokens: `[idp] issuer`, else `web.public_url`, else the
/// address the request came to (only sane for development: see README).
pub(super) fn issuer(config: &Config, headers: &HeaderMap) -> String {
    if let Some(i) = config
        .idp
        .issuer
        .as_ref()
        .or(config.web.public_url.as_ref())
    {
        return i.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}

pub(super) fn no_provider() -> Response {
    (StatusCode::NOT_FOUND, "no console provider").into_response()
}

pub(super) fn server_error(what: &str, e: &dyn std::fmt::Display) -> Response {
    warn!(error = %e, "console provider: {what}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        page(
            "Error",
            "<p>The request could not be completed. Try again later.</p>",
        ),
    )
        .into_response()
}

async fn discovery(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let config = web.config.load_full();
    if web.idp.is_none() || config.consoles.is_empty() {
        return (StatusCode::NOT_FOUND, "no console provider").into_response();
    }
    let mut scopes: Vec<String> = config
        .consoles
        .iter()
        .flat_map(|c| c.scopes.iter().cloned())
        .collect();
    scopes.sort();
    scopes.dedup();
    axum::Json(oauth::discovery(&issuer(&config, &headers), &scopes)).into_response()
}

async fn jwks(State(web): State<Arc<Web>>) -> Response {
    let Some(p) = web.idp.clone() else {
        return no_provider();
    };
    let config = web.config.load_full();
    match p.ring(&config).await {
        Ok(r) => (
            [(header::CONTENT_TYPE, "application/jwk-set+json")],
            r.jwks().to_string(),
        )
            .into_response(),
        Err(e) => server_error("keys unavailable", &e),
    }
}

/// Logs and counts a refusal; `console` is a configured name or none.
fn refused(p: &Provider, console: Option<&str>, reason: Reason, detail: &str) {
    warn!(
        console = console.unwrap_or("unknown"),
        reason = reason.label(),
        detail,
        "console request refused"
    );
    p.metrics.refused(console, reason);
}

fn error_page(status: StatusCode, reason: Reason) -> Response {
    let why = match reason {
        Reason::UnknownClient => "This application is not registered here.",
        Reason::BadRedirectUri => {
            "The application asked to be answered at an address that is not registered for it."
        }
        Reason::AccessDenied => "Your account has no access to this application.",
        _ => "The request is not valid.",
    };
    (
        status,
        page(
            "Login refused",
            &format!("<p>{why}</p><p>({})</p>", reason.label()),
        ),
    )
        .into_response()
}

/// `uri` with `pairs` added to its query.
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut u = uri.to_string();
    let mut sep = if u.contains('?') { '&' } else { '?' };
    for (k, v) in pairs {
        u.push(sep);
        sep = '&';
        u.push_str(k);
        u.push('=');
        u.extend(url::form_urlencoded::byte_serialize(v.as_bytes()));
    }
    u
}

fn method_of(config: &Config, user: &SessionUser) -> LoginMethod {
    match user {
        SessionUser::Local { .. } => LoginMethod::Local,
        SessionUser::External { provider, .. } => {
            if config.saml.iter().any(|s| &s.name == provider) {
                LoginMethod::Saml(provider.clone())
            } else {
                LoginMethod::Oidc(provider.clone())
            }
        }
    }
}

pub(super) fn subject_of(user: &SessionUser) -> Subject {
    match user {
        SessionUser::Local { name } => Subject::Local { name: name.clone() },
        SessionUser::External { provider, subject } => Subject::External {
            provider: provider.clone(),
            subject: subject.clone(),
        },
    }
}

fn user_of(s: &Subject) -> SessionUser {
    match s {
        Subject::Local { name } => SessionUser::Local { name: name.clone() },
        Subject::External { provider, subject } => SessionUser::External {
            provider: provider.clone(),
            subject: subject.clone(),
        },
    }
}

/// The person as the table decides now; `None` when refused, disabled or gone.
pub(super) fn person(subject: &Subject, r: &Resolved) -> Option<Person> {
    let d = r.decision.as_ref()?;
    let text = |k: &str| {
        r.extra[k]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Some(Person {
        sub: subject.sub(),
        name: r.user.clone(),
        email: text("email"),
        full_name: text("full_name"),
        rbac_roles: d.rbac_roles.clone(),
        rbac_aag: d.rbac_aag.clone(),
    })
}

impl Web {
    /// Where a login finished elsewhere (the upstream OIDC or SAML callback)
    /// goes next: back into the console login it interrupted, else home.
    pub(super) async fn after_login(&self, headers: &HeaderMap) -> String {
        let Some(rid) = self.cookie(headers, CONSOLE_COOKIE) else {
            return "/".to_string();
        };
        // Used once: a later login of this browser goes home.
        match self.take_pending(&rid).await {
            Ok(p) => p.map_or_else(|| "/".to_string(), |p| p.resume),
            Err(e) => {
                warn!(error = %e, "console login not resumed: the shared store does not answer");
                "/".to_string()
            }
        }
    }

    /// Sends the browser to the console login page, remembering where to
    /// resume.
    pub(super) async fn to_login(
        &self,
        console: &str,
        source: IpAddr,
        resume: String,
        denied: Option<String>,
    ) -> Response {
        let rid = random_id();
        let p = Pending {
            console: console.to_string(),
            resume,
            denied,
        };
        // Bounded per source address and in all: a flood of starts from
        // one address displaces only its own.
        if let Err(e) = self.console.pending.put(&rid, source, p, LOGIN_WAIT).await {
            warn!(console, error = %e, "console login could not start: the shared store does not answer");
            return store_unavailable();
        }
        // Cross-site capable: a SAML IdP comes back by a cross-site POST.
        (
            [(
                header::SET_COOKIE,
                self.set_cross_site_cookie(CONSOLE_COOKIE, &rid, LOGIN_WAIT),
            )],
            Redirect::to(&format!("/oauth2/login?rid={rid}")),
        )
            .into_response()
    }

    async fn take_pending(&self, rid: &str) -> Result<Option<Pending>, DbError> {
        self.console.pending.take(rid).await
    }

    async fn pending(&self, rid: &str) -> Result<Option<Pending>, DbError> {
        self.console.pending.peek(rid).await
    }

    /// The session user if they logged in by a method `console` allows.
    pub(super) async fn console_session(
        &self,
        config: &Config,
        console: &ConsoleSettings,
        headers: &HeaderMap,
    ) -> Option<SessionUser> {
        self.current(headers)
            .await
            .filter(|u| console.allows(&method_of(config, u)))
    }
}

/// GET /oauth2/authorize: the code flow's front door.
async fn authorize(
    State(web): State<Arc<Web>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(p) = web.idp.clone() else {
        return no_provider();
    };
    let config = web.config.load_full();
    let q = q.unwrap_or_default();
    let params = Params::parse(q.as_bytes());
    let a = match oauth::authorize(&config.consoles, params.as_ref()) {
        Ok(a) => a,
        Err(AuthorizeError::Page { console, reason }) => {
            refused(
                &p,
                console.as_deref(),
                reason,
                "authorize: no redirect made",
            );
            return error_page(StatusCode::BAD_REQUEST, reason);
        }
        Err(AuthorizeError::Redirect {
            console,
            reason,
            redirect_uri,
            state,
        }) => {
            refused(&p, Some(&console), reason, "authorize");
            let mut pairs = vec![("error", reason.error())];
            if let Some(s) = &state {
                pairs.push(("state", s));
            }
            return Redirect::to(&with_query(&redirect_uri, &pairs)).into_response();
        }
    };
    let console = config
        .consoles
        .iter()
        .find(|c| c.name == a.console)
        .expect("authorize found it");
    let issuer = issuer(&config, &headers);
    let denied = {
        let mut pairs = vec![("error", "access_denied")];
        if let Some(s) = &a.state {
            pairs.push(("state", s));
        }
        pairs.push(("iss", &issuer));
        with_query(&a.redirect_uri, &pairs)
    };
    let Some(user) = web.console_session(&config, console, &headers).await else {
        return web
            .to_login(
                &console.name,
                from.ip(),
                format!("/oauth2/authorize?{q}"),
                Some(denied),
            )
            .await;
    };
    let subject = subject_of(&user);
    let granted = web.resolve(&user).await.and_then(|r| person(&subject, &r));
    if granted.is_none() {
        refused(
            &p,
            Some(&console.name),
            Reason::AccessDenied,
            "the table refuses the user",
        );
        return Redirect::to(&denied).into_response();
    }
    let code = oauth::random_token();
    let t = now();
    let rec = CodeRecord {
        hash: oauth::token_hash(&code),
        client_id: a.client_id.clone(),
        redirect_uri: a.redirect_uri.clone(),
        subject,
        scope: a.scope.join(" "),
        nonce: a.nonce.clone(),
        challenge: a.challenge.clone(),
        auth_time: t,
        expires: t + console.code_ttl.as_secs() as i64,
    };
    if let Err(e) = p.blocking(move |s| s.put_code(&rec)).await {
        return server_error("code not stored", &e);
    }
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = &a.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &issuer));
    Redirect::to(&with_query(&a.redirect_uri, &pairs)).into_response()
}

fn rid_of(q: Option<&str>) -> Option<String> {
    Params::parse(q.unwrap_or_default().as_bytes())?
        .get("rid")
        .map(str::to_string)
}

/// GET /oauth2/login?rid=: the ways the console allows to log in.
async fn login_page(State(web): State<Arc<Web>>, RawQuery(q): RawQuery) -> Response {
    render_login(&web, rid_of(q.as_deref()).as_deref(), None).await
}

async fn render_login(web: &Web, rid: Option<&str>, error: Option<&str>) -> Response {
    let found = match rid {
        Some(r) => match web.pending(r).await {
            Ok(p) => p.map(|p| (r, p)),
            Err(e) => {
                warn!(error = %e, "console login page: the shared store does not answer");
                return store_unavailable();
            }
        },
        None => None,
    };
    let Some((rid, pending)) = found else {
        return (
            StatusCode::BAD_REQUEST,
            page(
                "Login expired",
                "<p>This login has expired. Go back to the application and start again.</p>",
            ),
        )
            .into_response();
    };
    let config = web.config.load();
    let Some(console) = config.consoles.iter().find(|c| c.name == pending.console) else {
        return error_page(StatusCode::BAD_REQUEST, Reason::UnknownClient);
    };
    let mut body = format!(
        "<p>Log in to continue to <b>{}</b>.</p>",
        escape(&console.name)
    );
    if let Some(e) = error {
        let _ = write!(body, "<p role=\"alert\">{}</p>", escape(e));
    }
    for p in &config.oidc {
        if console.allows(&LoginMethod::Oidc(p.name.clone())) {
            let _ = write!(
                body,
                "<a class=\"b\" href=\"/auth/oidc/{n}/start\">Log in with {n}</a>",
                n = escape(&p.name)
            );
        }
    }
    for p in &config.saml {
        if console.allows(&LoginMethod::Saml(p.name.clone())) {
            let _ = write!(
                body,
                "<a class=\"b\" href=\"/auth/saml/{n}/start\">Log in with {n}</a>",
                n = escape(&p.name)
            );
        }
    }
    if console.allows(&LoginMethod::Local) && config.web.local_login {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/oauth2/login\">\
             <input type=\"hidden\" name=\"rid\" value=\"{}\">\
             <label>User name<input name=\"username\" autocomplete=\"username\" required></label>\
             <label>Password<input name=\"password\" type=\"password\" \
             autocomplete=\"current-password\" required></label>\
             <button type=\"submit\">Log in</button></form>",
            escape(rid)
        );
    }
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    (status, page("portcullis", &body)).into_response()
}

/// POST /oauth2/login: the local form of a console login. The form's `rid`
/// must be the one this browser's cookie holds (so another site cannot post
/// a login into someone's console flow).
async fn local_login(
    State(web): State<Arc<Web>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(p) = web.idp.clone() else {
        return no_provider();
    };
    // The form's `rid` is bound to this browser's cookie (a token); a post
    // another site's page made is refused before that, as for /login.
    if !super::csrf::same_origin(&headers) {
        return super::csrf::refused("oauth2/login");
    }
    let Some(f) = Params::parse(&body) else {
        return error_page(StatusCode::BAD_REQUEST, Reason::InvalidRequest);
    };
    let (Some(rid), Some(username), Some(password)) =
        (f.get("rid"), f.get("username"), f.get("password"))
    else {
        return render_login(&web, f.get("rid"), Some("Enter a user name and a password")).await;
    };
    let bound = web.cookie(&headers, CONSOLE_COOKIE);
    let same_browser = bound
        .as_deref()
        .is_some_and(|b| bool::from(subtle::ConstantTimeEq::ct_eq(b.as_bytes(), rid.as_bytes())));
    let found = if same_browser {
        match web.pending(rid).await {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "console login: the shared store does not answer");
                return store_unavailable();
            }
        }
    } else {
        None
    };
    let Some(pending) = found else {
        return render_login(&web, None, None).await;
    };
    let config = web.config.load_full();
    let Some(console) = config.consoles.iter().find(|c| c.name == pending.console) else {
        return error_page(StatusCode::BAD_REQUEST, Reason::UnknownClient);
    };
    if !console.allows(&LoginMethod::Local) || !config.web.local_login {
        refused(
            &p,
            Some(&console.name),
            Reason::LoginMethod,
            "local login not allowed",
        );
        return render_login(&web, Some(rid), Some("Local login is not allowed here")).await;
    }
    match web
        .credentials
        .password_from(
            &config.users,
            username,
            password.as_bytes(),
            Some(from.ip()),
        )
        .await
    {
        Ok(u) => {
            info!(user = %u.name, console = %console.name, "web login (local) for a console");
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
                Err(page) => return page,
            };
            if let Err(e) = web.take_pending(rid).await {
                // The entry expires on its own; the login itself succeeded.
                warn!(error = %e, "console login: the shared store does not answer");
            }
            (
                [(header::SET_COOKIE, cookie)],
                Redirect::to(&pending.resume),
            )
                .into_response()
        }
        Err(crate::authn::AuthnError::Disabled) => {
            refused(
                &p,
                Some(&console.name),
                Reason::AccessDenied,
                "account disabled",
            );
            match pending.denied {
                Some(to) => Redirect::to(&to).into_response(),
                None => error_page(StatusCode::FORBIDDEN, Reason::AccessDenied),
            }
        }
        Err(e) => {
            info!(user = %username, reason = e.label(), console = %console.name, "web login (local) refused");
            let msg = if e == crate::authn::AuthnError::Throttled {
                "Too many failed logins; try again later"
            } else {
                "Login failed"
            };
            render_login(&web, Some(rid), Some(msg)).await
        }
    }
}

/// An RFC 6749 5.2 error answer.
fn token_error(reason: Reason, basic: bool) -> Response {
    let status = if reason.error() == "invalid_client" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    let mut r = (
        status,
        axum::Json(json!({"error": reason.error(), "error_description": reason.label()})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED && basic {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"portcullis\""),
        );
    }
    r
}

/// The form of a request to the token or revocation endpoint and the
/// console that authenticated it (RFC 6749 §2.3); otherwise the refusal,
/// counted and logged under `what`: the reason and whether the client
/// tried HTTP Basic, for [`token_error`].
fn client_request<'c>(
    p: &Provider,
    config: &'c Config,
    headers: &HeaderMap,
    body: &[u8],
    what: &'static str,
) -> Result<(Params, &'c ConsoleSettings), (Reason, bool)> {
    let authz = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let Some(f) = Params::parse(body) else {
        refused(
            p,
            None,
            Reason::InvalidRequest,
            &format!("{what}: malformed parameters"),
        );
        return Err((Reason::InvalidRequest, false));
    };
    match oauth::authenticate(&config.consoles, authz, &f) {
        Ok(c) => Ok((f, c)),
        Err((c, reason)) => {
            refused(
                p,
                c.map(|c| c.name.as_str()),
                reason,
                &format!("{what}: client authentication"),
            );
            Err((reason, authz.is_some()))
        }
    }
}

/// POST /oauth2/token: codes and refresh tokens for ID, access and refresh tokens.
async fn token(State(web): State<Arc<Web>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(p) = web.idp.clone() else {
        return no_provider();
    };
    let config = web.config.load_full();
    let (f, console) = match client_request(&p, &config, &headers, &body, "token") {
        Ok(x) => x,
        Err((reason, basic)) => return token_error(reason, basic),
    };
    let fail = |reason: Reason, detail: &str| {
        refused(&p, Some(&console.name), reason, detail);
        token_error(reason, false)
    };
    let iss = issuer(&config, &headers);
    match f.get("grant_type") {
        Some("authorization_code") => {
            let Some(code) = f.get("code") else {
                return fail(Reason::InvalidRequest, "no code");
            };
            let hash = oauth::token_hash(code);
            let rec = match p.blocking(move |s| s.take_code(&hash)).await {
                Ok(CodeTake::Fresh(r)) => r,
                Ok(CodeTake::Reused { .. }) => {
                    return fail(
                        Reason::CodeReused,
                        "code used twice; its refresh tokens revoked",
                    );
                }
                Ok(CodeTake::Unknown) => return fail(Reason::InvalidGrant, "unknown code"),
                Err(e) => return server_error("code lookup", &e),
            };
            if rec.client_id != console.client_id {
                return fail(Reason::CodeOtherClient, "code issued to another client");
            }
            if rec.expires <= now() {
                return fail(Reason::CodeExpired, "code expired");
            }
            if f.get("redirect_uri") != Some(rec.redirect_uri.as_str()) {
                return fail(
                    Reason::InvalidGrant,
                    "redirect_uri differs from the authorization request's",
                );
            }
            if let Some(ch) = &rec.challenge
                && !oauth::pkce_ok(ch, f.get("code_verifier"))
            {
                return fail(Reason::WrongPkce, "PKCE verifier does not match");
            }
            let scope: Vec<String> = rec.scope.split(' ').map(str::to_string).collect();
            let Some(person) = web
                .resolve(&user_of(&rec.subject))
                .await
                .and_then(|r| person(&rec.subject, &r))
            else {
                return fail(Reason::UserRefused, "the table refuses the user");
            };
            let refresh = if scope.iter().any(|s| s == "offline_access") {
                let token = oauth::random_token();
                let fam = Family {
                    id: random_id(),
                    client_id: console.client_id.clone(),
                    subject: rec.subject.clone(),
                    scope: rec.scope.clone(),
                    auth_time: rec.auth_time,
                };
                let (th, code_hash) = (oauth::token_hash(&token), rec.hash);
                let exp = now() + console.refresh_token_ttl.as_secs() as i64;
                if let Err(e) = p
                    .blocking(move |s| s.new_family(&fam, &code_hash, &th, exp))
                    .await
                {
                    return server_error("refresh family not stored", &e);
                }
                Some(token)
            } else {
                None
            };
            p.metrics.issued(&console.name, "authorization_code");
            info!(console = %console.name, user = %person.name, "console tokens issued (code)");
            let g = Grant {
                subject: &rec.subject,
                person: &person,
                scope: &scope,
                nonce: rec.nonce.as_deref(),
                auth_time: rec.auth_time,
                refresh,
            };
            tokens(&p, &config, console, &iss, g).await
        }
        Some("refresh_token") => {
            let Some(old) = f.get("refresh_token") else {
                return fail(Reason::InvalidRequest, "no refresh_token");
            };
            let (old, new) = (oauth::token_hash(old), oauth::random_token());
            let nh = oauth::token_hash(&new);
            let t = now();
            let exp = t + console.refresh_token_ttl.as_secs() as i64;
            let fam = match p
                .blocking(move |s| s.rotate_refresh(&old, &nh, t, exp))
                .await
            {
                Ok(RefreshTake::Rotated(f)) => f,
                Ok(RefreshTake::Replayed { .. }) => {
                    return fail(
                        Reason::RefreshReplayed,
                        "refresh token replayed; family revoked",
                    );
                }
                Ok(RefreshTake::Invalid) => {
                    return fail(
                        Reason::InvalidGrant,
                        "refresh token expired, revoked or unknown",
                    );
                }
                Err(e) => return server_error("refresh lookup", &e),
            };
            let revoke = |p: Arc<Provider>, id: String| async move {
                if let Err(e) = p.blocking(move |s| s.revoke_family(&id)).await {
                    warn!(error = %e, "refresh family not revoked");
                }
            };
            if fam.client_id != console.client_id {
                revoke(p.clone(), fam.id.clone()).await;
                return fail(Reason::InvalidGrant, "refresh token of another client");
            }
            // The table decides again: a new role shows, a refused or
            // disabled person (or one gone upstream) gets nothing more.
            let Some(person) = web
                .resolve(&user_of(&fam.subject))
                .await
                .and_then(|r| person(&fam.subject, &r))
            else {
                revoke(p.clone(), fam.id.clone()).await;
                return fail(
                    Reason::UserRefused,
                    "refresh: the table refuses the user now",
                );
            };
            let scope: Vec<String> = fam.scope.split(' ').map(str::to_string).collect();
            p.metrics.issued(&console.name, "refresh_token");
            info!(console = %console.name, user = %person.name, "console tokens issued (refresh)");
            let g = Grant {
                subject: &fam.subject,
                person: &person,
                scope: &scope,
                nonce: None,
                auth_time: fam.auth_time,
                refresh: Some(new),
            };
            tokens(&p, &config, console, &iss, g).await
        }
        _ => fail(Reason::UnsupportedGrantType, "grant_type"),
    }
}

/// What a token response is about.
struct Grant<'a> {
    subject: &'a Subject,
    person: &'a Person,
    scope: &'a [String],
    nonce: Option<&'a str>,
    auth_time: i64,
    refresh: Option<String>,
}

/// The token response: a signed ID token, an opaque access token (stored
/// by its hash, for userinfo) and the refresh token if one was issued.
async fn tokens(
    p: &Provider,
    config: &Config,
    console: &ConsoleSettings,
    iss: &str,
    g: Grant<'_>,
) -> Response {
    let ring = match p.ring(config).await {
        Ok(r) => r,
        Err(e) => return server_error("keys unavailable", &e),
    };
    let t = now();
    let id = oauth::id_token_claims(
        console,
        &oauth::IdTokenInput {
            issuer: iss,
            person: g.person,
            scope: g.scope,
            nonce: g.nonce,
            auth_time: g.auth_time,
            now: t,
        },
    );
    let at_ttl = console.access_token_ttl.as_secs() as i64;
    let access_token = oauth::random_token();
    let record = AccessRecord {
        client_id: console.client_id.clone(),
        subject: g.subject.clone(),
        scope: g.scope.join(" "),
        expires: t + at_ttl,
    };
    let hash = oauth::token_hash(&access_token);
    // An RSA signature is heavy for an async worker: the blocking pool
    // signs while the store records the access token.
    let (signed, stored) = tokio::join!(
        tokio::task::spawn_blocking(move || ring.active.sign("JWT", &id)),
        p.blocking(move |s| s.put_access(&hash, &record)),
    );
    let id_token = match signed {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return server_error("signing failed", &e),
        Err(e) => return server_error("signing task failed", &e),
    };
    if let Err(e) = stored {
        return server_error("access token not stored", &e);
    }
    let mut body = json!({
        "access_token": access_token, "token_type": "Bearer", "expires_in": at_ttl,
        "id_token": id_token, "scope": g.scope.join(" "),
    });
    if let Some(r) = g.refresh {
        body["refresh_token"] = r.into();
    }
    axum::Json(body).into_response()
}

/// GET/POST /oauth2/userinfo: the person's claims now, for a live access token.
async fn userinfo(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let Some(p) = web.idp.clone() else {
        return no_provider();
    };
    let config = web.config.load_full();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(|t| oauth::token_hash(t.trim()));
    let unauthorized = |p: &Provider, console: Option<&str>, detail: &str| {
        refused(p, console, Reason::InvalidToken, detail);
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
        )
            .into_response()
    };
    let record = match bearer {
        Some(h) => p.blocking(move |s| s.get_access(&h, now())).await,
        None => Ok(None),
    };
    let record = match record {
        Ok(Some(r)) => r,
        Ok(None) => return unauthorized(&p, None, "userinfo: no valid access token"),
        Err(e) => return server_error("access token lookup", &e),
    };
    let Some(console) = config
        .consoles
        .iter()
        .find(|k| k.client_id == record.client_id)
    else {
        return unauthorized(&p, None, "userinfo: client no longer registered");
    };
    let Some(person) = web
        .resolve(&user_of(&record.subject))
        .await
        .and_then(|r| person(&record.subject, &r))
    else {
        return unauthorized(
            &p,
            Some(&console.name),
            "userinfo: the table refuses the user now",
        );
    };
    let scope: Vec<String> = record.scope.split(' ').map(str::to_string).collect();
    let mut m = serde_json::Map::new();
    m.insert("sub".into(), person.sub.clone().into());
    oauth::profile_claims(&person, &scope, &mut m);
    oauth::console_claims(console, &person, &mut m);
    axum::Json(Value::Object(m)).into_response()
}

/// POST /oauth2/revoke (RFC 7009): a refresh token takes its family with
/// it; an access token is refused from then on. Unknown tokens are fine.
async fn revoke(State(web): State<Arc<Web>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(p) = web.idp.clone() else {
        return no_provider();
    };
    let config = web.config.load_full();
    let (f, console) = match client_request(&p, &config, &headers, &body, "revoke") {
        Ok(x) => x,
        Err((reason, basic)) => return token_error(reason, basic),
    };
    let Some(token) = f.get("token") else {
        return token_error(Reason::InvalidRequest, false);
    };
    let (h, id) = (oauth::token_hash(token), console.client_id.clone());
    let done = p
        .blocking(move |s| Ok(s.revoke_access(&h, &id)? || s.revoke_refresh(&h, &id)?))
        .await;
    match done {
        Ok(found) => {
            info!(console = %console.name, found, "console token revoked");
            StatusCode::OK.into_response()
        }
        Err(e) => server_error("revocation", &e),
    }
}

/// GET /oauth2/logout: RP-initiated logout. With an `id_token_hint` we
/// signed, the session ends at once; without one the person confirms (a
/// link alone must not log anyone out). `post_logout_redirect_uri` is
/// followed only when registered for the token's console.
async fn logout(
    State(web): State<Arc<Web>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(p) = web.idp.clone() else {
        return no_provider();
    };
    let config = web.config.load_full();
    let Some(params) = Params::parse(q.unwrap_or_default().as_bytes()) else {
        return error_page(StatusCode::BAD_REQUEST, Reason::InvalidRequest);
    };
    let iss = issuer(&config, &headers);
    let hint = match params.get("id_token_hint") {
        Some(t) => match p.ring(&config).await {
            // An expired ID token is still a good hint of who is leaving.
            Ok(r) => r
                .verify(t)
                .filter(|c| c["iss"].as_str() == Some(iss.as_str())),
            Err(_) => None,
        },
        None => None,
    };
    let Some(hint) = hint else {
        return page(
            "Log out",
            "<form method=\"post\" action=\"/oauth2/logout\"><button type=\"submit\">Log out of portcullis</button></form>",
        )
        .into_response();
    };
    let console = config
        .consoles
        .iter()
        .find(|c| hint["aud"].as_str() == Some(c.audience.as_str()));
    let to = params.get("post_logout_redirect_uri").and_then(|u| {
        console
            .filter(|c| c.redirect_uris.iter().any(|r| r == u))
            .map(|_| match params.get("state") {
                Some(s) => with_query(u, &[("state", s)]),
                None => u.to_string(),
            })
    });
    if params.get("post_logout_redirect_uri").is_some() && to.is_none() {
        refused(
            &p,
            console.map(|c| c.name.as_str()),
            Reason::BadRedirectUri,
            "logout: no redirect made",
        );
    }
    web.close_session(&headers).await;
    info!(
        console = console.map_or("unknown", |c| c.name.as_str()),
        "console logout"
    );
    let clear = [(header::SET_COOKIE, Web::clear_cookie(SESSION_COOKIE))];
    match to {
        Some(u) => (clear, Redirect::to(&u)).into_response(),
        None => (clear, page("Logged out", "<p>You are logged out.</p>")).into_response(),
    }
}

/// POST /oauth2/logout: the confirmed logout.
async fn logout_confirmed(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    web.close_session(&headers).await;
    (
        [(header::SET_COOKIE, Web::clear_cookie(SESSION_COOKIE))],
        page("Logged out", "<p>You are logged out.</p>"),
    )
        .into_response()
}

/// GET /console/{name}/jwt: JWT mode. The person logs in if needed; the
/// browser goes to the console's consuming URL with the ID and access
/// tokens, `state` echoed.
async fn jwt_login(
    State(web): State<Arc<Web>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(p) = web.idp.clone() else {
        return no_provider();
    };
    let config = web.config.load_full();
    let Some(console) = config
        .consoles
        .iter()
        .find(|c| c.name == name && c.mode == Mode::Jwt)
    else {
        refused(&p, None, Reason::UnknownClient, "jwt: no such console");
        return error_page(StatusCode::NOT_FOUND, Reason::UnknownClient);
    };
    let q = q.unwrap_or_default();
    let Some(params) = Params::parse(q.as_bytes()) else {
        refused(
            &p,
            Some(&console.name),
            Reason::InvalidRequest,
            "jwt: malformed parameters",
        );
        return error_page(StatusCode::BAD_REQUEST, Reason::InvalidRequest);
    };
    let Some(user) = web.console_session(&config, console, &headers).await else {
        let resume = format!("/console/{name}/jwt?{q}");
        return web.to_login(&console.name, from.ip(), resume, None).await;
    };
    let subject = subject_of(&user);
    let Some(person) = web.resolve(&user).await.and_then(|r| person(&subject, &r)) else {
        refused(
            &p,
            Some(&console.name),
            Reason::AccessDenied,
            "jwt: the table refuses the user",
        );
        return error_page(StatusCode::FORBIDDEN, Reason::AccessDenied);
    };
    let iss = issuer(&config, &headers);
    let t = now();
    let ttl = console.id_token_ttl.as_secs() as i64;
    let mut claims = serde_json::Map::new();
    for (k, v) in [
        ("iss", Value::from(iss.as_str())),
        ("sub", person.sub.clone().into()),
        ("aud", console.audience.clone().into()),
        ("iat", t.into()),
        ("nbf", t.into()),
        ("exp", (t + ttl).into()),
        ("jti", random_id().into()),
    ] {
        claims.insert(k.into(), v);
    }
    let scope: Vec<String> = console.scopes.clone();
    oauth::profile_claims(&person, &scope, &mut claims);
    oauth::console_claims(console, &person, &mut claims);
    let id = Value::Object(claims);
    let mut access = id.clone();
    access["jti"] = random_id().into();
    let sign = |v: &Value| -> Option<String> {
        match (console.jwt_alg, &console.client_secret) {
            (JwtAlg::Rs256, _) => None,
            (alg, Some(secret)) => Some(crate::idp::keys::sign_hmac(alg, secret, v)),
            (_, None) => None,
        }
    };
    let (id_token, access_token) = if console.jwt_alg == JwtAlg::Rs256 {
        let ring = match p.ring(&config).await {
            Ok(r) => r,
            Err(e) => return server_error("keys unavailable", &e),
        };
        // RSA signatures are heavy for an async worker.
        let (id, access) = (id.clone(), access.clone());
        let signed = tokio::task::spawn_blocking(move || {
            Ok::<_, crate::idp::KeyError>((
                ring.active.sign("JWT", &id)?,
                ring.active.sign("JWT", &access)?,
            ))
        })
        .await;
        match signed {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return server_error("signing failed", &e),
            Err(e) => return server_error("signing task failed", &e),
        }
    } else {
        match (sign(&id), sign(&access)) {
            (Some(a), Some(b)) => (a, b),
            _ => return server_error("no HMAC secret", &"configuration"),
        }
    };
    let Some(consume) = &console.consume_url else {
        return server_error("no consuming URL", &"configuration");
    };
    let expires = ttl.to_string();
    let mut pairs = vec![
        ("access_token", access_token.as_str()),
        ("id_token", id_token.as_str()),
    ];
    if let Some(s) = params.get("state") {
        pairs.push(("state", s));
    }
    pairs.push(("token_type", "Bearer"));
    pairs.push(("expires_in", &expires));
    p.metrics.issued(&console.name, "jwt");
    info!(console = %console.name, user = %person.name, "console tokens issued (jwt)");
    Redirect::to(&with_query(consume, &pairs)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded_and_appended() {
        assert_eq!(
            with_query("http://h/cb", &[("code", "a b&c"), ("state", "x=y")]),
            "http://h/cb?code=a+b%26c&state=x%3Dy"
        );
        assert_eq!(
            with_query("http://h/cb?k=1", &[("e", "v")]),
            "http://h/cb?k=1&e=v"
        );
    }

    #[test]
    fn the_issuer_is_the_configured_one_else_a_sane_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        let c = crate::testkit::config_from("");
        assert_eq!(issuer(&c, &h), "http://127.0.0.1:8080");
        h.insert(header::HOST, HeaderValue::from_static("evil/path?x"));
        assert_eq!(issuer(&c, &h), "http://localhost");
        let c = crate::testkit::config_from("[idp]\nissuer = \"https://aaa.example.com\"\n");
        assert_eq!(issuer(&c, &h), "https://aaa.example.com");
    }
}

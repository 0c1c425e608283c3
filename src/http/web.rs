//! Browser logins: the login page (a button per OpenID Provider, the local
//! form), the OIDC code flow's start and callback, sessions in signed
//! cookies, logout, and `/api/me`. Whoever logs in, and however, the role
//! comes from the same table as RADIUS and TACACS+.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use tracing::{info, warn};

use crate::config::Config;
use crate::identity::{IdentityStore, Profile};
use crate::oidc::{OidcMetrics, PendingLogin, Provider};
use crate::policy::{ALL_USERS, ClientCtx, GroupId, Identity, Source};
use crate::saml::{LoginState, SamlProvider};
use crate::server::Server;

const SESSION_COOKIE: &str = "portcullis_session";
/// Binds a started OIDC login to the browser that started it, so a code
/// and state sent to someone else's browser cannot log them in (login CSRF).
const LOGIN_COOKIE: &str = "portcullis_login";
/// The same for a SAML login: the AuthnRequest ID this browser started.
const SAML_COOKIE: &str = "portcullis_saml";
/// Started logins kept at once; beyond it the oldest are forgotten.
const MAX_PENDING: usize = 10_000;
const MAX_SESSIONS: usize = 100_000;

/// Who a session belongs to. The role is decided anew on every request,
/// so a mapping change applies to open sessions at once.
#[derive(Debug, Clone)]
pub enum SessionUser {
    Local { name: String },
    External { provider: String, subject: String },
}

#[derive(Debug)]
struct Session {
    user: SessionUser,
    expires: Instant,
    /// For a SAML login: what a LogoutRequest to the IdP must name.
    saml: Option<SamlSession>,
}

#[derive(Debug, Clone)]
struct SamlSession {
    provider: String,
    name_id: String,
    name_id_format: Option<String>,
    session_index: Option<String>,
}

/// The state the web routes share.
pub struct Web {
    pub server: Arc<Server>,
    identity: Option<IdentityStore>,
    /// Signs cookies; random per process, so a restart ends every session.
    key: [u8; 32],
    sessions: Mutex<HashMap<String, Session>>,
    pending: Mutex<HashMap<String, (String, PendingLogin)>>,
    providers: ByGeneration<Provider>,
    metrics: OidcMetrics,
    saml_providers: ByGeneration<SamlProvider>,
    saml_state: LoginState,
    saml_metrics: OidcMetrics,
}

impl Web {
    pub fn new(server: Arc<Server>, identity: Option<IdentityStore>) -> Self {
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).expect("system CSPRNG");
        let metrics = server.metrics().oidc.clone();
        let saml_metrics = server.metrics().saml.clone();
        Self {
            server,
            identity,
            key,
            sessions: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            providers: ByGeneration::default(),
            metrics,
            saml_providers: ByGeneration::default(),
            saml_state: LoginState::default(),
            saml_metrics,
        }
    }

    fn saml_provider(&self, config: &Config, name: &str) -> Option<Arc<SamlProvider>> {
        let generation = self.server.generation();
        self.saml_providers.get(generation, name, || {
            built(
                &config.saml,
                |s| &s.name,
                "saml",
                |s| SamlProvider::new(s.clone()),
            )
        })
    }

    pub fn identity(&self) -> Option<IdentityStore> {
        self.identity.clone()
    }

    fn provider(&self, config: &Config, name: &str) -> Option<Arc<Provider>> {
        let generation = self.server.generation();
        self.providers.get(generation, name, || {
            built(
                &config.oidc,
                |s| &s.name,
                "oidc",
                |s| Provider::new(s.clone(), Some(self.metrics.clone())),
            )
        })
    }

    fn sign(&self, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("any key length");
        mac.update(value.as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut out = String::with_capacity(value.len() + 65);
        out.push_str(value);
        out.push('.');
        for b in tag {
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    /// The value of a cookie we signed, if its signature holds.
    fn verified<'a>(&self, signed: &'a str) -> Option<&'a str> {
        let (value, _) = signed.rsplit_once('.')?;
        let expect = self.sign(value);
        // Constant time: the tag is a secret-derived value an attacker probes.
        let same: bool = subtle::ConstantTimeEq::ct_eq(expect.as_bytes(), signed.as_bytes()).into();
        same.then_some(value)
    }

    fn cookie(&self, headers: &HeaderMap, name: &str) -> Option<String> {
        let raw = cookie(headers, name)?;
        self.verified(raw).map(str::to_string)
    }

    fn set_cookie(&self, name: &str, value: &str, max_age: Duration) -> HeaderValue {
        let secure = if self.server.config().web.secure_cookies {
            "; Secure"
        } else {
            ""
        };
        let v = format!(
            "{name}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            self.sign(value),
            max_age.as_secs()
        );
        HeaderValue::from_str(&v).expect("cookie is ASCII")
    }

    /// A cookie that must come back on the IdP's cross-site POST to the ACS.
    /// Over https that takes `SameSite=None; Secure`. Over plain http
    /// `None` would be refused, so no SameSite is set (browsers that default
    /// to Lax still send it on a top-level POST within two minutes).
    fn set_cross_site_cookie(&self, name: &str, value: &str, max_age: Duration) -> HeaderValue {
        let attrs = if self.server.config().web.secure_cookies {
            "; SameSite=None; Secure"
        } else {
            ""
        };
        let v = format!(
            "{name}={}; Path=/; HttpOnly; Max-Age={}{attrs}",
            self.sign(value),
            max_age.as_secs()
        );
        HeaderValue::from_str(&v).expect("cookie is ASCII")
    }

    fn clear_cookie(name: &str) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
        ))
        .expect("cookie is ASCII")
    }

    fn start_session(&self, user: SessionUser) -> HeaderValue {
        self.start_session_with(user, None)
    }

    fn start_session_with(&self, user: SessionUser, saml: Option<SamlSession>) -> HeaderValue {
        let ttl = self.server.config().web.session_ttl;
        let id = random_id();
        let mut s = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if s.len() >= MAX_SESSIONS {
            let now = Instant::now();
            s.retain(|_, v| v.expires > now);
        }
        s.insert(
            id.clone(),
            Session {
                user,
                expires: Instant::now() + ttl,
                saml,
            },
        );
        self.set_cookie(SESSION_COOKIE, &id, ttl)
    }

    /// The session's user, if the cookie is ours and not expired.
    pub fn session(&self, headers: &HeaderMap) -> Option<SessionUser> {
        let id = self.cookie(headers, SESSION_COOKIE)?;
        let mut s = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        match s.get(&id) {
            Some(v) if v.expires > Instant::now() => Some(v.user.clone()),
            Some(_) => {
                s.remove(&id);
                None
            }
            None => None,
        }
    }

    fn end_session(&self, headers: &HeaderMap) -> Option<Session> {
        let id = self.cookie(headers, SESSION_COOKIE)?;
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id)
    }

    /// Who the session user is now: source, group names and the decision of
    /// the table. `None` when the user no longer exists or is disabled.
    pub async fn resolve(&self, user: &SessionUser) -> Option<Resolved> {
        let config = self.server.config_arc();
        let (name, source, groups, extra) = match user {
            SessionUser::Local { name } => {
                let u = config.users.active(name).ok()?;
                let groups: Vec<GroupId> = u.groups.to_vec();
                let extra = serde_json::json!({
                    "email": config.users.email(u),
                    "full_name": config.users.full_name(u),
                });
                (name.clone(), Source::Local, groups, extra)
            }
            SessionUser::External { provider, subject } => {
                let store = self.identity.clone()?;
                let (p, s) = (provider.clone(), subject.clone());
                let u = tokio::task::spawn_blocking(move || store.get(&p, &s))
                    .await
                    .ok()?
                    .ok()??;
                let mut groups: Vec<GroupId> = u
                    .groups
                    .iter()
                    .filter_map(|g| config.policy.group_id(g))
                    .collect();
                groups.push(config.policy.all_users());
                let extra = serde_json::json!({
                    "provider": u.provider,
                    "subject": u.subject,
                    "email": u.email,
                    "full_name": u.full_name,
                });
                (u.username, Source::External, groups, extra)
            }
        };
        let identity = Identity {
            user: &name,
            groups: &groups,
            source,
        };
        let decision = config
            .policy
            .decide(&identity, &ClientCtx { name: "web" })
            .ok()
            .map(|g| Decision {
                role: g.role.name.to_string(),
                priv_lvl: g.role.priv_lvl,
                rbac_roles: g.role.rbac_roles.to_string(),
                rbac_aag: g.role.rbac_aag.to_string(),
                admin: g.role.admin,
            });
        let mut group_names: Vec<String> = groups
            .iter()
            .map(|g| config.policy.group_name(*g).to_string())
            .collect();
        group_names.dedup();
        Some(Resolved {
            user: name,
            source,
            groups: group_names,
            decision,
            extra,
        })
    }
}

/// Identity providers of one configuration generation, rebuilt on first use
/// after a reload so changed settings (and fresh caches) apply.
struct ByGeneration<P>(Mutex<(u64, HashMap<String, Arc<P>>)>);

impl<P> Default for ByGeneration<P> {
    fn default() -> Self {
        Self(Mutex::new((0, HashMap::new())))
    }
}

impl<P> ByGeneration<P> {
    fn get(
        &self,
        generation: u64,
        name: &str,
        build: impl FnOnce() -> HashMap<String, Arc<P>>,
    ) -> Option<Arc<P>> {
        let mut p = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if p.0 != generation {
            *p = (generation, build());
        }
        p.1.get(name).cloned()
    }
}

/// Every configured provider that builds, by name; one that does not is
/// logged and left out.
fn built<S, P, E: std::fmt::Display>(
    settings: &[S],
    name: impl Fn(&S) -> &String,
    kind: &str,
    make: impl Fn(&S) -> Result<P, E>,
) -> HashMap<String, Arc<P>> {
    let mut map = HashMap::new();
    for s in settings {
        match make(s) {
            Ok(p) => {
                map.insert(name(s).clone(), Arc::new(p));
            }
            Err(e) => warn!(provider = %name(s), kind, error = %e, "identity provider unusable"),
        }
    }
    map
}

/// A session user as the table sees them now.
pub struct Resolved {
    pub user: String,
    pub source: Source,
    pub groups: Vec<String>,
    /// `None` when the table refuses them.
    pub decision: Option<Decision>,
    pub extra: serde_json::Value,
}

/// What the table grants, as the web side shows it.
pub struct Decision {
    pub role: String,
    pub priv_lvl: u8,
    pub rbac_roles: String,
    pub rbac_aag: String,
    pub admin: bool,
}

impl Resolved {
    pub fn is_admin(&self) -> bool {
        self.decision.as_ref().is_some_and(|d| d.admin)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "user": self.user,
            "source": self.source.as_str(),
            "groups": self.groups,
        });
        match &self.decision {
            Some(d) => {
                v["role"] = d.role.as_str().into();
                v["priv-lvl"] = d.priv_lvl.into();
                v["rbac-roles"] = d.rbac_roles.as_str().into();
                v["rbac-aag"] = d.rbac_aag.as_str().into();
                v["admin"] = d.admin.into();
            }
            None => v["role"] = serde_json::Value::Null,
        }
        if let (Some(o), Some(extra)) = (v.as_object_mut(), self.extra.as_object()) {
            for (k, x) in extra {
                o.insert(k.clone(), x.clone());
            }
        }
        v
    }
}

fn random_id() -> String {
    let mut b = [0u8; 24];
    aws_lc_rs::rand::fill(&mut b).expect("system CSPRNG");
    b.iter().fold(String::with_capacity(48), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> Html<String> {
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
pub struct LoginQuery {
    local: Option<String>,
    error: Option<String>,
}

/// GET /login: a button per provider, and the local form unless hidden
/// (`web.local_login = false`); `?local=1` always shows it, for break-glass.
pub async fn login_page(State(web): State<Arc<Web>>, Query(q): Query<LoginQuery>) -> Html<String> {
    let config = web.server.config();
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
    if config.web.local_login || q.local.is_some() {
        body.push_str(
            "<form method=\"post\" action=\"/login\"><label>User name\
             <input name=\"username\" autocomplete=\"username\" required></label>\
             <label>Password<input name=\"password\" type=\"password\" \
             autocomplete=\"current-password\" required></label>\
             <button type=\"submit\">Log in</button></form>",
        );
    } else {
        body.push_str("<p><a href=\"/login?local=1\">Local account (break-glass)</a></p>");
    }
    page("portcullis", &body)
}

#[derive(Deserialize)]
pub struct LocalLogin {
    username: String,
    password: String,
}

/// POST /login: a local user of the table, argon2 off the runtime.
pub async fn local_login(State(web): State<Arc<Web>>, Form(f): Form<LocalLogin>) -> Response {
    let config = web.server.config_arc();
    match config
        .users
        .check_password(web.server.pool(), &f.username, f.password.as_bytes())
        .await
    {
        Ok(u) => {
            info!(user = %u.name, "web login (local)");
            let cookie = web.start_session(SessionUser::Local {
                name: u.name.to_string(),
            });
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        Err(e) => {
            info!(user = %f.username, reason = e.label(), "web login (local) refused");
            Redirect::to("/login?local=1&error=Login%20failed").into_response()
        }
    }
}

/// GET /auth/oidc/{provider}/start: to the IdP with state, nonce and PKCE.
pub async fn oidc_start(State(web): State<Arc<Web>>, Path(name): Path<String>) -> Response {
    let config = web.server.config_arc();
    let Some(provider) = web.provider(&config, &name) else {
        return (StatusCode::NOT_FOUND, "no such identity provider").into_response();
    };
    match provider.begin().await {
        Ok((url, pending)) => {
            let state = pending.state.clone();
            let ttl = provider.settings().login_timeout;
            {
                let mut p = web.pending.lock().unwrap_or_else(PoisonError::into_inner);
                if p.len() >= MAX_PENDING {
                    p.retain(|_, (_, l)| l.created.elapsed() < ttl);
                    if p.len() >= MAX_PENDING {
                        // Still full of fresh ones: someone is flooding us.
                        // Make room rather than refuse every real user.
                        if let Some(k) = p.keys().next().cloned() {
                            p.remove(&k);
                        }
                    }
                }
                p.insert(state.clone(), (name, pending));
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
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// GET /auth/oidc/{provider}/callback: the code exchanged, the ID token
/// verified, the user created or updated with their groups, a session.
pub async fn oidc_callback(
    State(web): State<Arc<Web>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let refuse = |reason: &'static str, detail: &str| {
        warn!(provider = %name, reason, detail, "oidc login refused");
        web.metrics.login(&name, reason);
        (
            StatusCode::UNAUTHORIZED,
            [(header::SET_COOKIE, Web::clear_cookie(LOGIN_COOKIE))],
            page(
                "Login refused",
                "<p>The login could not be completed. <a href=\"/login\">Start again</a>.</p>",
            ),
        )
            .into_response()
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
    let taken = web
        .pending
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(state.as_str());
    let Some((for_provider, pending)) = taken else {
        return refuse("state", "unknown or already used state");
    };
    if for_provider != name {
        return refuse("state", "state was issued for another provider");
    }
    let config = web.server.config_arc();
    let Some(provider) = web.provider(&config, &name) else {
        return refuse("unknown_provider", "provider not configured");
    };
    // Logged and counted by the provider, with the reason.
    let login = match provider.complete(code, state, &pending).await {
        Ok(l) => l,
        Err(e) => {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::SET_COOKIE, Web::clear_cookie(LOGIN_COOKIE))],
                page(
                    "Login refused",
                    &format!(
                        "<p>The login could not be completed ({}). <a href=\"/login\">Start again</a>.</p>",
                        escape(e.reason())
                    ),
                ),
            )
                .into_response();
        }
    };
    let user = match web
        .store_external(
            &name,
            &login.sub,
            &login.username,
            login.email.as_deref(),
            login.full_name.as_deref(),
            login.groups.as_deref(),
        )
        .await
    {
        Ok(u) => u,
        Err(r) => return r,
    };
    info!(provider = %user.provider, user = %user.username, groups = ?user.groups, "web login (oidc)");
    let session = web.start_session(SessionUser::External {
        provider: user.provider,
        subject: user.subject,
    });
    let mut h = HeaderMap::new();
    h.append(header::SET_COOKIE, session);
    h.append(header::SET_COOKIE, Web::clear_cookie(LOGIN_COOKIE));
    (h, Redirect::to("/")).into_response()
}

impl Web {
    /// Creates or updates an external user with their groups (synced against
    /// the table's groups, built-ins untouched), off the runtime.
    #[allow(clippy::too_many_arguments)]
    async fn store_external(
        &self,
        provider: &str,
        subject: &str,
        username: &str,
        email: Option<&str>,
        full_name: Option<&str>,
        groups: Option<&[String]>,
    ) -> Result<crate::identity::ExternalUser, Response> {
        let failed = || {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "login could not be recorded",
            )
                .into_response()
        };
        let Some(store) = self.identity.clone() else {
            warn!(provider, "no identity store: external login refused");
            return Err(failed());
        };
        let config = self.server.config_arc();
        let local_groups: Vec<String> = config
            .policy
            .groups()
            .iter()
            .filter(|g| g.as_ref() != ALL_USERS_NAME)
            .map(|g| g.to_string())
            .collect();
        let (provider, subject, username) = (
            provider.to_string(),
            subject.to_string(),
            username.to_string(),
        );
        let (email, full_name) = (email.map(str::to_string), full_name.map(str::to_string));
        let groups = groups.map(<[String]>::to_vec);
        let stored = tokio::task::spawn_blocking(move || {
            let p = Profile {
                provider: &provider,
                subject: &subject,
                username: &username,
                email: email.as_deref(),
                full_name: full_name.as_deref(),
                groups: groups.as_deref(),
            };
            store.login(&p, &local_groups, &[ALL_USERS_NAME.to_string()])
        })
        .await;
        match stored {
            Ok(Ok(u)) => Ok(u),
            Ok(Err(e)) => {
                warn!(error = %e, "external user could not be stored");
                Err(failed())
            }
            Err(e) => {
                warn!(error = %e, "external user task failed");
                Err(failed())
            }
        }
    }
}

fn idp_unavailable() -> Response {
    (
        StatusCode::BAD_GATEWAY,
        page(
            "Login unavailable",
            "<p>The identity provider cannot be reached. Try again later.</p>",
        ),
    )
        .into_response()
}

/// The built-in group every user is in; never synced from a token.
const ALL_USERS_NAME: &str = ALL_USERS;

/// GET/POST /logout.
/// A SAML session continues to the IdP's single-logout endpoint (when it
/// has one) after ours has ended.
pub async fn logout(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let ended = web.end_session(&headers);
    let mut to = "/login".to_string();
    if let Some(saml) = ended.and_then(|s| s.saml) {
        let config = web.server.config_arc();
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
        [(header::SET_COOKIE, Web::clear_cookie(SESSION_COOKIE))],
        Redirect::to(&to),
    )
        .into_response()
}

/// GET /: who is logged in, or to the login page.
pub async fn home(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let Some(user) = web.session(&headers) else {
        return Redirect::to("/login").into_response();
    };
    let Some(r) = web.resolve(&user).await else {
        return Redirect::to("/logout").into_response();
    };
    let role = r.decision.as_ref().map_or_else(
        || "no role".to_string(),
        |d| format!("{} (priv-lvl {})", d.role, d.priv_lvl),
    );
    page(
        "portcullis",
        &format!(
            "<p>Logged in as <b>{}</b> ({}), role {}.</p><p><a href=\"/api/me\">/api/me</a> · \
             <a href=\"/logout\">Log out</a></p>",
            escape(&r.user),
            r.source.as_str(),
            escape(&role)
        ),
    )
    .into_response()
}

/// GET /api/me: the caller as the table sees them.
pub async fn me(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let Some(user) = web.session(&headers) else {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "not logged in"})),
        )
            .into_response();
    };
    match web.resolve(&user).await {
        Some(r) => axum::Json(r.to_json()).into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "account no longer valid"})),
        )
            .into_response(),
    }
}

/// GET /auth/saml/{provider}/start: to the IdP with a fresh AuthnRequest
/// (HTTP-Redirect binding), its ID bound to this browser.
pub async fn saml_start(State(web): State<Arc<Web>>, Path(name): Path<String>) -> Response {
    let config = web.server.config_arc();
    let Some(provider) = web.saml_provider(&config, &name) else {
        return (StatusCode::NOT_FOUND, "no such identity provider").into_response();
    };
    match provider.begin(&web.saml_state).await {
        Ok((url, id)) => {
            let ttl = provider.settings().login_timeout;
            (
                [(
                    header::SET_COOKIE,
                    web.set_cross_site_cookie(SAML_COOKIE, &id, ttl),
                )],
                Redirect::to(&url),
            )
                .into_response()
        }
        Err(e) => {
            warn!(provider = %name, error = %e, "saml login could not start");
            web.saml_metrics.login(&name, "idp_unavailable");
            idp_unavailable()
        }
    }
}

#[derive(Deserialize)]
pub struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: Option<String>,
}

/// POST /auth/saml/{provider}/acs: the IdP's Response (HTTP-POST binding)
/// verified, the user created or updated with their groups, a session.
pub async fn saml_acs(
    State(web): State<Arc<Web>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(f): Form<AcsForm>,
) -> Response {
    let refused = |reason: &str| {
        (
            StatusCode::UNAUTHORIZED,
            [(header::SET_COOKIE, Web::clear_cookie(SAML_COOKIE))],
            page(
                "Login refused",
                &format!(
                    "<p>The login could not be completed ({}). <a href=\"/login\">Start again</a>.</p>",
                    escape(reason)
                ),
            ),
        )
            .into_response()
    };
    let config = web.server.config_arc();
    let Some(provider) = web.saml_provider(&config, &name) else {
        return (StatusCode::NOT_FOUND, "no such identity provider").into_response();
    };
    let Some(encoded) = f.saml_response else {
        warn!(provider = %name, reason = "malformed", "saml login refused: no SAMLResponse");
        web.saml_metrics.login(&name, "malformed");
        return refused("malformed");
    };
    let bound = web.cookie(&headers, SAML_COOKIE);
    let v = match provider
        .complete(
            &encoded,
            bound.as_deref(),
            &web.saml_state,
            std::time::SystemTime::now(),
        )
        .await
    {
        Ok(v) => v,
        Err(r) => {
            let reason = r.reason.label();
            warn!(provider = %name, reason, detail = %r.detail, "saml login refused");
            web.saml_metrics.verify_failure(&name, reason);
            web.saml_metrics.login(&name, reason);
            return refused(reason);
        }
    };
    let user = match web
        .store_external(
            &name,
            &v.name_id,
            &v.username,
            v.email.as_deref(),
            v.full_name.as_deref(),
            v.groups.as_deref(),
        )
        .await
    {
        Ok(u) => u,
        Err(r) => return r,
    };
    web.saml_metrics.login(&name, "success");
    info!(provider = %user.provider, user = %user.username, groups = ?user.groups, "web login (saml)");
    let session = web.start_session_with(
        SessionUser::External {
            provider: user.provider,
            subject: user.subject,
        },
        Some(SamlSession {
            provider: name,
            name_id: v.name_id,
            name_id_format: v.name_id_format,
            session_index: v.session_index,
        }),
    );
    let mut h = HeaderMap::new();
    h.append(header::SET_COOKIE, session);
    h.append(header::SET_COOKIE, Web::clear_cookie(SAML_COOKIE));
    (h, Redirect::to("/")).into_response()
}

/// GET /auth/saml/{provider}/metadata: our SP metadata for the IdP admin.
pub async fn saml_metadata(State(web): State<Arc<Web>>, Path(name): Path<String>) -> Response {
    let config = web.server.config_arc();
    let Some(s) = config.saml.iter().find(|s| s.name == name) else {
        return (StatusCode::NOT_FOUND, "no such identity provider").into_response();
    };
    let xml = crate::saml::metadata::SpMetadata {
        entity_id: &s.sp_entity_id,
        acs_url: &s.acs_url,
        slo_url: &s.slo_url,
        name_id_format: &s.name_id_format,
        signs_requests: s.sign_requests,
        cert: s.sp_cert.as_ref().map(crate::saml::IdpCert::to_base64),
    }
    .render();
    (
        [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
        xml,
    )
        .into_response()
}

/// GET /auth/saml/{provider}/slo: where the IdP returns the browser after
/// single logout. Our session already ended before we sent it there, so
/// this only lands on the login page; it acts on nothing it is given.
pub async fn saml_slo() -> Redirect {
    Redirect::to("/login")
}

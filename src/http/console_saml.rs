//! portcullis as the SAML IdP of `saml`-mode consoles: metadata, SSO with
//! the HTTP-Redirect and HTTP-POST bindings (Responses only ever posted to
//! the registered ACS), IdP-initiated login, and single logout both ways.
//! A person without a session goes through the console login page of
//! `http::console` and comes back here; the table decides every assertion.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tracing::{info, warn};

use super::console::{issuer, no_provider, person, server_error, subject_of};
use super::pages::page;
use super::session::{SESSION_COOKIE, SessionUser, random_id, store_unavailable};
use super::state::Web;
use crate::config::Config;
use crate::idp::saml::request::{self, LogoutRequest};
use crate::idp::saml::response::{self as out, Assertion};
use crate::idp::saml::{self, Accepted, Inbound, Reason, Refused, SamlConsole, SamlKeys};
use crate::idp::{ConsoleSettings, Provider};
use crate::store::ephemeral::{ConsoleLogin, ConsoleLogins, Kind, PendingStore};
use crate::store::{DbError, PgStore};

/// How long a started SAML login waits for the person (as `http::console`).
const LOGIN_WAIT: Duration = Duration::from_secs(600);

/// SSO requests waiting for a login, and which consoles each session
/// logged in to (for the logout portcullis starts): in this process, or in
/// the shared store so that any node may finish the login or the logout.
#[derive(Debug)]
pub(super) struct SamlIdpState {
    pending: PendingStore<Accepted>,
    logins: ConsoleLogins,
}

impl SamlIdpState {
    pub(super) fn new(store: Option<&PgStore>) -> Self {
        let (pending, logins) = match store {
            Some(s) => (
                PendingStore::shared(Kind::SamlIdpRequest, s.clone()),
                ConsoleLogins::shared(s.clone()),
            ),
            None => (
                PendingStore::in_memory(Kind::SamlIdpRequest),
                ConsoleLogins::in_memory(),
            ),
        };
        Self { pending, logins }
    }
}

pub(super) fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/saml/idp/metadata", get(metadata))
        .route("/saml/idp/sso", get(sso_redirect).post(sso_post))
        .route("/saml/idp/resume", get(resume))
        .route("/saml/idp/denied", get(denied))
        .route("/saml/idp/init/{name}", get(idp_initiated))
        .route("/saml/idp/slo", get(slo_redirect).post(slo_post))
}

/// Our URLs, from the same base as the OAuth issuer.
pub(super) struct Urls {
    pub(super) entity_id: String,
    sso: String,
    slo: String,
}

pub(super) fn urls(config: &Config, headers: &HeaderMap) -> Urls {
    let base = issuer(config, headers);
    let metadata = format!("{base}/saml/idp/metadata");
    Urls {
        entity_id: config.idp.saml.entity_id.clone().unwrap_or(metadata),
        sso: format!("{base}/saml/idp/sso"),
        slo: format!("{base}/saml/idp/slo"),
    }
}

/// Logs and counts a refusal; `console` is a configured name or none.
pub(super) fn refused(p: &Provider, console: Option<&str>, r: &Refused, what: &str) {
    warn!(
        console = console.unwrap_or("unknown"),
        reason = r.reason.label(),
        detail = %r.detail,
        "console SAML {what} refused"
    );
    p.metrics.saml.refused(console, r.reason);
}

/// The page for a request there is no valid way to answer: nothing goes
/// to an address taken from the request.
fn error_page(reason: Reason) -> Response {
    let (status, why) = match reason {
        Reason::UnknownIssuer => (
            StatusCode::BAD_REQUEST,
            "This application is not registered here.",
        ),
        Reason::BadAcs => (
            StatusCode::BAD_REQUEST,
            "The application asked to be answered at an address that is not registered for it.",
        ),
        Reason::AccessDenied => (
            StatusCode::FORBIDDEN,
            "Your account has no access to this application.",
        ),
        Reason::IdpInitiatedOff => (
            StatusCode::FORBIDDEN,
            "Logins started here are not enabled for this application.",
        ),
        Reason::LoginMethod => (
            StatusCode::FORBIDDEN,
            "This application does not accept the way you logged in.",
        ),
        _ => (StatusCode::BAD_REQUEST, "The request is not valid."),
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

fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

pub(super) fn saml_console<'c>(
    config: &'c Config,
    name: &str,
) -> Option<(&'c ConsoleSettings, &'c SamlConsole)> {
    config
        .consoles
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| saml::saml_of(c).map(|s| (c, s)))
}

impl Web {
    /// The signing keys: the configured pair, else the provider's store's
    /// (shared by every node with PostgreSQL), re-read on reload and every
    /// `idp::KEY_POLL`.
    pub(super) async fn saml_keys(
        &self,
        config: &Config,
    ) -> Result<Arc<SamlKeys>, saml::SamlKeyError> {
        if let Some(k) = &config.idp.saml.configured {
            return Ok(k.clone());
        }
        match &self.idp {
            Some(p) => p.saml_keys(config).await,
            None => Err(saml::SamlKeyError::NoStore),
        }
    }

    async fn saml_pending(&self, a: Accepted, source: IpAddr) -> Result<String, DbError> {
        let k = random_id();
        self.saml_idp.pending.put(&k, source, a, LOGIN_WAIT).await?;
        Ok(k)
    }

    async fn take_saml_pending(&self, k: &str) -> Result<Option<Accepted>, DbError> {
        self.saml_idp.pending.take(k).await
    }

    async fn remember_login(&self, headers: &HeaderMap, login: ConsoleLogin) {
        let Some(sid) = self.cookie(headers, SESSION_COOKIE) else {
            return;
        };
        let ttl = self.config.load().web.session_ttl;
        if let Err(e) = self.saml_idp.logins.remember(&sid, login, ttl).await {
            warn!(error = %e, "console login not recorded for single logout: the shared store does not answer");
        }
    }

    /// The consoles session `sid` logged in to (none when the store does
    /// not answer: the logout then goes on without telling them).
    pub(super) async fn logins_of(&self, sid: &str) -> Vec<ConsoleLogin> {
        match self.saml_idp.logins.list(sid).await {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "console logins not read for single logout: the shared store does not answer");
                Vec::new()
            }
        }
    }

    /// Ends every session that logged in to `console` with this NameID
    /// (and one of these session indexes, when given). Returns how many.
    async fn end_console_sessions(
        &self,
        console: &str,
        name_id: &str,
        indexes: &[String],
    ) -> Result<usize, DbError> {
        self.saml_idp
            .logins
            .end_sessions(console, name_id, indexes, |sid| {
                self.sessions
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(sid)
                    .is_some()
            })
            .await
    }

    /// The session's most recent console login, taken out.
    async fn next_console_login(&self, sid: &str) -> Option<ConsoleLogin> {
        match self.saml_idp.logins.pop(sid).await {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "console logout skipped: the shared store does not answer");
                None
            }
        }
    }

    /// For `/logout`: the next console of this session to send a
    /// LogoutRequest to, and what its answer must name (the browser comes
    /// back to `/saml/idp/slo` with the console's LogoutResponse, and from
    /// there to `/logout` again).
    pub(super) async fn next_console_logout(
        &self,
        headers: &HeaderMap,
    ) -> Option<(String, saml::logout::Awaiting)> {
        let sid = self.cookie(headers, SESSION_COOKIE)?;
        let config = self.config.load_full();
        loop {
            let login = self.next_console_login(&sid).await?;
            if let Some(next) = self.console_logout_url(&config, headers, &login).await {
                return Some(next);
            }
        }
    }
}

/// GET /saml/idp/metadata: what a console (or its admin) is given.
async fn metadata(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if web.idp.is_none() {
        return no_provider();
    }
    let config = web.config.load_full();
    let keys = match web.saml_keys(&config).await {
        Ok(k) => k,
        Err(e) => return server_error("SAML keys unavailable", &e),
    };
    let u = urls(&config, &headers);
    (
        [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
        saml::metadata::idp_metadata(&u.entity_id, &u.sso, &u.slo, keys.published()),
    )
        .into_response()
}

/// GET /saml/idp/sso: the HTTP-Redirect binding.
async fn sso_redirect(
    State(web): State<Arc<Web>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let inbound = request::from_query(q.as_deref().unwrap_or(""));
    sso(web, inbound, headers, from.ip()).await
}

/// POST /saml/idp/sso: the HTTP-POST binding.
async fn sso_post(
    State(web): State<Arc<Web>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let inbound = request::from_form(&body);
    sso(web, inbound, headers, from.ip()).await
}

async fn sso(
    web: Arc<Web>,
    inbound: Result<Inbound, Refused>,
    headers: HeaderMap,
    source: IpAddr,
) -> Response {
    let Some(p) = web.idp.clone() else {
        return no_provider();
    };
    let config = web.config.load_full();
    let u = urls(&config, &headers);
    let accepted = inbound
        .map_err(|r| (None, r))
        .and_then(|i| saml::check_authn_request(&config.consoles, &i, &u.sso, SystemTime::now()));
    match accepted {
        Ok(a) => start(&web, &p, &config, a, &headers, source).await,
        Err((console, r)) => {
            refused(&p, console.as_deref(), &r, "AuthnRequest");
            error_page(r.reason)
        }
    }
}

/// Answers at once for a session the console accepts; otherwise the
/// person logs in first and comes back to `/saml/idp/resume`.
async fn start(
    web: &Web,
    p: &Provider,
    config: &Config,
    a: Accepted,
    headers: &HeaderMap,
    source: IpAddr,
) -> Response {
    let Some((console, _)) = saml_console(config, &a.console) else {
        return error_page(Reason::UnknownIssuer);
    };
    if a.force_authn {
        // A fresh login was asked for: the one this browser has ends.
        web.close_session(headers).await;
    } else if let Some(user) = web.console_session(config, console, headers).await {
        return answer(web, p, config, &a, user, headers).await;
    }
    if a.is_passive {
        return status(web, p, config, &a, headers, out::NO_PASSIVE, "no session").await;
    }
    let console_name = console.name.clone();
    let k = match web.saml_pending(a, source).await {
        Ok(k) => k,
        Err(e) => {
            warn!(console = %console_name, error = %e, "console SAML login could not start: the shared store does not answer");
            return store_unavailable();
        }
    };
    web.to_login(
        &console_name,
        source,
        format!("/saml/idp/resume?k={k}"),
        Some(format!("/saml/idp/denied?k={k}")),
    )
    .await
}

fn key_of(q: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "k")
        .map(|(_, v)| v.into_owned())
}

/// GET /saml/idp/resume?k=: back from the login page.
async fn resume(
    State(web): State<Arc<Web>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(p) = web.idp.clone() else {
        return no_provider();
    };
    let config = web.config.load_full();
    let a = match take_accepted(&web, q.as_deref()).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some((console, _)) = saml_console(&config, &a.console) else {
        return error_page(Reason::UnknownIssuer);
    };
    match web.console_session(&config, console, &headers).await {
        Some(user) => answer(&web, &p, &config, &a, user, &headers).await,
        // Logged in, but by a way this console does not take.
        None if web.current(&headers).await.is_some() => {
            let r = Refused {
                reason: Reason::LoginMethod,
                detail: "the session's login method is not allowed for this console".into(),
            };
            refused(&p, Some(&console.name), &r, "login");
            error_page(r.reason)
        }
        None => login_expired(),
    }
}

/// The accepted AuthnRequest that `?k=` names, taken out (once); else the
/// page to answer with.
async fn take_accepted(web: &Web, q: Option<&str>) -> Result<Accepted, Response> {
    let Some(k) = key_of(q) else {
        return Err(login_expired());
    };
    match web.take_saml_pending(&k).await {
        Ok(Some(a)) => Ok(a),
        Ok(None) => Err(login_expired()),
        Err(e) => {
            warn!(error = %e, "console SAML login: the shared store does not answer");
            Err(store_unavailable())
        }
    }
}

fn login_expired() -> Response {
    (
        StatusCode::BAD_REQUEST,
        page(
            "Login expired",
            "<p>This login has expired. Go back to the application and start again.</p>",
        ),
    )
        .into_response()
}

/// GET /saml/idp/denied?k=: the login page refused the person (a disabled
/// account): the console gets a RequestDenied Response.
async fn denied(
    State(web): State<Arc<Web>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(p) = web.idp.clone() else {
        return no_provider();
    };
    let config = web.config.load_full();
    let a = match take_accepted(&web, q.as_deref()).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    status(
        &web,
        &p,
        &config,
        &a,
        &headers,
        out::REQUEST_DENIED,
        "access denied",
    )
    .await
}

/// A Responder status Response (no assertion) posted to the registered ACS.
async fn status(
    web: &Web,
    p: &Provider,
    config: &Config,
    a: &Accepted,
    headers: &HeaderMap,
    second: &'static str,
    message: &'static str,
) -> Response {
    let Some((console, s)) = saml_console(config, &a.console) else {
        return error_page(Reason::UnknownIssuer);
    };
    let keys = match web.saml_keys(config).await {
        Ok(k) => k,
        Err(e) => return server_error("SAML keys unavailable", &e),
    };
    let u = urls(config, headers);
    let (acs, irt) = (s.acs_url.clone(), a.request_id.clone());
    let signed = tokio::task::spawn_blocking(move || {
        out::status_response(
            &u.entity_id,
            &acs,
            (!irt.is_empty()).then_some(irt.as_str()),
            out::RESPONDER,
            Some(second),
            message,
            SystemTime::now(),
            &keys.active,
        )
    })
    .await;
    let xml = match signed {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return server_error("SAML signing failed", &e),
        Err(e) => return server_error("SAML signing failed", &e),
    };
    let label = if second == out::NO_PASSIVE {
        "no_passive"
    } else {
        "denied"
    };
    p.metrics.saml.responded(&console.name, label);
    html(out::post_page(
        &s.acs_url,
        "SAMLResponse",
        &xml,
        a.relay_state.as_deref(),
    ))
}

/// The signed Response for `user`, or a RequestDenied one when the table
/// refuses them.
async fn answer(
    web: &Web,
    p: &Provider,
    config: &Config,
    a: &Accepted,
    user: SessionUser,
    headers: &HeaderMap,
) -> Response {
    let Some((console, s)) = saml_console(config, &a.console) else {
        return error_page(Reason::UnknownIssuer);
    };
    let subject = subject_of(&user);
    let Some(person) = web.resolve(&user).await.and_then(|r| person(&subject, &r)) else {
        refused(
            p,
            Some(&console.name),
            &Refused {
                reason: Reason::AccessDenied,
                detail: "the table refuses the user".into(),
            },
            "login",
        );
        return status(
            web,
            p,
            config,
            a,
            headers,
            out::REQUEST_DENIED,
            "access denied",
        )
        .await;
    };
    let keys = match web.saml_keys(config).await {
        Ok(k) => k,
        Err(e) => return server_error("SAML keys unavailable", &e),
    };
    let u = urls(config, headers);
    let attributes = saml::attributes(console, &person);
    let name_id = saml::name_id(s, &person);
    let session_index = crate::saml::request::new_id();
    let context = match user {
        SessionUser::Local { .. } => out::PASSWORD,
        SessionUser::External { .. } => out::UNSPECIFIED_CONTEXT,
    };
    let now = SystemTime::now();
    let session_end = now + config.web.session_ttl;
    let (sc, irt) = (s.clone(), a.request_id.clone());
    let (nid, si) = (name_id.clone(), session_index.clone());
    let signed = tokio::task::spawn_blocking(move || {
        let attrs: Vec<(&str, &str)> = attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Assertion {
            issuer: &u.entity_id,
            acs_url: &sc.acs_url,
            audience: &sc.entity_id,
            in_response_to: (!irt.is_empty()).then_some(irt.as_str()),
            name_id: &nid,
            name_id_format: sc.name_id_format,
            session_index: &si,
            authn_context: context,
            authn_instant: now,
            now,
            ttl: sc.assertion_ttl,
            session_end,
            attributes: &attrs,
        }
        .response(sc.signed, &keys.active)
    })
    .await;
    let xml = match signed {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return server_error("SAML signing failed", &e),
        Err(e) => return server_error("SAML signing failed", &e),
    };
    web.remember_login(
        headers,
        ConsoleLogin {
            console: console.name.clone(),
            name_id,
            name_id_format: s.name_id_format.to_string(),
            session_index,
        },
    )
    .await;
    p.metrics.saml.responded(&console.name, "success");
    info!(console = %console.name, user = %person.name, "SAML assertion issued to the console");
    html(out::post_page(
        &s.acs_url,
        "SAMLResponse",
        &xml,
        a.relay_state.as_deref(),
    ))
}

/// GET /saml/idp/init/{name}?RelayState=: IdP-initiated login (an
/// unsolicited Response), only for consoles that turned it on.
async fn idp_initiated(
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
    let Some((console, s)) = saml_console(&config, &name) else {
        let r = Refused {
            reason: Reason::UnknownIssuer,
            detail: "no such saml console".into(),
        };
        refused(&p, None, &r, "IdP-initiated login");
        return error_page(r.reason);
    };
    if !s.idp_initiated {
        let r = Refused {
            reason: Reason::IdpInitiatedOff,
            detail: "idp_initiated is off for this console".into(),
        };
        refused(&p, Some(&console.name), &r, "IdP-initiated login");
        return error_page(r.reason);
    }
    let relay_state = url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "RelayState")
        .map(|(_, v)| v.into_owned())
        .filter(|r| r.len() <= 1024);
    let a = Accepted {
        console: console.name.clone(),
        request_id: String::new(),
        relay_state,
        is_passive: false,
        force_authn: false,
    };
    start(&web, &p, &config, a, &headers, from.ip()).await
}

async fn slo_redirect(
    State(web): State<Arc<Web>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let inbound = request::from_query(q.as_deref().unwrap_or(""));
    slo(web, inbound, headers).await
}

async fn slo_post(State(web): State<Arc<Web>>, headers: HeaderMap, body: Bytes) -> Response {
    let inbound = request::from_form(&body);
    slo(web, inbound, headers).await
}

/// /saml/idp/slo: a console's LogoutRequest (its sessions here end, the
/// session's other consoles hear of it, and it gets a LogoutResponse), or
/// its LogoutResponse to one we sent (the logout chain goes on).
async fn slo(web: Arc<Web>, inbound: Result<Inbound, Refused>, headers: HeaderMap) -> Response {
    let Some(p) = web.idp.clone() else {
        return no_provider();
    };
    let config = web.config.load_full();
    let inbound = match inbound {
        Ok(i) => i,
        Err(r) => {
            refused(&p, None, &r, "logout");
            return error_page(r.reason);
        }
    };
    if inbound.param == "SAMLResponse" {
        return super::console_slo::on_logout_response(&web, &p, &config, inbound, &headers).await;
    }
    let u = urls(&config, &headers);
    let req = match LogoutRequest::parse(&inbound.xml) {
        Ok(r) => r,
        Err(r) => {
            refused(&p, None, &r, "LogoutRequest");
            return error_page(r.reason);
        }
    };
    let Some((console, s)) = saml::by_entity_id(&config.consoles, &req.issuer) else {
        let r = Refused {
            reason: Reason::UnknownIssuer,
            detail: format!("no saml console has entity ID {:?}", req.issuer),
        };
        refused(&p, None, &r, "LogoutRequest");
        return error_page(r.reason);
    };
    let checked =
        saml::check_signature(s, &inbound, req.signed).and_then(|()| match &req.destination {
            Some(d) if d != &u.slo => request::refuse(
                Reason::BadDestination,
                format!("Destination {d:?} is not {:?}", u.slo),
            ),
            _ => Ok(()),
        });
    if let Err(r) = checked {
        refused(&p, Some(&console.name), &r, "LogoutRequest");
        return error_page(r.reason);
    }
    // Read before the sessions end: the other consoles this browser's
    // session logged in to hear of it next.
    let others = web
        .other_consoles(&headers, &console.name, &req.name_id)
        .await;
    let ended = match web
        .end_console_sessions(&console.name, &req.name_id, &req.session_indexes)
        .await
    {
        Ok(n) => n,
        Err(e) => {
            warn!(console = %console.name, error = %e, "SAML logout from the console: the shared store does not answer");
            return store_unavailable();
        }
    };
    info!(console = %console.name, sessions = ended, "SAML logout from the console");
    if !others.is_empty() {
        web.close_session(&headers).await;
        let origin = saml::logout::Origin {
            console: console.name.clone(),
            request_id: req.id.clone(),
            relay_state: inbound.relay_state.clone(),
        };
        return super::console_slo::tell_others(&web, &config, &headers, origin, others).await;
    }
    let name = console.name.clone();
    super::console_slo::answer_console(&web, &config, &headers, &name, &req.id, inbound.relay_state)
        .await
}

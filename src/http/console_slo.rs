//! Single logout across the SAML consoles one browser logged in to, chained
//! through the browser: the session's other consoles are told, then the one
//! that asked is answered; each answer is checked before the chain goes on.

use std::time::SystemTime;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use tracing::{info, warn};

use super::console::server_error;
use super::console_saml::{refused, saml_console, urls};
use super::pages::page;
use super::session::{LOGOUT_COOKIE, SESSION_COOKIE};
use super::state::Web;
use crate::config::Config;
use crate::idp::Provider;
use crate::idp::saml::logout::{
    Awaiting, CHAIN_TTL, Chain, MAX_NOTICES, Notice, Origin, check_logout_response,
};
use crate::idp::saml::request::{Inbound, LogoutResponse};
use crate::idp::saml::{self, response as out};
use crate::store::ephemeral::ConsoleLogin;

impl Web {
    /// This browser's logout chain, if one is under way (signed, in time).
    pub(super) fn logout_chain(&self, headers: &HeaderMap) -> Option<Chain> {
        let v = self.cookie(headers, LOGOUT_COOKIE)?;
        Chain::decode(&v, SystemTime::now())
    }

    pub(super) fn chain_cookie(&self, chain: &Chain) -> HeaderValue {
        self.set_cookie(LOGOUT_COOKIE, &chain.encode(), CHAIN_TTL)
    }

    /// The URL that sends `login`'s console a signed LogoutRequest, and
    /// what its answer must name; `None` for a console gone from the
    /// configuration or without an SLO URL.
    pub(super) async fn console_logout_url(
        &self,
        config: &Config,
        headers: &HeaderMap,
        login: &ConsoleLogin,
    ) -> Option<(String, Awaiting)> {
        let (_, s) = saml_console(config, &login.console)?;
        let slo = s.slo_url.clone()?;
        let keys = match self.saml_keys(config).await {
            Ok(k) => k,
            Err(e) => {
                warn!(error = %e, "SAML keys unavailable: console logout skipped");
                return None;
            }
        };
        let u = urls(config, headers);
        let (id, xml) = out::logout_request(
            &u.entity_id,
            &slo,
            &login.name_id,
            &login.name_id_format,
            &login.session_index,
            SystemTime::now(),
        );
        info!(console = %login.console, "SAML logout sent to the console");
        // RSA signing stays off the async workers.
        let q = tokio::task::spawn_blocking(move || {
            saml::sign::redirect_query("SAMLRequest", &xml, None, &keys.active)
        })
        .await
        .ok()?;
        let sep = if slo.contains('?') { '&' } else { '?' };
        let awaiting = Awaiting {
            console: login.console.clone(),
            id,
        };
        Some((format!("{slo}{sep}{q}"), awaiting))
    }

    /// The other consoles this browser's session logged in to, when that
    /// session is the one `console` asks to end (it logged in there as
    /// `name_id`). Read before the session's logins are forgotten.
    pub(super) async fn other_consoles(
        &self,
        headers: &HeaderMap,
        console: &str,
        name_id: &str,
    ) -> Vec<ConsoleLogin> {
        let Some(sid) = self.cookie(headers, SESSION_COOKIE) else {
            return Vec::new();
        };
        let mine = self.logins_of(&sid).await;
        if !mine
            .iter()
            .any(|l| l.console == console && l.name_id == name_id)
        {
            return Vec::new();
        }
        mine.into_iter().filter(|l| l.console != console).collect()
    }
}

/// A console's LogoutRequest ended this browser's session, which had also
/// logged in to `others`: tell them, then answer the console.
pub(super) async fn tell_others(
    web: &Web,
    config: &Config,
    headers: &HeaderMap,
    origin: Origin,
    others: Vec<ConsoleLogin>,
) -> Response {
    let mut rest: Vec<Notice> = others
        .into_iter()
        .map(|l| Notice {
            console: l.console,
            name_id: l.name_id,
            name_id_format: l.name_id_format,
            session_index: l.session_index,
        })
        .collect();
    let mut chain = Chain::of_console(origin, Vec::new(), SystemTime::now());
    // The chain rides in a cookie: what does not fit is not told.
    while !rest.is_empty() && chain.rest.len() < MAX_NOTICES {
        chain.rest.push(rest.remove(0));
        if !chain.fits() {
            rest.push(chain.rest.pop().expect("just pushed"));
            break;
        }
    }
    if !rest.is_empty() {
        warn!(
            untold = rest.len(),
            "SAML logout: more consoles than the logout chain carries; these are not told"
        );
    }
    step(web, config, headers, chain).await
}

/// Sends the next console in the chain its LogoutRequest, or, when none is
/// left, answers the console that started it.
async fn step(web: &Web, config: &Config, headers: &HeaderMap, mut chain: Chain) -> Response {
    while let Some(n) = chain.rest.pop() {
        let Some(format) = saml::settings::name_id_format(&n.name_id_format) else {
            continue;
        };
        let login = ConsoleLogin {
            console: n.console,
            name_id: n.name_id,
            name_id_format: format.to_string(),
            session_index: n.session_index,
        };
        if let Some((to, awaiting)) = web.console_logout_url(config, headers, &login).await {
            chain.awaiting = Some(awaiting);
            // AppendHeaders: an array of pairs would keep only the last.
            return (
                AppendHeaders([
                    (header::SET_COOKIE, web.chain_cookie(&chain)),
                    (header::SET_COOKIE, Web::clear_cookie(SESSION_COOKIE)),
                ]),
                Redirect::to(&to),
            )
                .into_response();
        }
    }
    let Some(origin) = chain.origin else {
        return Redirect::to("/login").into_response();
    };
    let clear = Web::clear_cookie(LOGOUT_COOKIE);
    let mut r = answer_console(
        web,
        config,
        headers,
        &origin.console,
        &origin.request_id,
        origin.relay_state,
    )
    .await;
    r.headers_mut().append(header::SET_COOKIE, clear);
    r
}

/// The LogoutResponse (Success) to a console's LogoutRequest `request_id`,
/// by redirect to its SLO URL; a page when it has none.
pub(super) async fn answer_console(
    web: &Web,
    config: &Config,
    headers: &HeaderMap,
    console: &str,
    request_id: &str,
    relay_state: Option<String>,
) -> Response {
    let clear = [(header::SET_COOKIE, Web::clear_cookie(SESSION_COOKIE))];
    let Some(slo) = saml_console(config, console).and_then(|(_, s)| s.slo_url.clone()) else {
        return (clear, page("Logged out", "<p>You are logged out.</p>")).into_response();
    };
    let keys = match web.saml_keys(config).await {
        Ok(k) => k,
        Err(e) => return server_error("SAML keys unavailable", &e),
    };
    let u = urls(config, headers);
    let xml = out::logout_response(
        &u.entity_id,
        &slo,
        request_id,
        out::SUCCESS,
        SystemTime::now(),
    );
    let q = match tokio::task::spawn_blocking(move || {
        saml::sign::redirect_query("SAMLResponse", &xml, relay_state.as_deref(), &keys.active)
    })
    .await
    {
        Ok(q) => q,
        Err(e) => return server_error("SAML signing failed", &e),
    };
    let sep = if slo.contains('?') { '&' } else { '?' };
    (clear, Redirect::to(&format!("{slo}{sep}{q}"))).into_response()
}

/// /saml/idp/slo with a SAMLResponse: a console's answer to the
/// LogoutRequest this browser's chain sent it. Checked, then the chain goes
/// on; refused, it stops here (and is counted and logged).
pub(super) async fn on_logout_response(
    web: &Web,
    p: &Provider,
    config: &Config,
    inbound: Inbound,
    headers: &HeaderMap,
) -> Response {
    let chain = web.logout_chain(headers);
    let checked = LogoutResponse::parse(&inbound.xml)
        .map_err(|r| (None, r))
        .and_then(|r| {
            let c = check_logout_response(
                &config.consoles,
                &inbound,
                &r,
                chain.as_ref().and_then(|c| c.awaiting.as_ref()),
            )?;
            Ok((c, r.success))
        });
    let (console, success) = match checked {
        Ok(c) => c,
        Err((console, r)) => {
            refused(p, console.as_deref(), &r, "LogoutResponse");
            if chain.is_none() {
                return Redirect::to("/").into_response();
            }
            return (
                StatusCode::BAD_REQUEST,
                page(
                    "Logout not confirmed",
                    &format!(
                        "<p>The application's answer to the logout was not accepted ({}).</p>\
                         <p><a href=\"/logout\">Log out here</a></p>",
                        r.reason.label()
                    ),
                ),
            )
                .into_response();
        }
    };
    info!(console = %console, success, "SAML logout answered by the console");
    let Some(mut chain) = chain else {
        return Redirect::to("/").into_response();
    };
    chain.awaiting = None;
    if chain.sid.is_some() {
        // The person's own `/logout`: its next console, or the end.
        return if super::pages::logout_under_way(web, headers) {
            super::pages::continue_logout(web, headers).await
        } else {
            Redirect::to("/").into_response()
        };
    }
    step(web, config, headers, chain).await
}

/// The chain of `/logout` for this browser's session, awaiting `a`.
pub(super) fn session_chain(web: &Web, headers: &HeaderMap, a: Awaiting) -> Option<HeaderValue> {
    let sid = web.cookie(headers, SESSION_COOKIE)?;
    Some(web.chain_cookie(&Chain::of_session(sid, a, SystemTime::now())))
}

/// The session a `/logout` chain under way ends, if any.
pub(super) fn chain_session(web: &Web, headers: &HeaderMap) -> Option<String> {
    web.logout_chain(headers).and_then(|c| c.sid)
}

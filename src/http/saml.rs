//! The SAML 2.0 service provider's routes: start (a fresh AuthnRequest),
//! the assertion consumer service, our SP metadata, and the return from
//! single logout.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tracing::warn;

use super::pages::{idp_unavailable, login_refused};
use super::session::{SAML_COOKIE, SamlSession, store_unavailable};
use super::state::{Via, Web};
use crate::identity::Profile;

/// GET /auth/saml/{provider}/start: to the IdP with a fresh AuthnRequest
/// (HTTP-Redirect binding), its ID bound to this browser.
pub(super) async fn saml_start(
    State(web): State<Arc<Web>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
) -> Response {
    let config = web.config.load_full();
    let Some(provider) = web.saml_provider(&config, &name) else {
        return (StatusCode::NOT_FOUND, "no such identity provider").into_response();
    };
    match provider.begin(&web.saml_state, from.ip()).await {
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
        Err(crate::saml::IdpError::Store(e)) => {
            warn!(provider = %name, error = %e, "saml login could not start: the shared store does not answer");
            web.saml_metrics.login(&name, "store_unavailable");
            store_unavailable()
        }
        Err(e) => {
            warn!(provider = %name, error = %e, "saml login could not start");
            web.saml_metrics.login(&name, "idp_unavailable");
            idp_unavailable()
        }
    }
}

#[derive(Deserialize)]
pub(super) struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: Option<String>,
}

/// POST /auth/saml/{provider}/acs: the IdP's Response (HTTP-POST binding)
/// verified, the user created or updated with their groups, a session.
pub(super) async fn saml_acs(
    State(web): State<Arc<Web>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(f): Form<AcsForm>,
) -> Response {
    let refused = |reason: &str| login_refused(SAML_COOKIE, Some(reason));
    let config = web.config.load_full();
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
            web.saml_metrics.login(&name, reason);
            if r.reason == crate::saml::Reason::Store {
                return store_unavailable();
            }
            web.saml_metrics.verify_failure(&name, reason);
            return refused(reason);
        }
    };
    let external = Profile {
        provider: &name,
        subject: &v.name_id,
        username: &v.username,
        email: v.email.as_deref(),
        full_name: v.full_name.as_deref(),
        groups: v.groups.as_deref(),
    };
    let who = match web.admit_external(Via::Saml, &external).await {
        Ok(who) => who,
        Err(r) => return r,
    };
    web.saml_metrics.login(&name, "success");
    let session = match web
        .open_session(
            who,
            Some(SamlSession {
                provider: name,
                name_id: v.name_id,
                name_id_format: v.name_id_format,
                session_index: v.session_index,
            }),
        )
        .await
    {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut h = HeaderMap::new();
    h.append(header::SET_COOKIE, session);
    h.append(header::SET_COOKIE, Web::clear_cookie(SAML_COOKIE));
    let to = web.after_login(&headers).await;
    (h, Redirect::to(&to)).into_response()
}

/// GET /auth/saml/{provider}/metadata: our SP metadata for the IdP admin.
pub(super) async fn saml_metadata(
    State(web): State<Arc<Web>>,
    Path(name): Path<String>,
) -> Response {
    let config = web.config.load_full();
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
pub(super) async fn saml_slo() -> Redirect {
    Redirect::to("/login")
}

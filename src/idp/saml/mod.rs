//! portcullis as the SAML 2.0 identity provider for appliance consoles in
//! `saml` mode: AuthnRequests checked against the console registry, signed
//! Responses whose attributes come from the same Grant as the OAuth claims,
//! single logout both ways. Pure; the routes are in `http::console_saml`.
//!
//! - [`request`]: bindings and parsers for what consoles send (hostile input);
//! - [`response`]: Responses, logout messages, the POST-binding page;
//! - [`sign`]: the enveloped signer on the project's exclusive c14n;
//! - [`keys`]: the signing key and certificate, and their rollover;
//! - [`metadata`]: ours, and a console's SP metadata;
//! - [`settings`]: a `saml`-mode console's settings;
//! - [`sp_fetch`]: a console's SP metadata from its URL, and its last good copy;
//! - [`logout`]: the logout chain's state and the checks of a console's
//!   LogoutResponse.

pub mod keys;
pub mod logout;
pub mod metadata;
pub mod request;
pub mod response;
pub mod settings;
pub mod sign;
pub mod sp_fetch;

use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

pub use keys::{SamlKeyError, SamlKeys, SigningKey};
pub use request::{Inbound, Reason, Refused};
pub use settings::{SamlConsole, Signed};

use super::oauth::Person;
use super::settings::{ConsoleSettings, Mode};
use crate::saml::metadata::POST;

type Labels = Vec<(String, String)>;

/// `portcullis_console_saml_refusals_total{console,reason}` and
/// `portcullis_console_saml_responses_total{console,status}`. `console` is
/// a configured name or `unknown`; `reason` and `status` are closed sets.
#[derive(Debug, Default, Clone)]
pub struct SamlMetrics {
    refusals: Family<Labels, Counter>,
    responses: Family<Labels, Counter>,
}

impl SamlMetrics {
    /// Registers these (shared) counters with `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "console_saml_refusals",
            "SAML requests from consoles refused, by console and reason",
            self.refusals.clone(),
        );
        registry.register(
            "console_saml_responses",
            "SAML Responses sent to consoles, by console and status",
            self.responses.clone(),
        );
    }

    pub fn refused(&self, console: Option<&str>, reason: Reason) {
        self.refusals
            .get_or_create(&vec![
                ("console".into(), console.unwrap_or("unknown").into()),
                ("reason".into(), reason.label().into()),
            ])
            .inc();
    }

    /// `status`: `success`, `denied` or `no_passive`.
    pub fn responded(&self, console: &str, status: &'static str) {
        self.responses
            .get_or_create(&vec![
                ("console".into(), console.into()),
                ("status".into(), status.into()),
            ])
            .inc();
    }
}

/// The console of a `saml`-mode registry entry.
pub fn saml_of(c: &ConsoleSettings) -> Option<&SamlConsole> {
    c.saml.as_deref().filter(|_| c.mode == Mode::Saml)
}

/// The `saml`-mode console whose entity ID is `entity_id`.
pub fn by_entity_id<'c>(
    consoles: &'c [ConsoleSettings],
    entity_id: &str,
) -> Option<(&'c ConsoleSettings, &'c SamlConsole)> {
    consoles.iter().find_map(|c| {
        saml_of(c)
            .filter(|s| s.entity_id == entity_id)
            .map(|s| (c, s))
    })
}

/// An AuthnRequest that passed every check, with what the answer needs
/// (kept in the shared store while the person logs in, hence serde).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Accepted {
    pub console: String,
    pub request_id: String,
    pub relay_state: Option<String>,
    pub is_passive: bool,
    pub force_authn: bool,
}

/// How far a request's IssueInstant may be off, and how old it may be.
const SKEW: Duration = Duration::from_secs(180);
const MAX_AGE: Duration = Duration::from_secs(600);

/// Checks a decoded AuthnRequest against the registry. `sso_url`: where we
/// receive it (its Destination, when given, must be this). On refusal,
/// the console it came from when one was identified.
pub fn check_authn_request(
    consoles: &[ConsoleSettings],
    inbound: &Inbound,
    sso_url: &str,
    now: SystemTime,
) -> Result<Accepted, (Option<String>, Refused)> {
    let no = |c: Option<&ConsoleSettings>, r: Refused| (c.map(|c| c.name.clone()), r);
    if inbound.param != "SAMLRequest" {
        return Err(no(
            None,
            Refused {
                reason: Reason::Unsupported,
                detail: "a SAMLResponse sent to the SSO endpoint".into(),
            },
        ));
    }
    let req = request::AuthnRequest::parse(&inbound.xml).map_err(|r| no(None, r))?;
    let Some((console, saml)) = by_entity_id(consoles, &req.issuer) else {
        return Err(no(
            None,
            Refused {
                reason: Reason::UnknownIssuer,
                detail: format!("no saml console has entity ID {:?}", req.issuer),
            },
        ));
    };
    let fail = |reason, detail: String| Err(no(Some(console), Refused { reason, detail }));
    check_signature(saml, inbound, req.signed).map_err(|r| no(Some(console), r))?;
    if let Some(acs) = &req.acs_url
        && acs != &saml.acs_url
    {
        return fail(
            Reason::BadAcs,
            format!("AssertionConsumerServiceURL {acs:?} is not the registered one"),
        );
    }
    if let Some(i) = &req.acs_index
        && i != "0"
    {
        return fail(
            Reason::BadAcs,
            format!("AssertionConsumerServiceIndex {i:?}: only 0 (the registered ACS) exists"),
        );
    }
    if let Some(b) = &req.protocol_binding
        && b != POST
    {
        return fail(
            Reason::Unsupported,
            format!("ProtocolBinding {b:?}: Responses go by HTTP-POST"),
        );
    }
    if let Some(d) = &req.destination
        && d != sso_url
    {
        return fail(
            Reason::BadDestination,
            format!("Destination {d:?} is not {sso_url:?}"),
        );
    }
    request::fresh(req.issue_instant, now, SKEW, MAX_AGE).map_err(|r| no(Some(console), r))?;
    Ok(Accepted {
        console: console.name.clone(),
        request_id: req.id,
        relay_state: inbound.relay_state.clone(),
        is_passive: req.is_passive,
        force_authn: req.force_authn,
    })
}

/// A request's signature: checked whenever the console has a certificate
/// and the request is signed; required when the console says so.
pub fn check_signature(
    saml: &SamlConsole,
    inbound: &Inbound,
    enveloped: bool,
) -> Result<(), Refused> {
    let signed = inbound.redirect_sig.is_some() || enveloped;
    if !signed {
        if saml.require_signed_requests {
            return request::refuse(Reason::Unsigned, "the console must sign its requests");
        }
        return Ok(());
    }
    if saml.certs.is_empty() {
        if saml.require_signed_requests {
            return request::refuse(Reason::BadSignature, "no certificate to check with");
        }
        // Nothing to check with: the request is taken as if unsigned.
        return Ok(());
    }
    match &inbound.redirect_sig {
        Some(s) => s.verify(&saml.certs),
        None => request::verify_enveloped(&inbound.xml, &saml.certs),
    }
}

/// The attributes `c` receives for `p`: the same values as the OAuth
/// claims (username, roles, access group), under the console's names;
/// empty values are left out so the console falls back to its own.
pub fn attributes(c: &ConsoleSettings, p: &Person) -> Vec<(String, String)> {
    let mut m = serde_json::Map::new();
    super::oauth::console_claims(c, p, &mut m);
    let order = [&c.username_claim, &c.roles_claim, &c.aag_claim];
    order
        .iter()
        .filter_map(|k| {
            m.get(k.as_str())
                .and_then(|v| v.as_str())
                .map(|v| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// The NameID value for `p` at this console.
pub fn name_id(s: &SamlConsole, p: &Person) -> String {
    use settings::NameIdFrom;
    match s.name_id_from {
        NameIdFrom::Email => p.email.clone().unwrap_or_else(|| p.name.clone()),
        NameIdFrom::Name => p.name.clone(),
        NameIdFrom::Subject => p.sub.clone(),
        NameIdFrom::Random => crate::saml::request::new_id(),
    }
}

/// For `portcullis explain`: what a `saml`-mode console would receive for
/// `p` (where the Response goes, what is signed, the NameID and the
/// attributes); `None` for a console in another mode.
pub fn explain_console(c: &ConsoleSettings, p: &Person) -> Option<String> {
    use std::fmt::Write as _;
    let s = saml_of(c)?;
    let mut out = format!(
        "console `{}` (saml, entity ID {}):\n  Response posted to {} (signed: {})\n",
        c.name,
        s.entity_id,
        s.acs_url,
        s.signed.as_str()
    );
    let format = s.name_id_format.rsplit(':').next().unwrap_or_default();
    let value = match s.name_id_from {
        settings::NameIdFrom::Random => "(random per login)".to_string(),
        _ => name_id(s, p),
    };
    let _ = writeln!(out, "  NameID ({format}) = {value}");
    for (k, v) in attributes(c, p) {
        let _ = writeln!(out, "  attribute {k} = {v}");
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACS: &str = "http://127.0.0.1:9602/saml/acs";
    const SSO: &str = "http://idp/saml/idp/sso";

    fn inbound(attrs: &str, issuer: &str, at: SystemTime) -> Inbound {
        Inbound {
            xml: format!(
                "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
                 xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_q\" Version=\"2.0\" \
                 IssueInstant=\"{}\" {attrs}><saml:Issuer>{issuer}</saml:Issuer></samlp:AuthnRequest>",
                crate::saml::time::format(at)
            ),
            relay_state: Some("r".into()),
            redirect_sig: None,
            param: "SAMLRequest",
        }
    }

    #[test]
    fn authn_requests_are_checked_against_the_registry() {
        let config = crate::testkit::demo_config();
        let now = SystemTime::now();
        let check = |attrs: &str, issuer: &str, at: SystemTime| {
            check_authn_request(&config.consoles, &inbound(attrs, issuer, at), SSO, now)
        };
        let ok = check(
            &format!("AssertionConsumerServiceURL=\"{ACS}\" Destination=\"{SSO}\""),
            ACS,
            now,
        )
        .unwrap();
        assert_eq!(ok.console, "orchestrator-saml");
        assert_eq!(
            (ok.request_id.as_str(), ok.relay_state.as_deref()),
            ("_q", Some("r"))
        );
        // No ACS URL in the request: the registered one is used.
        assert!(check("", ACS, now).is_ok());
        let reason = |attrs: &str, issuer: &str, at| check(attrs, issuer, at).unwrap_err().1.reason;
        assert_eq!(
            reason("AssertionConsumerServiceURL=\"http://evil/acs\"", ACS, now),
            Reason::BadAcs
        );
        assert_eq!(
            reason("AssertionConsumerServiceIndex=\"3\"", ACS, now),
            Reason::BadAcs
        );
        assert_eq!(
            reason(
                "ProtocolBinding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact\"",
                ACS,
                now
            ),
            Reason::Unsupported
        );
        assert_eq!(
            reason("Destination=\"http://other/sso\"", ACS, now),
            Reason::BadDestination
        );
        assert_eq!(reason("", "http://stranger", now), Reason::UnknownIssuer);
        let hour = Duration::from_secs(3600);
        assert_eq!(reason("", ACS, now - hour), Reason::Stale);
        assert_eq!(reason("", ACS, now + hour), Reason::Stale);
        // The OAuth console is no SAML console, whatever its client id.
        assert_eq!(reason("", "orchestrator", now), Reason::UnknownIssuer);
    }

    #[test]
    fn explain_shows_what_the_demo_saml_console_receives() {
        let config = crate::testkit::demo_config();
        let c = config
            .consoles
            .iter()
            .find(|c| c.name == "orchestrator-saml")
            .unwrap();
        let p = Person {
            sub: "bob".into(),
            name: "bob".into(),
            email: Some("bob@example.net".into()),
            full_name: None,
            rbac_roles: "Helpdesk".into(),
            rbac_aag: "Asia-Admin".into(),
        };
        let text = explain_console(c, &p).unwrap();
        for want in [
            "Response posted to http://127.0.0.1:9602/saml/acs (signed: both)",
            "NameID (unspecified) = bob@example.net",
            "attribute ec-name = bob@example.net",
            "attribute ec-roles = Helpdesk",
            "attribute ec-aag = Asia-Admin",
        ] {
            assert!(text.contains(want), "{want:?} in {text}");
        }
        let oauth = config
            .consoles
            .iter()
            .find(|c| c.name == "orchestrator")
            .unwrap();
        assert!(explain_console(oauth, &p).is_none());
    }
}

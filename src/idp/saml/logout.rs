//! The logout chain's state, carried by the browser in a signed cookie (any
//! node sharing the cookie key goes on with it; no node keeps it), and the
//! checks a console's LogoutResponse must pass before the chain goes on.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::request::{Inbound, LogoutResponse, Reason, Refused, refuse, verify_enveloped};
use super::{SamlConsole, by_entity_id};
use crate::idp::ConsoleSettings;

/// How long a chain may take, from one console to the next.
pub const CHAIN_TTL: Duration = Duration::from_secs(300);
/// Consoles a console-initiated chain tells at most: they ride in a cookie.
pub const MAX_NOTICES: usize = 8;
/// The longest encoded chain accepted back (a cookie holds some 4 kB).
const MAX_ENCODED: usize = 3_600;

/// The LogoutRequest sent last, which the console's answer must name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Awaiting {
    pub console: String,
    pub id: String,
}

/// A console that sent a LogoutRequest: answered when the chain ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub console: String,
    pub request_id: String,
    pub relay_state: Option<String>,
}

/// A console still to be told, with what its LogoutRequest must name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub console: String,
    pub name_id: String,
    pub name_id_format: String,
    pub session_index: String,
}

/// A logout under way in one browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    /// Started by the person at `/logout`: the session it ends last (it
    /// must be the browser's own), whose consoles the server lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Started by a console: who to answer at the end (the session has
    /// already ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// With `origin`: the consoles still to tell.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rest: Vec<Notice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting: Option<Awaiting>,
    /// Unix seconds after which the chain is void.
    pub until: u64,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Chain {
    /// The chain of `/logout` for session `sid`, now awaiting `awaiting`.
    pub fn of_session(sid: String, awaiting: Awaiting, now: SystemTime) -> Self {
        Self {
            sid: Some(sid),
            origin: None,
            rest: Vec::new(),
            awaiting: Some(awaiting),
            until: unix(now + CHAIN_TTL),
        }
    }

    /// The chain a console's LogoutRequest starts.
    pub fn of_console(origin: Origin, rest: Vec<Notice>, now: SystemTime) -> Self {
        Self {
            sid: None,
            origin: Some(origin),
            rest,
            awaiting: None,
            until: unix(now + CHAIN_TTL),
        }
    }

    /// A cookie-safe text (to be signed by the web side).
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// The chain from its (verified) cookie text; `None` if malformed or
    /// out of time.
    pub fn decode(text: &str, now: SystemTime) -> Option<Self> {
        if text.len() > MAX_ENCODED {
            return None;
        }
        let json = URL_SAFE_NO_PAD.decode(text).ok()?;
        let c: Self = serde_json::from_slice(&json).ok()?;
        (c.until >= unix(now) && c.rest.len() <= MAX_NOTICES).then_some(c)
    }

    /// Whether the encoded chain fits a cookie.
    pub fn fits(&self) -> bool {
        self.encode().len() <= MAX_ENCODED
    }
}

/// A LogoutResponse's signature: with the console's certificate
/// configured, it must be signed (redirect or enveloped) and verify; a
/// console without one is taken at its word (as for its requests).
pub fn check_response_signature(
    saml: &SamlConsole,
    inbound: &Inbound,
    enveloped: bool,
) -> Result<(), Refused> {
    if saml.certs.is_empty() {
        return Ok(());
    }
    match &inbound.redirect_sig {
        Some(s) => s.verify(&saml.certs),
        None if enveloped => verify_enveloped(&inbound.xml, &saml.certs),
        None => refuse(
            Reason::Unsigned,
            "an unsigned LogoutResponse from a console with a certificate",
        ),
    }
}

/// Checks a console's LogoutResponse against the LogoutRequest this chain
/// sent: from that console, answering that ID, signed when it can be.
/// Returns the console's name (or, refused, the console it claims to be
/// when that is a known one).
pub fn check_logout_response(
    consoles: &[ConsoleSettings],
    inbound: &Inbound,
    resp: &LogoutResponse,
    awaiting: Option<&Awaiting>,
) -> Result<String, (Option<String>, Refused)> {
    let Some((console, saml)) = by_entity_id(consoles, &resp.issuer) else {
        return Err((
            None,
            Refused {
                reason: Reason::UnknownIssuer,
                detail: format!("no saml console has entity ID {:?}", resp.issuer),
            },
        ));
    };
    let name = || Some(console.name.clone());
    check_response_signature(saml, inbound, resp.signed).map_err(|r| (name(), r))?;
    let Some(a) = awaiting else {
        return Err((
            name(),
            Refused {
                reason: Reason::Unexpected,
                detail: "no logout sent to this console is awaiting an answer".into(),
            },
        ));
    };
    if a.console != console.name {
        return Err((
            name(),
            Refused {
                reason: Reason::Unexpected,
                detail: format!("the logout awaits console {:?}", a.console),
            },
        ));
    }
    let irt = resp.in_response_to.as_deref().unwrap_or("");
    let same: bool = subtle::ConstantTimeEq::ct_eq(irt.as_bytes(), a.id.as_bytes()).into();
    if !same {
        return Err((
            name(),
            Refused {
                reason: Reason::Unexpected,
                detail: format!("InResponseTo {irt:?} is not the LogoutRequest sent"),
            },
        ));
    }
    Ok(console.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idp::saml::keys::SigningKey;
    use crate::idp::saml::request::from_query;
    use crate::idp::saml::response::logout_response;
    use crate::idp::saml::sign::redirect_query;

    const SP: &str = "http://127.0.0.1:9602/saml/acs";

    #[test]
    fn a_chain_round_trips_and_expires() {
        let now = SystemTime::now();
        let c = Chain::of_console(
            Origin {
                console: "a".into(),
                request_id: "_r".into(),
                relay_state: Some("x".into()),
            },
            vec![Notice {
                console: "b".into(),
                name_id: "alice@example.net".into(),
                name_id_format: "f".into(),
                session_index: "_s".into(),
            }],
            now,
        );
        let t = c.encode();
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        );
        assert_eq!(Chain::decode(&t, now), Some(c));
        assert_eq!(Chain::decode(&t, now + CHAIN_TTL * 2), None);
        assert_eq!(Chain::decode("!!", now), None);
        let s = Chain::of_session(
            "sid".into(),
            Awaiting {
                console: "b".into(),
                id: "_1".into(),
            },
            now,
        );
        assert_eq!(
            Chain::decode(&s.encode(), now).unwrap().sid.as_deref(),
            Some("sid")
        );
    }

    /// The demo config with the SAML console given `cert`.
    fn consoles(cert: Option<&SigningKey>) -> Vec<ConsoleSettings> {
        let mut cs = crate::testkit::demo_config().consoles;
        for c in &mut cs {
            if let Some(s) = &mut c.saml {
                let s = std::sync::Arc::make_mut(s);
                s.certs = cert.map(|k| vec![k.cert.clone()]).unwrap_or_default();
            }
        }
        cs
    }

    fn answer(irt: &str, key: Option<&SigningKey>) -> (Inbound, LogoutResponse) {
        let xml = logout_response(
            SP,
            "http://idp/saml/idp/slo",
            irt,
            crate::idp::saml::response::SUCCESS,
            SystemTime::now(),
        );
        let q = match key {
            Some(k) => redirect_query("SAMLResponse", &xml, None, k),
            None => crate::saml::request::redirect_url("http://x/", &xml, None, None)
                .split_once('?')
                .unwrap()
                .1
                .replace("SAMLRequest", "SAMLResponse"),
        };
        let i = from_query(&q).unwrap();
        let r = LogoutResponse::parse(&i.xml).unwrap();
        (i, r)
    }

    #[test]
    fn only_the_awaited_signed_answer_goes_on() {
        let now = SystemTime::now();
        let k = SigningKey::generate("sp", now).unwrap().0;
        let other = SigningKey::generate("other", now).unwrap().0;
        let signed = consoles(Some(&k));
        let a = Awaiting {
            console: "orchestrator-saml".into(),
            id: "_sent".into(),
        };
        let check = |cs: &[ConsoleSettings], irt: &str, key: Option<&SigningKey>, a| {
            let (i, r) = answer(irt, key);
            check_logout_response(cs, &i, &r, a).map_err(|e| e.1.reason)
        };
        assert_eq!(
            check(&signed, "_sent", Some(&k), Some(&a)).unwrap(),
            "orchestrator-saml"
        );
        assert_eq!(
            check(&signed, "_sent", None, Some(&a)),
            Err(Reason::Unsigned)
        );
        assert_eq!(
            check(&signed, "_sent", Some(&other), Some(&a)),
            Err(Reason::BadSignature)
        );
        assert_eq!(
            check(&signed, "_other", Some(&k), Some(&a)),
            Err(Reason::Unexpected)
        );
        assert_eq!(
            check(&signed, "_sent", Some(&k), None),
            Err(Reason::Unexpected)
        );
        let b = Awaiting {
            console: "orchestrator".into(),
            id: "_sent".into(),
        };
        assert_eq!(
            check(&signed, "_sent", Some(&k), Some(&b)),
            Err(Reason::Unexpected)
        );
        // Without a certificate there is nothing to check a signature with.
        let plain = consoles(None);
        assert!(check(&plain, "_sent", None, Some(&a)).is_ok());
        assert_eq!(check(&plain, "_x", None, Some(&a)), Err(Reason::Unexpected));
    }
}

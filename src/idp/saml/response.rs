//! What the IdP sends: the Response (an assertion with the person's
//! attributes, or a refusal status and no assertion), the LogoutRequest
//! that starts a logout at a console, the LogoutResponse that answers one,
//! and the auto-submitting page of the HTTP-POST binding.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use super::keys::SigningKey;
use super::settings::Signed;
use super::sign::{SignError, sign_element};
use crate::saml::metadata::escape;
use crate::saml::request::new_id;
use crate::saml::time::format;
use crate::saml::xml::{NS_SAML, NS_SAMLP};

pub const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
pub const RESPONDER: &str = "urn:oasis:names:tc:SAML:2.0:status:Responder";
pub const REQUESTER: &str = "urn:oasis:names:tc:SAML:2.0:status:Requester";
pub const REQUEST_DENIED: &str = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied";
pub const NO_PASSIVE: &str = "urn:oasis:names:tc:SAML:2.0:status:NoPassive";
pub const PASSWORD: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport";
pub const UNSPECIFIED_CONTEXT: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified";
const BASIC: &str = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic";
/// Assertions are valid from this long before they are made, for consoles
/// whose clock runs a little behind.
const SKEW: Duration = Duration::from_secs(60);

/// One successful login, as the console will read it.
#[derive(Debug, Clone)]
pub struct Assertion<'a> {
    /// Our entity ID.
    pub issuer: &'a str,
    /// The registered ACS URL: Destination and Recipient.
    pub acs_url: &'a str,
    /// The console's entity ID: the Audience.
    pub audience: &'a str,
    /// `None` for an IdP-initiated (unsolicited) Response.
    pub in_response_to: Option<&'a str>,
    pub name_id: &'a str,
    pub name_id_format: &'a str,
    pub session_index: &'a str,
    pub authn_context: &'a str,
    pub authn_instant: SystemTime,
    pub now: SystemTime,
    /// How long the assertion may be presented.
    pub ttl: Duration,
    /// When the console's session must end at the latest.
    pub session_end: SystemTime,
    /// Attribute name and value, in order; empty values are left out.
    pub attributes: &'a [(&'a str, &'a str)],
}

fn irt_attr(irt: Option<&str>) -> String {
    irt.map(|i| format!(" InResponseTo=\"{}\"", escape(i)))
        .unwrap_or_default()
}

impl Assertion<'_> {
    /// The Response XML, signed as `signed` says.
    pub fn response(&self, signed: Signed, key: &SigningKey) -> Result<String, SignError> {
        let (rid, aid) = (new_id(), new_id());
        let t = format(self.now);
        let irt = irt_attr(self.in_response_to);
        let until = format(self.now + self.ttl);
        let mut attrs = String::new();
        for (n, v) in self.attributes.iter().filter(|(_, v)| !v.is_empty()) {
            let _ = write!(
                attrs,
                "<saml:Attribute Name=\"{}\" NameFormat=\"{BASIC}\">\
                 <saml:AttributeValue xsi:type=\"xs:string\">{}</saml:AttributeValue></saml:Attribute>",
                escape(n),
                escape(v)
            );
        }
        let statement = if attrs.is_empty() {
            String::new()
        } else {
            format!("<saml:AttributeStatement>{attrs}</saml:AttributeStatement>")
        };
        let assertion = format!(
            "<saml:Assertion xmlns:saml=\"{NS_SAML}\" xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" \
             xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" ID=\"{aid}\" Version=\"2.0\" \
             IssueInstant=\"{t}\"><saml:Issuer>{iss}</saml:Issuer><saml:Subject>\
             <saml:NameID Format=\"{nf}\">{nid}</saml:NameID>\
             <saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\">\
             <saml:SubjectConfirmationData{irt} NotOnOrAfter=\"{until}\" Recipient=\"{acs}\"/>\
             </saml:SubjectConfirmation></saml:Subject>\
             <saml:Conditions NotBefore=\"{nb}\" NotOnOrAfter=\"{until}\"><saml:AudienceRestriction>\
             <saml:Audience>{aud}</saml:Audience></saml:AudienceRestriction></saml:Conditions>\
             <saml:AuthnStatement AuthnInstant=\"{ai}\" SessionIndex=\"{si}\" SessionNotOnOrAfter=\"{se}\">\
             <saml:AuthnContext><saml:AuthnContextClassRef>{ctx}</saml:AuthnContextClassRef>\
             </saml:AuthnContext></saml:AuthnStatement>{statement}</saml:Assertion>",
            iss = escape(self.issuer),
            nf = escape(self.name_id_format),
            nid = escape(self.name_id),
            acs = escape(self.acs_url),
            nb = format(self.now.checked_sub(SKEW).unwrap_or(self.now)),
            aud = escape(self.audience),
            ai = format(self.authn_instant),
            si = escape(self.session_index),
            se = format(self.session_end),
            ctx = escape(self.authn_context),
        );
        let mut doc = format!(
            "<samlp:Response xmlns:samlp=\"{NS_SAMLP}\" xmlns:saml=\"{NS_SAML}\" ID=\"{rid}\" \
             Version=\"2.0\" IssueInstant=\"{t}\" Destination=\"{acs}\"{irt}>\
             <saml:Issuer>{iss}</saml:Issuer><samlp:Status><samlp:StatusCode Value=\"{SUCCESS}\"/>\
             </samlp:Status>{assertion}</samlp:Response>",
            acs = escape(self.acs_url),
            iss = escape(self.issuer),
        );
        if signed.assertion() {
            doc = sign_element(&doc, &aid, key, &["xs"])?;
        }
        if signed.response() {
            doc = sign_element(&doc, &rid, key, &["xs"])?;
        }
        Ok(doc)
    }
}

/// A signed Response with a non-success status and no assertion.
#[allow(clippy::too_many_arguments)]
pub fn status_response(
    issuer: &str,
    destination: &str,
    in_response_to: Option<&str>,
    top: &str,
    second: Option<&str>,
    message: &str,
    now: SystemTime,
    key: &SigningKey,
) -> Result<String, SignError> {
    let rid = new_id();
    let inner = second
        .map(|s| format!("<samlp:StatusCode Value=\"{}\"/>", escape(s)))
        .unwrap_or_default();
    let doc = format!(
        "<samlp:Response xmlns:samlp=\"{NS_SAMLP}\" xmlns:saml=\"{NS_SAML}\" ID=\"{rid}\" \
         Version=\"2.0\" IssueInstant=\"{t}\" Destination=\"{d}\"{irt}>\
         <saml:Issuer>{iss}</saml:Issuer><samlp:Status><samlp:StatusCode Value=\"{top}\">{inner}\
         </samlp:StatusCode><samlp:StatusMessage>{msg}</samlp:StatusMessage></samlp:Status>\
         </samlp:Response>",
        t = format(now),
        d = escape(destination),
        irt = irt_attr(in_response_to),
        iss = escape(issuer),
        top = escape(top),
        msg = escape(message),
    );
    sign_element(&doc, &rid, key, &[])
}

/// The LogoutRequest portcullis sends a console when the person logs out.
pub fn logout_request(
    issuer: &str,
    destination: &str,
    name_id: &str,
    name_id_format: &str,
    session_index: &str,
    now: SystemTime,
) -> (String, String) {
    let id = new_id();
    let xml = format!(
        "<samlp:LogoutRequest xmlns:samlp=\"{NS_SAMLP}\" xmlns:saml=\"{NS_SAML}\" ID=\"{id}\" \
         Version=\"2.0\" IssueInstant=\"{t}\" Destination=\"{d}\">\
         <saml:Issuer>{iss}</saml:Issuer><saml:NameID Format=\"{f}\">{n}</saml:NameID>\
         <samlp:SessionIndex>{s}</samlp:SessionIndex></samlp:LogoutRequest>",
        t = format(now),
        d = escape(destination),
        iss = escape(issuer),
        f = escape(name_id_format),
        n = escape(name_id),
        s = escape(session_index),
    );
    (id, xml)
}

/// The answer to a console's LogoutRequest.
pub fn logout_response(
    issuer: &str,
    destination: &str,
    in_response_to: &str,
    status: &str,
    now: SystemTime,
) -> String {
    format!(
        "<samlp:LogoutResponse xmlns:samlp=\"{NS_SAMLP}\" xmlns:saml=\"{NS_SAML}\" ID=\"{id}\" \
         Version=\"2.0\" IssueInstant=\"{t}\" Destination=\"{d}\" InResponseTo=\"{irt}\">\
         <saml:Issuer>{iss}</saml:Issuer><samlp:Status><samlp:StatusCode Value=\"{st}\"/>\
         </samlp:Status></samlp:LogoutResponse>",
        id = new_id(),
        t = format(now),
        d = escape(destination),
        irt = escape(in_response_to),
        iss = escape(issuer),
        st = escape(status),
    )
}

/// The HTTP-POST binding page: a form the browser submits on load (and a
/// button where scripts are off). `param` is `SAMLResponse` or
/// `SAMLRequest`.
pub fn post_page(action: &str, param: &str, xml: &str, relay_state: Option<&str>) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(xml);
    let relay = relay_state
        .map(|r| {
            format!(
                "<input type=\"hidden\" name=\"RelayState\" value=\"{}\">",
                escape(r)
            )
        })
        .unwrap_or_default();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>portcullis</title></head>\
         <body onload=\"document.forms[0].submit()\"><form method=\"post\" action=\"{a}\">\
         <input type=\"hidden\" name=\"{p}\" value=\"{b64}\">{relay}\
         <noscript><button type=\"submit\">Continue</button></noscript></form></body></html>",
        a = escape(action),
        p = escape(param),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saml::dsig;
    use crate::saml::xml::{self, child, is};

    #[test]
    fn a_response_carries_what_the_console_checks_and_both_signatures_verify() {
        let k = SigningKey::generate("t", SystemTime::now()).unwrap().0;
        let now = SystemTime::now();
        let a = Assertion {
            issuer: "https://idp/saml/metadata",
            acs_url: "http://127.0.0.1:9602/saml/acs",
            audience: "http://127.0.0.1:9602/saml/acs",
            in_response_to: Some("_req"),
            name_id: "alice@example.net",
            name_id_format: super::super::settings::NAMEID_UNSPECIFIED,
            session_index: "_s",
            authn_context: PASSWORD,
            authn_instant: now,
            now,
            ttl: Duration::from_secs(300),
            session_end: now + Duration::from_secs(3600),
            attributes: &[
                ("ec-name", "alice@example.net"),
                ("ec-roles", "Over<lay>"),
                ("ec-aag", ""),
            ],
        };
        let r = a.response(Signed::Both, &k).unwrap();
        let doc = xml::parse(&r).unwrap();
        let root = doc.root_element();
        assert_eq!(root.attribute("Destination"), Some(a.acs_url));
        assert_eq!(root.attribute("InResponseTo"), Some("_req"));
        let asr = child(root, NS_SAML, "Assertion").unwrap();
        let certs = [k.cert.clone()];
        for el in [root, asr] {
            let sig = dsig::signature_of(el).unwrap().unwrap();
            dsig::verify(&doc, el, sig, &certs, false).unwrap();
        }
        let values: Vec<_> = asr
            .descendants()
            .filter(|n| is(*n, NS_SAML, "Attribute"))
            .map(|n| {
                (
                    n.attribute("Name").unwrap(),
                    xml::text(n.first_element_child().unwrap()),
                )
            })
            .collect();
        assert_eq!(
            values,
            [
                ("ec-name", "alice@example.net".to_string()),
                ("ec-roles", "Over<lay>".into())
            ],
            "empty values are left out, so the console falls back to its own"
        );
        for (sel, attr) in [
            ("SubjectConfirmationData", "Recipient"),
            ("SubjectConfirmationData", "InResponseTo"),
            ("Conditions", "NotBefore"),
            ("Conditions", "NotOnOrAfter"),
            ("AuthnStatement", "SessionNotOnOrAfter"),
        ] {
            let n = asr
                .descendants()
                .find(|n| n.tag_name().name() == sel)
                .unwrap();
            assert!(n.attribute(attr).is_some(), "{sel}@{attr}");
        }
        let only_assertion = a.response(Signed::Assertion, &k).unwrap();
        let d = xml::parse(&only_assertion).unwrap();
        assert!(dsig::signature_of(d.root_element()).unwrap().is_none());

        let denied = status_response(
            "i",
            "http://sp/acs",
            Some("_q"),
            RESPONDER,
            Some(REQUEST_DENIED),
            "no",
            now,
            &k,
        )
        .unwrap();
        let d = xml::parse(&denied).unwrap();
        assert!(child(d.root_element(), NS_SAML, "Assertion").is_none());
        let sig = dsig::signature_of(d.root_element()).unwrap().unwrap();
        dsig::verify(&d, d.root_element(), sig, &certs, false).unwrap();
    }
}

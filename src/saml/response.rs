//! Verification of a `samlp:Response` posted to our ACS: pure, with the
//! clock and every expectation passed in. The order is fixed: parse (no
//! DTD), structure (one assertion, unique IDs, no comments), signatures,
//! then the SAML conditions. Data is read only from the element whose
//! signature was checked. Replay and InResponseTo bookkeeping need state
//! and live in [`super::provider`].

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use roxmltree::{Document, Node};

use super::decrypt::decrypt;
use super::dsig::{signature_of, verify as verify_signature};
use super::keys::{IdpCert, SpKey};
use super::refusal::{Reason, Refusal, refuse};
use super::time;
use super::xml::{self, NS_SAML, NS_SAMLP, XmlError, child, children, has_comment, is, text_trim};

const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// Which attributes carry what. `username: None` means the NameID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeNames {
    pub username: Option<String>,
    pub email: String,
    pub full_name: String,
    pub groups: String,
}

impl Default for AttributeNames {
    fn default() -> Self {
        Self {
            username: None,
            email: "email".into(),
            full_name: "displayName".into(),
            groups: "groups".into(),
        }
    }
}

/// What a response must match.
pub struct Expect<'a> {
    pub idp_entity_id: &'a str,
    pub sp_entity_id: &'a str,
    pub acs_url: &'a str,
    pub certs: &'a [IdpCert],
    pub now: SystemTime,
    pub skew: Duration,
    pub allow_sha1: bool,
    pub allow_idp_initiated: bool,
    pub sp_key: Option<&'a SpKey>,
    pub attributes: &'a AttributeNames,
}

/// A verified login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub response_id: String,
    pub assertion_id: String,
    /// `None`: IdP-initiated (allowed by configuration).
    pub in_response_to: Option<String>,
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub session_index: Option<String>,
    pub username: String,
    pub email: Option<String>,
    pub full_name: Option<String>,
    /// `None`: the assertion had no groups attribute at all.
    pub groups: Option<Vec<String>>,
    /// Until when this assertion could be replayed (for the replay cache).
    pub valid_until: SystemTime,
}

/// Verifies a decoded (not base64) response document.
pub fn verify(xml_bytes: &[u8], ex: &Expect<'_>) -> Result<Verified, Refusal> {
    let Ok(text) = std::str::from_utf8(xml_bytes) else {
        return refuse(Reason::Malformed, "not UTF-8");
    };
    let doc = parse(text)?;
    let root = doc.root_element();
    if !is(root, NS_SAMLP, "Response") {
        return refuse(
            Reason::Malformed,
            format!("root element is {:?}", root.tag_name().name()),
        );
    }
    unique_ids(root)?;
    if has_comment(root) {
        return refuse(
            Reason::Comment,
            "comments or processing instructions in the response",
        );
    }
    // An IdP's failure answer carries no assertion; say why it failed.
    let status = child(root, NS_SAMLP, "Status")
        .and_then(|s| child(s, NS_SAMLP, "StatusCode"))
        .ok_or_else(|| Refusal::new(Reason::Malformed, "no Status"))?;
    if status.attribute("Value") != Some(SUCCESS) {
        let sub = child(status, NS_SAMLP, "StatusCode")
            .and_then(|s| s.attribute("Value"))
            .unwrap_or("");
        return refuse(
            Reason::Status,
            format!("{} {sub}", status.attribute("Value").unwrap_or(""))
                .trim()
                .to_string(),
        );
    }
    let found: Vec<Node<'_, '_>> = root
        .descendants()
        .filter(|n| is(*n, NS_SAML, "Assertion") || is(*n, NS_SAML, "EncryptedAssertion"))
        .collect();
    if found.len() != 1 || found[0].parent() != Some(root) {
        return refuse(
            Reason::AssertionCount,
            format!(
                "{} assertions; exactly one, directly in the Response, is accepted",
                found.len()
            ),
        );
    }
    let response_signed = match signature_of(root)? {
        Some(sig) => {
            verify_signature(&doc, root, sig, ex.certs, ex.allow_sha1)?;
            true
        }
        None => false,
    };
    let a = found[0];
    if is(a, NS_SAML, "EncryptedAssertion") {
        let Some(key) = ex.sp_key else {
            return refuse(
                Reason::Encrypted,
                "encrypted assertion, but no sp_key_file is configured",
            );
        };
        // In an unsigned Response the ciphertext is the sender's to alter:
        // a failure to unpad, to parse or to find one Assertion must all
        // look alike from outside, or they answer a padding oracle. The
        // detail still goes to the log.
        let opaque = |r: Refusal| {
            if response_signed {
                r
            } else {
                Refusal::new(
                    Reason::Encrypted,
                    format!("encrypted assertion unusable: {}", r.detail),
                )
            }
        };
        let plain = decrypt(a, key).map_err(opaque)?;
        let inner_doc = parse(&plain).map_err(opaque)?;
        let w = inner_doc.root_element();
        let inner: Vec<_> = w.children().filter(Node::is_element).collect();
        if inner.len() != 1 || !is(inner[0], NS_SAML, "Assertion") {
            return Err(opaque(Refusal::new(
                Reason::AssertionCount,
                "encrypted content is not one Assertion",
            )));
        }
        unique_ids(w).map_err(opaque)?;
        if has_comment(w) {
            return Err(opaque(Refusal::new(
                Reason::Comment,
                "comments in the decrypted assertion",
            )));
        }
        return assertion(root, response_signed, &inner_doc, inner[0], ex);
    }
    assertion(root, response_signed, &doc, a, ex)
}

fn parse(text: &str) -> Result<Document<'_>, Refusal> {
    xml::parse(text).map_err(|e| match e {
        XmlError::Dtd => Refusal::new(Reason::Dtd, e.to_string()),
        e => Refusal::new(Reason::Malformed, e.to_string()),
    })
}

/// Two elements with one ID would let a Reference resolve to a different
/// element than the one we read.
fn unique_ids(root: Node<'_, '_>) -> Result<(), Refusal> {
    let mut seen = HashSet::new();
    for n in root.descendants().filter(Node::is_element) {
        if let Some(id) = n.attribute("ID")
            && !seen.insert(id)
        {
            return refuse(Reason::DuplicateId, format!("ID {id:?} appears twice"));
        }
    }
    Ok(())
}

fn assertion<'a, 'i: 'a>(
    root: Node<'_, '_>,
    response_signed: bool,
    doc: &'a Document<'i>,
    a: Node<'a, 'i>,
    ex: &Expect<'_>,
) -> Result<Verified, Refusal> {
    let assertion_signed = match signature_of(a)? {
        Some(sig) => {
            verify_signature(doc, a, sig, ex.certs, ex.allow_sha1)?;
            true
        }
        None => false,
    };
    if !response_signed && !assertion_signed {
        return refuse(
            Reason::Unsigned,
            "neither the Response nor the Assertion is signed",
        );
    }

    if let Some(i) = child(root, NS_SAML, "Issuer").map(text_trim)
        && i != ex.idp_entity_id
    {
        return refuse(Reason::Issuer, format!("Response Issuer {i:?}"));
    }
    let issuer = child(a, NS_SAML, "Issuer")
        .map(text_trim)
        .unwrap_or_default();
    if issuer != ex.idp_entity_id {
        return refuse(Reason::Issuer, format!("Assertion Issuer {issuer:?}"));
    }
    // Bindings §3.5.5.2: a signed POST-binding message must name its
    // destination; an unsigned one may omit it.
    match root.attribute("Destination") {
        Some(d) if d != ex.acs_url => {
            return refuse(Reason::Destination, format!("Destination {d:?}"));
        }
        None if response_signed => {
            return refuse(Reason::Destination, "signed Response without Destination");
        }
        _ => {}
    }
    let in_response_to = root.attribute("InResponseTo").map(str::to_string);

    let earliest = ex.now.checked_add(ex.skew).unwrap_or(ex.now);
    let latest = ex.now.checked_sub(ex.skew).unwrap_or(ex.now);
    let when = |n: Node<'_, '_>, attr: &str| -> Result<Option<SystemTime>, Refusal> {
        n.attribute(attr)
            .map(|v| {
                time::parse(v)
                    .ok_or_else(|| Refusal::new(Reason::Malformed, format!("{attr} {v:?}")))
            })
            .transpose()
    };

    // Subject: a NameID and a bearer confirmation for us, still valid.
    let Some(subject) = child(a, NS_SAML, "Subject") else {
        return refuse(Reason::Subject, "no Subject");
    };
    let Some(name_id) = child(subject, NS_SAML, "NameID") else {
        return refuse(Reason::Subject, "no NameID (EncryptedID is not supported)");
    };
    let mut confirmed: Option<SystemTime> = None;
    let mut why: Option<Refusal> = None;
    for sc in children(subject, NS_SAML, "SubjectConfirmation") {
        if sc.attribute("Method") != Some(BEARER) {
            continue;
        }
        let Some(d) = child(sc, NS_SAML, "SubjectConfirmationData") else {
            why.get_or_insert_with(|| {
                Refusal::new(Reason::Subject, "bearer confirmation without data")
            });
            continue;
        };
        let check = (|| {
            let r = d.attribute("Recipient").unwrap_or("");
            if r != ex.acs_url {
                return refuse(Reason::Recipient, format!("Recipient {r:?}"));
            }
            let Some(until) = when(d, "NotOnOrAfter")? else {
                return refuse(Reason::Subject, "bearer confirmation without NotOnOrAfter");
            };
            if until <= latest {
                return refuse(
                    Reason::Expired,
                    "SubjectConfirmationData NotOnOrAfter has passed",
                );
            }
            if when(d, "NotBefore")?.is_some_and(|t| t > earliest) {
                return refuse(Reason::NotYetValid, "SubjectConfirmationData NotBefore");
            }
            match (d.attribute("InResponseTo"), in_response_to.as_deref()) {
                (Some(x), Some(y)) if x != y => {
                    return refuse(
                        Reason::InResponseTo,
                        "confirmation and Response disagree on InResponseTo",
                    );
                }
                (Some(_), None) => {
                    return refuse(
                        Reason::InResponseTo,
                        "InResponseTo only on the confirmation",
                    );
                }
                // Profiles §4.1.4.2 puts it on the confirmation too; on an
                // unsigned Response alone it could have been added later.
                (None, Some(_)) if !response_signed => {
                    return refuse(
                        Reason::InResponseTo,
                        "InResponseTo is not covered by a signature",
                    );
                }
                _ => {}
            }
            Ok(until)
        })();
        match check {
            Ok(until) => {
                confirmed = Some(until);
                break;
            }
            Err(e) => {
                why.get_or_insert(e);
            }
        }
    }
    let Some(confirm_until) = confirmed else {
        return Err(
            why.unwrap_or_else(|| Refusal::new(Reason::Subject, "no bearer SubjectConfirmation"))
        );
    };

    // Conditions: the validity window and an audience that names us.
    let Some(conditions) = child(a, NS_SAML, "Conditions") else {
        return refuse(
            Reason::Audience,
            "no Conditions (and so no AudienceRestriction)",
        );
    };
    if when(conditions, "NotBefore")?.is_some_and(|t| t > earliest) {
        return refuse(Reason::NotYetValid, "Conditions NotBefore is in the future");
    }
    let cond_until = when(conditions, "NotOnOrAfter")?;
    if cond_until.is_some_and(|t| t <= latest) {
        return refuse(Reason::Expired, "Conditions NotOnOrAfter has passed");
    }
    let mut restrictions = children(conditions, NS_SAML, "AudienceRestriction").peekable();
    if restrictions.peek().is_none() {
        return refuse(Reason::Audience, "no AudienceRestriction");
    }
    for r in restrictions {
        if !children(r, NS_SAML, "Audience").any(|x| text_trim(x) == ex.sp_entity_id) {
            return refuse(
                Reason::Audience,
                format!("audience is not {:?}", ex.sp_entity_id),
            );
        }
    }

    if in_response_to.is_none() && !ex.allow_idp_initiated {
        return refuse(
            Reason::Unsolicited,
            "no InResponseTo: IdP-initiated login is not enabled",
        );
    }

    let name_id_value = text_trim(name_id);
    let attrs = attributes(a);
    let first = |name: &str| {
        attrs
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.first().cloned())
    };
    let username = match &ex.attributes.username {
        None => name_id_value.clone(),
        Some(n) => first(n).unwrap_or_default(),
    };
    if username.is_empty() {
        return refuse(Reason::Subject, "empty user name");
    }
    let groups = attrs
        .iter()
        .find(|(n, _)| *n == ex.attributes.groups)
        .map(|(_, v)| v.clone());
    let session_index = child(a, NS_SAML, "AuthnStatement")
        .and_then(|s| s.attribute("SessionIndex"))
        .map(str::to_string);
    Ok(Verified {
        response_id: root.attribute("ID").unwrap_or("").to_string(),
        assertion_id: a.attribute("ID").unwrap_or("").to_string(),
        in_response_to,
        name_id: name_id_value,
        name_id_format: name_id.attribute("Format").map(str::to_string),
        session_index,
        username,
        email: first(&ex.attributes.email).filter(|s| !s.is_empty()),
        full_name: first(&ex.attributes.full_name).filter(|s| !s.is_empty()),
        groups,
        valid_until: cond_until.map_or(confirm_until, |c| c.max(confirm_until)),
    })
}

/// Every attribute by Name and by FriendlyName, with its values.
fn attributes(a: Node<'_, '_>) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for st in children(a, NS_SAML, "AttributeStatement") {
        for at in children(st, NS_SAML, "Attribute") {
            let values: Vec<String> = children(at, NS_SAML, "AttributeValue")
                .map(text_trim)
                .collect();
            for n in [at.attribute("Name"), at.attribute("FriendlyName")]
                .into_iter()
                .flatten()
            {
                out.push((n.to_string(), values.clone()));
            }
        }
    }
    out
}

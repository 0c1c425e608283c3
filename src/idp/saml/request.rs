//! What consoles send the IdP, read as hostile input: the HTTP-Redirect
//! and HTTP-POST bindings decoded with size caps (inflation included), then
//! the one DTD-free parser (`saml::xml`, which caps depth and namespace
//! declarations before parsing), then the AuthnRequest, LogoutRequest and
//! LogoutResponse fields. Pure functions: the fuzz targets call these.

use std::io::Read as _;
use std::time::SystemTime;

use crate::saml::keys::{IdpCert, SigAlg};
use crate::saml::xml::{self, NS_SAML, NS_SAMLP, XmlError, child, children, is, text_trim};

/// Why a message from a console was refused; the label is a metric label
/// (a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Not base64, not deflate, not XML, or a required part missing.
    Malformed,
    /// Over the size, depth or namespace caps.
    TooLarge,
    /// A document type declaration.
    Doctype,
    /// No console is registered with the request's Issuer.
    UnknownIssuer,
    /// An AssertionConsumerServiceURL (or index) that is not registered.
    BadAcs,
    /// Sent to another endpoint than ours.
    BadDestination,
    /// IssueInstant too old or in the future.
    Stale,
    /// A signature that does not verify with the console's certificate.
    BadSignature,
    /// Unsigned, where the console must sign.
    Unsigned,
    /// The table refuses the person (or the account is disabled).
    AccessDenied,
    /// The person logged in by a method the console does not allow.
    LoginMethod,
    /// IdP-initiated login for a console that has it off.
    IdpInitiatedOff,
    /// A message of a kind not expected here.
    Unsupported,
    /// A LogoutResponse to no LogoutRequest we sent (wrong console or
    /// InResponseTo, or no logout under way).
    Unexpected,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::Doctype => "doctype",
            Self::UnknownIssuer => "unknown_issuer",
            Self::BadAcs => "unregistered_acs",
            Self::BadDestination => "bad_destination",
            Self::Stale => "stale",
            Self::BadSignature => "bad_signature",
            Self::Unsigned => "unsigned",
            Self::AccessDenied => "access_denied",
            Self::LoginMethod => "login_method",
            Self::IdpInitiatedOff => "idp_initiated_off",
            Self::Unsupported => "unsupported",
            Self::Unexpected => "unexpected_response",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({detail})", reason.label())]
pub struct Refused {
    pub reason: Reason,
    pub detail: String,
}

pub fn refuse<T>(reason: Reason, detail: impl Into<String>) -> Result<T, Refused> {
    Err(Refused {
        reason,
        detail: detail.into(),
    })
}

impl From<XmlError> for Refused {
    fn from(e: XmlError) -> Self {
        let reason = match e {
            XmlError::Dtd => Reason::Doctype,
            XmlError::TooLarge | XmlError::TooDeep | XmlError::TooManyNamespaces => {
                Reason::TooLarge
            }
            XmlError::Syntax(_) => Reason::Malformed,
        };
        Self {
            reason,
            detail: e.to_string(),
        }
    }
}

/// The HTTP-Redirect binding's signature, to check against the console's
/// certificate: the octets signed exactly as they came in the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectSig {
    pub signed: String,
    pub alg: String,
    pub signature: Vec<u8>,
}

impl RedirectSig {
    pub fn verify(&self, certs: &[IdpCert]) -> Result<(), Refused> {
        let Some(alg) = SigAlg::from_uri(&self.alg).filter(|a| !a.is_sha1()) else {
            return refuse(Reason::BadSignature, format!("SigAlg {:?}", self.alg));
        };
        if certs
            .iter()
            .any(|c| c.verify(alg, self.signed.as_bytes(), &self.signature))
        {
            Ok(())
        } else {
            refuse(
                Reason::BadSignature,
                "redirect signature does not verify with the console's certificate",
            )
        }
    }
}

/// A message as it arrived, decoded to its XML text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub xml: String,
    pub relay_state: Option<String>,
    /// Redirect binding only, when the URL carries a signature.
    pub redirect_sig: Option<RedirectSig>,
    /// Which parameter carried it: `SAMLRequest` or `SAMLResponse`.
    pub param: &'static str,
}

/// Longest RelayState kept (the bindings spec caps it at 80 bytes; some
/// SPs send more).
const MAX_RELAY_STATE: usize = 1024;

fn size_ok(b64: &str) -> Result<(), Refused> {
    if b64.len() > xml::MAX_XML / 3 * 4 + 4 {
        return refuse(Reason::TooLarge, format!("{} bytes of base64", b64.len()));
    }
    Ok(())
}

fn utf8(bytes: Vec<u8>) -> Result<String, Refused> {
    String::from_utf8(bytes).or_else(|_| refuse(Reason::Malformed, "not UTF-8"))
}

fn relay(v: Option<String>) -> Result<Option<String>, Refused> {
    match v {
        Some(r) if r.len() > MAX_RELAY_STATE => refuse(Reason::TooLarge, "RelayState too long"),
        r => Ok(r),
    }
}

/// The HTTP-Redirect binding: `SAMLRequest` or `SAMLResponse` deflated and
/// base64'd in the query, with an optional signature over the query.
pub fn from_query(raw: &str) -> Result<Inbound, Refused> {
    let mut msg: Option<(&'static str, &str)> = None;
    let (mut relay_raw, mut alg_raw, mut sig_raw) = (None, None, None);
    for pair in raw.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match k {
            "SAMLRequest" | "SAMLResponse" => {
                if msg.is_some() {
                    return refuse(Reason::Malformed, "more than one SAML message");
                }
                let p = if k == "SAMLRequest" {
                    "SAMLRequest"
                } else {
                    "SAMLResponse"
                };
                msg = Some((p, v));
                continue;
            }
            "RelayState" => &mut relay_raw,
            "SigAlg" => &mut alg_raw,
            "Signature" => &mut sig_raw,
            _ => continue,
        };
        if slot.replace(v).is_some() {
            return refuse(Reason::Malformed, format!("{k} given twice"));
        }
    }
    let Some((param, m)) = msg else {
        return refuse(Reason::Malformed, "no SAMLRequest or SAMLResponse");
    };
    let dec = |s: &str| -> String {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    size_ok(m)?;
    let deflated = xml::b64(&dec(m)).ok_or_else(|| Refused {
        reason: Reason::Malformed,
        detail: "not base64".into(),
    })?;
    let mut out = Vec::new();
    // One byte past the cap tells "too large" from "exactly the cap".
    flate2::read::DeflateDecoder::new(&deflated[..])
        .take(xml::MAX_XML as u64 + 1)
        .read_to_end(&mut out)
        .or_else(|_| refuse(Reason::Malformed, "not deflate"))?;
    if out.len() > xml::MAX_XML {
        return refuse(Reason::TooLarge, "inflates past the size cap");
    }
    let redirect_sig = match (alg_raw, sig_raw) {
        (None, None) => None,
        (Some(a), Some(s)) => {
            let mut signed = format!("{param}={m}");
            if let Some(r) = relay_raw {
                signed.push_str("&RelayState=");
                signed.push_str(r);
            }
            signed.push_str("&SigAlg=");
            signed.push_str(a);
            Some(RedirectSig {
                signed,
                alg: dec(a),
                signature: xml::b64(&dec(s)).ok_or_else(|| Refused {
                    reason: Reason::BadSignature,
                    detail: "Signature not base64".into(),
                })?,
            })
        }
        _ => {
            return refuse(
                Reason::BadSignature,
                "SigAlg without Signature or the reverse",
            );
        }
    };
    Ok(Inbound {
        xml: utf8(out)?,
        relay_state: relay(relay_raw.map(dec))?,
        redirect_sig,
        param,
    })
}

/// The HTTP-POST binding: a form with the base64 message (not deflated).
pub fn from_form(body: &[u8]) -> Result<Inbound, Refused> {
    let (mut msg, mut relay_state) = (None, None);
    for (k, v) in url::form_urlencoded::parse(body) {
        match &*k {
            "SAMLRequest" | "SAMLResponse" => {
                let p = if k == "SAMLRequest" {
                    "SAMLRequest"
                } else {
                    "SAMLResponse"
                };
                if msg.replace((p, v.into_owned())).is_some() {
                    return refuse(Reason::Malformed, "more than one SAML message");
                }
            }
            "RelayState" => relay_state = Some(v.into_owned()),
            _ => {}
        }
    }
    let Some((param, m)) = msg else {
        return refuse(Reason::Malformed, "no SAMLRequest or SAMLResponse");
    };
    size_ok(&m)?;
    let bytes = xml::b64(&m).ok_or_else(|| Refused {
        reason: Reason::Malformed,
        detail: "not base64".into(),
    })?;
    Ok(Inbound {
        xml: utf8(bytes)?,
        relay_state: relay(relay_state)?,
        redirect_sig: None,
        param,
    })
}

/// What portcullis reads from an AuthnRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthnRequest {
    pub id: String,
    pub issuer: String,
    pub destination: Option<String>,
    pub issue_instant: Option<SystemTime>,
    pub acs_url: Option<String>,
    pub acs_index: Option<String>,
    pub protocol_binding: Option<String>,
    pub force_authn: bool,
    pub is_passive: bool,
    pub name_id_format: Option<String>,
    /// Whether the request carries an enveloped signature.
    pub signed: bool,
}

/// ID attributes are NCNames; bounding them keeps logs and echoes sane.
fn id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 256
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

fn common<'a, 'i>(
    doc: &'a roxmltree::Document<'i>,
    name: &'static str,
) -> Result<(roxmltree::Node<'a, 'i>, String, String, bool), Refused> {
    let root = doc.root_element();
    if !is(root, NS_SAMLP, name) {
        return refuse(
            Reason::Unsupported,
            format!("expected {name}, got {}", root.tag_name().name()),
        );
    }
    if root.attribute("Version") != Some("2.0") {
        return refuse(Reason::Malformed, "Version is not 2.0");
    }
    let id = root.attribute("ID").unwrap_or("");
    if !id_ok(id) {
        return refuse(Reason::Malformed, "missing or unusable ID");
    }
    let Some(issuer) = child(root, NS_SAML, "Issuer").map(text_trim) else {
        return refuse(Reason::UnknownIssuer, "no Issuer");
    };
    let signed = crate::saml::dsig::signature_of(root)
        .or_else(|_| refuse(Reason::BadSignature, "more than one Signature"))?
        .is_some();
    Ok((root, id.to_string(), issuer, signed))
}

fn flag(n: roxmltree::Node<'_, '_>, a: &str) -> bool {
    matches!(n.attribute(a), Some("true" | "1"))
}

impl AuthnRequest {
    pub fn parse(text: &str) -> Result<Self, Refused> {
        let doc = xml::parse(text)?;
        let (root, id, issuer, signed) = common(&doc, "AuthnRequest")?;
        let s = |a: &str| root.attribute(a).map(str::to_string);
        Ok(Self {
            id,
            issuer,
            destination: s("Destination"),
            issue_instant: root
                .attribute("IssueInstant")
                .and_then(crate::saml::time::parse),
            acs_url: s("AssertionConsumerServiceURL"),
            acs_index: s("AssertionConsumerServiceIndex"),
            protocol_binding: s("ProtocolBinding"),
            force_authn: flag(root, "ForceAuthn"),
            is_passive: flag(root, "IsPassive"),
            name_id_format: child(root, NS_SAMLP, "NameIDPolicy")
                .and_then(|p| p.attribute("Format"))
                .map(str::to_string),
            signed,
        })
    }
}

/// What portcullis reads from a LogoutRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    pub id: String,
    pub issuer: String,
    pub destination: Option<String>,
    pub issue_instant: Option<SystemTime>,
    pub name_id: String,
    pub session_indexes: Vec<String>,
    pub signed: bool,
}

impl LogoutRequest {
    pub fn parse(text: &str) -> Result<Self, Refused> {
        let doc = xml::parse(text)?;
        let (root, id, issuer, signed) = common(&doc, "LogoutRequest")?;
        let Some(name_id) = child(root, NS_SAML, "NameID").map(text_trim) else {
            return refuse(
                Reason::Malformed,
                "no NameID (an encrypted one is not accepted)",
            );
        };
        Ok(Self {
            id,
            issuer,
            destination: root.attribute("Destination").map(str::to_string),
            issue_instant: root
                .attribute("IssueInstant")
                .and_then(crate::saml::time::parse),
            name_id,
            session_indexes: children(root, NS_SAMLP, "SessionIndex")
                .take(16)
                .map(text_trim)
                .collect(),
            signed,
        })
    }
}

/// What portcullis reads from a LogoutResponse (the answer to a logout it
/// started at a console).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutResponse {
    pub issuer: String,
    pub in_response_to: Option<String>,
    pub success: bool,
    pub signed: bool,
}

impl LogoutResponse {
    pub fn parse(text: &str) -> Result<Self, Refused> {
        let doc = xml::parse(text)?;
        let (root, _, issuer, signed) = common(&doc, "LogoutResponse")?;
        let success = child(root, NS_SAMLP, "Status")
            .and_then(|s| child(s, NS_SAMLP, "StatusCode"))
            .and_then(|c| c.attribute("Value"))
            == Some("urn:oasis:names:tc:SAML:2.0:status:Success");
        Ok(Self {
            issuer,
            in_response_to: root.attribute("InResponseTo").map(str::to_string),
            success,
            signed,
        })
    }
}

/// Verifies the enveloped signature on a POSTed message's root element
/// with the console's certificates.
pub fn verify_enveloped(text: &str, certs: &[IdpCert]) -> Result<(), Refused> {
    let doc = xml::parse(text)?;
    let root = doc.root_element();
    let Some(sig) = crate::saml::dsig::signature_of(root)
        .or_else(|_| refuse(Reason::BadSignature, "more than one Signature"))?
    else {
        return refuse(Reason::Unsigned, "no signature");
    };
    crate::saml::dsig::verify(&doc, root, sig, certs, false)
        .or_else(|r| refuse(Reason::BadSignature, r.to_string()))
}

/// IssueInstant within `skew` of `now` and not older than `max_age`.
pub fn fresh(
    instant: Option<SystemTime>,
    now: SystemTime,
    skew: std::time::Duration,
    max_age: std::time::Duration,
) -> Result<(), Refused> {
    let Some(t) = instant else {
        return refuse(Reason::Malformed, "no IssueInstant");
    };
    if t > now + skew {
        return refuse(Reason::Stale, "IssueInstant in the future");
    }
    if now.duration_since(t).is_ok_and(|age| age > max_age + skew) {
        return refuse(Reason::Stale, "IssueInstant too old");
    }
    Ok(())
}

/// The `authn_request` fuzz target: both bindings' decoding, then the
/// AuthnRequest parser, over arbitrary bytes (as a query, as a form body and
/// as XML). None may panic; whatever parses has a usable ID.
pub fn fuzz_authn_request(data: &[u8]) {
    for xml in inbound_texts(data) {
        if let Ok(r) = AuthnRequest::parse(&xml) {
            assert!(id_ok(&r.id));
        }
        let _ = verify_enveloped(&xml, &[]);
    }
}

/// The `logout_request` fuzz target: the same for LogoutRequest and
/// LogoutResponse.
pub fn fuzz_logout_request(data: &[u8]) {
    for xml in inbound_texts(data) {
        if let Ok(r) = LogoutRequest::parse(&xml) {
            assert!(id_ok(&r.id) && r.session_indexes.len() <= 16);
        }
        let _ = LogoutResponse::parse(&xml);
        // The logout chain's cookie text (HMAC-checked before it is read,
        // but read with care all the same).
        let _ = super::logout::Chain::decode(&xml, SystemTime::now());
    }
}

fn inbound_texts(data: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(data);
    let mut out = vec![text.to_string()];
    for inbound in [from_query(&text), from_form(data)].into_iter().flatten() {
        assert!(inbound.xml.len() <= xml::MAX_XML);
        if let Some(s) = &inbound.redirect_sig {
            let _ = s.verify(&[]);
        }
        out.push(inbound.xml);
    }
    out
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::saml::request::{AuthnRequest as Out, redirect_url};

    fn request(acs: &str, issuer: &str) -> String {
        Out {
            id: "_r1",
            sp_entity_id: issuer,
            acs_url: acs,
            destination: "http://idp/sso",
            name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
            now: SystemTime::now(),
        }
        .xml()
    }

    fn query(xml: &str, relay: Option<&str>) -> String {
        redirect_url("http://idp/sso", xml, relay, None)
            .split_once('?')
            .unwrap()
            .1
            .to_string()
    }

    #[test]
    fn a_redirect_request_reads_back() {
        let xml = request("http://sp/acs", "http://sp/acs");
        let i = from_query(&query(&xml, Some("r&1"))).unwrap();
        assert_eq!(i.xml, xml);
        assert_eq!(i.relay_state.as_deref(), Some("r&1"));
        assert_eq!(i.param, "SAMLRequest");
        let r = AuthnRequest::parse(&i.xml).unwrap();
        assert_eq!(r.id, "_r1");
        assert_eq!(r.issuer, "http://sp/acs");
        assert_eq!(r.acs_url.as_deref(), Some("http://sp/acs"));
        assert!(!r.signed);
        let form = format!(
            "SAMLRequest={}&RelayState=x",
            url::form_urlencoded::byte_serialize(STANDARD.encode(&xml).as_bytes())
                .collect::<String>()
        );
        assert_eq!(from_form(form.as_bytes()).unwrap().xml, xml);
    }

    #[test]
    fn hostile_requests_are_refused_with_their_reason() {
        let dtd = "<!DOCTYPE x [<!ENTITY a \"b\">]><samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_1\" Version=\"2.0\"/>";
        let nested = format!("{}{}", "<a>".repeat(200_000), "</a>".repeat(200_000));
        for (doc, want) in [
            (dtd.to_string(), Reason::Doctype),
            (nested, Reason::TooLarge),
            ("<x".into(), Reason::Malformed),
            (
                "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_1\" Version=\"2.0\"/>".into(),
                Reason::UnknownIssuer,
            ),
        ] {
            let err = match from_query(&query(&doc, None)) {
                Err(e) => e,
                Ok(i) => AuthnRequest::parse(&i.xml).unwrap_err(),
            };
            assert_eq!(err.reason, want, "{err}");
        }
        // A deflate bomb stops at the cap.
        let bomb = " ".repeat(4 * xml::MAX_XML);
        assert_eq!(
            from_query(&query(&bomb, None)).unwrap_err().reason,
            Reason::TooLarge
        );
        assert_eq!(
            from_query("SAMLRequest=%%%").unwrap_err().reason,
            Reason::Malformed
        );
        assert_eq!(
            from_query("SAMLRequest=a&SAMLRequest=b")
                .unwrap_err()
                .reason,
            Reason::Malformed
        );
    }

    #[test]
    fn redirect_signatures_are_checked_over_the_octets_sent() {
        let k = super::super::keys::SigningKey::generate("sp", SystemTime::now())
            .unwrap()
            .0;
        let xml = request("http://sp/acs", "sp");
        let q = super::super::sign::redirect_query("SAMLRequest", &xml, Some("rs"), &k);
        let i = from_query(&q).unwrap();
        let certs = [k.cert.clone()];
        i.redirect_sig.as_ref().unwrap().verify(&certs).unwrap();
        let tampered = q.replace("RelayState=rs", "RelayState=rt");
        let i = from_query(&tampered).unwrap();
        assert_eq!(
            i.redirect_sig.unwrap().verify(&certs).unwrap_err().reason,
            Reason::BadSignature
        );
    }

    #[test]
    fn logout_messages_parse() {
        let lr = crate::saml::request::LogoutRequest {
            id: "_l",
            sp_entity_id: "sp",
            destination: "http://idp/slo",
            name_id: "alice@example.net",
            name_id_format: None,
            session_index: Some("_s1"),
            now: SystemTime::now(),
        }
        .xml();
        let r = LogoutRequest::parse(&lr).unwrap();
        assert_eq!(
            (
                r.issuer.as_str(),
                r.name_id.as_str(),
                r.session_indexes.as_slice()
            ),
            ("sp", "alice@example.net", &["_s1".to_string()][..])
        );
        fuzz_logout_request(lr.as_bytes());
        fuzz_authn_request(b"SAMLRequest=&SigAlg=x");
    }
}

//! Outgoing messages with the HTTP-Redirect binding: the AuthnRequest that
//! starts a login and the LogoutRequest of single logout, deflated, base64'd
//! and, when we have a key, signed over the query string (SAML bindings
//! §3.4.4.1).

use std::io::Write as _;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::write::DeflateEncoder;

use super::keys::{RSA_SHA256_URI, SpKey};
use super::metadata::{POST, escape};
use super::time;

/// A fresh message ID: `_` then 160 random bits in hex (IDs are NCNames,
/// so they must not start with a digit).
pub fn new_id() -> String {
    let mut b = [0u8; 20];
    aws_lc_rs::rand::fill(&mut b).expect("system CSPRNG");
    let mut s = String::with_capacity(41);
    s.push('_');
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

pub struct AuthnRequest<'a> {
    pub id: &'a str,
    pub sp_entity_id: &'a str,
    pub acs_url: &'a str,
    pub destination: &'a str,
    pub name_id_format: &'a str,
    pub now: SystemTime,
}

impl AuthnRequest<'_> {
    pub fn xml(&self) -> String {
        format!(
            "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
             xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" \
             IssueInstant=\"{t}\" Destination=\"{d}\" AssertionConsumerServiceURL=\"{acs}\" \
             ProtocolBinding=\"{POST}\"><saml:Issuer>{sp}</saml:Issuer>\
             <samlp:NameIDPolicy Format=\"{f}\" AllowCreate=\"true\"/></samlp:AuthnRequest>",
            id = escape(self.id),
            t = time::format(self.now),
            d = escape(self.destination),
            acs = escape(self.acs_url),
            sp = escape(self.sp_entity_id),
            f = escape(self.name_id_format),
        )
    }
}

pub struct LogoutRequest<'a> {
    pub id: &'a str,
    pub sp_entity_id: &'a str,
    pub destination: &'a str,
    pub name_id: &'a str,
    pub name_id_format: Option<&'a str>,
    pub session_index: Option<&'a str>,
    pub now: SystemTime,
}

impl LogoutRequest<'_> {
    pub fn xml(&self) -> String {
        let fmt = self
            .name_id_format
            .map(|f| format!(" Format=\"{}\"", escape(f)))
            .unwrap_or_default();
        let si = self
            .session_index
            .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", escape(s)))
            .unwrap_or_default();
        format!(
            "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
             xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" \
             IssueInstant=\"{t}\" Destination=\"{d}\"><saml:Issuer>{sp}</saml:Issuer>\
             <saml:NameID{fmt}>{n}</saml:NameID>{si}</samlp:LogoutRequest>",
            id = escape(self.id),
            t = time::format(self.now),
            d = escape(self.destination),
            sp = escape(self.sp_entity_id),
            n = escape(self.name_id),
        )
    }
}

/// The redirect URL carrying `xml` as `SAMLRequest`, signed when `key` is
/// given.
pub fn redirect_url(
    endpoint: &str,
    xml: &str,
    relay_state: Option<&str>,
    key: Option<&SpKey>,
) -> String {
    let mut z = DeflateEncoder::new(Vec::new(), Compression::default());
    z.write_all(xml.as_bytes()).expect("write to Vec");
    let deflated = z.finish().expect("deflate to Vec");
    let mut q = format!("SAMLRequest={}", enc(&STANDARD.encode(deflated)));
    if let Some(r) = relay_state {
        q.push_str("&RelayState=");
        q.push_str(&enc(r));
    }
    if let Some(k) = key {
        q.push_str("&SigAlg=");
        q.push_str(&enc(RSA_SHA256_URI));
        let sig = k.sign_rsa_sha256(q.as_bytes());
        q.push_str("&Signature=");
        q.push_str(&enc(&STANDARD.encode(sig)));
    }
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{sep}{q}")
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;
    use crate::saml::IdpCert;
    use crate::saml::keys::SigAlg;

    fn data(name: &str) -> String {
        let p = format!("{}/tests/data/saml/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn signed_redirect_carries_a_deflated_request_and_a_verifiable_signature() {
        let key = SpKey::from_pem(&data("sp-key.pem")).unwrap();
        let cert = IdpCert::from_pem(&data("sp-cert.pem")).unwrap().remove(0);
        let xml = AuthnRequest {
            id: "_abc",
            sp_entity_id: "https://sp.example/md?a=1&b=2",
            acs_url: "https://sp.example/acs",
            destination: "https://idp.example/sso",
            name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
            now: time::parse("2026-01-01T00:00:00Z").unwrap(),
        }
        .xml();
        let url = redirect_url(
            "https://idp.example/sso?tenant=x",
            &xml,
            Some("r s"),
            Some(&key),
        );
        let (base, query) = url.split_once('?').unwrap();
        assert_eq!(base, "https://idp.example/sso");
        let (signed, sig) = query.split_once("&Signature=").unwrap();
        let signed = signed.strip_prefix("tenant=x&").unwrap();
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("RelayState"), "r s");
        assert_eq!(get("SigAlg"), RSA_SHA256_URI);
        let sig: String = url::form_urlencoded::parse(format!("s={sig}").as_bytes())
            .next()
            .unwrap()
            .1
            .into();
        let sig = STANDARD.decode(sig).unwrap();
        assert!(cert.verify(SigAlg::RsaSha256, signed.as_bytes(), &sig));
        assert!(!cert.verify(SigAlg::RsaSha256, b"SAMLRequest=other", &sig));
        let deflated = STANDARD.decode(get("SAMLRequest")).unwrap();
        let mut inflated = String::new();
        flate2::read::DeflateDecoder::new(&deflated[..])
            .read_to_string(&mut inflated)
            .unwrap();
        assert_eq!(inflated, xml);
        // Our own parser reads back what we wrote (escaping included).
        let doc = crate::saml::xml::parse(&inflated).unwrap();
        let root = doc.root_element();
        assert_eq!(root.attribute("ID"), Some("_abc"));
        let issuer = root.first_element_child().unwrap();
        assert_eq!(issuer.text(), Some("https://sp.example/md?a=1&b=2"));
    }

    #[test]
    fn ids_are_fresh_ncnames() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(a.starts_with('_') && a.len() == 41);
    }
}

//! SAML metadata both ways: reading the IdP's (entity ID, SSO and SLO
//! endpoints, signing certificates) and writing ours for the IdP admin.

use super::keys::IdpCert;
use super::xml::{self, NS_DS, NS_MD, child, children, is, text};

pub const REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
pub const POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// What we need to know about an IdP.
#[derive(Debug, Clone)]
pub struct IdpInfo {
    pub entity_id: String,
    pub sso_url: String,
    pub slo_url: Option<String>,
    pub certs: Vec<IdpCert>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetadataError {
    #[error("{0}")]
    Xml(#[from] xml::XmlError),
    #[error("no IdP entity{0} in the metadata")]
    NoEntity(String),
    #[error("the IdP has no SingleSignOnService with the HTTP-Redirect binding")]
    NoSso,
    #[error("the IdP publishes no signing certificate")]
    NoCert,
    #[error("certificate in metadata: {0}")]
    Cert(#[from] super::keys::KeyError),
}

/// Parses IdP metadata: an EntityDescriptor, or an EntitiesDescriptor from
/// which the one with `entity_id` (or the only IdP) is taken.
pub fn parse_idp(text_in: &str, entity_id: Option<&str>) -> Result<IdpInfo, MetadataError> {
    let doc = xml::parse(text_in)?;
    let idps: Vec<_> = doc
        .root_element()
        .descendants()
        .filter(|n| is(*n, NS_MD, "EntityDescriptor"))
        .filter(|n| child(*n, NS_MD, "IDPSSODescriptor").is_some())
        .filter(|n| entity_id.is_none_or(|e| n.attribute("entityID") == Some(e)))
        .collect();
    let wanted = || entity_id.map(|e| format!(" {e:?}")).unwrap_or_default();
    let [ed] = idps.as_slice() else {
        return Err(MetadataError::NoEntity(wanted()));
    };
    let idp =
        child(*ed, NS_MD, "IDPSSODescriptor").ok_or_else(|| MetadataError::NoEntity(wanted()))?;
    let endpoint = |name: &'static str| {
        children(idp, NS_MD, name)
            .find(|s| s.attribute("Binding") == Some(REDIRECT))
            .and_then(|s| s.attribute("Location"))
            .map(str::to_string)
    };
    let sso_url = endpoint("SingleSignOnService").ok_or(MetadataError::NoSso)?;
    let mut certs = Vec::new();
    for kd in children(idp, NS_MD, "KeyDescriptor") {
        if kd.attribute("use").is_some_and(|u| u != "signing") {
            continue;
        }
        for c in kd
            .descendants()
            .filter(|n| is(*n, NS_DS, "X509Certificate"))
        {
            certs.push(IdpCert::from_base64(&text(c))?);
        }
    }
    if certs.is_empty() {
        return Err(MetadataError::NoCert);
    }
    Ok(IdpInfo {
        entity_id: ed.attribute("entityID").unwrap_or("").to_string(),
        sso_url,
        slo_url: endpoint("SingleLogoutService"),
        certs,
    })
}

/// Our SP metadata.
pub struct SpMetadata<'a> {
    pub entity_id: &'a str,
    pub acs_url: &'a str,
    pub slo_url: &'a str,
    pub name_id_format: &'a str,
    pub signs_requests: bool,
    /// Our certificate (base64 DER), published for signing and encryption.
    pub cert: Option<String>,
}

impl SpMetadata<'_> {
    pub fn render(&self) -> String {
        let mut keys = String::new();
        if let Some(c) = &self.cert {
            for u in ["signing", "encryption"] {
                keys.push_str(&format!(
                    "<md:KeyDescriptor use=\"{u}\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{c}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
                ));
                if u == "encryption" {
                    for m in [
                        "http://www.w3.org/2009/xmlenc11#aes256-gcm",
                        "http://www.w3.org/2009/xmlenc11#aes128-gcm",
                        "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
                        "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
                        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
                    ] {
                        keys.push_str(&format!("<md:EncryptionMethod Algorithm=\"{m}\"/>"));
                    }
                }
                keys.push_str("</md:KeyDescriptor>");
            }
        }
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <md:EntityDescriptor xmlns:md=\"{NS_MD}\" xmlns:ds=\"{NS_DS}\" entityID=\"{e}\">\
             <md:SPSSODescriptor AuthnRequestsSigned=\"{s}\" WantAssertionsSigned=\"true\" \
             protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">{keys}\
             <md:SingleLogoutService Binding=\"{REDIRECT}\" Location=\"{slo}\"/>\
             <md:NameIDFormat>{f}</md:NameIDFormat>\
             <md:AssertionConsumerService Binding=\"{POST}\" Location=\"{acs}\" index=\"0\" isDefault=\"true\"/>\
             </md:SPSSODescriptor></md:EntityDescriptor>\n",
            e = escape(self.entity_id),
            s = self.signs_requests,
            slo = escape(self.slo_url),
            f = escape(self.name_id_format),
            acs = escape(self.acs_url),
        )
    }
}

/// Escapes text for an XML attribute or element.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_b64() -> String {
        let p = format!(
            "{}/tests/data/saml/idp-cert.pem",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect()
    }

    fn idp_md(entity: &str, sso_binding: &str) -> String {
        format!(
            "<md:EntityDescriptor xmlns:md=\"{NS_MD}\" xmlns:ds=\"{NS_DS}\" entityID=\"{entity}\">\
             <md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">\
             <md:KeyDescriptor use=\"encryption\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>AAAA</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>\
             <md:KeyDescriptor><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{c}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>\
             <md:SingleLogoutService Binding=\"{REDIRECT}\" Location=\"https://idp/slo\"/>\
             <md:SingleSignOnService Binding=\"{POST}\" Location=\"https://idp/post\"/>\
             <md:SingleSignOnService Binding=\"{sso_binding}\" Location=\"https://idp/sso\"/>\
             </md:IDPSSODescriptor></md:EntityDescriptor>",
            c = cert_b64()
        )
    }

    #[test]
    fn reads_entity_endpoints_and_signing_certificates() {
        let i = parse_idp(&idp_md("https://idp", REDIRECT), None).unwrap();
        assert_eq!(
            (i.entity_id.as_str(), i.sso_url.as_str()),
            ("https://idp", "https://idp/sso")
        );
        assert_eq!(i.slo_url.as_deref(), Some("https://idp/slo"));
        // The encryption-only key (not even a certificate) is not read.
        assert_eq!(i.certs.len(), 1);
        assert_eq!(
            parse_idp(&idp_md("https://idp", POST), None).unwrap_err(),
            MetadataError::NoSso
        );
        let agg = format!(
            "<md:EntitiesDescriptor xmlns:md=\"{NS_MD}\">{}{}</md:EntitiesDescriptor>",
            idp_md("https://a", REDIRECT),
            idp_md("https://b", REDIRECT)
        );
        assert!(matches!(
            parse_idp(&agg, None),
            Err(MetadataError::NoEntity(_))
        ));
        assert_eq!(
            parse_idp(&agg, Some("https://b")).unwrap().entity_id,
            "https://b"
        );
        let dtd = format!(
            "<!DOCTYPE x [<!ENTITY e \"x\">]>{}",
            idp_md("https://idp", REDIRECT)
        );
        assert!(matches!(
            parse_idp(&dtd, None),
            Err(MetadataError::Xml(xml::XmlError::Dtd))
        ));
    }

    #[test]
    fn our_metadata_is_well_formed_and_escaped() {
        let md = SpMetadata {
            entity_id: "https://sp/md?a=1&b=\"2\"",
            acs_url: "https://sp/acs",
            slo_url: "https://sp/slo",
            name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
            signs_requests: true,
            cert: Some(cert_b64()),
        }
        .render();
        let doc = xml::parse(&md).unwrap();
        let root = doc.root_element();
        assert_eq!(
            root.attribute("entityID"),
            Some("https://sp/md?a=1&b=\"2\"")
        );
        let sp = child(root, NS_MD, "SPSSODescriptor").unwrap();
        assert_eq!(sp.attribute("AuthnRequestsSigned"), Some("true"));
        assert_eq!(children(sp, NS_MD, "KeyDescriptor").count(), 2);
        let acs = child(sp, NS_MD, "AssertionConsumerService").unwrap();
        assert_eq!(
            (acs.attribute("Binding"), acs.attribute("Location")),
            (Some(POST), Some("https://sp/acs"))
        );
    }
}

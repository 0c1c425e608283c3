//! SAML metadata both ways for the IdP side: ours (entity ID, SSO and SLO
//! endpoints for both bindings, the signing certificate and the next one)
//! and a console's SP metadata, read from a file as an alternative to
//! giving its entity ID, ACS URL, SLO URL and certificate one by one.

use std::fmt::Write as _;

use crate::saml::IdpCert;
use crate::saml::metadata::{POST, REDIRECT, escape};
use crate::saml::xml::{self, NS_DS, NS_MD, child, children, is, text};

use super::settings::{NAMEID_EMAIL, NAMEID_PERSISTENT, NAMEID_TRANSIENT, NAMEID_UNSPECIFIED};

/// Our IdP metadata.
pub fn idp_metadata<'a>(
    entity_id: &str,
    sso_url: &str,
    slo_url: &str,
    certs: impl Iterator<Item = &'a IdpCert>,
) -> String {
    let mut keys = String::new();
    for c in certs {
        let _ = write!(
            keys,
            "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}\
             </ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>",
            c.to_base64()
        );
    }
    let mut formats = String::new();
    for f in [
        NAMEID_UNSPECIFIED,
        NAMEID_EMAIL,
        NAMEID_PERSISTENT,
        NAMEID_TRANSIENT,
    ] {
        let _ = write!(formats, "<md:NameIDFormat>{f}</md:NameIDFormat>");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <md:EntityDescriptor xmlns:md=\"{NS_MD}\" xmlns:ds=\"{NS_DS}\" entityID=\"{e}\">\
         <md:IDPSSODescriptor WantAuthnRequestsSigned=\"false\" \
         protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">{keys}\
         <md:SingleLogoutService Binding=\"{REDIRECT}\" Location=\"{slo}\"/>\
         <md:SingleLogoutService Binding=\"{POST}\" Location=\"{slo}\"/>{formats}\
         <md:SingleSignOnService Binding=\"{REDIRECT}\" Location=\"{sso}\"/>\
         <md:SingleSignOnService Binding=\"{POST}\" Location=\"{sso}\"/>\
         </md:IDPSSODescriptor></md:EntityDescriptor>\n",
        e = escape(entity_id),
        slo = escape(slo_url),
        sso = escape(sso_url),
    )
}

/// What a console's SP metadata says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpInfo {
    pub entity_id: String,
    /// The HTTP-POST AssertionConsumerService (the default one if marked).
    pub acs_url: String,
    pub slo_url: Option<String>,
    pub certs: Vec<IdpCert>,
    pub requests_signed: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpMetadataError {
    #[error("{0}")]
    Xml(#[from] xml::XmlError),
    #[error("no single SP entity in the metadata")]
    NoEntity,
    #[error("the SP has no AssertionConsumerService with the HTTP-POST binding")]
    NoAcs,
    #[error("certificate in metadata: {0}")]
    Cert(#[from] crate::saml::KeyError),
}

pub fn parse_sp(text_in: &str) -> Result<SpInfo, SpMetadataError> {
    let doc = xml::parse(text_in)?;
    let sps: Vec<_> = doc
        .root_element()
        .descendants()
        .filter(|n| is(*n, NS_MD, "EntityDescriptor"))
        .filter(|n| child(*n, NS_MD, "SPSSODescriptor").is_some())
        .collect();
    let [ed] = sps.as_slice() else {
        return Err(SpMetadataError::NoEntity);
    };
    let sp = child(*ed, NS_MD, "SPSSODescriptor").ok_or(SpMetadataError::NoEntity)?;
    let posts: Vec<_> = children(sp, NS_MD, "AssertionConsumerService")
        .filter(|s| s.attribute("Binding") == Some(POST))
        .collect();
    let acs = posts
        .iter()
        .find(|s| s.attribute("isDefault") == Some("true"))
        .or_else(|| posts.first())
        .and_then(|s| s.attribute("Location"))
        .ok_or(SpMetadataError::NoAcs)?;
    let slo_url = children(sp, NS_MD, "SingleLogoutService")
        .find(|s| s.attribute("Binding") == Some(REDIRECT))
        .and_then(|s| s.attribute("Location"))
        .map(str::to_string);
    let mut certs = Vec::new();
    for kd in children(sp, NS_MD, "KeyDescriptor") {
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
    Ok(SpInfo {
        entity_id: ed.attribute("entityID").unwrap_or("").to_string(),
        acs_url: acs.to_string(),
        slo_url,
        certs,
        requests_signed: sp.attribute("AuthnRequestsSigned") == Some("true"),
    })
}

/// The `sp_metadata` fuzz target: the SP metadata reader over arbitrary
/// bytes (what a console's metadata URL may answer); it may not panic.
pub fn fuzz_sp_metadata(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_sp(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_metadata_publishes_both_certificates_and_both_bindings() {
        let now = std::time::SystemTime::now();
        let a = super::super::keys::SigningKey::generate("a", now)
            .unwrap()
            .0;
        let b = super::super::keys::SigningKey::generate("b", now)
            .unwrap()
            .0;
        let md = idp_metadata(
            "http://idp/saml/metadata",
            "http://idp/saml/sso",
            "http://idp/saml/slo",
            [&a.cert, &b.cert].into_iter(),
        );
        // The SP side of this project reads it as any IdP's.
        let info = crate::saml::metadata::parse_idp(&md, None).unwrap();
        assert_eq!(info.entity_id, "http://idp/saml/metadata");
        assert_eq!(info.sso_url, "http://idp/saml/sso");
        assert_eq!(info.slo_url.as_deref(), Some("http://idp/saml/slo"));
        assert_eq!(info.certs, [a.cert.clone(), b.cert.clone()]);
    }

    #[test]
    fn sp_metadata_gives_the_console_entries() {
        let sp = crate::saml::metadata::SpMetadata {
            entity_id: "http://sp/md",
            acs_url: "http://sp/acs",
            slo_url: "http://sp/slo",
            name_id_format: NAMEID_UNSPECIFIED,
            signs_requests: true,
            cert: None,
        }
        .render();
        let i = parse_sp(&sp).unwrap();
        assert_eq!(
            (
                i.entity_id.as_str(),
                i.acs_url.as_str(),
                i.slo_url.as_deref()
            ),
            ("http://sp/md", "http://sp/acs", Some("http://sp/slo"))
        );
        assert!(i.requests_signed && i.certs.is_empty());
        fuzz_sp_metadata(sp.as_bytes());
        fuzz_sp_metadata(include_bytes!(
            "../../../fuzz/seeds/sp_metadata/pysaml2-sp.xml"
        ));
    }
}

//! The enveloped XML-DSig signer: RSA-SHA256 over exclusive c14n (the
//! project's own `saml::c14n`, the same code the verifier uses), one
//! Reference to the signed element's ID, the signature placed after the
//! element's `Issuer` as the SAML schema wants it.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::keys::SigningKey;
use crate::saml::c14n::canonicalize;
use crate::saml::xml::{self, NS_SAML};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("document to sign: {0}")]
    Xml(#[from] xml::XmlError),
    #[error("no element with ID {0:?}")]
    NoElement(String),
}

const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const EXC: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";

/// `xml` with an enveloped signature added to the element whose `ID` is
/// `id`. `inclusive`: the exclusive c14n PrefixList (`xs` where attribute
/// values name `xs:string`).
pub fn sign_element(
    xml_text: &str,
    id: &str,
    key: &SigningKey,
    inclusive: &[&str],
) -> Result<String, SignError> {
    let doc = xml::parse(xml_text)?;
    let el = doc
        .descendants()
        .find(|n| n.is_element() && n.attribute("ID") == Some(id))
        .ok_or_else(|| SignError::NoElement(id.to_string()))?;
    let canonical = canonicalize(&doc, el, None, inclusive);
    let digest = STANDARD.encode(digest::digest(&digest::SHA256, &canonical));
    let signed_info = signed_info(id, &digest, inclusive);
    let value = STANDARD.encode(key.sign(signed_info.as_bytes()));
    // After the Issuer, else first thing inside the element.
    let at = match el.first_element_child() {
        Some(i) if xml::is(i, NS_SAML, "Issuer") => i.range().end,
        _ => {
            let start = el.range().start;
            start + xml_text[start..].find('>').map_or(0, |p| p + 1)
        }
    };
    let mut out = String::with_capacity(xml_text.len() + signed_info.len() + 2400);
    out.push_str(&xml_text[..at]);
    out.push_str("<ds:Signature xmlns:ds=\"");
    out.push_str(DS);
    out.push_str("\">");
    out.push_str(&signed_info);
    out.push_str("<ds:SignatureValue>");
    out.push_str(&value);
    out.push_str("</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>");
    out.push_str(&key.cert.to_base64());
    out.push_str("</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>");
    out.push_str(&xml_text[at..]);
    Ok(out)
}

/// SignedInfo, written directly in its canonical form (what exclusive c14n
/// of it gives in place: `ds` declared on it, no other namespace, every
/// element with an end tag), which is what gets signed.
fn signed_info(id: &str, digest: &str, inclusive: &[&str]) -> String {
    let prefixes = if inclusive.is_empty() {
        String::new()
    } else {
        format!(
            "<ec:InclusiveNamespaces xmlns:ec=\"{EXC}\" PrefixList=\"{}\"></ec:InclusiveNamespaces>",
            inclusive.join(" ")
        )
    };
    format!(
        "<ds:SignedInfo xmlns:ds=\"{DS}\">\
         <ds:CanonicalizationMethod Algorithm=\"{EXC}\"></ds:CanonicalizationMethod>\
         <ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"></ds:SignatureMethod>\
         <ds:Reference URI=\"#{id}\"><ds:Transforms>\
         <ds:Transform Algorithm=\"{DS}enveloped-signature\"></ds:Transform>\
         <ds:Transform Algorithm=\"{EXC}\">{prefixes}</ds:Transform></ds:Transforms>\
         <ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"></ds:DigestMethod>\
         <ds:DigestValue>{digest}</ds:DigestValue></ds:Reference></ds:SignedInfo>",
        id = crate::saml::metadata::escape(id),
    )
}

/// The HTTP-Redirect binding's signature (SAML bindings 3.4.4.1): over
/// `SAMLRequest=..&RelayState=..&SigAlg=..` exactly as sent. `param` is
/// `SAMLRequest` or `SAMLResponse`. Returns the query string.
pub fn redirect_query(
    param: &str,
    xml_text: &str,
    relay_state: Option<&str>,
    key: &SigningKey,
) -> String {
    use std::io::Write as _;
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(xml_text.as_bytes()).expect("write to Vec");
    let deflated = z.finish().expect("deflate to Vec");
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut q = format!("{param}={}", enc(&STANDARD.encode(deflated)));
    if let Some(r) = relay_state {
        q.push_str("&RelayState=");
        q.push_str(&enc(r));
    }
    q.push_str("&SigAlg=");
    q.push_str(&enc(crate::saml::keys::RSA_SHA256_URI));
    let sig = key.sign(q.as_bytes());
    q.push_str("&Signature=");
    q.push_str(&enc(&STANDARD.encode(sig)));
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saml::dsig;

    pub(crate) fn key() -> SigningKey {
        SigningKey::generate("t", std::time::SystemTime::now())
            .unwrap()
            .0
    }

    #[test]
    fn signed_info_is_written_in_canonical_form() {
        for inc in [&[][..], &["xs"][..]] {
            let si = signed_info("_a1", "ZGlnZXN0", inc);
            let doc = xml::parse(&si).unwrap();
            let c = canonicalize(&doc, doc.root_element(), None, &[]);
            assert_eq!(String::from_utf8(c).unwrap(), si);
        }
    }

    #[test]
    fn our_verifier_accepts_what_we_sign_and_refuses_a_change() {
        let k = key();
        let doc = format!(
            "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_r\">\
             <saml:Issuer xmlns:saml=\"{NS_SAML}\">me</saml:Issuer>\
             <saml:Assertion xmlns:saml=\"{NS_SAML}\" xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" \
             xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" ID=\"_a\">\
             <saml:Issuer>me</saml:Issuer><saml:V xsi:type=\"xs:string\">x &amp; y</saml:V>\
             </saml:Assertion></samlp:Response>"
        );
        let once = sign_element(&doc, "_a", &k, &["xs"]).unwrap();
        let both = sign_element(&once, "_r", &k, &["xs"]).unwrap();
        let d = xml::parse(&both).unwrap();
        let certs = [k.cert.clone()];
        for id in ["_r", "_a"] {
            let el = d
                .descendants()
                .find(|n| n.attribute("ID") == Some(id))
                .unwrap();
            let sig = dsig::signature_of(el).unwrap().unwrap();
            // The signature sits right after the Issuer.
            assert_eq!(
                sig.prev_sibling_element().unwrap().tag_name().name(),
                "Issuer"
            );
            dsig::verify(&d, el, sig, &certs, false).unwrap();
        }
        let changed = both.replace("x &amp; y", "x &amp; z");
        let d = xml::parse(&changed).unwrap();
        let a = d
            .descendants()
            .find(|n| n.attribute("ID") == Some("_a"))
            .unwrap();
        let sig = dsig::signature_of(a).unwrap().unwrap();
        assert!(dsig::verify(&d, a, sig, &certs, false).is_err());
        assert_eq!(
            sign_element(&doc, "_zz", &k, &[]),
            Err(SignError::NoElement("_zz".into()))
        );
    }
}

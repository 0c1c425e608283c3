//! Fuzz entry for the SAML side: arbitrary bytes as a posted Response (with
//! a decryption key, so the XML Encryption path is reachable), as IdP
//! metadata, as an `xs:dateTime`, and through canonicalisation of whatever
//! parses. Kept in the library so `cargo test` can run it too.

use std::sync::OnceLock;
use std::time::Duration;

use super::c14n::canonicalize;
use super::metadata::parse_idp;
use super::response::{AttributeNames, Expect, verify};
use super::{IdpCert, SpKey, time, xml};

const IDP_CERT: &str = include_str!("../../tests/data/saml/idp-cert.pem");
const SP_KEY: &str = include_str!("../../tests/data/saml/sp-key.pem");

fn material() -> &'static (Vec<IdpCert>, Option<SpKey>) {
    static M: OnceLock<(Vec<IdpCert>, Option<SpKey>)> = OnceLock::new();
    M.get_or_init(|| {
        (
            IdpCert::from_pem(IDP_CERT).unwrap_or_default(),
            SpKey::from_pem(SP_KEY).ok(),
        )
    })
}

/// Must never panic, whatever `data` is.
pub fn fuzz_response(data: &[u8]) {
    let (certs, key) = material();
    let names = AttributeNames::default();
    let ex = Expect {
        idp_entity_id: "https://idp.example.test/saml",
        sp_entity_id: "https://sp.example.test/saml/metadata",
        acs_url: "https://sp.example.test/auth/saml/corp/acs",
        certs,
        now: time::parse("2026-01-01T00:01:00Z").unwrap_or(std::time::UNIX_EPOCH),
        skew: Duration::from_secs(60),
        allow_sha1: false,
        allow_idp_initiated: true,
        sp_key: key.as_ref(),
        attributes: &names,
    };
    let _ = verify(data, &ex);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_idp(text, None);
    let _ = time::parse(text);
    if let Ok(doc) = xml::parse(text) {
        let root = doc.root_element();
        let _ = canonicalize(
            &doc,
            root,
            root.first_element_child().map(|c| c.id()),
            &["#default", "xs"],
        );
    }
}

#[cfg(test)]
mod tests {
    /// Every corpus file, and every prefix of one, through the fuzz entry.
    #[test]
    fn corpus_and_truncations_do_not_panic() {
        for e in std::fs::read_dir(super::super::corpus_tests::dir()).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "xml") {
                let b = std::fs::read(&p).unwrap();
                for cut in (0..b.len()).step_by(97) {
                    super::fuzz_response(&b[..cut]);
                }
                super::fuzz_response(&b);
            }
        }
    }
}

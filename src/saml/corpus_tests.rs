//! The adversarial corpus in tests/data/saml/: responses signed (and
//! tampered with afterwards) by xmlsec1, an independent implementation,
//! each with the outcome a strict verifier must give. See its manifest.json
//! and make_corpus.sh.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

use super::metadata::IdpInfo;
use super::provider::{LoginState, SamlProvider};
use super::response::{AttributeNames, Expect, verify};
use super::settings::{IdpSource, SamlSettings};
use super::{IdpCert, Reason, SpKey, time};

pub(super) const IDP: &str = "https://idp.example.test/saml";
pub(super) const SP: &str = "https://sp.example.test/saml/metadata";
pub(super) const ACS: &str = "https://sp.example.test/auth/saml/corp/acs";
pub(super) const NOW: &str = "2026-01-01T00:01:00Z";

pub(super) fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/saml")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub(super) fn idp_certs() -> Vec<IdpCert> {
    IdpCert::from_pem(&read("idp-cert.pem")).unwrap()
}

pub(super) fn sp_key() -> SpKey {
    SpKey::from_pem(&read("sp-key.pem")).unwrap()
}

/// What this SP expects of the corpus's IdP at `now`.
fn expectations<'a>(
    certs: &'a [IdpCert],
    key: Option<&'a SpKey>,
    names: &'a AttributeNames,
    now: SystemTime,
) -> Expect<'a> {
    Expect {
        idp_entity_id: IDP,
        sp_entity_id: SP,
        acs_url: ACS,
        certs,
        now,
        skew: std::time::Duration::from_secs(60),
        allow_sha1: false,
        allow_idp_initiated: false,
        sp_key: key,
        attributes: names,
    }
}

/// Runs one manifest entry; `Ok(())` when the outcome is the expected one.
fn run(entry: &Value, certs: &[IdpCert], key: &SpKey) -> Result<(), String> {
    let file = entry["file"].as_str().unwrap();
    let expect = entry["expect"].as_str().unwrap();
    let o = &entry["options"];
    let now = time::parse(o["now"].as_str().unwrap_or(NOW)).unwrap();
    let pending: Vec<String> = o["pending"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_else(|| vec!["_req-0001".to_string()]);
    let names = AttributeNames::default();
    let ex = Expect {
        allow_sha1: o["allow_sha1"].as_bool().unwrap_or(false),
        allow_idp_initiated: o["allow_idp_initiated"].as_bool().unwrap_or(false),
        ..expectations(
            certs,
            o["decrypt_key"].is_string().then_some(key),
            &names,
            now,
        )
    };
    let bytes = std::fs::read(dir().join(file)).map_err(|e| format!("{file}: {e}"))?;
    let got = verify(&bytes, &ex).and_then(|v| match &v.in_response_to {
        Some(id) if !pending.contains(id) => {
            Err(super::Refusal::new(Reason::InResponseTo, id.clone()))
        }
        _ => Ok(v),
    });
    match (&got, expect) {
        (Ok(v), "ok") => {
            if v.name_id.is_empty() || v.assertion_id.is_empty() {
                return Err(format!("{file}: accepted but empty {v:?}"));
            }
            Ok(())
        }
        (Err(r), want) if r.reason.label() == want => Ok(()),
        (Ok(v), want) => Err(format!(
            "{file}: ACCEPTED (as {:?}), expected refusal `{want}`",
            v.username
        )),
        (Err(r), want) => Err(format!(
            "{file}: refused `{}` ({}), expected `{want}`",
            r.reason, r.detail
        )),
    }
}

#[test]
fn every_corpus_case_gets_its_expected_outcome() {
    let manifest: Value = serde_json::from_str(&read("manifest.json")).unwrap();
    let (certs, key) = (idp_certs(), sp_key());
    let entries = manifest.as_array().unwrap();
    assert!(entries.len() >= 30, "corpus too small: {}", entries.len());
    let failures: Vec<String> = entries
        .iter()
        .filter_map(|e| run(e, &certs, &key).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        entries.len(),
        failures.join("\n")
    );
}

#[test]
fn the_good_response_reads_names_and_groups() {
    let names = AttributeNames::default();
    let certs = idp_certs();
    let ex = Expect {
        idp_entity_id: IDP,
        sp_entity_id: SP,
        acs_url: ACS,
        certs: &certs,
        now: time::parse(NOW).unwrap(),
        skew: std::time::Duration::from_secs(60),
        allow_sha1: false,
        allow_idp_initiated: false,
        sp_key: None,
        attributes: &names,
    };
    let v = verify(read("good-assertion-signed.xml").as_bytes(), &ex).unwrap();
    assert_eq!(v.name_id, "alice");
    assert_eq!(v.username, "alice");
    assert_eq!(v.email.as_deref(), Some("alice@example.com"));
    assert_eq!(v.full_name.as_deref(), Some("Alice Example"));
    assert_eq!(
        v.groups,
        Some(vec!["netadmins".to_string(), "all-staff".to_string()])
    );
    assert_eq!(v.in_response_to.as_deref(), Some("_req-0001"));
    // The same check with the user name from an attribute instead.
    let by_mail = AttributeNames {
        username: Some("email".into()),
        ..AttributeNames::default()
    };
    let v = verify(
        read("good-assertion-signed.xml").as_bytes(),
        &Expect {
            attributes: &by_mail,
            ..ex
        },
    )
    .unwrap();
    assert_eq!(v.username, "alice@example.com");
}

fn settings() -> SamlSettings {
    SamlSettings {
        name: "corp".into(),
        idp: IdpSource::Static(Arc::new(IdpInfo {
            entity_id: IDP.into(),
            sso_url: "https://idp.example.test/sso".into(),
            slo_url: None,
            certs: idp_certs(),
        })),
        sp_entity_id: SP.into(),
        acs_url: ACS.into(),
        slo_url: "https://sp.example.test/auth/saml/corp/slo".into(),
        sp_key: None,
        sp_cert: None,
        sign_requests: false,
        name_id_format: super::settings::NAMEID_UNSPECIFIED.into(),
        attributes: AttributeNames::default(),
        clock_skew: std::time::Duration::from_secs(60),
        allow_idp_initiated: false,
        allow_sha1: false,
        login_timeout: std::time::Duration::from_secs(600),
        http_timeout: std::time::Duration::from_secs(5),
    }
}

fn b64(name: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(read(name))
}

#[tokio::test]
async fn a_response_is_accepted_once_and_only_by_the_browser_that_asked() {
    let p = SamlProvider::new(settings()).unwrap();
    let state = LoginState::default();
    let now: SystemTime = time::parse(NOW).unwrap();
    let good = b64("good-assertion-signed.xml");

    // Nobody asked: in_response_to.
    let r = p
        .complete(&good, Some("_req-0001"), &state, now)
        .await
        .unwrap_err();
    assert_eq!(r.reason, Reason::InResponseTo, "{r}");

    // Asked, but by another browser.
    state.add_pending_for_test("_req-0001", "corp").await;
    let r = p
        .complete(&good, Some("_req-other"), &state, now)
        .await
        .unwrap_err();
    assert_eq!(r.reason, Reason::InResponseTo, "{r}");

    // Asked by this browser: accepted, then a replay.
    state.add_pending_for_test("_req-0001", "corp").await;
    let v = p
        .complete(&good, Some("_req-0001"), &state, now)
        .await
        .unwrap();
    assert_eq!(v.name_id, "alice");
    state.add_pending_for_test("_req-0001", "corp").await;
    let r = p
        .complete(&good, Some("_req-0001"), &state, now)
        .await
        .unwrap_err();
    assert_eq!(r.reason, Reason::Replay, "{r}");

    // Not base64 at all.
    let r = p.complete("%%%", None, &state, now).await.unwrap_err();
    assert_eq!(r.reason, Reason::Malformed);
}

/// An unsigned Response lets anyone alter the ciphertext of its encrypted
/// assertion. However the alteration fails (padding, UTF-8, XML, content),
/// the refusal must read the same, or it is a padding oracle.
#[test]
fn altered_ciphertext_in_an_unsigned_response_always_reads_encrypted() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    let (certs, key) = (idp_certs(), sp_key());
    let names = AttributeNames::default();
    let ex = expectations(&certs, Some(&key), &names, time::parse(NOW).unwrap());
    let good = read("good-encrypted-cbc.xml");
    assert!(verify(good.as_bytes(), &ex).is_ok());
    // The data's CipherValue is the document's last.
    let close = good.rfind("CipherValue>").unwrap();
    let value_end = good[..close].rfind('<').unwrap();
    let value_at = good[..value_end].rfind('>').unwrap() + 1;
    let ct: Vec<u8> = STANDARD
        .decode(
            good[value_at..value_end]
                .split_whitespace()
                .collect::<String>(),
        )
        .unwrap();
    let n = ct.len();
    let alterations: Vec<(&str, Vec<u8>)> = vec![
        ("last byte (padding)", {
            let mut c = ct.clone();
            c[n - 1] ^= 0x55;
            c
        }),
        ("second-to-last block (garbage before valid padding)", {
            let mut c = ct.clone();
            c[n - 20] ^= 0x01;
            c
        }),
        ("an early block (garbage XML)", {
            let mut c = ct.clone();
            c[20] ^= 0x80;
            c
        }),
        ("last block dropped", ct[..n - 16].to_vec()),
        // The IV changes the first plaintext block and nothing else: still
        // UTF-8, no longer XML (`<` becomes `A`).
        ("the IV (valid UTF-8, not XML)", {
            let mut c = ct.clone();
            c[0] ^= b'<' ^ b'A';
            c
        }),
    ];
    for (what, altered) in alterations {
        let doc = format!(
            "{}{}{}",
            &good[..value_at],
            STANDARD.encode(&altered),
            &good[value_end..]
        );
        match verify(doc.as_bytes(), &ex) {
            Err(r) => assert_eq!(r.reason, Reason::Encrypted, "{what}: {}", r.detail),
            Ok(_) => panic!("{what}: accepted"),
        }
    }
}

//! ID-token verification rules, on hand-built tokens signed with the local
//! test keys in testdata/.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use super::verify::{Expectations, KeySet, Login, VerifyError, verify_id_token};

const NOW: u64 = 1_800_000_000;
const ISS: &str = "https://acme.okta.com/oauth2/default";
const CID: &str = "0oa-portcullis";

fn rsa1() -> EncodingKey {
    EncodingKey::from_rsa_pem(include_bytes!("testdata/rsa1.pem")).unwrap()
}
fn rsa2() -> EncodingKey {
    EncodingKey::from_rsa_pem(include_bytes!("testdata/rsa2.pem")).unwrap()
}
fn ec1() -> EncodingKey {
    EncodingKey::from_ec_pem(include_bytes!("testdata/ec1.pem")).unwrap()
}

pub(crate) fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
    let mut j = Jwk::from_encoding_key(key, alg).unwrap();
    j.common.key_id = Some(kid.into());
    serde_json::to_value(j).unwrap()
}

fn keyset(keys: &[Value]) -> KeySet {
    KeySet::from_jwks_json(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
}

fn default_keys() -> KeySet {
    keyset(&[
        jwk(&rsa1(), Algorithm::RS256, "rsa1"),
        jwk(&ec1(), Algorithm::ES256, "ec1"),
    ])
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let msg = format!("{}.{}", b64(header), b64(claims));
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), key, alg).unwrap();
    format!("{msg}.{sig}")
}

fn sign(claims: &Value, key: &EncodingKey, alg: Algorithm, kid: &str) -> String {
    let alg_s = match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        Algorithm::HS256 => "HS256",
        _ => unreachable!(),
    };
    sign_raw(
        &json!({"alg": alg_s, "typ": "JWT", "kid": kid}),
        claims,
        key,
        alg,
    )
}

fn claims() -> Value {
    json!({
        "iss": ISS,
        "aud": CID,
        "sub": "00u1abcd",
        "exp": NOW + 300,
        "iat": NOW,
        "nonce": "nonce-1",
        "preferred_username": "alice@acme.com",
        "email": "alice@acme.com",
        "name": "Alice Admin",
        "groups": ["netadmins", "Everyone"],
    })
}

fn with(mut c: Value, k: &str, v: Value) -> Value {
    c[k] = v;
    c
}

fn without(mut c: Value, k: &str) -> Value {
    c.as_object_mut().unwrap().remove(k);
    c
}

fn want() -> Expectations<'static> {
    Expectations {
        issuer: ISS,
        audience: CID,
        client_id: CID,
        nonce: "nonce-1",
        clock_skew_secs: 60,
        hmac_secret: None,
        groups_claim: "groups",
        username_claim: "preferred_username",
    }
}

fn check(tok: &str) -> Result<Login, VerifyError> {
    verify_id_token(tok, &default_keys(), &want(), NOW)
}

fn rs(c: &Value) -> String {
    sign(c, &rsa1(), Algorithm::RS256, "rsa1")
}

#[test]
fn valid_rs256() {
    let l = check(&rs(&claims())).unwrap();
    assert_eq!(
        l,
        Login {
            sub: "00u1abcd".into(),
            username: "alice@acme.com".into(),
            email: Some("alice@acme.com".into()),
            full_name: Some("Alice Admin".into()),
            groups: Some(vec!["netadmins".into(), "Everyone".into()]),
        }
    );
}

#[test]
fn valid_es256() {
    let t = sign(&claims(), &ec1(), Algorithm::ES256, "ec1");
    assert_eq!(check(&t).unwrap().sub, "00u1abcd");
}

#[test]
fn no_kid_single_candidate_is_used() {
    let t = sign_raw(
        &json!({"alg": "RS256"}),
        &claims(),
        &rsa1(),
        Algorithm::RS256,
    );
    assert!(check(&t).is_ok());
}

#[test]
fn expired_and_skew_edge() {
    // Valid while now < exp + skew.
    assert!(check(&rs(&with(claims(), "exp", json!(NOW - 59)))).is_ok());
    assert_eq!(
        check(&rs(&with(claims(), "exp", json!(NOW - 60)))),
        Err(VerifyError::Expired)
    );
    assert_eq!(
        check(&rs(&with(claims(), "exp", json!(NOW - 3600)))),
        Err(VerifyError::Expired)
    );
    let mut w = want();
    w.clock_skew_secs = 0;
    let t = rs(&with(claims(), "exp", json!(NOW)));
    assert_eq!(
        verify_id_token(&t, &default_keys(), &w, NOW),
        Err(VerifyError::Expired)
    );
    let t = rs(&with(claims(), "exp", json!(NOW + 1)));
    assert!(verify_id_token(&t, &default_keys(), &w, NOW).is_ok());
}

#[test]
fn iat_in_future_and_skew_edge() {
    assert!(check(&rs(&with(claims(), "iat", json!(NOW + 60)))).is_ok());
    assert_eq!(
        check(&rs(&with(claims(), "iat", json!(NOW + 61)))),
        Err(VerifyError::IssuedInFuture)
    );
    assert_eq!(
        check(&rs(&without(claims(), "iat"))),
        Err(VerifyError::MissingClaim("iat".into()))
    );
}

#[test]
fn nbf_and_skew_edge() {
    assert!(check(&rs(&with(claims(), "nbf", json!(NOW + 60)))).is_ok());
    assert_eq!(
        check(&rs(&with(claims(), "nbf", json!(NOW + 61)))),
        Err(VerifyError::NotYetValid)
    );
}

#[test]
fn fractional_times_accepted() {
    assert!(check(&rs(&with(claims(), "exp", json!((NOW + 10) as f64 + 0.5)))).is_ok());
    assert_eq!(
        check(&rs(&with(claims(), "exp", json!("tomorrow")))),
        Err(VerifyError::ClaimType("exp".into()))
    );
}

#[test]
fn wrong_audience() {
    assert_eq!(
        check(&rs(&with(claims(), "aud", json!("someone-else")))),
        Err(VerifyError::Audience)
    );
    assert_eq!(
        check(&rs(&with(claims(), "aud", json!([])))),
        Err(VerifyError::Audience)
    );
    assert_eq!(
        check(&rs(&without(claims(), "aud"))),
        Err(VerifyError::MissingClaim("aud".into()))
    );
}

#[test]
fn multiple_audiences_need_azp_naming_us() {
    let c = with(claims(), "aud", json!([CID, "other-app"]));
    assert_eq!(check(&rs(&c)), Err(VerifyError::Azp));
    assert!(check(&rs(&with(c.clone(), "azp", json!(CID)))).is_ok());
    assert_eq!(
        check(&rs(&with(c, "azp", json!("other-app")))),
        Err(VerifyError::Azp)
    );
}

#[test]
fn configured_audience() {
    let mut w = want();
    w.audience = "api://portcullis";
    let t = rs(&with(claims(), "aud", json!("api://portcullis")));
    assert!(verify_id_token(&t, &default_keys(), &w, NOW).is_ok());
    assert_eq!(
        verify_id_token(&rs(&claims()), &default_keys(), &w, NOW),
        Err(VerifyError::Audience)
    );
}

#[test]
fn wrong_issuer() {
    let e = check(&rs(&with(
        claims(),
        "iss",
        json!("https://evil.example.com"),
    )))
    .unwrap_err();
    assert_eq!(e.reason(), "iss");
    // Exact match: a trailing slash is a different issuer.
    let e = check(&rs(&with(claims(), "iss", json!(format!("{ISS}/"))))).unwrap_err();
    assert_eq!(e.reason(), "iss");
}

#[test]
fn alg_none_refused() {
    for alg in ["none", "None", "NONE"] {
        let t = format!("{}.{}.", b64(&json!({"alg": alg})), b64(&claims()));
        assert_eq!(check(&t).unwrap_err().reason(), "alg_refused", "{alg}");
    }
    let t = format!("{}.{}.", b64(&json!({"typ": "JWT"})), b64(&claims()));
    assert_eq!(check(&t).unwrap_err().reason(), "alg_refused");
}

#[test]
fn other_algs_refused() {
    for alg in ["RS512", "PS256", "ES384", "EdDSA", "HS512"] {
        let t = format!(
            "{}.{}.AAAA",
            b64(&json!({"alg": alg, "kid": "rsa1"})),
            b64(&claims())
        );
        assert_eq!(check(&t).unwrap_err().reason(), "alg_refused", "{alg}");
    }
}

#[test]
fn hs256_with_rsa_public_key_refused() {
    let pubkey = include_bytes!("testdata/rsa1.pub.pem");
    let forged = sign(
        &claims(),
        &EncodingKey::from_secret(pubkey),
        Algorithm::HS256,
        "rsa1",
    );
    // No shared secret configured: HS256 is not even considered.
    assert_eq!(check(&forged), Err(VerifyError::AlgRefused("HS256".into())));
    // With a shared secret, the public key still is not the HMAC key.
    let mut w = want();
    w.hmac_secret = Some(b"the-real-shared-secret");
    assert_eq!(
        verify_id_token(&forged, &default_keys(), &w, NOW),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn hs256_with_configured_secret() {
    let mut w = want();
    w.hmac_secret = Some(b"the-real-shared-secret");
    let t = sign(
        &claims(),
        &EncodingKey::from_secret(b"the-real-shared-secret"),
        Algorithm::HS256,
        "x",
    );
    assert!(verify_id_token(&t, &default_keys(), &w, NOW).is_ok());
    assert_eq!(check(&t).unwrap_err().reason(), "alg_refused");
}

#[test]
fn oct_key_in_jwks_is_never_used() {
    let keys = keyset(&[json!({"kty": "oct", "kid": "h", "k": URL_SAFE_NO_PAD.encode(b"k")})]);
    assert!(keys.is_empty());
    let t = sign(
        &claims(),
        &EncodingKey::from_secret(b"k"),
        Algorithm::HS256,
        "h",
    );
    assert_eq!(
        verify_id_token(&t, &keys, &want(), NOW)
            .unwrap_err()
            .reason(),
        "alg_refused"
    );
}

#[test]
fn unknown_kid_then_rotation() {
    let t = sign(&claims(), &rsa2(), Algorithm::RS256, "rsa2");
    assert_eq!(check(&t), Err(VerifyError::UnknownKid(Some("rsa2".into()))));
    let rotated = keyset(&[jwk(&rsa2(), Algorithm::RS256, "rsa2")]);
    assert!(verify_id_token(&t, &rotated, &want(), NOW).is_ok());
    // And the old key is gone after rotation.
    assert_eq!(
        verify_id_token(&rs(&claims()), &rotated, &want(), NOW)
            .unwrap_err()
            .reason(),
        "unknown_kid"
    );
}

#[test]
fn kid_of_other_key_type_does_not_match() {
    let t = sign(&claims(), &ec1(), Algorithm::ES256, "rsa1");
    assert_eq!(check(&t).unwrap_err().reason(), "unknown_kid");
}

#[test]
fn signed_by_other_key_with_known_kid() {
    let t = sign(&claims(), &rsa2(), Algorithm::RS256, "rsa1");
    assert_eq!(check(&t), Err(VerifyError::BadSignature));
}

#[test]
fn tampered_payload() {
    let t = rs(&claims());
    let parts: Vec<&str> = t.split('.').collect();
    let evil = b64(&with(
        claims(),
        "groups",
        json!(["netadmins", "superusers"]),
    ));
    let forged = format!("{}.{}.{}", parts[0], evil, parts[2]);
    assert_eq!(check(&forged), Err(VerifyError::BadSignature));
}

#[test]
fn nonce_mismatch_and_missing() {
    assert_eq!(
        check(&rs(&with(claims(), "nonce", json!("replayed")))),
        Err(VerifyError::Nonce)
    );
    assert_eq!(
        check(&rs(&without(claims(), "nonce"))),
        Err(VerifyError::MissingClaim("nonce".into()))
    );
}

#[test]
fn groups_claim_shapes() {
    assert_eq!(
        check(&rs(&without(claims(), "groups"))).unwrap().groups,
        None
    );
    assert_eq!(
        check(&rs(&with(claims(), "groups", Value::Null)))
            .unwrap()
            .groups,
        None
    );
    assert_eq!(
        check(&rs(&with(claims(), "groups", json!([]))))
            .unwrap()
            .groups,
        Some(vec![])
    );
    assert_eq!(
        check(&rs(&with(claims(), "groups", json!("netadmins"))))
            .unwrap()
            .groups,
        Some(vec!["netadmins".to_string()])
    );
    assert_eq!(
        check(&rs(&with(claims(), "groups", json!([1, 2])))),
        Err(VerifyError::ClaimType("groups".into()))
    );
}

#[test]
fn configurable_claim_names() {
    let mut w = want();
    w.groups_claim = "portcullis_groups";
    w.username_claim = "login";
    let c = with(
        with(claims(), "portcullis_groups", json!(["helpdesk"])),
        "login",
        json!("alice"),
    );
    let l = verify_id_token(&rs(&c), &default_keys(), &w, NOW).unwrap();
    assert_eq!(l.groups, Some(vec!["helpdesk".to_string()]));
    assert_eq!(l.username, "alice");
}

#[test]
fn username_falls_back_to_sub_and_name_to_given_family() {
    let c = without(without(claims(), "preferred_username"), "name");
    let c = with(
        with(c, "given_name", json!("Alice")),
        "family_name",
        json!("Admin"),
    );
    let l = check(&rs(&c)).unwrap();
    assert_eq!(l.username, "00u1abcd");
    assert_eq!(l.full_name.as_deref(), Some("Alice Admin"));
}

#[test]
fn malformed_inputs() {
    for t in [
        "",
        ".",
        "..",
        "a.b",
        "a.b.c.d.e",
        "!!!.e30.",
        &"A".repeat(70_000),
    ] {
        assert_eq!(check(t).unwrap_err().reason(), "malformed", "{t:.20}");
    }
    let t = sign_raw(
        &json!({"alg": "RS256", "kid": "rsa1", "crit": ["b64"], "b64": false}),
        &claims(),
        &rsa1(),
        Algorithm::RS256,
    );
    assert_eq!(check(&t), Err(VerifyError::Malformed("crit header")));
}

#[test]
fn fuzz_entry_survives_mutations() {
    // A cheap deterministic stand-in for the fuzzer in `cargo test`: byte
    // flips, truncations and splices of a valid token.
    let base = rs(&claims()).into_bytes();
    let mut x: u32 = 0x9e37_79b9;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as usize
    };
    for _ in 0..3000 {
        let mut t = base.clone();
        match next() % 3 {
            0 => {
                let i = next() % t.len();
                t[i] ^= (next() % 255 + 1) as u8;
            }
            1 => t.truncate(next() % t.len()),
            _ => {
                let i = next() % t.len();
                t.splice(i..i, b"\xff.{\"alg\":\"none\"}".iter().copied());
            }
        }
        super::fuzz_token(&t);
    }
    super::fuzz_token(br#"{"iss":1e400,"exp":-1e308,"aud":[[]],"groups":{"a":1}}"#);
}

#[test]
fn fuzz_jwks_fixture_is_current() {
    let expected = json!({ "keys": [
        jwk(&rsa1(), Algorithm::RS256, "rsa1"),
        jwk(&ec1(), Algorithm::ES256, "ec1"),
    ]});
    let fixture: Value =
        serde_json::from_str(include_str!("testdata/fuzz_jwks.json")).unwrap_or(Value::Null);
    if fixture != expected {
        panic!("update src/oidc/testdata/fuzz_jwks.json to:\n{expected:#}");
    }
}

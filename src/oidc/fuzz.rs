//! Fuzz entry for the ID-token path. Kept in the library (not only in
//! fuzz/) so `cargo test` can run it over a mutation corpus too.

use std::sync::OnceLock;

use super::verify::{Expectations, KeySet, check_claims, verify_id_token};

/// One RSA and one P-256 key, so the fuzzer reaches signature checks of
/// both families, not only the header parser.
const FUZZ_JWKS: &str = include_str!("testdata/fuzz_jwks.json");

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| KeySet::from_jwks_json(FUZZ_JWKS.as_bytes()).unwrap_or_default())
}

/// Runs arbitrary bytes through token verification (as a compact JWS) and
/// through the claims checks (as a payload). Must never panic.
pub fn fuzz_token(data: &[u8]) {
    let want = Expectations {
        issuer: "https://idp.example.com",
        audience: "portcullis",
        client_id: "portcullis",
        nonce: "n-0S6_WzA2Mj",
        clock_skew_secs: 60,
        hmac_secret: Some(b"fuzz-shared-secret"),
        groups_claim: "groups",
        username_claim: "preferred_username",
    };
    let now = 1_700_000_000;
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = verify_id_token(s, keys(), &want, now);
    }
    let _ = check_claims(data, &want, now);
}

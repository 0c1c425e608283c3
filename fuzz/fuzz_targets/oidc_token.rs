#![no_main]
//! ID-token verification (header, key choice, signature, claims) on arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::oidc::fuzz_token(data));

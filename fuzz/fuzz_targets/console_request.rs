#![no_main]
//! Console provider requests (authorize and token parameters, client
//! authentication, PKCE) on arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::idp::oauth::fuzz_requests(data));

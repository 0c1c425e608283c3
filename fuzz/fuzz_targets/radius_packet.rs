#![no_main]
//! RADIUS packet decoding, password unhiding, Message-Authenticator checks
//! and the encode/decode round trip on arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::radius::codec::fuzz_decode(data));

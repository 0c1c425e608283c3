#![no_main]
//! TACACS+ header framing and every body decoder, before and after
//! de-obfuscation, with the encode/decode round trip.
libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::tacacs::codec::fuzz_decode(data));

#![no_main]
//! The FreeRADIUS-format dictionary parser on arbitrary text.
libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::dict::fuzz_parse(data));

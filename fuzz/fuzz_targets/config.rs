#![no_main]
//! Configuration parsing and validation on arbitrary text.
libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::config::fuzz_config(data));

#![no_main]
//! An Accounting-Request turned into a stored record: every attribute named
//! and typed through the built-in dictionary, and its dedup key.
libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::radius::acct::fuzz_record(data));

#![no_main]
//! A console's SP metadata, as fetched from its URL (or read from a file):
//! the capped, DTD-free parser and the SP reader on arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    portcullis::idp::saml::metadata::fuzz_sp_metadata(data)
});

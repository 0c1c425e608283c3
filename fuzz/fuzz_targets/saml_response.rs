#![no_main]
//! SAML: a posted Response (parse, structure, signatures, decryption,
//! conditions), IdP metadata and canonicalisation, on arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::saml::fuzz_response(data));

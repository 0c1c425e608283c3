#![no_main]
//! The SAML IdP's single-logout path on arbitrary bytes: both bindings'
//! decoding, then the LogoutRequest and LogoutResponse readers.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    portcullis::idp::saml::request::fuzz_logout_request(data)
});

#![no_main]
//! The SAML IdP's AuthnRequest path on arbitrary bytes: HTTP-Redirect and
//! HTTP-POST decoding (base64, bounded inflate), the capped XML parser,
//! the AuthnRequest reader and enveloped-signature checking.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    portcullis::idp::saml::request::fuzz_authn_request(data)
});

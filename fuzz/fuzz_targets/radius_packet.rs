#![no_main]
//! RADIUS packet decoding, password unhiding, Message-Authenticator checks
//! and the encode/decode round trip on arbitrary bytes; then the CHAP and
//! MS-CHAP checks (authn) on whatever values the packet carries.
use portcullis::authn::{chap, mschap};
use portcullis::radius::codec::{attr, chap_password, decode, fuzz_decode};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_decode(data);
    let Ok(p) = decode(data) else { return };
    if let Ok(c) = chap_password(&p) {
        let _ = chap::verify(c.ident, c.response, c.challenge, b"password");
    }
    if let (Some(c), Some(r)) = (
        p.vsa(attr::VENDOR_MICROSOFT, attr::ms::CHAP_CHALLENGE),
        p.vsa(attr::VENDOR_MICROSOFT, attr::ms::CHAP2_RESPONSE),
    ) {
        let user = p.attr(attr::USER_NAME).unwrap_or_default();
        let _ = mschap::mschapv2_verify(user, b"password", c, r);
        let _ = mschap::mschapv1_verify(b"password", c, r);
    }
});

//! Fuzzing entry point: drives every decode path and the crypto that reads
//! attacker-controlled lengths, then checks decode/encode round-trips.
//! Meant for cargo-fuzz/libFuzzer targets and the randomized unit test.

use super::attr::{self, VENDOR_MICROSOFT, ms};
use super::crypto::{self, MAX_PASSWORD_LEN, MAX_SALT_ENCRYPTED_LEN, Secret};
use super::encode::{ReplyWriter, RequestWriter};
use super::error::EncodeError;
use super::reader::{Code, decode};

const FUZZ_SECRET: &[u8] = b"fuzz-shared-secret";

/// Decodes `data`, walks everything, tries the crypto, and asserts that a
/// successfully decoded packet re-encodes to the same bytes and still
/// decodes identically. Panics only on a codec bug.
pub fn fuzz_decode(data: &[u8]) {
    let Ok(p) = decode(data) else { return };
    let secret = Secret::new(FUZZ_SECRET);

    let mut n = 0usize;
    for (_, v) in p.attributes() {
        assert!(v.len() <= 253);
        n += 1;
    }
    for v in p.vsas() {
        assert!(v.value.len() <= 247);
    }
    for (_, v) in p.vendor_specific() {
        assert!(v.len() <= 249);
    }
    let _ = p.message_authenticator_is_first();

    let auth = p.authenticator();
    if let Some(pw) = p.attr(attr::USER_PASSWORD) {
        let mut out = [0u8; MAX_PASSWORD_LEN];
        if let Ok(clear) = crypto::unhide_password(pw, &secret, auth, &mut out) {
            assert!(clear.len() <= pw.len());
        }
    }
    let _ = crypto::verify_request(&p, &secret, false);
    let _ = crypto::verify_message_authenticator(&p, auth, &secret);
    let _ = crypto::verify_reply(&p, auth, &secret, false);
    let _ = crypto::chap_password(&p);
    if let Some(v) = p.vsa(VENDOR_MICROSOFT, ms::MPPE_SEND_KEY) {
        let mut out = [0u8; MAX_SALT_ENCRYPTED_LEN];
        let _ = crypto::salt_decrypt(v, &secret, auth, &mut out);
    }

    // Re-encoding attribute by attribute must reproduce the exact bytes.
    let mut buf = [0u8; 4096];
    let mut w = RequestWriter::new(&mut buf, p.code(), p.identifier(), auth)
        .unwrap_or_else(|e| panic!("header always fits: {e}"));
    for (t, v) in p.attributes() {
        w.put(t, v)
            .unwrap_or_else(|e| panic!("decoded attribute re-encodes: {e}"));
    }
    let len = w.finish_unsigned();
    let q = decode(&buf[..len]).unwrap_or_else(|e| panic!("re-encoded packet decodes: {e}"));
    assert_eq!(q.as_bytes(), p.as_bytes());
    assert_eq!(q.code(), p.code());
    assert_eq!(q.identifier(), p.identifier());
    assert_eq!(q.authenticator(), p.authenticator());
    assert_eq!(
        q.message_authenticator_offset(),
        p.message_authenticator_offset()
    );
    assert!(q.attributes().eq(p.attributes()));
    assert_eq!(q.attributes().count(), n);

    // A signed reply carrying the same attributes must verify as a client.
    let mut rbuf = [0u8; 4096];
    let signed = (|| -> Result<usize, EncodeError> {
        let mut r = ReplyWriter::new_with_message_authenticator(
            &mut rbuf,
            Code::ACCESS_ACCEPT,
            p.identifier(),
        )?;
        for (t, v) in p.attributes() {
            if t != attr::MESSAGE_AUTHENTICATOR {
                r.put(t, v)?;
            }
        }
        r.finish(&secret, auth)
    })();
    match signed {
        Ok(len) => {
            let reply =
                decode(&rbuf[..len]).unwrap_or_else(|e| panic!("signed reply decodes: {e}"));
            assert!(reply.message_authenticator_is_first());
            assert_eq!(crypto::verify_reply(&reply, auth, &secret, true), Ok(()));
        }
        Err(e) => assert_eq!(e, EncodeError::BufferFull),
    }
}

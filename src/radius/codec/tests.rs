//! Known-answer tests from the RFCs, independently computed vectors, framing
//! errors, and a randomized run of `fuzz_decode`.

use super::attr::{self, VENDOR_MICROSOFT, ms};
use super::*;
use crate::authn::chap;
use crate::authn::mschap::{self, MsChap2Response, MsChapError};

fn hex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    hex(s).try_into().unwrap()
}

// RFC 2865 §7.1: User Telnet to Specified Host.
const RFC_REQUEST: &str = "01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb
    98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d 93 d4 13 ce 31 96 e4 3f
    78 2a 0a ee 04 06 c0 a8 01 10 05 06 00 00 00 03";
const RFC_ACCEPT: &str = "02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf
    9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00 0e 06 c0 a8 01 03";
const RFC_SECRET: &[u8] = b"xyzzy5461";

// Computed with Python's hashlib/hmac (see the report) for secret "s3cret".
const ORACLE_SECRET: &[u8] = b"s3cret";
const ORACLE_REQUEST: &str = "0107003d000102030405060708090a0b0c0d0e0f50122fea55424f0af544664b7ff7fd7a98ae0105626f620212abd7083312c082e7dc50f83977198150";
const ORACLE_REPLY: &str = "02070034e20adbeca69f14a8eb4ae3a39b935aed501222f4f7b5cc70fa36738cefca55e2de781204686921057073312105707332";
const ORACLE_ACCT: &str = "040900319995ed11aaf01d91ca7508f87240109c5012c37c80558b23edbfc5e2a2eb9500a48b2806000000010105626f62";
const ORACLE_MPPE: &str = "8001e605ae82fed91bfabe55172474ad141f7546016f33a1d8edf1b0780f1c049570";
const ORACLE_CHAP: &str = "2a695bb6b1f03a332b41fe3f1e26a913";

fn seq16() -> [u8; 16] {
    core::array::from_fn(|i| i as u8)
}

#[test]
fn rfc2865_access_request_decodes_and_unhides() {
    let raw = hex(RFC_REQUEST);
    let p = decode(&raw).unwrap();
    assert_eq!(p.code(), Code::ACCESS_REQUEST);
    assert_eq!(p.identifier(), 0);
    assert_eq!(p.len(), 0x38);
    assert_eq!(p.attributes().count(), 4);
    assert_eq!(p.attr(attr::USER_NAME), Some(&b"nemo"[..]));
    assert_eq!(p.attr(attr::NAS_IP_ADDRESS), Some(&[192, 168, 1, 16][..]));
    assert_eq!(p.attr(attr::NAS_PORT), Some(&[0, 0, 0, 3][..]));
    assert_eq!(p.attr(attr::STATE), None);
    assert_eq!(p.message_authenticator_offset(), None);

    let secret = Secret::new(RFC_SECRET);
    let hidden = p.attr(attr::USER_PASSWORD).unwrap();
    let mut out = [0u8; 128];
    let clear = unhide_password(hidden, &secret, p.authenticator(), &mut out).unwrap();
    assert_eq!(clear, b"arctangent");

    let mut again = [0u8; 128];
    let rehidden = hide_password(b"arctangent", &secret, p.authenticator(), &mut again).unwrap();
    assert_eq!(rehidden, hidden);

    assert_eq!(verify_request(&p, &secret, false), Ok(()));
    assert_eq!(
        verify_request(&p, &secret, true),
        Err(CryptoError::MissingMessageAuthenticator)
    );
}

#[test]
fn rfc2865_access_accept_response_authenticator() {
    let req = hex(RFC_REQUEST);
    let req = decode(&req).unwrap();
    let secret = Secret::new(RFC_SECRET);
    let accept = hex(RFC_ACCEPT);
    let a = decode(&accept).unwrap();
    assert_eq!(
        verify_reply(&a, req.authenticator(), &secret, false),
        Ok(())
    );
    assert_eq!(
        verify_reply(&a, &[0; 16], &secret, false),
        Err(CryptoError::BadResponseAuthenticator)
    );
    assert_eq!(
        verify_reply(&a, req.authenticator(), &secret, true),
        Err(CryptoError::MissingMessageAuthenticator)
    );

    let mut buf = [0u8; 4096];
    let mut w = ReplyWriter::new(&mut buf, Code::ACCESS_ACCEPT, req.identifier()).unwrap();
    w.put_u32(attr::SERVICE_TYPE, 1).unwrap();
    w.put_u32(15, 0).unwrap();
    w.put(14, &[192, 168, 1, 3]).unwrap();
    let n = w.finish(&secret, req.authenticator()).unwrap();
    assert_eq!(&buf[..n], &accept[..]);
}

#[test]
fn bytes_beyond_length_are_ignored() {
    let mut raw = hex(RFC_REQUEST);
    raw.extend_from_slice(&[0xff, 0x00, 0x01]);
    let p = decode(&raw).unwrap();
    assert_eq!(p.as_bytes(), &hex(RFC_REQUEST)[..]);
    assert_eq!(p.attributes().count(), 4);
}

#[test]
fn access_request_encoding_matches_independent_vector() {
    let secret = Secret::new(ORACLE_SECRET);
    let mut buf = [0u8; 4096];
    let n = encode_access_request(&mut buf, 7, &seq16(), b"bob", b"hello", &secret).unwrap();
    assert_eq!(&buf[..n], &hex(ORACLE_REQUEST)[..]);

    let p = decode(&buf[..n]).unwrap();
    assert!(p.message_authenticator_is_first());
    assert_eq!(verify_request(&p, &secret, true), Ok(()));
    let mut out = [0u8; 128];
    let pw = unhide_password(p.attr(2).unwrap(), &secret, p.authenticator(), &mut out).unwrap();
    assert_eq!(pw, b"hello");

    // Any flipped bit, in header or attributes, breaks the MAC.
    for i in [1usize, 5, 30, n - 1] {
        let mut bad = buf[..n].to_vec();
        bad[i] ^= 1;
        let q = decode(&bad).unwrap();
        assert_eq!(
            verify_request(&q, &secret, false),
            Err(CryptoError::BadMessageAuthenticator)
        );
    }
    let other = Secret::new(b"other");
    assert_eq!(
        verify_request(&p, &other, false),
        Err(CryptoError::BadMessageAuthenticator)
    );
}

#[test]
fn reply_with_message_authenticator_and_proxy_state() {
    let secret = Secret::new(ORACLE_SECRET);
    // A request carrying two Proxy-States among other attributes.
    let mut rbuf = [0u8; 256];
    let mut rw = RequestWriter::new(&mut rbuf, Code::ACCESS_REQUEST, 7, &seq16()).unwrap();
    rw.put(attr::PROXY_STATE, b"ps1").unwrap();
    rw.put(attr::USER_NAME, b"bob").unwrap();
    rw.put(attr::PROXY_STATE, b"ps2").unwrap();
    let rn = rw.finish(&secret).unwrap();
    let req = decode(&rbuf[..rn]).unwrap();

    let mut buf = [0u8; 4096];
    let mut w =
        ReplyWriter::new_with_message_authenticator(&mut buf, Code::ACCESS_ACCEPT, 7).unwrap();
    w.put(attr::REPLY_MESSAGE, b"hi").unwrap();
    w.copy_proxy_state(&req).unwrap();
    let n = w.finish(&secret, req.authenticator()).unwrap();
    assert_eq!(&buf[..n], &hex(ORACLE_REPLY)[..]);

    let reply = decode(&buf[..n]).unwrap();
    assert_eq!(
        verify_reply(&reply, req.authenticator(), &secret, true),
        Ok(())
    );
    // The MA is checked too: corrupt it and fix up the Response Authenticator.
    let mut bad = buf[..n].to_vec();
    bad[25] ^= 0x80;
    let ra = response_authenticator(&bad, req.authenticator(), &secret);
    bad[4..20].copy_from_slice(&ra);
    let q = decode(&bad).unwrap();
    assert_eq!(
        verify_reply(&q, req.authenticator(), &secret, false),
        Err(CryptoError::BadMessageAuthenticator)
    );
}

#[test]
fn pre_keyed_secret_clones_give_identical_signatures() {
    let secret = Secret::new(ORACLE_SECRET);
    let copy = secret.clone();
    let p = hex(ORACLE_REQUEST);
    let a = message_authenticator(&p, 22, &seq16(), secret.hmac());
    let b = message_authenticator(&p, 22, &seq16(), copy.hmac());
    assert_eq!(a, b);
    assert_eq!(&a[..], &p[22..38]);
    assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
}

#[test]
fn accounting_request_authenticator_and_ma() {
    let secret = Secret::new(ORACLE_SECRET);
    let mut buf = [0u8; 4096];
    let mut w = RequestWriter::new_with_message_authenticator(
        &mut buf,
        Code::ACCOUNTING_REQUEST,
        9,
        &[0xaa; 16],
    )
    .unwrap();
    w.put_u32(attr::ACCT_STATUS_TYPE, 1).unwrap();
    w.put(attr::USER_NAME, b"bob").unwrap();
    let n = w.finish(&secret).unwrap();
    assert_eq!(&buf[..n], &hex(ORACLE_ACCT)[..]);

    let p = decode(&buf[..n]).unwrap();
    assert_eq!(verify_request(&p, &secret, true), Ok(()));
    let mut bad = buf[..n].to_vec();
    bad[n - 1] ^= 1;
    let q = decode(&bad).unwrap();
    assert_eq!(
        verify_request(&q, &secret, false),
        Err(CryptoError::BadRequestAuthenticator)
    );

    // Accounting-Response signed against the request.
    let mut rb = [0u8; 64];
    let rw = ReplyWriter::new(&mut rb, Code::ACCOUNTING_RESPONSE, 9).unwrap();
    let rn = rw.finish(&secret, p.authenticator()).unwrap();
    let r = decode(&rb[..rn]).unwrap();
    assert_eq!(verify_reply(&r, p.authenticator(), &secret, false), Ok(()));
}

#[test]
fn status_server_and_eap_require_message_authenticator() {
    let secret = Secret::new(b"s");
    let mut buf = [0u8; 64];
    let w = RequestWriter::new(&mut buf, Code::STATUS_SERVER, 1, &seq16()).unwrap();
    let n = w.finish(&secret).unwrap();
    assert_eq!(
        verify_request(&decode(&buf[..n]).unwrap(), &secret, false),
        Err(CryptoError::MissingMessageAuthenticator)
    );
    let w =
        RequestWriter::new_with_message_authenticator(&mut buf, Code::STATUS_SERVER, 1, &seq16())
            .unwrap();
    let n = w.finish(&secret).unwrap();
    assert_eq!(
        verify_request(&decode(&buf[..n]).unwrap(), &secret, false),
        Ok(())
    );

    let mut w = RequestWriter::new(&mut buf, Code::ACCESS_REQUEST, 1, &seq16()).unwrap();
    w.put(attr::EAP_MESSAGE, &[2, 0, 0, 5, 1]).unwrap();
    let n = w.finish(&secret).unwrap();
    assert_eq!(
        verify_request(&decode(&buf[..n]).unwrap(), &secret, false),
        Err(CryptoError::MissingMessageAuthenticator)
    );

    // A reply code sent to a server is not a request.
    let w = ReplyWriter::new(&mut buf, Code::ACCESS_ACCEPT, 1).unwrap();
    let n = w.finish(&secret, &seq16()).unwrap();
    assert_eq!(
        verify_request(&decode(&buf[..n]).unwrap(), &secret, false),
        Err(CryptoError::UnexpectedCode(2))
    );
}

#[test]
fn hand_placed_message_authenticator_is_signed_where_put() {
    let secret = Secret::new(b"k");
    let mut buf = [0u8; 128];
    let mut w = RequestWriter::new(&mut buf, Code::ACCESS_REQUEST, 3, &seq16()).unwrap();
    w.put(attr::USER_NAME, b"u").unwrap();
    w.put(attr::MESSAGE_AUTHENTICATOR, &[0; 16]).unwrap();
    assert_eq!(
        w.put(attr::MESSAGE_AUTHENTICATOR, &[0; 16]),
        Err(EncodeError::MessageAuthenticator)
    );
    let n = w.finish(&secret).unwrap();
    let p = decode(&buf[..n]).unwrap();
    assert!(!p.message_authenticator_is_first());
    assert_eq!(verify_request(&p, &secret, true), Ok(()));
}

#[test]
fn chap_vectors() {
    let challenge = seq16();
    let expected: [u8; 16] = arr(ORACLE_CHAP);
    assert_eq!(chap::response(0x42, b"secret-chap", &challenge), expected);
    let mut cp = vec![0x42];
    cp.extend_from_slice(&expected);
    assert!(chap::verify(0x42, &expected, &challenge, b"secret-chap"));
    assert!(!chap::verify(0x42, &expected, &challenge, b"wrong"));

    let secret = Secret::new(b"s");
    let mut buf = [0u8; 128];
    let check = |bytes: &[u8], password: &[u8]| {
        chap_password(&decode(bytes).unwrap())
            .map(|c| chap::verify(c.ident, c.response, c.challenge, password))
    };
    // Challenge taken from the Request Authenticator when CHAP-Challenge is absent.
    let mut w = RequestWriter::new(&mut buf, Code::ACCESS_REQUEST, 1, &challenge).unwrap();
    w.put(attr::CHAP_PASSWORD, &cp).unwrap();
    let n = w.finish(&secret).unwrap();
    assert_eq!(check(&buf[..n], b"secret-chap"), Ok(true));
    assert_eq!(check(&buf[..n], b"wrong"), Ok(false));
    // An explicit CHAP-Challenge takes precedence.
    let mut w = RequestWriter::new(&mut buf, Code::ACCESS_REQUEST, 1, &[9; 16]).unwrap();
    w.put(attr::CHAP_CHALLENGE, &challenge).unwrap();
    w.put(attr::CHAP_PASSWORD, &cp).unwrap();
    let n = w.finish(&secret).unwrap();
    assert_eq!(check(&buf[..n], b"secret-chap"), Ok(true));
    let mut w = RequestWriter::new(&mut buf, Code::ACCESS_REQUEST, 1, &challenge).unwrap();
    w.put(attr::CHAP_PASSWORD, &cp[..16]).unwrap();
    let n = w.finish(&secret).unwrap();
    assert_eq!(
        check(&buf[..n], b"secret-chap"),
        Err(CryptoError::BadChapPasswordLength(16))
    );
    let w = RequestWriter::new(&mut buf, Code::ACCESS_REQUEST, 1, &[9; 16]).unwrap();
    let n = w.finish(&secret).unwrap();
    assert_eq!(
        check(&buf[..n], b"x"),
        Err(CryptoError::MissingAttribute(attr::CHAP_PASSWORD))
    );
}

// RFC 2759 §9.2 and RFC 3079 §3.5.3.
const AUTH_CHALLENGE: &str = "5B5D7C7D7B3F2F3E3C2C602132262628";
const PEER_CHALLENGE: &str = "21402324255E262A28295F2B3A337C7E";
const NT_RESPONSE: &str = "82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF";

#[test]
fn rfc2759_intermediate_values() {
    let ac: [u8; 16] = arr(AUTH_CHALLENGE);
    let pc: [u8; 16] = arr(PEER_CHALLENGE);
    let h = mschap::nt_password_hash(b"clientPass");
    assert_eq!(h, arr::<16>("44EBBA8D5312B8D611474411F56989AE"));
    let hh = mschap::hash_nt_password_hash(&h);
    assert_eq!(hh, arr::<16>("41C00C584BD2D91C4017A2A12FA59F3F"));
    let ch = mschap::challenge_hash(&pc, &ac, b"User");
    assert_eq!(ch, arr::<8>("D02E4386BCE91226"));
    assert_eq!(mschap::challenge_hash(&pc, &ac, b"CORP\\User"), ch);
    let nt = mschap::generate_nt_response(&ac, &pc, b"User", &h);
    assert_eq!(nt, arr::<24>(NT_RESPONSE));
    let ar = mschap::authenticator_response(&hh, &nt, &pc, &ac, b"User");
    assert_eq!(&ar, b"S=407A5589115FD0D6209F510FE9C04566932CDA56");
    assert_eq!(
        mschap::master_key(&hh, &nt),
        arr::<16>("FDECE3717A8C838CB388E527AE3CDD31")
    );
    let keys = mschap::mppe_keys(&hh, &nt);
    // RFC 3079 §3.5.3 SendStartKey128 is the server's send key (Magic3).
    assert_eq!(keys.send, arr::<16>("8B7CDC149B993A1BA118CB153F56DCCB"));
    assert_eq!(keys.recv, arr::<16>("D5F0E9521E3EA9589645E86051C82226"));
}

fn ms_chap2_response(ident: u8) -> Vec<u8> {
    let mut r = vec![ident, 0];
    r.extend_from_slice(&hex(PEER_CHALLENGE));
    r.extend_from_slice(&[0; 8]);
    r.extend_from_slice(&hex(NT_RESPONSE));
    r
}

#[test]
fn rfc2759_verify_over_radius_attributes() {
    let ac = hex(AUTH_CHALLENGE);
    let resp = ms_chap2_response(0x17);
    let parsed = MsChap2Response::parse(&resp).unwrap();
    assert_eq!(parsed.ident, 0x17);
    assert_eq!(parsed.nt_response, arr::<24>(NT_RESPONSE));

    let ok = mschap::mschapv2_verify(b"User", b"clientPass", &ac, &resp)
        .unwrap()
        .unwrap();
    let success = ok.success_value();
    assert_eq!(success[0], 0x17);
    assert_eq!(&success[1..], b"S=407A5589115FD0D6209F510FE9C04566932CDA56");
    assert_eq!(
        ok.mppe_keys().send,
        arr::<16>("8B7CDC149B993A1BA118CB153F56DCCB")
    );
    let via_hash = mschap::mschapv2_verify_nt_hash(
        b"User",
        &arr("44EBBA8D5312B8D611474411F56989AE"),
        &ac,
        &resp,
    )
    .unwrap()
    .unwrap();
    assert_eq!(via_hash.success_value(), success);

    assert!(
        mschap::mschapv2_verify(b"User", b"wrongPass", &ac, &resp)
            .unwrap()
            .is_none()
    );
    assert!(
        mschap::mschapv2_verify(b"Other", b"clientPass", &ac, &resp)
            .unwrap()
            .is_none()
    );
    assert_eq!(
        mschap::mschapv2_verify(b"User", b"clientPass", &ac[..8], &resp).unwrap_err(),
        MsChapError::BadChallengeLength(8)
    );
    assert_eq!(
        mschap::mschapv2_verify(b"User", b"clientPass", &ac, &resp[..49]).unwrap_err(),
        MsChapError::BadResponseLength(49)
    );

    // Build the Access-Accept attributes and read them back.
    let secret = Secret::new(b"radsecret");
    let req_auth = seq16();
    let keys = ok.mppe_keys();
    let mut sbuf = [0u8; MAX_SALT_ENCRYPTED_LEN];
    let mut rbuf = [0u8; MAX_SALT_ENCRYPTED_LEN];
    let send = salt_encrypt(&keys.send, 0x0001, &secret, &req_auth, &mut sbuf).unwrap();
    let recv = salt_encrypt(&keys.recv, 0x0002, &secret, &req_auth, &mut rbuf).unwrap();
    assert_eq!(send.len(), 34);
    let mut buf = [0u8; 4096];
    let mut w =
        ReplyWriter::new_with_message_authenticator(&mut buf, Code::ACCESS_ACCEPT, 5).unwrap();
    w.put_vsa(VENDOR_MICROSOFT, ms::CHAP2_SUCCESS, &success)
        .unwrap();
    w.put_vsa(VENDOR_MICROSOFT, ms::MPPE_SEND_KEY, send)
        .unwrap();
    w.put_vsa(VENDOR_MICROSOFT, ms::MPPE_RECV_KEY, recv)
        .unwrap();
    let n = w.finish(&secret, &req_auth).unwrap();
    let p = decode(&buf[..n]).unwrap();
    assert_eq!(verify_reply(&p, &req_auth, &secret, true), Ok(()));
    assert_eq!(
        p.vsa(VENDOR_MICROSOFT, ms::CHAP2_SUCCESS),
        Some(&success[..])
    );
    let mut out = [0u8; MAX_SALT_ENCRYPTED_LEN];
    let v = p.vsa(VENDOR_MICROSOFT, ms::MPPE_RECV_KEY).unwrap();
    assert_eq!(
        salt_decrypt(v, &secret, &req_auth, &mut out).unwrap(),
        keys.recv
    );
}

#[test]
fn salt_encryption_matches_independent_vector() {
    let secret = Secret::new(ORACLE_SECRET);
    let key: [u8; 16] = arr("8B7CDC149B993A1BA118CB153F56DCCB");
    let mut out = [0u8; MAX_SALT_ENCRYPTED_LEN];
    // High bit of the salt is forced on.
    let v = salt_encrypt(&key, 0x0001, &secret, &seq16(), &mut out).unwrap();
    assert_eq!(v, &hex(ORACLE_MPPE)[..]);
    let mut back = [0u8; MAX_SALT_ENCRYPTED_LEN];
    let v = hex(ORACLE_MPPE);
    assert_eq!(salt_decrypt(&v, &secret, &seq16(), &mut back).unwrap(), key);
    // 32-byte keys (EAP MSK halves) take three blocks.
    let long = [7u8; 32];
    let v = salt_encrypt(&long, 0x8123, &secret, &seq16(), &mut out).unwrap();
    assert_eq!(v.len(), 2 + 48);
    let v = v.to_vec();
    assert_eq!(
        salt_decrypt(&v, &secret, &seq16(), &mut back).unwrap(),
        long
    );
    assert_eq!(
        salt_encrypt(&[0; 240], 1, &secret, &seq16(), &mut out),
        Err(CryptoError::KeyTooLong(240))
    );
    assert_eq!(
        salt_decrypt(&v[..20], &secret, &seq16(), &mut back),
        Err(CryptoError::BadSaltEncrypted)
    );
}

#[test]
fn mschapv1_nt_response() {
    // RFC 2433's ChallengeResponse is the one RFC 2759 reuses, so the §9.2
    // ChallengeHash/NT-Response pair doubles as a v1 vector.
    let ch: [u8; 8] = arr("D02E4386BCE91226");
    let h = mschap::nt_password_hash(b"clientPass");
    let nt: [u8; 24] = arr(NT_RESPONSE);
    assert!(mschap::mschapv1_verify_nt_response(&ch, &h, &nt));
    assert!(!mschap::mschapv1_verify_nt_response(&[0; 8], &h, &nt));

    let mut resp = vec![1u8, 1];
    resp.extend_from_slice(&[0; 24]);
    resp.extend_from_slice(&nt);
    assert_eq!(mschap::mschapv1_verify(b"clientPass", &ch, &resp), Ok(true));
    assert_eq!(mschap::mschapv1_verify(b"nope", &ch, &resp), Ok(false));
    resp[1] = 0;
    assert_eq!(
        mschap::mschapv1_verify(b"clientPass", &ch, &resp),
        Err(MsChapError::LmResponseOnly)
    );
}

#[test]
fn nt_hash_handles_unicode_and_long_passwords() {
    // MD4 of the empty string.
    assert_eq!(
        mschap::nt_password_hash(b""),
        arr::<16>("31D6CFE0D16AE931B73C59D7E0C089C0")
    );
    // A password longer than the internal 128-byte staging buffer.
    let long = "p".repeat(100);
    let utf16: Vec<u8> = long.encode_utf16().flat_map(u16::to_le_bytes).collect();
    use md4::Digest;
    let expected: [u8; 16] = md4::Md4::digest(&utf16).into();
    assert_eq!(mschap::nt_password_hash(long.as_bytes()), expected);
    let s = "pässwörd€";
    let utf16: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let expected: [u8; 16] = md4::Md4::digest(&utf16).into();
    assert_eq!(mschap::nt_password_hash(s.as_bytes()), expected);
}

#[test]
fn password_lengths() {
    let secret = Secret::new(b"s");
    let auth = seq16();
    let mut out = [0u8; 128];
    assert_eq!(
        hide_password(b"", &secret, &auth, &mut out).unwrap().len(),
        16
    );
    assert_eq!(
        hide_password(&[b'a'; 16], &secret, &auth, &mut out)
            .unwrap()
            .len(),
        16
    );
    assert_eq!(
        hide_password(&[b'a'; 17], &secret, &auth, &mut out)
            .unwrap()
            .len(),
        32
    );
    let long: Vec<u8> = (0..128).map(|i| b'!' + (i % 90) as u8).collect();
    let hidden = hide_password(&long, &secret, &auth, &mut out)
        .unwrap()
        .to_vec();
    assert_eq!(hidden.len(), 128);
    let mut back = [0u8; 128];
    assert_eq!(
        unhide_password(&hidden, &secret, &auth, &mut back).unwrap(),
        &long[..]
    );
    assert_eq!(
        hide_password(&[1; 129], &secret, &auth, &mut out),
        Err(CryptoError::PasswordTooLong(129))
    );
    for bad in [0usize, 15, 17, 144] {
        assert_eq!(
            unhide_password(&vec![0; bad], &secret, &auth, &mut back),
            Err(CryptoError::BadPasswordLength(bad))
        );
    }
    // All-NUL plaintext unhides to empty.
    let h = hide_password(b"", &secret, &auth, &mut out)
        .unwrap()
        .to_vec();
    assert_eq!(unhide_password(&h, &secret, &auth, &mut back).unwrap(), b"");
}

fn header(len: u16) -> Vec<u8> {
    let mut v = vec![1, 0];
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&[0; 16]);
    v
}

fn with_attrs(attrs: &[u8]) -> Vec<u8> {
    let mut v = header((20 + attrs.len()) as u16);
    v.extend_from_slice(attrs);
    v
}

#[test]
fn malformed_packets() {
    assert_eq!(decode(&[]), Err(DecodeError::TooShort(0)));
    assert_eq!(decode(&[1; 19]), Err(DecodeError::TooShort(19)));
    assert_eq!(decode(&header(19)), Err(DecodeError::BadLength(19)));
    assert_eq!(decode(&header(0)), Err(DecodeError::BadLength(0)));
    let mut big = header(4097);
    big.resize(5000, 0);
    assert_eq!(decode(&big), Err(DecodeError::BadLength(4097)));
    assert_eq!(
        decode(&header(30)),
        Err(DecodeError::Truncated {
            length: 30,
            received: 20
        })
    );
    assert_eq!(
        decode(&with_attrs(&[1, 0, 0, 0])),
        Err(DecodeError::AttrTooShort { offset: 20 })
    );
    assert_eq!(
        decode(&with_attrs(&[1, 1, 0, 0])),
        Err(DecodeError::AttrTooShort { offset: 20 })
    );
    assert_eq!(
        decode(&with_attrs(&[1, 3, 0, 1])),
        Err(DecodeError::AttrTooShort { offset: 23 })
    );
    assert_eq!(
        decode(&with_attrs(&[1, 6, 0, 0])),
        Err(DecodeError::AttrOverrun { offset: 20 })
    );
    // The overrun is judged against Length, not against the datagram.
    let mut p = with_attrs(&[1, 2, 5, 9]);
    p.extend_from_slice(&[0; 8]);
    assert_eq!(decode(&p), Err(DecodeError::AttrOverrun { offset: 22 }));
    let mut ma17 = vec![80, 17];
    ma17.extend_from_slice(&[0; 15]);
    assert_eq!(
        decode(&with_attrs(&ma17)),
        Err(DecodeError::BadMessageAuthenticatorLength { offset: 20 })
    );
    let mut two = vec![80, 18];
    two.extend_from_slice(&[0; 16]);
    two.extend_from_slice(&two.clone());
    assert_eq!(
        decode(&with_attrs(&two)),
        Err(DecodeError::DuplicateMessageAuthenticator)
    );
    // Empty attribute values are legal framing.
    assert_eq!(decode(&with_attrs(&[1, 2])).unwrap().attr(1), Some(&[][..]));
}

#[test]
fn labels_are_distinct_snake_case() {
    let labels = [
        DecodeError::TooShort(0).label(),
        DecodeError::BadLength(0).label(),
        DecodeError::Truncated {
            length: 0,
            received: 0,
        }
        .label(),
        DecodeError::AttrTooShort { offset: 0 }.label(),
        DecodeError::AttrOverrun { offset: 0 }.label(),
        DecodeError::BadMessageAuthenticatorLength { offset: 0 }.label(),
        DecodeError::DuplicateMessageAuthenticator.label(),
        CryptoError::MissingMessageAuthenticator.label(),
        CryptoError::BadMessageAuthenticator.label(),
        CryptoError::BadRequestAuthenticator.label(),
        CryptoError::BadResponseAuthenticator.label(),
        CryptoError::UnexpectedCode(0).label(),
        CryptoError::BadPasswordLength(0).label(),
        CryptoError::PasswordTooLong(0).label(),
        CryptoError::MissingAttribute(0).label(),
        CryptoError::BadChapPasswordLength(0).label(),
        MsChapError::BadChallengeLength(0).label(),
        MsChapError::BadResponseLength(0).label(),
        MsChapError::LmResponseOnly.label(),
        CryptoError::BadSaltEncrypted.label(),
        CryptoError::KeyTooLong(0).label(),
    ];
    let mut sorted = labels.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), labels.len());
    for l in labels {
        assert!(
            l.bytes().all(|c| c.is_ascii_lowercase() || c == b'_'),
            "{l}"
        );
    }
    assert_eq!(
        EncodeError::Crypto(CryptoError::PasswordTooLong(1)).label(),
        "password_too_long"
    );
}

#[test]
fn vendor_specific_iteration() {
    let mut attrs = Vec::new();
    // Microsoft VSA with two sub-attributes.
    attrs.extend_from_slice(&[26, 13, 0, 0, 1, 55, 11, 4, b'a', b'b', 12, 3, b'c']);
    // Malformed (sub-length overruns): skipped as a whole.
    attrs.extend_from_slice(&[26, 10, 0, 0, 0, 9, 1, 9, b'x', b'y']);
    // Too short to hold a vendor id: skipped.
    attrs.extend_from_slice(&[26, 4, 0, 0]);
    attrs.extend_from_slice(&[1, 3, b'u']);
    // Cisco VSA with one sub-attribute.
    attrs.extend_from_slice(&[26, 9, 0, 0, 0, 9, 1, 3, b'z']);
    let raw = with_attrs(&attrs);
    let p = decode(&raw).unwrap();
    let v: Vec<_> = p.vsas().collect();
    assert_eq!(
        v,
        vec![
            Vsa {
                vendor: 311,
                vendor_type: 11,
                value: b"ab"
            },
            Vsa {
                vendor: 311,
                vendor_type: 12,
                value: b"c"
            },
            Vsa {
                vendor: 9,
                vendor_type: 1,
                value: b"z"
            },
        ]
    );
    assert_eq!(p.vsa(9, 1), Some(&b"z"[..]));
    assert_eq!(p.vsa(9, 2), None);
    let raw_vs: Vec<_> = p.vendor_specific().map(|(v, _)| v).collect();
    assert_eq!(raw_vs, vec![311, 9, 9]);
}

#[test]
fn writer_limits() {
    let mut small = [0u8; 19];
    assert!(matches!(
        ReplyWriter::new(&mut small, Code::ACCESS_ACCEPT, 0),
        Err(EncodeError::BufferFull)
    ));
    let mut b = [0u8; 30];
    assert!(matches!(
        ReplyWriter::new_with_message_authenticator(&mut b, Code::ACCESS_ACCEPT, 0),
        Err(EncodeError::BufferFull)
    ));
    let mut w = ReplyWriter::new(&mut b, Code::ACCESS_ACCEPT, 0).unwrap();
    assert_eq!(w.remaining(), 10);
    assert_eq!(w.put(1, &[0; 9]), Err(EncodeError::BufferFull));
    w.put(1, &[0; 8]).unwrap();
    assert_eq!(w.written(), 30);

    let mut big = [0u8; 8192];
    let mut w = ReplyWriter::new(&mut big, Code::ACCESS_ACCEPT, 0).unwrap();
    assert_eq!(w.remaining(), 4096 - 20);
    assert_eq!(w.put(1, &[0; 254]), Err(EncodeError::ValueTooLong(254)));
    w.put(1, &[0; 253]).unwrap();
    assert_eq!(
        w.put_vsa(9, 1, &[0; 248]),
        Err(EncodeError::ValueTooLong(248))
    );
    w.put_vsa(9, 1, &[0; 247]).unwrap();
    assert_eq!(w.put_raw(&[1, 1]), Err(EncodeError::BadRawAttributes));
    assert_eq!(w.put_raw(&[1, 5, 0]), Err(EncodeError::BadRawAttributes));
    w.put_raw(&[6, 6, 0, 0, 0, 2, 18, 4, b'o', b'k']).unwrap();
    while w.put(18, &[b'x'; 253]).is_ok() {}
    let n = w.finish(&Secret::new(b"s"), &[0; 16]).unwrap();
    assert!(n <= 4096);
    let p = decode(&big[..n]).unwrap();
    assert_eq!(p.attr(18), Some(&b"ok"[..]));

    let mut b = [0u8; 100];
    let mut w =
        ReplyWriter::new_with_message_authenticator(&mut b, Code::ACCESS_ACCEPT, 0).unwrap();
    let mut ma = vec![80, 18];
    ma.extend_from_slice(&[0; 16]);
    assert_eq!(w.put_raw(&ma), Err(EncodeError::MessageAuthenticator));
    assert_eq!(w.put(80, &[0; 16]), Err(EncodeError::MessageAuthenticator));
    let mut rq = [0u8; 300];
    let mut r = RequestWriter::new(&mut rq, Code::ACCESS_REQUEST, 0, &[0; 16]).unwrap();
    assert_eq!(
        r.put_user_password(&[0; 129], &Secret::new(b"s")),
        Err(EncodeError::Crypto(CryptoError::PasswordTooLong(129)))
    );
}

#[test]
fn code_names() {
    assert_eq!(Code::COA_NAK.name(), "CoA-NAK");
    assert_eq!(Code(99).name(), "Unknown");
    assert!(Code::DISCONNECT_REQUEST.has_computed_request_authenticator());
    assert!(!Code::ACCESS_REQUEST.has_computed_request_authenticator());
    assert!(Code::STATUS_SERVER.is_request());
    assert!(!Code::ACCESS_ACCEPT.is_request());
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Seeds that decode, so mutations explore deep paths rather than the header.
fn fuzz_seeds() -> Vec<Vec<u8>> {
    let secret = Secret::new(b"fuzz-shared-secret");
    let mut seeds = vec![
        hex(RFC_REQUEST),
        hex(RFC_ACCEPT),
        hex(ORACLE_REQUEST),
        hex(ORACLE_ACCT),
    ];
    let mut buf = [0u8; 4096];
    let mut w =
        RequestWriter::new_with_message_authenticator(&mut buf, Code::ACCESS_REQUEST, 1, &seq16())
            .unwrap();
    w.put(attr::USER_NAME, b"User").unwrap();
    w.put_user_password(b"password", &secret).unwrap();
    w.put(attr::CHAP_PASSWORD, &[1; 17]).unwrap();
    w.put_vsa(VENDOR_MICROSOFT, ms::CHAP_CHALLENGE, &hex(AUTH_CHALLENGE))
        .unwrap();
    w.put_vsa(VENDOR_MICROSOFT, ms::CHAP2_RESPONSE, &ms_chap2_response(1))
        .unwrap();
    w.put(attr::PROXY_STATE, b"state").unwrap();
    let n = w.finish(&secret).unwrap();
    seeds.push(buf[..n].to_vec());
    seeds
}

#[test]
fn fuzz_decode_random_and_mutated_inputs() {
    let seeds = fuzz_seeds();
    for s in &seeds {
        fuzz_decode(s);
    }
    const ROUNDS: usize = 4000;
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut decoded = 0usize;
    for _ in 0..ROUNDS {
        let mut d = seeds[rng.below(seeds.len())].clone();
        match rng.below(6) {
            0 => {
                // Flip a few random bytes.
                for _ in 0..=rng.below(4) {
                    let i = rng.below(d.len());
                    d[i] = rng.next() as u8;
                }
            }
            1 => d.truncate(rng.below(d.len() + 1)),
            2 => {
                // Lie in the Length field.
                let l = rng.below(4200) as u16;
                d[2..4].copy_from_slice(&l.to_be_bytes());
            }
            3 => {
                // Corrupt an attribute length octet.
                let i = 21 + rng.below(d.len().saturating_sub(21).max(1));
                if i < d.len() {
                    d[i] = rng.below(4) as u8;
                }
            }
            4 => {
                // Random attribute soup behind a consistent header.
                let n = rng.below(300);
                d.truncate(20);
                d.extend((0..n).map(|_| rng.next() as u8));
                let l = d.len() as u16;
                d[2..4].copy_from_slice(&l.to_be_bytes());
            }
            _ => {
                // Fully random bytes.
                let n = rng.below(80);
                d = (0..n).map(|_| rng.next() as u8).collect();
            }
        }
        decoded += usize::from(decode(&d).is_ok());
        fuzz_decode(&d);
    }
    // Guard against the mutator degenerating into header-only rejects.
    eprintln!("fuzz: {decoded} of {ROUNDS} inputs decoded");
    assert!(
        decoded > ROUNDS / 5,
        "only {decoded} of {ROUNDS} inputs decoded"
    );
}

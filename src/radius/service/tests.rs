//! The RADIUS service fed raw request bytes, no sockets: the RFC 2865 §7.1
//! example, the demo users over PAP, CHAP and MS-CHAPv2, Status-Server,
//! accounting into a memory sink, and every drop reason the engine counts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::registry::Registry;

use super::{Deferred, DropReason, Service, Step, Storing, store_drop_reason};
use crate::accounting::{AccountingSink, MemorySink, Status, StoreError};
use crate::authn::mschap::{self, MsChapError};
use crate::authn::{Argon2Pool, Credentials, PoolMetrics, chap};
use crate::config::Config;
use crate::metrics::{Name, ReasonLabel};
use crate::radius::codec::{
    self, Code, CryptoError, DecodeError, EncodeError, MAX_SALT_ENCRYPTED_LEN, Packet,
    RequestWriter, Secret, attr,
};
use crate::radius::metrics::{MethodLabels, RadiusMetrics, RequestLabels};
use crate::testkit;

// ---------------------------------------------------------------------------
// Fixtures

/// The demo's loopback client and its secret.
const DEMO_SRC: &str = "127.0.0.1:40000";
const DEMO_SECRET: &[u8] = b"testing123";
const DEMO_CLIENT: &str = "loopback";

/// Cisco's enterprise number and the Cisco-AVPair sub-attribute.
const VENDOR_CISCO: u32 = 9;
const CISCO_AVPAIR: u8 = 1;

/// What alice's role (network-admin) renders for the orchestrator profile.
const ALICE_AVPAIRS: [&[u8]; 3] = [
    b"LOGIN:priv-lvl=15",
    b"LOGIN:rbac-roles=OverlayAdmin",
    b"LOGIN:rbac-aag=Global",
];

// RFC 2865 §7.1, "User Telnet to Specified Host": the NAS at 192.168.1.16
// sends nemo/arctangent under the secret xyzzy5461, and the server answers.
const RFC_REQUEST: &str = "01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb
    98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d 93 d4 13 ce 31 96 e4 3f
    78 2a 0a ee 04 06 c0 a8 01 10 05 06 00 00 00 03";
const RFC_ACCEPT: &str = "02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf
    9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00 0e 06 c0 a8 01 03";
const RFC_SECRET: &[u8] = b"xyzzy5461";
const RFC_SRC: &str = "192.168.1.16:1645";

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn demo_secret() -> Secret {
    Secret::new(DEMO_SECRET)
}

fn demo() -> Arc<Config> {
    Arc::new(testkit::demo_config())
}

/// A legacy NAS as in RFC 2865 §7.1 (no Message-Authenticator), and nemo
/// whose argon2 hash is made now.
fn rfc_config() -> Arc<Config> {
    let hash = crate::authn::hash_password(b"arctangent").unwrap();
    Arc::new(testkit::config_from(&format!(
        r#"
[[client]]
name = "rfc2865-nas"
cidrs = ["192.168.1.16/32"]
radius_secret = "xyzzy5461"
require_message_authenticator = false

[[role]]
name = "login-user"
priv_lvl = 1

[policy]
default_role = "login-user"

[[user]]
name = "nemo"
password_hash = "{hash}"
"#
    )))
}

fn service_with(credentials: Credentials, accounting: Option<Arc<dyn AccountingSink>>) -> Service {
    let clock = testkit::clock();
    Service::new(
        credentials,
        accounting,
        RadiusMetrics::register(&mut Registry::default()),
        clock.clone(),
        clock,
    )
}

fn service() -> Service {
    service_with(testkit::credentials(), None)
}

fn service_with_sink(sink: &Arc<MemorySink>) -> Service {
    service_with(testkit::credentials(), Some(sink.clone()))
}

fn auth(svc: &Service, config: &Arc<Config>, src: &str, req: &[u8], out: &mut [u8]) -> Step {
    svc.handle_auth(config, addr(src), req, out, Instant::now())
}

fn acct(svc: &Service, config: &Arc<Config>, src: &str, req: &[u8], out: &mut [u8]) -> Step {
    svc.handle_acct(config, addr(src), req, out, Instant::now())
}

/// An Access-Request from the demo client, Message-Authenticator first.
fn access_request(id: u8, auth: [u8; 16], attrs: impl FnOnce(&mut RequestWriter<'_>)) -> Vec<u8> {
    let mut buf = [0u8; 4096];
    let mut w =
        RequestWriter::new_with_message_authenticator(&mut buf, Code::ACCESS_REQUEST, id, &auth)
            .unwrap();
    attrs(&mut w);
    let n = w.finish(&demo_secret()).unwrap();
    buf[..n].to_vec()
}

/// A PAP Access-Request from the demo client.
fn pap(id: u8, auth: [u8; 16], user: &str, password: &str) -> Vec<u8> {
    access_request(id, auth, |w| {
        w.put(attr::USER_NAME, user.as_bytes()).unwrap();
        w.put_user_password(password.as_bytes(), &demo_secret())
            .unwrap();
    })
}

/// A signed Accounting-Request from the demo client.
fn accounting_request(id: u8, user: &str, session: &str, status: u32) -> Vec<u8> {
    let mut buf = [0u8; 4096];
    let mut w = RequestWriter::new(&mut buf, Code::ACCOUNTING_REQUEST, id, &[0; 16]).unwrap();
    w.put_u32(attr::ACCT_STATUS_TYPE, status).unwrap();
    w.put(attr::ACCT_SESSION_ID, session.as_bytes()).unwrap();
    w.put(attr::USER_NAME, user.as_bytes()).unwrap();
    let n = w.finish(&demo_secret()).unwrap();
    buf[..n].to_vec()
}

fn authenticator(req: &[u8]) -> [u8; 16] {
    *codec::decode(req).unwrap().authenticator()
}

fn describe(step: &Step) -> String {
    match step {
        Step::Reply(n) => format!("Reply({n})"),
        Step::Drop(r) => format!("Drop({r:?})"),
        Step::Verify(d) => format!("Verify(user {:?})", d.user),
        Step::Store(_) => "Store".into(),
    }
}

fn expect_reply(step: Step) -> usize {
    match step {
        Step::Reply(n) => n,
        other => panic!("expected an immediate reply, got {}", describe(&other)),
    }
}

fn expect_drop(step: Step) -> DropReason {
    match step {
        Step::Drop(r) => r,
        other => panic!("expected a drop, got {}", describe(&other)),
    }
}

fn expect_verify(step: Step) -> Box<Deferred> {
    match step {
        Step::Verify(d) => d,
        other => panic!("expected a deferred verification, got {}", describe(&other)),
    }
}

fn expect_store(step: Step) -> Box<Storing> {
    match step {
        Step::Store(s) => s,
        other => panic!(
            "expected a record on its way to the store, got {}",
            describe(&other)
        ),
    }
}

/// Decodes a reply and checks its Identifier, Response Authenticator and
/// Message-Authenticator against the request.
fn checked_reply<'r>(reply: &'r [u8], req: &[u8], secret: &Secret) -> Packet<'r> {
    let req = codec::decode(req).unwrap();
    let p = codec::decode(reply).unwrap();
    assert_eq!(p.identifier(), req.identifier(), "reply identifier");
    assert_eq!(
        codec::verify_reply(&p, req.authenticator(), secret, true),
        Ok(()),
        "reply authenticators"
    );
    assert!(
        p.message_authenticator_is_first(),
        "Message-Authenticator first"
    );
    p
}

fn cisco_avpairs<'p>(p: &Packet<'p>) -> Vec<&'p [u8]> {
    p.vsas()
        .filter(|v| v.vendor == VENDOR_CISCO && v.vendor_type == CISCO_AVPAIR)
        .map(|v| v.value)
        .collect()
}

fn drops(svc: &Service, reason: &'static str) -> u64 {
    svc.metrics()
        .drops
        .get_or_create(&ReasonLabel { reason })
        .get()
}

fn auths(svc: &Service, method: &'static str, result: &'static str) -> u64 {
    svc.metrics()
        .auth
        .get_or_create(&MethodLabels { method, result })
        .get()
}

fn requests(svc: &Service, kind: &'static str, result: &'static str) -> u64 {
    svc.metrics()
        .requests
        .get_or_create(&RequestLabels {
            client: Name(DEMO_CLIENT.into()),
            r#type: kind,
            result,
        })
        .get()
}

/// The step is a drop for `want`, labelled `label`; the service leaves the
/// counting to the engine, and the engine's count lands under that label.
fn assert_dropped(svc: &Service, step: Step, want: DropReason, label: &'static str) {
    let got = expect_drop(step);
    assert_eq!(got, want);
    assert_eq!(got.label(), label);
    assert_eq!(
        drops(svc, label),
        0,
        "the service does not count {label} itself"
    );
    svc.metrics().drop(got); // what the engine does with Step::Drop
    assert_eq!(drops(svc, label), 1, "counted under {label}");
}

// ---------------------------------------------------------------------------
// 1. RFC 2865 §7.1

#[test]
fn rfc2865_example_accept_verifies_with_our_codec() {
    let req = hex(RFC_REQUEST);
    let accept = hex(RFC_ACCEPT);
    assert_eq!(req.len(), 0x38);
    assert_eq!(accept.len(), 0x26);
    let req = codec::decode(&req).unwrap();
    let accept = codec::decode(&accept).unwrap();
    assert_eq!(accept.code(), Code::ACCESS_ACCEPT);
    let secret = Secret::new(RFC_SECRET);
    assert_eq!(
        codec::verify_reply(&accept, req.authenticator(), &secret, false),
        Ok(())
    );
    assert_eq!(
        codec::verify_reply(
            &accept,
            req.authenticator(),
            &Secret::new(b"xyzzy5462"),
            false
        ),
        Err(CryptoError::BadResponseAuthenticator)
    );
}

#[tokio::test]
async fn a_deferred_reply_that_cannot_be_written_is_dropped_and_counted() {
    let config = rfc_config();
    let svc = service();
    let req = hex(RFC_REQUEST);
    let mut out = [0u8; 4096];
    let d = expect_verify(auth(&svc, &config, RFC_SRC, &req, &mut out));
    assert_eq!(drops(&svc, "buffer_full"), 0);
    let mut tiny = [0u8; 8];
    assert_eq!(svc.finish(&d, &mut tiny).await, None);
    assert_eq!(drops(&svc, "buffer_full"), 1);
}

#[tokio::test]
async fn rfc2865_example_request_is_accepted_after_argon2() {
    let config = rfc_config();
    let svc = service();
    let req = hex(RFC_REQUEST);
    let mut out = [0u8; 4096];

    let d = expect_verify(auth(&svc, &config, RFC_SRC, &req, &mut out));
    assert_eq!(&*d.user, "nemo");
    assert_eq!(d.password, b"arctangent");

    let n = svc.finish(&d, &mut out).await.expect("answered");
    let reply = checked_reply(&out[..n], &req, &Secret::new(RFC_SECRET));
    assert_eq!(reply.code(), Code::ACCESS_ACCEPT);
    assert_eq!(reply.identifier(), 0);
    assert_eq!(auths(&svc, "pap", "accept"), 1);

    assert_eq!(
        codec::verify_reply(
            &reply,
            &authenticator(&req),
            &Secret::new(b"xyzzy5462"),
            false
        ),
        Err(CryptoError::BadResponseAuthenticator)
    );

    // Verified once, the same credentials are answered from the cache.
    let n = expect_reply(auth(&svc, &config, RFC_SRC, &req, &mut out));
    let reply = checked_reply(&out[..n], &req, &Secret::new(RFC_SECRET));
    assert_eq!(reply.code(), Code::ACCESS_ACCEPT);
    assert_eq!(auths(&svc, "pap", "accept"), 2);
}

#[test]
fn rfc2865_example_from_another_address_is_unknown() {
    let config = rfc_config();
    let svc = service();
    let mut out = [0u8; 4096];
    let step = auth(
        &svc,
        &config,
        "192.168.1.17:1645",
        &hex(RFC_REQUEST),
        &mut out,
    );
    assert_dropped(&svc, step, DropReason::UnknownClient, "unknown_client");
}

// ---------------------------------------------------------------------------
// 2. The demo users over PAP

#[tokio::test]
async fn alice_pap_gets_her_role_then_is_answered_from_the_cache() {
    let config = demo();
    let svc = service();
    let secret = demo_secret();
    let mut out = [0u8; 4096];

    let req = pap(1, [0x11; 16], "alice", "alice-pass-1");
    let d = expect_verify(auth(&svc, &config, DEMO_SRC, &req, &mut out));
    let n = svc.finish(&d, &mut out).await.expect("answered");
    let reply = checked_reply(&out[..n], &req, &secret);
    assert_eq!(reply.code(), Code::ACCESS_ACCEPT);
    assert_eq!(cisco_avpairs(&reply), ALICE_AVPAIRS);
    // network-admin is priv-lvl 15: Service-Type Administrative-User.
    assert_eq!(
        reply.attr(attr::SERVICE_TYPE),
        Some(&6u32.to_be_bytes()[..])
    );

    // A new request (new authenticator) with the same password: no argon2.
    let req2 = pap(2, [0x22; 16], "alice", "alice-pass-1");
    let n = expect_reply(auth(&svc, &config, DEMO_SRC, &req2, &mut out));
    let reply = checked_reply(&out[..n], &req2, &secret);
    assert_eq!(reply.code(), Code::ACCESS_ACCEPT);
    assert_eq!(cisco_avpairs(&reply), ALICE_AVPAIRS);
    assert_eq!(auths(&svc, "pap", "accept"), 2);
    assert_eq!(requests(&svc, "access_request", "accept"), 2);

    // The cache is keyed on the password too: a wrong one still needs argon2.
    let req3 = pap(3, [0x33; 16], "alice", "alice-pass-2");
    let d = expect_verify(auth(&svc, &config, DEMO_SRC, &req3, &mut out));
    let n = svc.finish(&d, &mut out).await.expect("answered");
    assert_eq!(
        checked_reply(&out[..n], &req3, &secret).code(),
        Code::ACCESS_REJECT
    );
}

#[tokio::test]
async fn bob_with_a_wrong_password_is_rejected_after_argon2() {
    let config = demo();
    let svc = service();
    let mut out = [0u8; 4096];
    let req = pap(9, [0x99; 16], "bob", "bob-pass-3");
    let d = expect_verify(auth(&svc, &config, DEMO_SRC, &req, &mut out));
    let n = svc.finish(&d, &mut out).await.expect("answered");
    let reply = checked_reply(&out[..n], &req, &demo_secret());
    assert_eq!(reply.code(), Code::ACCESS_REJECT);
    assert!(cisco_avpairs(&reply).is_empty());
    assert_eq!(
        reply.attributes().count(),
        1,
        "a reject carries only its MA"
    );
    assert_eq!(auths(&svc, "pap", "bad_password"), 1);
    assert_eq!(requests(&svc, "access_request", "reject"), 1);
}

#[tokio::test]
async fn bob_with_his_password_gets_the_helpdesk_role() {
    let config = demo();
    let svc = service();
    let mut out = [0u8; 4096];
    let req = pap(10, [0x10; 16], "bob", "bob-pass-2");
    let d = expect_verify(auth(&svc, &config, DEMO_SRC, &req, &mut out));
    let n = svc.finish(&d, &mut out).await.expect("answered");
    let reply = checked_reply(&out[..n], &req, &demo_secret());
    assert_eq!(reply.code(), Code::ACCESS_ACCEPT);
    assert_eq!(
        cisco_avpairs(&reply),
        [
            &b"LOGIN:priv-lvl=7"[..],
            b"LOGIN:rbac-roles=Helpdesk",
            b"LOGIN:rbac-aag=Asia-Admin"
        ]
    );
}

/// Refused only after the argon2 a wrong password costs, so the time of
/// the answer does not tell which names exist or are disabled.
async fn refused_after_one_argon2(user: &str, password: &str, reason: &'static str) {
    let config = demo();
    let metrics = PoolMetrics::default();
    let pool = Argon2Pool::new(1, 16, metrics.clone());
    let svc = service_with(Credentials::new(Arc::new(pool)), None);
    let mut out = [0u8; 4096];
    let req = pap(4, [0x44; 16], user, password);
    let d = expect_verify(auth(&svc, &config, DEMO_SRC, &req, &mut out));
    let n = svc.finish(&d, &mut out).await.expect("answered");
    let reply = checked_reply(&out[..n], &req, &demo_secret());
    assert_eq!(reply.code(), Code::ACCESS_REJECT);
    assert_eq!(auths(&svc, "pap", reason), 1);
    assert_eq!(metrics.verifications(), 1, "{user}");
}

#[tokio::test]
async fn mallory_is_rejected_after_the_same_argon2_as_a_wrong_password() {
    // Her right password does not matter.
    refused_after_one_argon2("mallory", "mallory-pass-4", "disabled").await;
    refused_after_one_argon2("bob", "not-bobs", "bad_password").await;
}

#[tokio::test]
async fn an_unknown_user_is_rejected_after_the_same_argon2() {
    refused_after_one_argon2("trudy", "alice-pass-1", "unknown_user").await;
}

#[test]
fn a_request_without_user_name_or_method_is_rejected() {
    let config = demo();
    let svc = service();
    let mut out = [0u8; 4096];
    let no_name = access_request(6, [0x66; 16], |w| {
        w.put_user_password(b"alice-pass-1", &demo_secret())
            .unwrap();
    });
    let n = expect_reply(auth(&svc, &config, DEMO_SRC, &no_name, &mut out));
    assert_eq!(
        checked_reply(&out[..n], &no_name, &demo_secret()).code(),
        Code::ACCESS_REJECT
    );

    let no_method = access_request(7, [0x77; 16], |w| {
        w.put(attr::USER_NAME, b"alice").unwrap();
    });
    let n = expect_reply(auth(&svc, &config, DEMO_SRC, &no_method, &mut out));
    assert_eq!(
        checked_reply(&out[..n], &no_method, &demo_secret()).code(),
        Code::ACCESS_REJECT
    );
    assert_eq!(auths(&svc, "none", "no_supported_method"), 1);
}

#[tokio::test]
async fn proxy_state_is_echoed_in_order() {
    let config = demo();
    let svc = service();
    let mut out = [0u8; 4096];
    let req = access_request(8, [0x88; 16], |w| {
        w.put(attr::USER_NAME, b"mallory").unwrap();
        w.put_user_password(b"x", &demo_secret()).unwrap();
        w.put(attr::PROXY_STATE, b"first").unwrap();
        w.put(attr::PROXY_STATE, b"second").unwrap();
    });
    let d = expect_verify(auth(&svc, &config, DEMO_SRC, &req, &mut out));
    let n = svc.finish(&d, &mut out).await.expect("answered");
    let reply = checked_reply(&out[..n], &req, &demo_secret());
    let states: Vec<&[u8]> = reply.attrs(attr::PROXY_STATE).collect();
    assert_eq!(states, [&b"first"[..], b"second"]);
}

// ---------------------------------------------------------------------------
// 3. Drop reasons

#[test]
fn drop_too_short_packet() {
    let config = demo();
    let svc = service();
    let mut out = [0u8; 4096];
    let step = auth(
        &svc,
        &config,
        DEMO_SRC,
        &[1, 2, 0, 20, 0, 0, 0, 0, 0, 0],
        &mut out,
    );
    assert_dropped(
        &svc,
        step,
        DropReason::Decode(DecodeError::TooShort(10)),
        "too_short",
    );
}

#[test]
fn drop_truncated_packet_on_the_accounting_port() {
    let config = demo();
    let svc = service_with_sink(&testkit::sink());
    let mut out = [0u8; 4096];
    let req = accounting_request(1, "alice", "s", 1);
    let step = acct(&svc, &config, DEMO_SRC, &req[..req.len() - 1], &mut out);
    assert_dropped(
        &svc,
        step,
        DropReason::Decode(DecodeError::Truncated {
            length: req.len() as u16,
            received: req.len() - 1,
        }),
        "truncated",
    );
}

#[test]
fn drop_source_outside_every_client() {
    let config = demo();
    let svc = service();
    let mut out = [0u8; 4096];
    let req = pap(1, [1; 16], "alice", "alice-pass-1");
    let step = auth(&svc, &config, "10.1.2.3:40000", &req, &mut out);
    assert_dropped(&svc, step, DropReason::UnknownClient, "unknown_client");

    let svc = service_with_sink(&testkit::sink());
    let req = accounting_request(1, "alice", "s", 1);
    let step = acct(&svc, &config, "[2001:db8::1]:40000", &req, &mut out);
    assert_dropped(&svc, step, DropReason::UnknownClient, "unknown_client");
}

#[test]
fn drop_access_request_without_message_authenticator() {
    let config = demo();
    let svc = service();
    let secret = demo_secret();
    let mut buf = [0u8; 4096];
    let mut w = RequestWriter::new(&mut buf, Code::ACCESS_REQUEST, 1, &[2; 16]).unwrap();
    w.put(attr::USER_NAME, b"alice").unwrap();
    w.put_user_password(b"alice-pass-1", &secret).unwrap();
    let n = w.finish(&secret).unwrap();
    let mut out = [0u8; 4096];
    let step = auth(&svc, &config, DEMO_SRC, &buf[..n], &mut out);
    assert_dropped(
        &svc,
        step,
        DropReason::Crypto(CryptoError::MissingMessageAuthenticator),
        "missing_message_authenticator",
    );
}

#[test]
fn drop_wrong_message_authenticator() {
    let config = demo();
    let mut out = [0u8; 4096];

    // Signed with another secret.
    let svc = service();
    let mut buf = [0u8; 4096];
    let other = Secret::new(b"testing124");
    let mut w =
        RequestWriter::new_with_message_authenticator(&mut buf, Code::ACCESS_REQUEST, 1, &[3; 16])
            .unwrap();
    w.put(attr::USER_NAME, b"alice").unwrap();
    w.put_user_password(b"alice-pass-1", &other).unwrap();
    let n = w.finish(&other).unwrap();
    let step = auth(&svc, &config, DEMO_SRC, &buf[..n], &mut out);
    assert_dropped(
        &svc,
        step,
        DropReason::Crypto(CryptoError::BadMessageAuthenticator),
        "bad_message_authenticator",
    );

    // Signed right, then one attribute byte changed in flight.
    let svc = service();
    let mut req = pap(1, [3; 16], "alice", "alice-pass-1");
    let name = req.len() - 18 - 1; // the last byte of "alice", before User-Password
    assert_eq!(req[name], b'e');
    req[name] = b'a';
    let step = auth(&svc, &config, DEMO_SRC, &req, &mut out);
    assert_dropped(
        &svc,
        step,
        DropReason::Crypto(CryptoError::BadMessageAuthenticator),
        "bad_message_authenticator",
    );
}

#[test]
fn drop_status_server_without_message_authenticator_even_for_legacy_clients() {
    let config = rfc_config();
    let svc = service();
    let secret = Secret::new(RFC_SECRET);
    let mut buf = [0u8; 4096];
    let w = RequestWriter::new(&mut buf, Code::STATUS_SERVER, 1, &[4; 16]).unwrap();
    let n = w.finish(&secret).unwrap();
    let mut out = [0u8; 4096];
    let step = auth(&svc, &config, RFC_SRC, &buf[..n], &mut out);
    assert_dropped(
        &svc,
        step,
        DropReason::Crypto(CryptoError::MissingMessageAuthenticator),
        "missing_message_authenticator",
    );
}

#[test]
fn drop_accounting_request_on_the_auth_port() {
    let config = demo();
    let svc = service();
    // Validly signed, Message-Authenticator included (the auth port demands
    // one of every request from this client): dropped for its code alone.
    let mut buf = [0u8; 4096];
    let mut w = RequestWriter::new_with_message_authenticator(
        &mut buf,
        Code::ACCOUNTING_REQUEST,
        1,
        &[0; 16],
    )
    .unwrap();
    w.put_u32(attr::ACCT_STATUS_TYPE, 1).unwrap();
    w.put(attr::ACCT_SESSION_ID, b"s").unwrap();
    let n = w.finish(&demo_secret()).unwrap();
    let mut out = [0u8; 4096];
    let step = auth(&svc, &config, DEMO_SRC, &buf[..n], &mut out);
    assert_dropped(&svc, step, DropReason::UnexpectedCode, "unexpected_code");
}

#[test]
fn drop_access_request_on_the_accounting_port() {
    let config = demo();
    let sink = testkit::sink();
    let svc = service_with_sink(&sink);
    let mut out = [0u8; 4096];
    let req = pap(1, [5; 16], "alice", "alice-pass-1");
    let step = acct(&svc, &config, DEMO_SRC, &req, &mut out);
    assert_dropped(&svc, step, DropReason::UnexpectedCode, "unexpected_code");
    assert!(sink.records().is_empty());
}

#[test]
fn drop_a_reply_code_sent_to_the_server() {
    let config = demo();
    let svc = service();
    let mut buf = [0u8; 4096];
    let w =
        RequestWriter::new_with_message_authenticator(&mut buf, Code::ACCESS_ACCEPT, 1, &[6; 16])
            .unwrap();
    let n = w.finish(&demo_secret()).unwrap();
    let mut out = [0u8; 4096];
    let step = auth(&svc, &config, DEMO_SRC, &buf[..n], &mut out);
    assert_dropped(
        &svc,
        step,
        DropReason::Crypto(CryptoError::UnexpectedCode(2)),
        "unexpected_code",
    );
}

#[test]
fn drop_bad_user_password_length() {
    let config = demo();
    let svc = service();
    let mut out = [0u8; 4096];
    let req = access_request(1, [7; 16], |w| {
        w.put(attr::USER_NAME, b"alice").unwrap();
        w.put(attr::USER_PASSWORD, &[0x5a; 15]).unwrap();
    });
    let step = auth(&svc, &config, DEMO_SRC, &req, &mut out);
    assert_dropped(
        &svc,
        step,
        DropReason::Crypto(CryptoError::BadPasswordLength(15)),
        "bad_password_length",
    );
}

#[test]
fn drop_chap_password_of_the_wrong_length() {
    let config = demo();
    let svc = service();
    let mut out = [0u8; 4096];
    let req = access_request(1, [8; 16], |w| {
        w.put(attr::USER_NAME, b"alice").unwrap();
        w.put(attr::CHAP_PASSWORD, &[1; 16]).unwrap();
    });
    let step = auth(&svc, &config, DEMO_SRC, &req, &mut out);
    assert_dropped(
        &svc,
        step,
        DropReason::Crypto(CryptoError::BadChapPasswordLength(16)),
        "bad_chap_password_length",
    );
}

#[test]
fn drop_malformed_mschap2_response() {
    let config = demo();
    let svc = service();
    let mut out = [0u8; 4096];
    let req = access_request(1, [9; 16], |w| {
        w.put(attr::USER_NAME, b"alice").unwrap();
        w.put_vsa(
            attr::VENDOR_MICROSOFT,
            attr::ms::CHAP_CHALLENGE,
            &[0x42; 16],
        )
        .unwrap();
        w.put_vsa(attr::VENDOR_MICROSOFT, attr::ms::CHAP2_RESPONSE, &[0; 49])
            .unwrap();
    });
    let step = auth(&svc, &config, DEMO_SRC, &req, &mut out);
    assert_dropped(
        &svc,
        step,
        DropReason::MsChap(MsChapError::BadResponseLength(49)),
        "bad_mschap_response_length",
    );

    let svc = service();
    let req = access_request(2, [9; 16], |w| {
        w.put(attr::USER_NAME, b"alice").unwrap();
        w.put_vsa(attr::VENDOR_MICROSOFT, attr::ms::CHAP_CHALLENGE, &[0x42; 8])
            .unwrap();
        w.put_vsa(attr::VENDOR_MICROSOFT, attr::ms::CHAP2_RESPONSE, &[0; 50])
            .unwrap();
    });
    let step = auth(&svc, &config, DEMO_SRC, &req, &mut out);
    assert_dropped(
        &svc,
        step,
        DropReason::MsChap(MsChapError::BadChallengeLength(8)),
        "bad_mschap_challenge_length",
    );
}

type PutAttrs = dyn Fn(&mut RequestWriter<'_>);

#[test]
fn malformed_chap_and_mschap_are_dropped_whoever_they_name() {
    // alice opted in to CHAP, bob did not, nobody does not exist: a prober
    // sending malformed requests learns nothing from drop versus reject.
    let config = demo();
    let mut out = [0u8; 4096];
    for user in ["alice", "bob", "nobody"] {
        let cases: [(&str, Box<PutAttrs>); 3] = [
            (
                "bad_chap_password_length",
                Box::new(|w| w.put(attr::CHAP_PASSWORD, &[1; 16]).unwrap()),
            ),
            (
                "bad_mschap_response_length",
                Box::new(|w| {
                    w.put_vsa(attr::VENDOR_MICROSOFT, attr::ms::CHAP_CHALLENGE, &[7; 16])
                        .unwrap();
                    w.put_vsa(attr::VENDOR_MICROSOFT, attr::ms::CHAP2_RESPONSE, &[0; 49])
                        .unwrap();
                }),
            ),
            (
                "bad_mschap_response_length",
                Box::new(|w| {
                    w.put_vsa(attr::VENDOR_MICROSOFT, attr::ms::CHAP_CHALLENGE, &[7; 8])
                        .unwrap();
                    w.put_vsa(attr::VENDOR_MICROSOFT, attr::ms::CHAP_RESPONSE, &[0; 51])
                        .unwrap();
                }),
            ),
        ];
        for (label, put) in cases {
            let svc = service();
            let req = access_request(1, [11; 16], |w| {
                w.put(attr::USER_NAME, user.as_bytes()).unwrap();
                put(w);
            });
            let step = auth(&svc, &config, DEMO_SRC, &req, &mut out);
            match step {
                Step::Drop(r) => assert_eq!(r.label(), label, "{user}"),
                _ => panic!("{user} {label}: answered"),
            }
        }
    }
}

#[test]
fn drop_a_reply_that_does_not_fit_the_buffer() {
    let config = demo();
    let svc = service();
    // Room for the header and Message-Authenticator, not alice's attributes.
    let mut out = [0u8; 48];
    let challenge = [0x31; 16];
    let response = chap::response(0x17, b"alice-pass-1", &challenge);
    let req = access_request(1, [10; 16], |w| {
        w.put(attr::USER_NAME, b"alice").unwrap();
        w.put(attr::CHAP_PASSWORD, &[&[0x17][..], &response].concat())
            .unwrap();
        w.put(attr::CHAP_CHALLENGE, &challenge).unwrap();
    });
    let step = auth(&svc, &config, DEMO_SRC, &req, &mut out);
    assert_dropped(
        &svc,
        step,
        DropReason::Encode(EncodeError::BufferFull),
        "buffer_full",
    );
}

#[test]
fn drop_accounting_without_a_sink() {
    let config = demo();
    let svc = service();
    let mut out = [0u8; 4096];
    let req = accounting_request(1, "alice", "s-1", 1);
    let step = acct(&svc, &config, DEMO_SRC, &req, &mut out);
    assert_dropped(
        &svc,
        step,
        DropReason::AccountingUnavailable,
        "accounting_unavailable",
    );
    assert_eq!(requests(&svc, "accounting_request", "dropped"), 1);
}

#[test]
fn drop_accounting_when_the_sink_is_full() {
    let config = demo();
    let sink = testkit::sink();
    sink.set_full(true);
    let svc = service_with_sink(&sink);
    let mut out = [0u8; 4096];
    let req = accounting_request(1, "alice", "s-1", 1);
    let step = acct(&svc, &config, DEMO_SRC, &req, &mut out);
    assert_dropped(
        &svc,
        step,
        DropReason::AccountingQueueFull,
        "accounting_queue_full",
    );
    assert!(sink.records().is_empty());
    assert_eq!(requests(&svc, "accounting_request", "dropped"), 1);
}

#[test]
fn drop_accounting_request_with_a_bad_authenticator() {
    let config = demo();
    let sink = testkit::sink();
    let svc = service_with_sink(&sink);
    let mut out = [0u8; 4096];
    let mut req = accounting_request(1, "alice", "s-1", 1);
    req[4] ^= 1;
    let step = acct(&svc, &config, DEMO_SRC, &req, &mut out);
    assert_dropped(
        &svc,
        step,
        DropReason::Crypto(CryptoError::BadRequestAuthenticator),
        "bad_request_authenticator",
    );
    assert!(sink.records().is_empty());
}

#[test]
fn store_errors_map_to_their_drop_reasons() {
    let full = store_drop_reason(&StoreError::QueueFull { capacity: 7 });
    assert_eq!(full, DropReason::AccountingQueueFull);
    assert_eq!(full.label(), "accounting_queue_full");
    for e in [
        StoreError::Closed,
        StoreError::Writer("gone".into()),
        StoreError::Config("bad"),
    ] {
        let r = store_drop_reason(&e);
        assert_eq!(r, DropReason::AccountingStoreFailed, "{e}");
        assert_eq!(r.label(), "accounting_store_failed");
    }
}

#[tokio::test]
async fn argon2_overload_is_shed_and_counted_by_finish() {
    let config = demo();
    // One argon2 thread and no queue: a second concurrent check of another
    // credential is shed (one of the same credential would wait on the
    // first instead).
    let pool = Argon2Pool::new(1, 0, PoolMetrics::default());
    let svc = service_with(Credentials::new(Arc::new(pool)), None);
    let mut out = [0u8; 4096];
    let a = pap(1, [12; 16], "bob", "bob-pass-2");
    let b = pap(2, [13; 16], "carol", "carol-pass-3");
    let da = expect_verify(auth(&svc, &config, DEMO_SRC, &a, &mut out));
    let db = expect_verify(auth(&svc, &config, DEMO_SRC, &b, &mut out));
    let (mut oa, mut ob) = ([0u8; 4096], [0u8; 4096]);
    let (ra, rb) = tokio::join!(svc.finish(&da, &mut oa), svc.finish(&db, &mut ob));
    let answered: Vec<(usize, &[u8], &[u8])> = [(ra, &a, &oa), (rb, &b, &ob)]
        .into_iter()
        .filter_map(|(r, req, o)| r.map(|n| (n, &req[..], &o[..])))
        .collect();
    assert_eq!(answered.len(), 1, "one verified, one shed");
    let (n, req, o) = answered[0];
    assert_eq!(
        checked_reply(&o[..n], req, &demo_secret()).code(),
        Code::ACCESS_ACCEPT
    );
    // Unlike the other reasons, the service counts this one itself.
    assert_eq!(drops(&svc, DropReason::Argon2Overloaded.label()), 1);
    assert_eq!(DropReason::Argon2Overloaded.label(), "argon2_overloaded");
}

// ---------------------------------------------------------------------------
// 4. Status-Server

#[test]
fn status_server_is_answered_with_an_access_accept() {
    let config = demo();
    let svc = service();
    let mut buf = [0u8; 4096];
    let w = RequestWriter::new_with_message_authenticator(
        &mut buf,
        Code::STATUS_SERVER,
        0x2a,
        &[0xc3; 16],
    )
    .unwrap();
    let n = w.finish(&demo_secret()).unwrap();
    let req = buf[..n].to_vec();
    let mut out = [0u8; 4096];
    let n = expect_reply(auth(&svc, &config, DEMO_SRC, &req, &mut out));
    let reply = checked_reply(&out[..n], &req, &demo_secret());
    assert_eq!(reply.code(), Code::ACCESS_ACCEPT);
    assert_eq!(reply.identifier(), 0x2a);
    assert_eq!(reply.attributes().count(), 1, "no role attributes");
    assert_eq!(requests(&svc, "status_server", "accept"), 1);
    assert_eq!(requests(&svc, "access_request", "accept"), 0);
}

#[test]
fn status_server_on_the_accounting_port_is_answered_with_an_accounting_response() {
    let config = demo();
    let sink = Arc::new(MemorySink::default());
    let svc = service_with_sink(&sink);
    let mut buf = [0u8; 4096];
    let w = RequestWriter::new_with_message_authenticator(
        &mut buf,
        Code::STATUS_SERVER,
        0x2b,
        &[0xc4; 16],
    )
    .unwrap();
    let n = w.finish(&demo_secret()).unwrap();
    let req = buf[..n].to_vec();
    let first = req.clone();
    let mut out = [0u8; 4096];
    let n = expect_reply(acct(&svc, &config, DEMO_SRC, &req, &mut out));
    let reply = checked_reply(&out[..n], &req, &demo_secret());
    assert_eq!(reply.code(), Code::ACCOUNTING_RESPONSE);
    assert_eq!(reply.identifier(), 0x2b);
    assert_eq!(requests(&svc, "status_server", "accept"), 1);
    // Without its Message-Authenticator it is dropped, as on the other port.
    let w = RequestWriter::new(&mut buf, Code::STATUS_SERVER, 0x2c, &[0xc5; 16]).unwrap();
    let n = w.finish(&demo_secret()).unwrap();
    let req = buf[..n].to_vec();
    assert!(matches!(
        acct(&svc, &config, DEMO_SRC, &req, &mut out),
        Step::Drop(_)
    ));
    assert!(sink.records().is_empty(), "nothing stored");
    // A server with no accounting store is not alive on this port.
    let svc = service();
    assert!(matches!(
        acct(&svc, &config, DEMO_SRC, &first, &mut out),
        Step::Drop(_)
    ));
}

// ---------------------------------------------------------------------------
// 5. CHAP and MS-CHAPv2

fn chap_request(
    id: u8,
    auth: [u8; 16],
    user: &str,
    password: &[u8],
    challenge: Option<[u8; 16]>,
) -> Vec<u8> {
    let ident = id.wrapping_mul(3);
    let response = chap::response(ident, password, challenge.as_ref().unwrap_or(&auth));
    access_request(id, auth, |w| {
        w.put(attr::USER_NAME, user.as_bytes()).unwrap();
        w.put(attr::CHAP_PASSWORD, &[&[ident][..], &response].concat())
            .unwrap();
        if let Some(c) = challenge {
            w.put(attr::CHAP_CHALLENGE, &c).unwrap();
        }
    })
}

#[test]
fn alice_chap_is_accepted() {
    let config = demo();
    let svc = service();
    let mut out = [0u8; 4096];
    for (id, challenge) in [(1, Some([0x5c; 16])), (2, None)] {
        let req = chap_request(id, [0xa0 + id; 16], "alice", b"alice-pass-1", challenge);
        let n = expect_reply(auth(&svc, &config, DEMO_SRC, &req, &mut out));
        let reply = checked_reply(&out[..n], &req, &demo_secret());
        assert_eq!(reply.code(), Code::ACCESS_ACCEPT, "challenge {challenge:?}");
        assert_eq!(cisco_avpairs(&reply), ALICE_AVPAIRS);
    }
    assert_eq!(auths(&svc, "chap", "accept"), 2);
}

#[test]
fn chap_with_a_wrong_password_or_without_cleartext_is_rejected() {
    let config = demo();
    let svc = service();
    let mut out = [0u8; 4096];
    let req = chap_request(3, [0xb3; 16], "alice", b"alice-pass-2", Some([0x5c; 16]));
    let n = expect_reply(auth(&svc, &config, DEMO_SRC, &req, &mut out));
    assert_eq!(
        checked_reply(&out[..n], &req, &demo_secret()).code(),
        Code::ACCESS_REJECT
    );
    assert_eq!(auths(&svc, "chap", "bad_password"), 1);

    // bob has not opted in to a stored cleartext-equivalent.
    let req = chap_request(4, [0xb4; 16], "bob", b"bob-pass-2", None);
    let n = expect_reply(auth(&svc, &config, DEMO_SRC, &req, &mut out));
    assert_eq!(
        checked_reply(&out[..n], &req, &demo_secret()).code(),
        Code::ACCESS_REJECT
    );
    assert_eq!(auths(&svc, "chap", "no_cleartext"), 1);
}

const MS_IDENT: u8 = 0x4d;
const MS_AUTH_CHALLENGE: [u8; 16] = [
    0x5b, 0x5d, 0x7c, 0x7d, 0x7b, 0x3f, 0x2f, 0x3e, 0x3c, 0x2c, 0x60, 0x21, 0x32, 0x26, 0x26, 0x28,
];
const MS_PEER_CHALLENGE: [u8; 16] = [
    0x21, 0x40, 0x23, 0x24, 0x25, 0x5e, 0x26, 0x2a, 0x28, 0x29, 0x5f, 0x2b, 0x3a, 0x33, 0x7c, 0x7e,
];

fn mschapv2_request(auth: [u8; 16], user: &str, password: &[u8]) -> (Vec<u8>, [u8; 24]) {
    let nt_hash = mschap::nt_password_hash(password);
    let nt_response = mschap::generate_nt_response(
        &MS_AUTH_CHALLENGE,
        &MS_PEER_CHALLENGE,
        user.as_bytes(),
        &nt_hash,
    );
    let mut value = Vec::with_capacity(mschap::RESPONSE_LEN);
    value.extend_from_slice(&[MS_IDENT, 0]);
    value.extend_from_slice(&MS_PEER_CHALLENGE);
    value.extend_from_slice(&[0; 8]);
    value.extend_from_slice(&nt_response);
    let req = access_request(1, auth, |w| {
        w.put(attr::USER_NAME, user.as_bytes()).unwrap();
        w.put_vsa(
            attr::VENDOR_MICROSOFT,
            attr::ms::CHAP_CHALLENGE,
            &MS_AUTH_CHALLENGE,
        )
        .unwrap();
        w.put_vsa(attr::VENDOR_MICROSOFT, attr::ms::CHAP2_RESPONSE, &value)
            .unwrap();
    });
    (req, nt_response)
}

#[test]
fn alice_mschapv2_is_accepted_with_success_and_mppe_keys() {
    let config = demo();
    let svc = service();
    let secret = demo_secret();
    let mut out = [0u8; 4096];
    let req_auth = [0xe7; 16];
    let (req, nt_response) = mschapv2_request(req_auth, "alice", b"alice-pass-1");
    let n = expect_reply(auth(&svc, &config, DEMO_SRC, &req, &mut out));
    let reply = checked_reply(&out[..n], &req, &secret);
    assert_eq!(reply.code(), Code::ACCESS_ACCEPT);
    assert_eq!(cisco_avpairs(&reply), ALICE_AVPAIRS);

    let ms = |t| {
        reply
            .vsa(attr::VENDOR_MICROSOFT, t)
            .unwrap_or_else(|| panic!("MS VSA {t}"))
    };
    let nt_hash_hash = mschap::hash_nt_password_hash(&mschap::nt_password_hash(b"alice-pass-1"));
    let expected_success = mschap::authenticator_response(
        &nt_hash_hash,
        &nt_response,
        &MS_PEER_CHALLENGE,
        &MS_AUTH_CHALLENGE,
        b"alice",
    );
    let success = ms(attr::ms::CHAP2_SUCCESS);
    assert_eq!(success.len(), mschap::SUCCESS_LEN);
    assert_eq!(success[0], MS_IDENT);
    assert_eq!(&success[1..], &expected_success[..]);
    assert!(success[1..].starts_with(b"S="));

    // testkit::clock() draws 0x1234 first; the salt's high bit is forced on,
    // and the receive key takes the next salt.
    let keys = mschap::mppe_keys(&nt_hash_hash, &nt_response);
    let send = ms(attr::ms::MPPE_SEND_KEY);
    let recv = ms(attr::ms::MPPE_RECV_KEY);
    assert_eq!(send[..2], [0x92, 0x34]);
    assert_eq!(recv[..2], [0x92, 0x35]);
    assert_eq!(
        send.len(),
        2 + 32,
        "salt + length-prefixed 16-byte key, padded"
    );
    assert_eq!(recv.len(), 2 + 32);
    let mut buf = [0u8; MAX_SALT_ENCRYPTED_LEN];
    assert_eq!(
        codec::salt_decrypt(send, &secret, &req_auth, &mut buf).unwrap(),
        keys.send
    );
    assert_eq!(
        codec::salt_decrypt(recv, &secret, &req_auth, &mut buf).unwrap(),
        keys.recv
    );
    // And exactly what salt_encrypt makes of them with those salts.
    let mut expect = [0u8; MAX_SALT_ENCRYPTED_LEN];
    assert_eq!(
        send,
        codec::salt_encrypt(&keys.send, 0x1234, &secret, &req_auth, &mut expect).unwrap()
    );
    assert_eq!(
        recv,
        codec::salt_encrypt(&keys.recv, 0x1235, &secret, &req_auth, &mut expect).unwrap()
    );
    assert_eq!(ms(attr::ms::MPPE_ENCRYPTION_POLICY), 1u32.to_be_bytes());
    assert_eq!(ms(attr::ms::MPPE_ENCRYPTION_TYPES), 6u32.to_be_bytes());
    assert_eq!(auths(&svc, "mschapv2", "accept"), 1);

    // One draw per accept (the receive key takes that draw + 1), so the
    // next accept's send key starts from 0x1235.
    let (req, _) = mschapv2_request([0xe8; 16], "alice", b"alice-pass-1");
    let n = expect_reply(auth(&svc, &config, DEMO_SRC, &req, &mut out));
    let reply = checked_reply(&out[..n], &req, &secret);
    let send = reply
        .vsa(attr::VENDOR_MICROSOFT, attr::ms::MPPE_SEND_KEY)
        .unwrap();
    assert_eq!(send[..2], [0x92, 0x35]);
}

#[test]
fn mschapv2_with_a_wrong_password_is_rejected() {
    let config = demo();
    let svc = service();
    let mut out = [0u8; 4096];
    let (req, _) = mschapv2_request([0xe9; 16], "alice", b"alice-pass-2");
    let n = expect_reply(auth(&svc, &config, DEMO_SRC, &req, &mut out));
    let reply = checked_reply(&out[..n], &req, &demo_secret());
    assert_eq!(reply.code(), Code::ACCESS_REJECT);
    assert_eq!(
        reply.vsa(attr::VENDOR_MICROSOFT, attr::ms::CHAP2_SUCCESS),
        None
    );
    assert_eq!(
        reply.vsa(attr::VENDOR_MICROSOFT, attr::ms::MPPE_SEND_KEY),
        None
    );
    assert_eq!(auths(&svc, "mschapv2", "bad_password"), 1);
}

// ---------------------------------------------------------------------------
// 6. Accounting

#[tokio::test]
async fn accounting_start_is_stored_once_and_acknowledged() {
    let config = demo();
    let sink = testkit::sink();
    let svc = service_with_sink(&sink);
    let secret = demo_secret();
    let req = accounting_request(0x31, "alice", "sess-0001", 1);
    let mut out = [0u8; 4096];

    let storing = expect_store(acct(&svc, &config, DEMO_SRC, &req, &mut out));
    assert_eq!(&*storing.client, DEMO_CLIENT);
    let durable = storing.pending.await.expect("stored");
    assert!(!durable.duplicate);
    svc.stored(&storing.client, Ok(durable.duplicate));

    let reply = codec::decode(&storing.reply).unwrap();
    assert_eq!(reply.code(), Code::ACCOUNTING_RESPONSE);
    assert_eq!(reply.identifier(), 0x31);
    assert_eq!(
        codec::verify_reply(&reply, &authenticator(&req), &secret, false),
        Ok(())
    );
    assert_eq!(
        codec::verify_reply(&reply, &[0; 16], &secret, false),
        Err(CryptoError::BadResponseAuthenticator)
    );

    let records = sink.records();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.received_at, testkit::now());
    assert_eq!(r.user, "alice");
    assert_eq!(r.session_id, "sess-0001");
    assert_eq!(r.status, Status::Start);
    assert_eq!(r.client, DEMO_CLIENT);
    assert_eq!(r.client_addr, addr(DEMO_SRC).ip());
    assert_eq!(r.src_port, addr(DEMO_SRC).port());

    // A retransmission: acknowledged again, stored once.
    let again = expect_store(acct(&svc, &config, DEMO_SRC, &req, &mut out));
    let durable = again.pending.await.expect("acknowledged");
    assert!(durable.duplicate, "the store recognised the retransmission");
    svc.stored(&again.client, Ok(durable.duplicate));
    assert_eq!(again.reply, storing.reply);
    assert_eq!(sink.records().len(), 1);
    assert_eq!(requests(&svc, "accounting_request", "stored"), 1);
    assert_eq!(requests(&svc, "accounting_request", "duplicate"), 1);

    // A different event of the same session is a second record.
    let stop = accounting_request(0x32, "alice", "sess-0001", 2);
    let storing = expect_store(acct(&svc, &config, DEMO_SRC, &stop, &mut out));
    assert!(!storing.pending.await.unwrap().duplicate);
    let records = sink.records();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].status, Status::Stop);
}

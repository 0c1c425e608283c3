//! The TACACS+ conversation without sockets: whole client packets go in,
//! framed and de-obfuscated as the engine does it, and the decoded replies,
//! stored records and counters come out.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use prometheus_client::registry::Registry;

use super::*;
use crate::accounting::MemorySink;
use crate::testkit;

/// The demo's TACACS+ key for 127.0.0.0/8, as the appliance holds it.
const KEY: &[u8] = b"tacacs123";
/// The engine's framing limit.
const MAX_BODY: u32 = 64 * 1024;
/// TAC_PLUS_AUTHEN_METH_TACACSPLUS (RFC 8907 §6.1).
const METH_TACACSPLUS: u8 = 6;

fn peer() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 49152)
}

/// A service on the demo configuration and one connection to it.
struct Rig {
    config: Config,
    service: Service,
    registry: Registry,
    sink: Arc<MemorySink>,
    conn: Conn,
}

/// A reply the service wrote: its header and de-obfuscated body.
#[derive(Debug)]
struct Reply {
    /// `Outcome::More` rather than `Outcome::Done`.
    more: bool,
    header: Header,
    body: Vec<u8>,
}

impl Reply {
    fn authen(&self) -> AuthenReply<'_> {
        AuthenReply::decode(&self.body).expect("an authentication REPLY")
    }

    fn author(&self) -> AuthorResponse<'_> {
        AuthorResponse::decode(&self.body).expect("an authorization RESPONSE")
    }

    fn acct(&self) -> AcctReply<'_> {
        AcctReply::decode(&self.body).expect("an accounting REPLY")
    }

    /// The authorization RESPONSE's AV pairs, as text.
    fn author_args(&self) -> Vec<String> {
        self.author()
            .args
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }
}

impl Rig {
    fn new() -> Self {
        Self::with_sink(true)
    }

    fn with_sink(accounting: bool) -> Self {
        let mut registry = Registry::default();
        let metrics = TacacsMetrics::register(&mut registry);
        let sink = testkit::sink();
        let service = Service::new(
            testkit::credentials(),
            accounting.then(|| sink.clone() as Arc<dyn AccountingSink>),
            metrics,
            testkit::clock(),
        );
        Self {
            config: testkit::demo_config(),
            service,
            registry,
            sink,
            conn: Conn::new(peer()),
        }
    }

    /// A new connection from the same appliance (sessions start afresh).
    fn reconnect(&mut self) {
        self.conn = Conn::new(peer());
    }

    /// One whole client packet in, as the engine's `connection()` handles
    /// it: framed, client and key looked up in the configuration,
    /// de-obfuscated, answered. `Err` when the service closes instead.
    async fn send(&mut self, packet: &[u8]) -> Result<Reply, CloseReason> {
        let (header, total) = Header::check(packet, MAX_BODY)
            .expect("the header frames")
            .expect("a whole packet");
        assert_eq!(total, packet.len(), "one packet exactly");
        let client = self
            .config
            .clients
            .lookup(peer().ip())
            .expect("the demo has a client for 127.0.0.1");
        let key = client.tacacs_key.as_ref().expect("with a TACACS+ key");
        let mut body = packet[HEADER_LEN..total].to_vec();
        if !header.unencrypted() {
            obfuscate(&mut body, &header, key.expose());
        }
        let mut out = Vec::new();
        let outcome = self
            .service
            .handle(
                &self.config,
                client,
                key.expose(),
                &mut self.conn,
                &header,
                &body,
                0,
                &mut out,
            )
            .await;
        let more = match outcome {
            Outcome::Done => false,
            Outcome::More => true,
            Outcome::Close(reason) => return Err(reason),
        };
        // What the appliance does with the reply: frame it, check it answers
        // its packet, de-obfuscate it with the shared key.
        let (rh, total) = Header::check(&out, MAX_BODY)
            .expect("the reply header frames")
            .expect("a whole reply");
        assert_eq!(total, out.len(), "one reply packet exactly");
        assert_eq!(rh.packet_type, header.packet_type);
        assert_eq!(rh.version, header.version);
        assert_eq!(rh.session_id, header.session_id);
        assert_eq!(rh.seq_no, header.seq_no + 1);
        assert_eq!(rh.flags, 0);
        let mut body = out[HEADER_LEN..].to_vec();
        obfuscate(&mut body, &rh, KEY);
        Ok(Reply {
            more,
            header: rh,
            body,
        })
    }

    async fn reply(&mut self, packet: &[u8]) -> Reply {
        match self.send(packet).await {
            Ok(r) => r,
            Err(reason) => panic!("closed ({reason:?}) instead of a reply"),
        }
    }

    /// Every non-zero `tacacs_requests_total`, as "type/result" → count.
    fn counted(&self) -> BTreeMap<String, u64> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        let label = |line: &str, name: &str| {
            let at = line.find(&format!("{name}=\"")).expect("label present") + name.len() + 2;
            line[at..at + line[at..].find('"').unwrap()].to_string()
        };
        text.lines()
            .filter(|l| l.starts_with("tacacs_requests_total{"))
            .filter_map(|l| {
                assert_eq!(label(l, "client"), "loopback");
                let n: u64 = l.rsplit(' ').next().unwrap().parse().unwrap();
                (n > 0).then(|| (format!("{}/{}", label(l, "type"), label(l, "result")), n))
            })
            .collect()
    }
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|&(k, n)| (k.to_string(), n)).collect()
}

// ---- client packets ----------------------------------------------------------

fn packet(
    packet_type: PacketType,
    version: u8,
    seq_no: u8,
    session_id: u32,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Vec<u8> {
    let h = Header {
        version,
        packet_type,
        seq_no,
        flags: 0,
        session_id,
        length: 0,
    };
    let mut buf = Vec::new();
    encode_packet(&h, KEY, &mut buf, write).expect("the client packet encodes");
    buf
}

/// An authentication START (minor version 1 for PAP/CHAP/MS-CHAP, §5.4.1).
fn start(
    session: u32,
    authen_type: AuthenType,
    authen_service: AuthenService,
    priv_lvl: u8,
    user: &str,
    data: &[u8],
) -> Vec<u8> {
    let version = if authen_type == AuthenType::ASCII {
        0xC0
    } else {
        0xC1
    };
    packet(PacketType::Authentication, version, 1, session, |b| {
        AuthenStart {
            action: Action::LOGIN,
            priv_lvl,
            authen_type,
            authen_service,
            user: user.as_bytes(),
            port: b"tty1",
            rem_addr: b"192.0.2.7",
            data,
        }
        .encode(b)
    })
}

fn pap(session: u32, user: &str, password: &str) -> Vec<u8> {
    start(
        session,
        AuthenType::PAP,
        AuthenService::LOGIN,
        1,
        user,
        password.as_bytes(),
    )
}

fn ascii(session: u32, user: &str) -> Vec<u8> {
    start(
        session,
        AuthenType::ASCII,
        AuthenService::LOGIN,
        1,
        user,
        b"",
    )
}

fn cont(session: u32, seq_no: u8, user_msg: &str, flags: u8) -> Vec<u8> {
    packet(PacketType::Authentication, 0xC0, seq_no, session, |b| {
        AuthenContinue {
            flags,
            user_msg: user_msg.as_bytes(),
            data: b"",
        }
        .encode(b)
    })
}

fn author(session: u32, seq_no: u8, user: &str, args: &[&str]) -> Vec<u8> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    packet(PacketType::Authorization, 0xC0, seq_no, session, |b| {
        AuthorRequest {
            authen_method: METH_TACACSPLUS,
            priv_lvl: 1,
            authen_type: AuthenType::ASCII,
            authen_service: AuthenService::LOGIN,
            user: user.as_bytes(),
            port: b"tty1",
            rem_addr: b"192.0.2.7",
            args: Args::EMPTY,
        }
        .encode(&args, b)
    })
}

fn acct(session: u32, seq_no: u8, flags: u8, user: &str, args: &[&str]) -> Vec<u8> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    packet(PacketType::Accounting, 0xC0, seq_no, session, |b| {
        AcctRequest {
            flags,
            authen_method: METH_TACACSPLUS,
            priv_lvl: 15,
            authen_type: AuthenType::ASCII,
            authen_service: AuthenService::LOGIN,
            user: user.as_bytes(),
            port: b"tty1",
            rem_addr: b"192.0.2.7",
            args: Args::EMPTY,
        }
        .encode(&args, b)
    })
}

fn assert_status(r: &Reply, status: AuthenStatus, msg: &str) {
    let a = r.authen();
    assert_eq!(
        (a.status, String::from_utf8_lossy(a.server_msg).as_ref()),
        (status, msg)
    );
}

// ---- 1. PAP --------------------------------------------------------------------

#[tokio::test]
async fn pap_passes_the_right_password_and_fails_the_rest() {
    let mut rig = Rig::new();

    let r = rig.reply(&pap(0x100, "alice", "alice-pass-1")).await;
    assert!(!r.more);
    assert_eq!(r.header.seq_no, 2);
    assert_status(&r, AuthenStatus::PASS, "");

    let r = rig.reply(&pap(0x101, "bob", "alice-pass-1")).await;
    assert!(!r.more);
    assert_status(&r, AuthenStatus::FAIL, "Authentication failed");

    let r = rig.reply(&pap(0x102, "mallory", "anything")).await;
    assert_status(&r, AuthenStatus::FAIL, "Authentication failed");

    let r = rig.reply(&pap(0x103, "nobody", "x")).await;
    assert_status(&r, AuthenStatus::FAIL, "Authentication failed");

    // bob's own password does pass: the FAIL above was the password's.
    let r = rig.reply(&pap(0x104, "bob", "bob-pass-2")).await;
    assert_status(&r, AuthenStatus::PASS, "");

    assert!(rig.conn.sessions.is_empty(), "PAP keeps no session open");
    assert_eq!(
        rig.counted(),
        counts(&[
            ("authentication/pass", 2),
            ("authentication/bad_password", 1),
            ("authentication/disabled", 1),
            ("authentication/unknown_user", 1),
        ])
    );
}

// ---- 2. ASCII login --------------------------------------------------------------

#[tokio::test]
async fn ascii_login_asks_for_user_then_password_then_passes() {
    let mut rig = Rig::new();
    let banner = rig
        .config
        .tacacs
        .banner
        .clone()
        .expect("the demo has a banner");
    assert_eq!(banner, "portcullis demo: authorised use only");
    let user_prompt = rig.config.tacacs.username_prompt.clone();
    let pass_prompt = rig.config.tacacs.password_prompt.clone();
    assert_eq!(user_prompt, "Username: ");
    assert_eq!(pass_prompt, "Password: ");

    let r = rig.reply(&ascii(0x200, "")).await;
    assert!(r.more, "the session goes on");
    assert_eq!(r.header.seq_no, 2);
    assert_status(
        &r,
        AuthenStatus::GETUSER,
        &format!("{banner}\n{user_prompt}"),
    );
    assert_eq!(r.authen().flags, 0, "the user name is echoed");

    let r = rig.reply(&cont(0x200, 3, "alice", 0)).await;
    assert!(r.more);
    assert_eq!(r.header.seq_no, 4);
    assert_status(&r, AuthenStatus::GETPASS, &pass_prompt);
    assert_eq!(r.authen().flags, REPLY_FLAG_NOECHO);

    let r = rig.reply(&cont(0x200, 5, "alice-pass-1", 0)).await;
    assert!(!r.more, "the session is over");
    assert_eq!(r.header.seq_no, 6);
    assert_status(&r, AuthenStatus::PASS, "");

    assert!(rig.conn.sessions.is_empty());
    assert_eq!(rig.counted(), counts(&[("authentication/pass", 1)]));
}

#[tokio::test]
async fn ascii_empty_user_name_is_asked_again_without_the_banner() {
    let mut rig = Rig::new();
    let user_prompt = rig.config.tacacs.username_prompt.clone();

    assert!(rig.reply(&ascii(0x210, "")).await.more);
    let r = rig.reply(&cont(0x210, 3, "  ", 0)).await;
    assert!(r.more);
    assert_status(&r, AuthenStatus::GETUSER, &user_prompt);
    assert_eq!(r.authen().flags, 0);

    let r = rig.reply(&cont(0x210, 5, "bob", 0)).await;
    assert_status(
        &r,
        AuthenStatus::GETPASS,
        &rig.config.tacacs.password_prompt,
    );
    let r = rig.reply(&cont(0x210, 7, "bob-pass-2", 0)).await;
    assert_status(&r, AuthenStatus::PASS, "");
}

#[tokio::test]
async fn ascii_start_with_a_user_asks_for_the_password_at_once() {
    let mut rig = Rig::new();

    let r = rig.reply(&ascii(0x220, "bob")).await;
    assert!(r.more);
    assert_status(
        &r,
        AuthenStatus::GETPASS,
        &rig.config.tacacs.password_prompt,
    );
    assert_eq!(r.authen().flags, REPLY_FLAG_NOECHO);

    let r = rig.reply(&cont(0x220, 3, "bob-pass-2", 0)).await;
    assert!(!r.more);
    assert_status(&r, AuthenStatus::PASS, "");

    // And a wrong password at the prompt fails.
    assert!(rig.reply(&ascii(0x221, "carol")).await.more);
    let r = rig.reply(&cont(0x221, 3, "not-carols", 0)).await;
    assert!(!r.more);
    assert_status(&r, AuthenStatus::FAIL, "Authentication failed");

    assert!(rig.conn.sessions.is_empty());
    assert_eq!(
        rig.counted(),
        counts(&[
            ("authentication/pass", 1),
            ("authentication/bad_password", 1)
        ])
    );
}

#[tokio::test]
async fn ascii_continue_with_abort_flag_fails_aborted() {
    let mut rig = Rig::new();

    assert!(rig.reply(&ascii(0x230, "alice")).await.more);
    let r = rig
        .reply(&cont(0x230, 3, "alice-pass-1", CONTINUE_FLAG_ABORT))
        .await;
    assert!(!r.more);
    assert_status(&r, AuthenStatus::FAIL, "aborted");
    assert!(rig.conn.sessions.is_empty(), "the aborted session is gone");

    // The password sent with the abort did not log anyone in, and the
    // session cannot be continued.
    let r = rig.reply(&cont(0x230, 5, "alice-pass-1", 0)).await;
    assert_status(&r, AuthenStatus::ERROR, "no such session");
    assert_eq!(rig.counted(), counts(&[("authentication/abort", 1)]));
}

// ---- 3. sequence and body errors ---------------------------------------------------

#[tokio::test]
async fn continue_for_a_session_never_started_is_answered_error() {
    let mut rig = Rig::new();
    let r = rig.reply(&cont(0x300, 3, "alice", 0)).await;
    assert!(!r.more);
    assert_eq!(r.header.seq_no, 4);
    assert_status(&r, AuthenStatus::ERROR, "no such session");
}

#[tokio::test]
async fn continue_with_the_wrong_sequence_number_closes() {
    let mut rig = Rig::new();
    assert!(rig.reply(&ascii(0x310, "")).await.more);
    // The next client packet must carry 3.
    assert_eq!(
        rig.send(&cont(0x310, 5, "alice", 0)).await.unwrap_err(),
        CloseReason::BadSequence
    );

    // A client packet with an even (server's) sequence number closes too.
    rig.reconnect();
    assert!(rig.reply(&ascii(0x311, "")).await.more);
    assert_eq!(
        rig.send(&cont(0x311, 2, "alice", 0)).await.unwrap_err(),
        CloseReason::BadSequence
    );
    assert_eq!(
        rig.send(&cont(0x311, 255, "alice", 0)).await.unwrap_err(),
        CloseReason::BadSequence
    );
}

#[tokio::test]
async fn authorization_and_accounting_must_be_sequence_one() {
    let mut rig = Rig::new();
    assert_eq!(
        rig.send(&author(0x320, 3, "bob", &["service=shell"]))
            .await
            .unwrap_err(),
        CloseReason::BadSequence
    );
    assert_eq!(
        rig.send(&acct(
            0x321,
            3,
            ACCT_FLAG_START,
            "alice",
            &["task_id=1", "service=shell"]
        ))
        .await
        .unwrap_err(),
        CloseReason::BadSequence
    );
    assert!(rig.sink.records().is_empty(), "nothing stored");
    assert!(rig.counted().is_empty(), "nothing answered");
}

#[tokio::test]
async fn start_for_a_session_already_open_is_answered_error() {
    let mut rig = Rig::new();
    assert!(rig.reply(&ascii(0x330, "alice")).await.more);
    assert_eq!(rig.conn.sessions.len(), 1);

    let r = rig.reply(&pap(0x330, "alice", "alice-pass-1")).await;
    assert!(!r.more);
    assert_status(&r, AuthenStatus::ERROR, "session already open");
    // The PAP START was not taken as a login, right password or not.
    let counted = rig.counted();
    assert!(
        counted.keys().all(|k| !k.starts_with("authentication/")),
        "{counted:?}"
    );
}

#[tokio::test]
async fn bodies_that_do_not_decode_close_the_connection() {
    let mut rig = Rig::new();
    let raw = |ty, seq, session, body: &[u8]| {
        packet(ty, 0xC0, seq, session, |b| {
            b.extend_from_slice(body);
            Ok(())
        })
    };
    let short = |ty, seq| raw(ty, seq, 0x340, b"\x01\x01");
    // A START whose user length says more than the body holds.
    let mismatched = raw(
        PacketType::Authentication,
        1,
        0x341,
        &[1, 1, 1, 1, 200, 0, 0, 0, b'a'],
    );

    assert_eq!(
        rig.send(&short(PacketType::Authentication, 1))
            .await
            .unwrap_err(),
        CloseReason::Body(DecodeError::ShortBody)
    );
    assert_eq!(
        rig.send(&mismatched).await.unwrap_err(),
        CloseReason::Body(DecodeError::LengthMismatch)
    );
    assert_eq!(
        rig.send(&short(PacketType::Authorization, 1))
            .await
            .unwrap_err(),
        CloseReason::Body(DecodeError::ShortBody)
    );
    assert_eq!(
        rig.send(&short(PacketType::Accounting, 1))
            .await
            .unwrap_err(),
        CloseReason::Body(DecodeError::ShortBody)
    );

    // A CONTINUE that does not decode, in an open session.
    assert!(rig.reply(&ascii(0x342, "")).await.more);
    let bad = raw(PacketType::Authentication, 3, 0x342, &[0, 9, 0, 0, 0, b'x']);
    assert_eq!(
        rig.send(&bad).await.unwrap_err(),
        CloseReason::Body(DecodeError::LengthMismatch)
    );

    // What the engine sees with a wrong key: the body de-obfuscates to noise.
    let mut wrong_key = Vec::new();
    let h = Header {
        version: 0xC1,
        packet_type: PacketType::Authentication,
        seq_no: 1,
        flags: 0,
        session_id: 0x343,
        length: 0,
    };
    encode_packet(&h, b"not-the-key", &mut wrong_key, |b| {
        AuthenStart {
            action: Action::LOGIN,
            priv_lvl: 1,
            authen_type: AuthenType::PAP,
            authen_service: AuthenService::LOGIN,
            user: b"alice",
            port: b"tty1",
            rem_addr: b"192.0.2.7",
            data: b"alice-pass-1",
        }
        .encode(b)
    })
    .unwrap();
    assert!(matches!(
        rig.send(&wrong_key).await,
        Err(CloseReason::Body(_))
    ));
    assert!(rig.counted().is_empty());
}

// ---- 4. CHAP, MS-CHAP, enable --------------------------------------------------------

fn chap_data(ident: u8, challenge: &[u8], password: &[u8]) -> Vec<u8> {
    let mut d = vec![ident];
    d.extend_from_slice(challenge);
    d.extend_from_slice(&chap::response(ident, password, challenge));
    d
}

/// id || challenge (8) || LM-Response (24) || NT-Response (24) || flags.
fn mschapv1_data(ident: u8, challenge: &[u8; 8], password: &[u8]) -> Vec<u8> {
    let nt = mschap::challenge_response(challenge, &mschap::nt_password_hash(password));
    let mut d = vec![ident];
    d.extend_from_slice(challenge);
    d.extend_from_slice(&[0; 24]);
    d.extend_from_slice(&nt);
    d.push(1);
    assert_eq!(d.len(), 1 + 8 + 49);
    d
}

/// id || challenge (16) || peer challenge (16) || reserved (8) || NT-Response (24) || flags.
fn mschapv2_data(ident: u8, challenge: &[u8; 16], user: &[u8], password: &[u8]) -> Vec<u8> {
    let peer_challenge = [0x5a; 16];
    let nt = mschap::generate_nt_response(
        challenge,
        &peer_challenge,
        user,
        &mschap::nt_password_hash(password),
    );
    let mut d = vec![ident];
    d.extend_from_slice(challenge);
    d.extend_from_slice(&peer_challenge);
    d.extend_from_slice(&[0; 8]);
    d.extend_from_slice(&nt);
    d.push(0);
    assert_eq!(d.len(), 1 + 16 + 49);
    d
}

#[tokio::test]
async fn chap_passes_the_right_response_and_fails_a_wrong_one() {
    let mut rig = Rig::new();
    let challenge = *b"0123456789abcdef";
    let login =
        |s, user, data: &[u8]| start(s, AuthenType::CHAP, AuthenService::LOGIN, 1, user, data);

    let r = rig
        .reply(&login(
            0x400,
            "alice",
            &chap_data(7, &challenge, b"alice-pass-1"),
        ))
        .await;
    assert_status(&r, AuthenStatus::PASS, "");

    let r = rig
        .reply(&login(
            0x401,
            "alice",
            &chap_data(7, &challenge, b"alice-pass-2"),
        ))
        .await;
    assert_status(&r, AuthenStatus::FAIL, "Authentication failed");

    // The right response under another identifier is wrong.
    let mut other_ident = chap_data(7, &challenge, b"alice-pass-1");
    other_ident[0] = 8;
    let r = rig.reply(&login(0x402, "alice", &other_ident)).await;
    assert_status(&r, AuthenStatus::FAIL, "Authentication failed");

    // bob keeps only a hash: CHAP cannot work for him.
    let r = rig
        .reply(&login(
            0x403,
            "bob",
            &chap_data(7, &challenge, b"bob-pass-2"),
        ))
        .await;
    assert_status(&r, AuthenStatus::FAIL, "Authentication failed");

    // Too short to hold an identifier, a challenge and a response.
    let r = rig.reply(&login(0x404, "alice", &[7; 17])).await;
    assert_status(&r, AuthenStatus::FAIL, "Authentication failed");

    assert_eq!(
        rig.counted(),
        counts(&[
            ("authentication/pass", 1),
            ("authentication/bad_password", 3),
            ("authentication/no_cleartext", 1),
        ])
    );
}

#[tokio::test]
async fn mschapv1_passes_the_right_response_and_fails_a_wrong_one() {
    let mut rig = Rig::new();
    let challenge = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
    let login = |s, data: &[u8]| {
        start(
            s,
            AuthenType::MSCHAP,
            AuthenService::LOGIN,
            1,
            "alice",
            data,
        )
    };

    let r = rig
        .reply(&login(
            0x410,
            &mschapv1_data(3, &challenge, b"alice-pass-1"),
        ))
        .await;
    assert_status(&r, AuthenStatus::PASS, "");

    let r = rig
        .reply(&login(0x411, &mschapv1_data(3, &challenge, b"wrong")))
        .await;
    assert_status(&r, AuthenStatus::FAIL, "Authentication failed");

    // A response for another challenge.
    let mut moved = mschapv1_data(3, &challenge, b"alice-pass-1");
    moved[1] ^= 0xff;
    let r = rig.reply(&login(0x412, &moved)).await;
    assert_status(&r, AuthenStatus::FAIL, "Authentication failed");

    assert_eq!(
        rig.counted(),
        counts(&[
            ("authentication/pass", 1),
            ("authentication/bad_password", 2)
        ])
    );
}

#[tokio::test]
async fn mschapv2_passes_the_right_response_and_fails_a_wrong_one() {
    let mut rig = Rig::new();
    let challenge = *b"authenticator-16";
    let login = |s, data: &[u8]| {
        start(
            s,
            AuthenType::MSCHAPV2,
            AuthenService::LOGIN,
            1,
            "alice",
            data,
        )
    };

    let r = rig
        .reply(&login(
            0x420,
            &mschapv2_data(9, &challenge, b"alice", b"alice-pass-1"),
        ))
        .await;
    assert_status(&r, AuthenStatus::PASS, "");

    let r = rig
        .reply(&login(
            0x421,
            &mschapv2_data(9, &challenge, b"alice", b"alice-pass-2"),
        ))
        .await;
    assert_status(&r, AuthenStatus::FAIL, "Authentication failed");

    // The NT-Response binds the user name.
    let r = rig
        .reply(&login(
            0x422,
            &mschapv2_data(9, &challenge, b"bob", b"alice-pass-1"),
        ))
        .await;
    assert_status(&r, AuthenStatus::FAIL, "Authentication failed");

    assert_eq!(
        rig.counted(),
        counts(&[
            ("authentication/pass", 1),
            ("authentication/bad_password", 2)
        ])
    );
}

#[tokio::test]
async fn enable_passes_only_when_the_role_reaches_the_level() {
    let mut rig = Rig::new();
    let enable = |s, user, priv_lvl, password: &str| {
        start(
            s,
            AuthenType::PAP,
            AuthenService::ENABLE,
            priv_lvl,
            user,
            password.as_bytes(),
        )
    };

    // bob's role is priv 7: a right password does not reach 15.
    let r = rig.reply(&enable(0x430, "bob", 15, "bob-pass-2")).await;
    assert_status(
        &r,
        AuthenStatus::FAIL,
        "Your role does not reach that privilege level",
    );
    // ... but does reach 7.
    let r = rig.reply(&enable(0x431, "bob", 7, "bob-pass-2")).await;
    assert_status(&r, AuthenStatus::PASS, "");

    let r = rig.reply(&enable(0x432, "alice", 15, "alice-pass-1")).await;
    assert_status(&r, AuthenStatus::PASS, "");

    // A wrong password is refused as such, before the level is looked at.
    let r = rig.reply(&enable(0x433, "alice", 15, "bob-pass-2")).await;
    assert_status(&r, AuthenStatus::FAIL, "Authentication failed");

    // Enable through the ASCII conversation is held to the same level.
    let r = rig
        .reply(&start(
            0x434,
            AuthenType::ASCII,
            AuthenService::ENABLE,
            15,
            "bob",
            b"",
        ))
        .await;
    assert_status(
        &r,
        AuthenStatus::GETPASS,
        &rig.config.tacacs.password_prompt,
    );
    let r = rig.reply(&cont(0x434, 3, "bob-pass-2", 0)).await;
    assert_status(
        &r,
        AuthenStatus::FAIL,
        "Your role does not reach that privilege level",
    );

    assert_eq!(
        rig.counted(),
        counts(&[
            ("authentication/pass", 2),
            ("authentication/enable_refused", 2),
            ("authentication/bad_password", 1),
        ])
    );
}

// ---- 5. authorization ---------------------------------------------------------------

#[tokio::test]
async fn shell_start_returns_the_roles_av_pairs_in_profile_order() {
    let mut rig = Rig::new();
    let client = rig.config.clients.lookup(peer().ip()).unwrap();
    assert_eq!(client.profile, crate::profile::Profile::Orchestrator);

    let r = rig
        .reply(&author(0x500, 1, "bob", &["service=shell", "cmd="]))
        .await;
    assert!(!r.more);
    assert_eq!(r.header.seq_no, 2);
    assert_eq!(r.author().status, AuthorStatus::PASS_ADD);
    assert_eq!(
        r.author_args(),
        [
            "priv-lvl=7",
            "role=manager",
            "rbac-roles=Helpdesk",
            "rbac-aag=Asia-Admin"
        ]
    );

    // Without any cmd argument, and for alice's role.
    let r = rig
        .reply(&author(0x501, 1, "alice", &["service=shell"]))
        .await;
    assert_eq!(r.author().status, AuthorStatus::PASS_ADD);
    assert_eq!(
        r.author_args(),
        [
            "priv-lvl=15",
            "role=admin",
            "rbac-roles=OverlayAdmin",
            "rbac-aag=Global"
        ]
    );
    assert_eq!(rig.counted(), counts(&[("authorization/pass_add", 2)]));
}

#[tokio::test]
async fn commands_are_checked_against_the_roles_rules() {
    let mut rig = Rig::new();
    let shell = |s, user, cmd: &str, args: &[&str]| {
        let mut all = vec!["service=shell".to_string(), format!("cmd={cmd}")];
        all.extend(args.iter().map(|a| format!("cmd-arg={a}")));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        author(s, 1, user, &all)
    };

    let r = rig
        .reply(&shell(0x510, "bob", "show", &["running-config", "<cr>"]))
        .await;
    assert_eq!(r.author().status, AuthorStatus::PASS_ADD);
    assert!(r.author().args.is_empty(), "a command gets no AV pairs");

    let r = rig
        .reply(&shell(0x511, "bob", "ping", &["192.0.2.1", "<cr>"]))
        .await;
    assert_eq!(r.author().status, AuthorStatus::PASS_ADD);

    let r = rig.reply(&shell(0x512, "bob", "reload", &["<cr>"])).await;
    let a = r.author();
    assert_eq!(a.status, AuthorStatus::FAIL);
    assert!(a.args.is_empty());
    let msg = String::from_utf8_lossy(a.server_msg);
    assert!(
        msg.contains("`reload`") && msg.contains("helpdesk"),
        "{msg}"
    );

    let r = rig
        .reply(&shell(0x513, "carol", "configure", &["terminal", "<cr>"]))
        .await;
    assert_eq!(r.author().status, AuthorStatus::FAIL);
    assert!(
        String::from_utf8_lossy(r.author().server_msg).contains("`configure terminal`"),
        "{:?}",
        r.author()
    );

    let r = rig
        .reply(&shell(0x514, "carol", "show", &["version", "<cr>"]))
        .await;
    assert_eq!(r.author().status, AuthorStatus::PASS_ADD);

    let r = rig.reply(&shell(0x515, "alice", "reload", &["<cr>"])).await;
    assert_eq!(r.author().status, AuthorStatus::PASS_ADD);
    assert!(r.author().args.is_empty());

    // The optional form `cmd*` names the command as well.
    let r = rig
        .reply(&author(0x516, 1, "bob", &["service=shell", "cmd*reload"]))
        .await;
    assert_eq!(r.author().status, AuthorStatus::FAIL);

    // A command longer than the rules can see whole is denied, even for a
    // role that may run anything: a deny rule could match past the cut.
    let many: Vec<String> = (0..70).map(|i| format!("w{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let r = rig.reply(&shell(0x517, "alice", "show", &many)).await;
    assert_eq!(r.author().status, AuthorStatus::FAIL);
    let msg = String::from_utf8_lossy(r.author().server_msg);
    assert!(msg.contains("longer than 64 words"), "{msg}");
    let r = rig.reply(&shell(0x518, "alice", "show", &many[..63])).await;
    assert_eq!(r.author().status, AuthorStatus::PASS_ADD);

    assert_eq!(
        rig.counted(),
        counts(&[
            ("authorization/command_permit", 5),
            ("authorization/command_deny", 4),
        ])
    );
}

#[tokio::test]
async fn other_services_and_users_without_access_fail() {
    let mut rig = Rig::new();

    let r = rig
        .reply(&author(0x520, 1, "alice", &["service=ppp", "protocol=ip"]))
        .await;
    let a = r.author();
    assert_eq!(a.status, AuthorStatus::FAIL);
    assert!(a.args.is_empty());
    assert!(String::from_utf8_lossy(a.server_msg).contains("`ppp`"));

    // No service argument at all is no shell either.
    let r = rig.reply(&author(0x521, 1, "alice", &["cmd="])).await;
    assert_eq!(r.author().status, AuthorStatus::FAIL);

    let r = rig
        .reply(&author(0x522, 1, "mallory", &["service=shell"]))
        .await;
    assert_eq!(r.author().status, AuthorStatus::FAIL);
    assert!(r.author().args.is_empty());

    let disabled = String::from_utf8_lossy(r.author().server_msg).into_owned();

    let r = rig
        .reply(&author(0x523, 1, "nobody", &["service=shell"]))
        .await;
    assert_eq!(r.author().status, AuthorStatus::FAIL);
    // The terminal cannot tell a disabled account from an unknown name.
    let unknown = String::from_utf8_lossy(r.author().server_msg).into_owned();
    assert_eq!(unknown, disabled);
    assert_eq!(unknown, "Authorization failed");

    assert_eq!(
        rig.counted(),
        counts(&[
            ("authorization/service_not_granted", 2),
            ("authorization/disabled", 1),
            ("authorization/unknown_user", 1),
        ])
    );
}

// ---- 6. accounting ------------------------------------------------------------------

const START_ARGS: &[&str] = &[
    "task_id=4711",
    "service=shell",
    "start_time=1796515200",
    "cmd=show version <cr>",
];

#[tokio::test]
async fn accounting_stores_a_record_once() {
    let mut rig = Rig::new();

    let r = rig
        .reply(&acct(0x600, 1, ACCT_FLAG_START, "alice", START_ARGS))
        .await;
    assert!(!r.more);
    assert_eq!(r.header.seq_no, 2);
    assert_eq!(r.acct().status, AcctStatus::SUCCESS);

    let records = rig.sink.records();
    assert_eq!(records.len(), 1);
    let rec = &records[0];
    assert_eq!(rec.received_at, testkit::now());
    assert_eq!(rec.user, "alice");
    assert_eq!(rec.session_id, "4711");
    assert_eq!(rec.protocol, Protocol::Tacacs);
    assert_eq!(rec.status, Status::Start);
    assert_eq!(rec.client, "loopback");
    assert_eq!(rec.client_addr, peer().ip());
    assert_eq!(rec.src_port, peer().port());
    assert_eq!(rec.attributes["service"], "shell");
    assert_eq!(rec.attributes["port"], "tty1");
    assert_eq!(rec.attributes["rem_addr"], "192.0.2.7");

    // The appliance got no reply and sends the same record again, in a new
    // session on a new connection: answered, not stored twice.
    rig.reconnect();
    let r = rig
        .reply(&acct(0x601, 1, ACCT_FLAG_START, "alice", START_ARGS))
        .await;
    assert_eq!(r.acct().status, AcctStatus::SUCCESS);
    assert_eq!(rig.sink.records().len(), 1);

    // A STOP of the same task is a record of its own.
    let r = rig
        .reply(&acct(
            0x602,
            1,
            ACCT_FLAG_STOP,
            "alice",
            &["task_id=4711", "service=shell"],
        ))
        .await;
    assert_eq!(r.acct().status, AcctStatus::SUCCESS);
    let records = rig.sink.records();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].status, Status::Stop);
    assert_eq!(records[1].session_id, "4711");

    assert_eq!(
        rig.counted(),
        counts(&[
            ("accounting/start", 1),
            ("accounting/duplicate", 1),
            ("accounting/stop", 1),
        ])
    );
}

#[tokio::test]
async fn accounting_with_invalid_flags_is_answered_error() {
    let mut rig = Rig::new();
    for (session, flags) in [
        (0x610, 0),
        (0x611, ACCT_FLAG_START | ACCT_FLAG_STOP),
        (0x612, ACCT_FLAG_STOP | ACCT_FLAG_WATCHDOG),
    ] {
        let r = rig
            .reply(&acct(session, 1, flags, "alice", START_ARGS))
            .await;
        let a = r.acct();
        assert_eq!(a.status, AcctStatus::ERROR, "flags {flags:#x}");
        assert_eq!(a.server_msg, b"invalid accounting flags");
    }
    assert!(rig.sink.records().is_empty());
    assert_eq!(rig.counted(), counts(&[("accounting/bad_flags", 3)]));
}

#[tokio::test]
async fn accounting_without_a_sink_is_answered_error() {
    let mut rig = Rig::with_sink(false);
    let r = rig
        .reply(&acct(0x620, 1, ACCT_FLAG_START, "alice", START_ARGS))
        .await;
    assert_eq!(r.acct().status, AcctStatus::ERROR);
    assert_eq!(r.acct().server_msg, b"accounting unavailable");
    assert!(rig.sink.records().is_empty());
    assert_eq!(rig.counted(), counts(&[("accounting/unavailable", 1)]));
}

#[tokio::test]
async fn accounting_into_a_full_sink_is_answered_error_and_can_be_retried() {
    let mut rig = Rig::new();
    rig.sink.set_full(true);
    let r = rig
        .reply(&acct(0x630, 1, ACCT_FLAG_START, "alice", START_ARGS))
        .await;
    assert_eq!(r.acct().status, AcctStatus::ERROR);
    assert!(rig.sink.records().is_empty());

    // The appliance keeps the record and retries once the store has room:
    // it is stored then, not taken for a duplicate of the refused one.
    rig.sink.set_full(false);
    rig.reconnect();
    let r = rig
        .reply(&acct(0x631, 1, ACCT_FLAG_START, "alice", START_ARGS))
        .await;
    assert_eq!(r.acct().status, AcctStatus::SUCCESS);
    assert_eq!(rig.sink.records().len(), 1);
    assert_eq!(
        rig.counted(),
        counts(&[("accounting/dropped", 1), ("accounting/start", 1)])
    );
}

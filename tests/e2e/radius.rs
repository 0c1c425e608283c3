//! RADIUS end-to-end, with clients nobody here wrote: FreeRADIUS's
//! `radclient` (Debian freeradius-utils) and `pyrad` (driven by
//! `pyrad_client.py`, which also computes MS-CHAPv2 from RFC 2759). Both
//! verify every reply's Response Authenticator and Message-Authenticator.
//!
//! The demo hashes are argon2 (about half a second per verification in a
//! debug build), so each test verifies as few distinct passwords as it can,
//! and independent requests inside a test run concurrently.
//!
//! "No reply" is asserted with a bounded client timeout (`DROP_WAIT`); a
//! dropped packet is counted when it is received, long before that timeout
//! ends, so the drop counters are read right after it.

use std::net::SocketAddr;
use std::process::Command;
use std::thread;

use serde_json::Value;

use crate::harness::{Running, demo_config, metric, repo};

pub(crate) const SECRET: &str = "testing123";
/// Client timeout when an answer is expected (argon2 in a debug build on a
/// busy machine can take a few seconds).
pub(crate) const ANSWER_WAIT: u32 = 15;
/// Client timeout when silence is expected.
const DROP_WAIT: u32 = 1;

/// What radclient received: the reply code ("Access-Accept", ...) or None
/// when nothing valid came back, and the reply's Cisco-AVPair values.
#[derive(Debug)]
pub(crate) struct Radclient {
    pub(crate) code: Option<String>,
    pub(crate) avpairs: Vec<String>,
    pub(crate) attrs: Vec<String>,
    pub(crate) output: String,
}

/// Runs `radclient -x` once: `command` is `auth` or `status`, `input` the
/// request's attribute list. One send, `timeout` seconds.
pub(crate) fn radclient(
    addr: SocketAddr,
    command: &str,
    secret: &str,
    input: &str,
    timeout: u32,
) -> Radclient {
    let mut child = Command::new("radclient")
        .args(["-x", "-r", "1", "-t", &timeout.to_string()])
        .arg(addr.to_string())
        .args([command, secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("radclient (Debian freeradius-utils; scripts/install-test-deps.sh)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{input}").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut code = None;
    let mut attrs = Vec::new();
    let mut in_reply = false;
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("Received ") {
            code = rest.split_whitespace().next().map(str::to_string);
            in_reply = true;
        } else if line.starts_with("Sent ") {
            in_reply = false;
        } else if in_reply && line.starts_with('\t') {
            attrs.push(line.trim().to_string());
        }
    }
    let avpairs = attrs
        .iter()
        .filter_map(|a| a.strip_prefix("Cisco-AVPair = "))
        .map(|v| v.trim_matches('"').to_string())
        .collect();
    Radclient {
        code,
        avpairs,
        attrs,
        output,
    }
}

/// A PAP Access-Request with Message-Authenticator through radclient.
pub(crate) fn radclient_pap(addr: SocketAddr, user: &str, password: &str) -> Radclient {
    radclient(
        addr,
        "auth",
        SECRET,
        &format!(
            "User-Name = \"{user}\", User-Password = \"{password}\", Message-Authenticator = 0x00"
        ),
        ANSWER_WAIT,
    )
}

/// Runs `pyrad_client.py` once and returns its JSON verdict.
pub(crate) fn pyrad(
    addr: SocketAddr,
    secret: &str,
    bind: Option<&str>,
    timeout: u32,
    action: &[&str],
) -> Value {
    let mut cmd = Command::new("python3");
    cmd.arg(repo().join("tests/e2e/pyrad_client.py"))
        .args(["--server", &addr.to_string(), "--secret", secret])
        .args(["--timeout", &timeout.to_string()]);
    if let Some(b) = bind {
        cmd.args(["--bind", b]);
    }
    let out = cmd.args(action).output().expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pyrad_client.py {action:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

pub(crate) fn metrics(s: &Running) -> String {
    let (status, body) = s.http_get("/metrics");
    assert_eq!(status, 200);
    body
}

fn count(m: &str, series: &str) -> f64 {
    metric(m, series).unwrap_or(0.0)
}

pub(crate) const ADMIN: [&str; 3] = [
    "LOGIN:priv-lvl=15",
    "LOGIN:rbac-roles=OverlayAdmin",
    "LOGIN:rbac-aag=Global",
];
pub(crate) const HELPDESK: [&str; 3] = [
    "LOGIN:priv-lvl=7",
    "LOGIN:rbac-roles=Helpdesk",
    "LOGIN:rbac-aag=Asia-Admin",
];
pub(crate) const READ_ONLY: [&str; 3] = [
    "LOGIN:priv-lvl=1",
    "LOGIN:rbac-roles=Monitor",
    "LOGIN:rbac-aag=Global",
];

#[test]
fn pap_grants_follow_the_role_table() {
    let s = Running::start_demo();
    let a = s.addrs.radius_auth.unwrap();
    thread::scope(|t| {
        let alice = t.spawn(|| {
            pyrad(
                a,
                SECRET,
                None,
                ANSWER_WAIT,
                &["pap", "alice", "alice-pass-1"],
            )
        });
        let bob = t.spawn(|| radclient_pap(a, "bob", "bob-pass-2"));
        let carol = t.spawn(|| radclient_pap(a, "carol", "carol-pass-3"));
        let wrong = t.spawn(|| radclient_pap(a, "alice", "alice-pass-2"));
        let mallory = t.spawn(|| radclient_pap(a, "mallory", "mallory-pass-4"));
        let nobody = t.spawn(|| radclient_pap(a, "nobody", "alice-pass-1"));

        // alice: exactly the orchestrator's three values, signed with the
        // Message-Authenticator as the first attribute (BlastRADIUS).
        let alice = alice.join().unwrap();
        assert_eq!(alice["result"], "accept", "{alice}");
        assert_eq!(strs(&alice["cisco_avpair"]), ADMIN, "{alice}");
        assert_eq!(alice["ma_first"], true, "{alice}");
        assert_eq!(alice["ma_count"], 1, "{alice}");

        let bob = bob.join().unwrap();
        assert_eq!(bob.code.as_deref(), Some("Access-Accept"), "{}", bob.output);
        assert_eq!(bob.avpairs, HELPDESK, "{}", bob.output);
        assert!(
            bob.attrs
                .contains(&"Service-Type = NAS-Prompt-User".to_string()),
            "{}",
            bob.output
        );

        // carol is in no group: the default role.
        let carol = carol.join().unwrap();
        assert_eq!(
            carol.code.as_deref(),
            Some("Access-Accept"),
            "{}",
            carol.output
        );
        assert_eq!(carol.avpairs, READ_ONLY, "{}", carol.output);

        for (who, r) in [
            ("wrong password", wrong.join().unwrap()),
            ("mallory (disabled)", mallory.join().unwrap()),
            ("unknown user", nobody.join().unwrap()),
        ] {
            assert_eq!(
                r.code.as_deref(),
                Some("Access-Reject"),
                "{who}: {}",
                r.output
            );
            assert!(r.avpairs.is_empty(), "{who}: {}", r.output);
        }
    });
    let m = metrics(&s);
    let series = |result: &str| {
        format!(
            "portcullis_radius_requests_total{{client=\"loopback\",type=\"access_request\",result=\"{result}\"}}"
        )
    };
    assert_eq!(count(&m, &series("accept")), 3.0, "{m}");
    assert_eq!(count(&m, &series("reject")), 3.0, "{m}");
}

#[test]
fn chap_and_mschapv2_for_the_opted_in_user_only() {
    let s = Running::start_demo();
    let a = s.addrs.radius_auth.unwrap();
    thread::scope(|t| {
        // radclient computes CHAP-Password from the cleartext it is given.
        let chap = |user: &str, password: &str| {
            radclient(
                a,
                "auth",
                SECRET,
                &format!(
                    "User-Name = \"{user}\", CHAP-Password = \"{password}\", Message-Authenticator = 0x00"
                ),
                ANSWER_WAIT,
            )
        };
        let alice_chap = t.spawn(move || chap("alice", "alice-pass-1"));
        let alice_chap_wrong = t.spawn(move || chap("alice", "alice-pass-2"));
        let bob_chap = t.spawn(move || chap("bob", "bob-pass-2"));
        let ms = |user: &'static str, pw: &'static str| {
            move || pyrad(a, SECRET, None, ANSWER_WAIT, &["mschapv2", user, pw])
        };
        let alice_ms = t.spawn(ms("alice", "alice-pass-1"));
        let alice_ms_wrong = t.spawn(ms("alice", "alice-pass-2"));
        let bob_ms = t.spawn(ms("bob", "bob-pass-2"));

        let r = alice_chap.join().unwrap();
        assert_eq!(r.code.as_deref(), Some("Access-Accept"), "{}", r.output);
        assert_eq!(r.avpairs, ADMIN, "{}", r.output);

        // MS-CHAP2-Success carries the authenticator response the client
        // computed independently (proof the server knows the password).
        let r = alice_ms.join().unwrap();
        assert_eq!(r["result"], "accept", "{r}");
        assert_eq!(strs(&r["cisco_avpair"]), ADMIN, "{r}");
        assert_eq!(
            r["mschap2_success"].as_array().map(Vec::len),
            Some(1),
            "{r}"
        );
        assert_eq!(r["mschap2_success_ok"], true, "{r}");
        assert_eq!(r["ma_first"], true, "{r}");

        let r = alice_chap_wrong.join().unwrap();
        assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
        // bob has only a one-way hash: no CHAP or MS-CHAP for him.
        let r = bob_chap.join().unwrap();
        assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
        for r in [alice_ms_wrong.join().unwrap(), bob_ms.join().unwrap()] {
            assert_eq!(r["result"], "reject", "{r}");
            assert_eq!(r["mschap2_success"], serde_json::json!([]), "{r}");
        }
    });
    // None of this needed argon2.
    let m = metrics(&s);
    assert_eq!(
        count(&m, "portcullis_argon2_verifications_total"),
        0.0,
        "{m}"
    );
}

#[test]
fn status_server_is_answered() {
    let s = Running::start_demo();
    let a = s.addrs.radius_auth.unwrap();
    let r = radclient(
        a,
        "status",
        SECRET,
        "Message-Authenticator = 0x00",
        ANSWER_WAIT,
    );
    assert_eq!(r.code.as_deref(), Some("Access-Accept"), "{}", r.output);
    let r = pyrad(a, SECRET, None, ANSWER_WAIT, &["status"]);
    assert_eq!(r["result"], "accept", "{r}");
    assert_eq!(r["ma_first"], true, "{r}");
    let m = metrics(&s);
    assert_eq!(
        count(
            &m,
            "portcullis_radius_requests_total{client=\"loopback\",type=\"status_server\",result=\"accept\"}"
        ),
        2.0,
        "{m}"
    );
    // Both answers were immediate, so both carry the kernel-stamped latency.
    assert_eq!(
        count(&m, "portcullis_radius_kernel_to_reply_seconds_count"),
        2.0,
        "{m}"
    );
    // On the accounting port the answer is an Accounting-Response (RFC 5997
    // §3), and nothing is stored.
    let r = radclient(
        s.addrs.radius_acct.unwrap(),
        "status",
        SECRET,
        "Message-Authenticator = 0x00",
        ANSWER_WAIT,
    );
    assert_eq!(
        r.code.as_deref(),
        Some("Accounting-Response"),
        "{}",
        r.output
    );
    let m = metrics(&s);
    assert_eq!(
        count(
            &m,
            "portcullis_radius_requests_total{client=\"loopback\",type=\"status_server\",result=\"accept\"}"
        ),
        3.0,
        "{m}"
    );
    assert_eq!(
        count(&m, "portcullis_accounting_records_stored_total"),
        0.0,
        "{m}"
    );
}

#[test]
fn access_request_without_message_authenticator_is_dropped() {
    let s = Running::start_demo();
    let a = s.addrs.radius_auth.unwrap();
    let series = "portcullis_radius_drops_total{reason=\"missing_message_authenticator\"}";
    assert_eq!(count(&metrics(&s), series), 0.0);
    thread::scope(|t| {
        let py = t.spawn(|| {
            pyrad(
                a,
                SECRET,
                None,
                DROP_WAIT,
                &["pap-no-ma", "alice", "alice-pass-1"],
            )
        });
        let rc = t.spawn(|| {
            radclient(
                a,
                "auth",
                SECRET,
                "User-Name = \"alice\", User-Password = \"alice-pass-1\"",
                DROP_WAIT,
            )
        });
        let py = py.join().unwrap();
        assert_eq!(py["result"], "timeout", "{py}");
        let rc = rc.join().unwrap();
        assert_eq!(rc.code, None, "{}", rc.output);
    });
    // Both clients have given up, so both packets were received and judged.
    let m = metrics(&s);
    assert_eq!(count(&m, series), 2.0, "{m}");
    assert_eq!(
        count(&m, "portcullis_argon2_verifications_total"),
        0.0,
        "{m}"
    );
}

#[test]
fn retransmission_is_answered_from_the_duplicate_cache() {
    let s = Running::start_demo();
    let a = s.addrs.radius_auth.unwrap();
    // The same datagram (Identifier, Request Authenticator, source port)
    // twice; the second only after the first reply came back.
    let r = pyrad(
        a,
        SECRET,
        None,
        ANSWER_WAIT,
        &["duplicate", "alice", "alice-pass-1"],
    );
    assert_eq!(r["result"], "accept", "{r}");
    let replies = strs(&r["replies"]);
    assert_eq!(replies.len(), 2, "{r}");
    assert_eq!(replies[0], replies[1], "replies differ");
    // Byte-identical replies alone would not prove the cache (signing is
    // deterministic); the counters do: one request processed, one argon2
    // run, no credential-cache lookup hit, one duplicate.
    let m = metrics(&s);
    assert_eq!(count(&m, "portcullis_radius_duplicates_total"), 1.0, "{m}");
    assert_eq!(
        count(&m, "portcullis_argon2_verifications_total"),
        1.0,
        "{m}"
    );
    assert_eq!(
        count(&m, "portcullis_credential_cache_hits_total"),
        0.0,
        "{m}"
    );
    assert_eq!(
        count(
            &m,
            "portcullis_radius_requests_total{client=\"loopback\",type=\"access_request\",result=\"accept\"}"
        ),
        1.0,
        "{m}"
    );
}

#[test]
fn unknown_source_and_wrong_secret_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        demo_config(dir.path()).replace("cidrs = [\"127.0.0.0/8\"]", "cidrs = [\"127.0.0.2/32\"]");
    assert!(text.contains("127.0.0.2/32"));
    let s = Running::start_in(dir, &text);
    let a = s.addrs.radius_auth.unwrap();
    // Control: from the configured address the server answers.
    let r = pyrad(a, SECRET, Some("127.0.0.2"), ANSWER_WAIT, &["status"]);
    assert_eq!(r["result"], "accept", "{r}");
    thread::scope(|t| {
        // From 127.0.0.1, which no client covers.
        let stranger = t.spawn(|| pyrad(a, SECRET, Some("127.0.0.1"), DROP_WAIT, &["status"]));
        let stranger_rc = t.spawn(|| {
            radclient(
                a,
                "status",
                SECRET,
                "Message-Authenticator = 0x00",
                DROP_WAIT,
            )
        });
        // From the right address with the wrong secret.
        let wrong = t.spawn(|| {
            pyrad(
                a,
                "not-the-secret",
                Some("127.0.0.2"),
                DROP_WAIT,
                &["pap", "alice", "alice-pass-1"],
            )
        });
        let r = stranger.join().unwrap();
        assert_eq!(r["result"], "timeout", "{r}");
        let r = stranger_rc.join().unwrap();
        assert_eq!(r.code, None, "{}", r.output);
        let r = wrong.join().unwrap();
        assert_eq!(r["result"], "timeout", "{r}");
    });
    let m = metrics(&s);
    assert_eq!(
        count(
            &m,
            "portcullis_radius_drops_total{reason=\"unknown_client\"}"
        ),
        2.0,
        "{m}"
    );
    assert_eq!(
        count(
            &m,
            "portcullis_radius_drops_total{reason=\"bad_message_authenticator\"}"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        count(&m, "portcullis_argon2_verifications_total"),
        0.0,
        "{m}"
    );
}

#[test]
fn sighup_reload_changes_the_answer() {
    let s = Running::start_demo();
    let a = s.addrs.radius_auth.unwrap();
    let r = radclient_pap(a, "bob", "bob-pass-2");
    assert_eq!(r.avpairs, HELPDESK, "{}", r.output);

    // helpdesk now maps to network-admin.
    let text = demo_config(s.dir.path());
    let changed = text.replace(
        "group = \"helpdesk\"\nrole = \"helpdesk\"",
        "group = \"helpdesk\"\nrole = \"network-admin\"",
    );
    assert_ne!(changed, text);
    std::fs::write(&s.config, &changed).unwrap();
    s.signal(libc::SIGHUP);
    s.wait_log("configuration reloaded");
    let r = radclient_pap(a, "bob", "bob-pass-2");
    assert_eq!(r.code.as_deref(), Some("Access-Accept"), "{}", r.output);
    assert_eq!(r.avpairs, ADMIN, "{}", r.output);

    // An invalid file is refused; bob keeps what the last good one gave.
    let invalid = changed.replace("priv_lvl = 7", "priv_lvl = 70");
    assert_ne!(invalid, changed);
    std::fs::write(&s.config, invalid).unwrap();
    s.signal(libc::SIGHUP);
    s.wait_log("configuration reload refused");
    let r = radclient_pap(a, "bob", "bob-pass-2");
    assert_eq!(r.code.as_deref(), Some("Access-Accept"), "{}", r.output);
    assert_eq!(r.avpairs, ADMIN, "{}", r.output);
}

/// MS-CHAPv1 (radclient computes MS-CHAP-Challenge and MS-CHAP-Response
/// from `MS-CHAP-Password`): alice opted in to a cleartext-equivalent; bob
/// did not.
#[test]
fn mschapv1_is_accepted_for_opted_in_local_users_only() {
    let s = Running::start_demo();
    let a = s.addrs.radius_auth.unwrap();
    let ms = |user: &str, pw: &str| {
        radclient(
            a,
            "auth",
            SECRET,
            &format!(
                "User-Name = \"{user}\", MS-CHAP-Password = \"{pw}\", Message-Authenticator = 0x00"
            ),
            ANSWER_WAIT,
        )
    };
    let r = ms("alice", "alice-pass-1");
    assert_eq!(r.code.as_deref(), Some("Access-Accept"), "{}", r.output);
    assert_eq!(r.avpairs, ADMIN, "{}", r.output);
    for (user, pw) in [("alice", "alice-pass-2"), ("bob", "bob-pass-2")] {
        let r = ms(user, pw);
        assert_eq!(
            r.code.as_deref(),
            Some("Access-Reject"),
            "{user}: {}",
            r.output
        );
    }
    let m = metrics(&s);
    assert_eq!(
        metric(
            &m,
            "portcullis_radius_authentications_total{method=\"mschap\",result=\"accept\"}"
        ),
        Some(1.0),
        "{m}"
    );
}

//! Directory users at the network doors, against a real OpenLDAP `slapd`
//! (tests/e2e/slapd.rs) and clients nobody here wrote: radclient, pyrad and
//! the PyPI tacacs_plus client. The demo's local users stay configured, so
//! every test also shows which source answers when both know a name.

use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{Running, WAIT, demo_config, metric};
use crate::radius::{
    ADMIN, ANSWER_WAIT, HELPDESK, READ_ONLY, SECRET, metrics, pyrad, radclient, radclient_pap,
};
use crate::slapd::{INJECTOR, Slapd, password};
use crate::tacacs::py as tacacs;

const KEY: &str = "tacacs123";

/// The demo configuration with `order` and this slapd as directory `corp`.
fn start(slapd: &Slapd, order: &str, extra: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let text = demo_config(dir.path()).replace(
        "auth_order = \"local-first\"",
        &format!("auth_order = \"{order}\""),
    ) + &slapd.directory_block(extra);
    Running::start_in(dir, &text)
}

fn accepted(r: &crate::radius::Radclient) -> bool {
    r.code.as_deref() == Some("Access-Accept")
}

#[test]
fn directory_users_get_their_groups_roles_over_radius_and_tacacs() {
    let slapd = Slapd::start();
    let s = start(&slapd, "remote-first", "");
    let a = s.addrs.radius_auth.unwrap();
    let t = s.addrs.tacacs.unwrap();
    thread::scope(|sc| {
        let alice = sc.spawn(|| radclient_pap(a, "alice", password("alice")));
        let bob = sc.spawn(|| {
            pyrad(
                a,
                SECRET,
                None,
                ANSWER_WAIT,
                &["pap", "bob", password("bob")],
            )
        });
        let dave = sc.spawn(|| radclient_pap(a, "dave", password("dave")));
        let erin = sc.spawn(|| {
            pyrad(
                a,
                SECRET,
                None,
                ANSWER_WAIT,
                &["pap", "erin", password("erin")],
            )
        });
        let alice = alice.join().unwrap();
        assert!(accepted(&alice), "{}", alice.output);
        assert_eq!(alice.avpairs, ADMIN, "netadmins: {}", alice.output);
        let bob = bob.join().unwrap();
        assert_eq!(bob["result"], "accept", "{bob}");
        assert_eq!(
            crate::harness::strs(&bob["cisco_avpair"]),
            HELPDESK,
            "{bob}"
        );
        // dave is in both groups: the mapping listed first wins.
        let dave = dave.join().unwrap();
        assert!(accepted(&dave), "{}", dave.output);
        assert_eq!(dave.avpairs, ADMIN, "{}", dave.output);
        // erin is in no group: the default role.
        let erin = erin.join().unwrap();
        assert_eq!(erin["result"], "accept", "{erin}");
        assert_eq!(
            crate::harness::strs(&erin["cisco_avpair"]),
            READ_ONLY,
            "{erin}"
        );
    });

    // TACACS+: ASCII and PAP logins, then authorization from the groups.
    let r = tacacs(t, KEY, &["ascii", "dave", password("dave")]);
    assert_eq!(r["valid"], true, "{r}");
    let r = tacacs(t, KEY, &["pap", "bob", password("bob")]);
    assert_eq!(r["valid"], true, "{r}");
    let r = tacacs(t, KEY, &["author", "bob", "service=shell", "cmd="]);
    assert_eq!(r["status"], "PASS", "{r}");
    assert_eq!(
        r["args"],
        serde_json::json!([
            "priv-lvl=7",
            "role=manager",
            "rbac-roles=Helpdesk",
            "rbac-aag=Asia-Admin"
        ]),
        "{r}"
    );
    let r = tacacs(t, KEY, &["ascii", "erin", "wrong"]);
    assert_eq!(r["valid"], false, "{r}");

    // Refusals: wrong password, unknown name, empty password, the filter
    // injection (escaped: it finds only the entry literally named so), a
    // local-only user while the directory answers (remote-first), CHAP.
    thread::scope(|sc| {
        let wrong = sc.spawn(|| radclient_pap(a, "alice", "alice-dir-x"));
        let unknown = sc.spawn(|| radclient_pap(a, "zed", password("alice")));
        let empty = sc.spawn(|| radclient_pap(a, "dave", ""));
        let inject = sc.spawn(|| radclient_pap(a, INJECTOR, password("alice")));
        let star = sc.spawn(|| radclient_pap(a, "*", password("alice")));
        let carol = sc.spawn(|| radclient_pap(a, "carol", "carol-pass-3"));
        let chap = sc.spawn(|| {
            radclient(
                a,
                "auth",
                SECRET,
                "User-Name = \"dave\", CHAP-Password = \"dave-dir-4\", Message-Authenticator = 0x00",
                ANSWER_WAIT,
            )
        });
        let mschap = sc.spawn(|| {
            radclient(
                a,
                "auth",
                SECRET,
                "User-Name = \"dave\", MS-CHAP-Password = \"dave-dir-4\", Message-Authenticator = 0x00",
                ANSWER_WAIT,
            )
        });
        for (what, r) in [
            ("MS-CHAP for a directory user", mschap),
            ("wrong password", wrong),
            ("unknown user", unknown),
            ("empty password", empty),
            ("filter injection", inject),
            ("wildcard", star),
            ("local user, directory up", carol),
            ("CHAP for a directory user", chap),
        ] {
            let r = r.join().unwrap();
            assert_eq!(
                r.code.as_deref(),
                Some("Access-Reject"),
                "{what}: {}",
                r.output
            );
        }
    });
    // The injector's own password finds its own entry, and only that.
    let r = radclient_pap(a, INJECTOR, password(INJECTOR));
    assert!(accepted(&r), "{}", r.output);
    assert_eq!(r.avpairs, READ_ONLY, "{}", r.output);
    s.wait_log("directory users log in with PAP or ASCII only");
    let m = metrics(&s);
    assert!(
        metric(
            &m,
            "portcullis_directory_binds_total{directory=\"corp\",result=\"ok\"}"
        )
        .unwrap_or(0.0)
            >= 5.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "portcullis_directory_binds_total{directory=\"corp\",result=\"bad_password\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{m}"
    );
}

#[test]
fn a_user_moved_between_groups_gets_the_new_role_once_the_group_cache_expires() {
    let slapd = Slapd::start();
    let s = start(&slapd, "remote-only", "group_cache_ttl = 1\n");
    let a = s.addrs.radius_auth.unwrap();
    let r = radclient_pap(a, "bob", password("bob"));
    assert_eq!(r.avpairs, HELPDESK, "{}", r.output);
    slapd.modify(
        "dn: cn=helpdesk,ou=groups,dc=example,dc=org\nchangetype: modify\ndelete: member\nmember: uid=bob,ou=people,dc=example,dc=org\n\n\
         dn: cn=netadmins,ou=groups,dc=example,dc=org\nchangetype: modify\nadd: member\nmember: uid=bob,ou=people,dc=example,dc=org\n",
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let r = radclient_pap(a, "bob", password("bob"));
        assert!(accepted(&r), "{}", r.output);
        if r.avpairs == ADMIN {
            break;
        }
        assert_eq!(r.avpairs, HELPDESK, "{}", r.output);
        assert!(Instant::now() < deadline, "bob never became network-admin");
    }
    // The same over TACACS+ authorization, with no reload.
    let r = tacacs(
        s.addrs.tacacs.unwrap(),
        KEY,
        &["author", "bob", "service=shell", "cmd="],
    );
    assert_eq!(r["status"], "PASS", "{r}");
    assert!(
        r["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "priv-lvl=15"),
        "{r}"
    );
    let (_, body) = s.http_get("/metrics");
    assert_eq!(metric(&body, "portcullis_config_generation"), Some(1.0));
}

#[test]
fn with_the_directory_down_remote_first_falls_back_to_local_users_in_time() {
    let mut slapd = Slapd::start();
    let s = start(&slapd, "remote-first", "timeout = 1\n");
    let a = s.addrs.radius_auth.unwrap();
    // dave logs in while the directory is up: his password is cached.
    let r = radclient_pap(a, "dave", password("dave"));
    assert_eq!(r.avpairs, ADMIN, "{}", r.output);
    slapd.stop();
    // The local break-glass account answers now, well within the
    // configured timeout plus one argon2 (a debug build, a busy machine).
    let started = Instant::now();
    let r = radclient_pap(a, "carol", "carol-pass-3");
    assert!(accepted(&r), "{}", r.output);
    assert_eq!(r.avpairs, READ_ONLY, "{}", r.output);
    assert!(
        started.elapsed() < Duration::from_secs(1 + 5),
        "{:?}",
        started.elapsed()
    );
    s.wait_log("no directory answered; local users answer instead");
    // A cached directory login keeps its last known groups while it is down.
    let r = radclient_pap(a, "dave", password("dave"));
    assert_eq!(r.avpairs, ADMIN, "{}", r.output);
    // alice exists in both: the local password works now, as the local user.
    let r = radclient_pap(a, "alice", "alice-pass-1");
    assert!(accepted(&r), "{}", r.output);
    // A directory user whose password was never verified cannot log in.
    let r = radclient_pap(a, "erin", password("erin"));
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    let m = metrics(&s);
    let down = ["connect", "down"]
        .iter()
        .map(|r| {
            metric(
                &m,
                &format!(
                    "portcullis_directory_failures_total{{directory=\"corp\",reason=\"{r}\"}}"
                ),
            )
            .unwrap_or(0.0)
        })
        .sum::<f64>();
    assert!(down >= 1.0, "{m}");
}

#[test]
fn ldaps_and_starttls_trust_only_the_configured_ca() {
    let slapd = Slapd::start();
    let dir = tempfile::tempdir().unwrap();
    // local-first (the demo's): "bad" trusts another CA and is asked first
    // for names that are not local; "good" is ldaps with the right CA.
    let text = demo_config(dir.path())
        + &format!(
            r#"
[[directory]]
name = "bad"
urls = ["ldap://127.0.0.1:{ldap}", "ldaps://127.0.0.1:{ldaps}"]
ca_file = "{other}"
bind_dn = "{dn}"
bind_password = "{pw}"
user_base = "ou=people,dc=example,dc=org"
timeout = 2

[[directory]]
name = "good"
urls = ["ldaps://localhost:{ldaps}"]
ca_file = "{ca}"
bind_dn = "{dn}"
bind_password = "{pw}"
user_base = "ou=people,dc=example,dc=org"
timeout = 2
"#,
            ldap = slapd.ldap.port(),
            ldaps = slapd.ldaps.port(),
            other = slapd.other_ca.display(),
            ca = slapd.ca.display(),
            dn = crate::slapd::SERVICE_DN,
            pw = crate::slapd::SERVICE_PW,
        );
    let s = Running::start_in(dir, &text);
    let a = s.addrs.radius_auth.unwrap();
    let r = radclient_pap(a, "dave", password("dave"));
    assert!(accepted(&r), "{}", r.output);
    assert_eq!(r.avpairs, ADMIN, "{}", r.output);
    let line = s.wait_log("directory server could not be used");
    assert!(line.contains("tls"), "{line}");
    let m = metrics(&s);
    assert!(
        metric(
            &m,
            "portcullis_directory_failures_total{directory=\"bad\",reason=\"tls\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{m}"
    );
    // local-first: alice is a local user, so her directory password is
    // not hers here; her local one is.
    let r = radclient_pap(a, "alice", password("alice"));
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    let r = radclient_pap(a, "alice", "alice-pass-1");
    assert!(accepted(&r), "{}", r.output);
}

/// `portcullis explain` on `config`, with `password` on stdin when given.
fn explain(config: &std::path::Path, user: &str, password: Option<&str>) -> (i32, String) {
    use std::io::Write;
    let mut cmd = std::process::Command::new(crate::harness::BIN);
    cmd.arg("explain")
        .arg("--config")
        .arg(config)
        .args(["--user", user]);
    if password.is_some() {
        cmd.arg("--password");
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(p) = password {
        writeln!(stdin, "{p}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn explain_shows_the_source_the_directory_groups_and_the_rule() {
    let slapd = Slapd::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("portcullis.toml");
    let text = demo_config(dir.path()).replace(
        "auth_order = \"local-first\"",
        "auth_order = \"remote-first\"",
    ) + &slapd.directory_block("");
    std::fs::write(&config, text).unwrap();
    // Without a password: the service account finds bob and his groups.
    let (code, out) = explain(&config, "bob", None);
    assert_eq!(code, 0, "{out}");
    for want in [
        "auth order:  remote-first (directories: corp)",
        "account:     directory corp, entry uid=bob,ou=people,dc=example,dc=org",
        "dir groups:  cn=helpdesk,ou=groups,dc=example,dc=org",
        "groups:      helpdesk, all-users",
        "decision:    GRANTED role `helpdesk`",
        "rule:        mapping #2 (group `helpdesk` -> role `helpdesk`)",
        "appliance:   priv-lvl 7 -> read-write at this console (read-write from 7, read-only from 0",
    ] {
        assert!(out.contains(want), "{want}\n{out}");
    }
    // With a password: a real bind; dave's two groups, the first mapping.
    let (code, out) = explain(&config, "dave", Some(password("dave")));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("rule:        mapping #1 (group `netadmins`"),
        "{out}"
    );
    let (code, out) = explain(&config, "dave", Some("wrong"));
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("REFUSED: wrong password"), "{out}");
    let (code, out) = explain(&config, "erin", None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("dir groups:  (none)"), "{out}");
    assert!(out.contains("rule:        default role"), "{out}");
    // local-first: alice is the local user, whatever the directory says.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "auth_order = \"remote-first\"",
        "auth_order = \"local-first\"",
    );
    std::fs::write(&config, text).unwrap();
    let (code, out) = explain(&config, "alice", None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("a local user of this name wins"), "{out}");
    assert!(out.contains("account:     local, enabled"), "{out}");
}

#[test]
fn a_silent_directory_and_a_referral_are_refused_without_slowing_other_logins() {
    let slapd = Slapd::start();
    // A "server" that accepts connections and never says a word; its
    // thread lives as long as the test process.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming() {
            held.push(c);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let text = demo_config(dir.path())
        + &format!(
            r#"
[[directory]]
name = "silent"
urls = ["ldap://{silent_addr}"]
starttls = false
allow_plaintext = true
bind_template = "uid={{user}},ou=people,dc=example,dc=org"
user_base = "ou=people,dc=example,dc=org"
timeout = 1

[[directory]]
name = "elsewhere"
urls = ["ldap://{ldap}"]
ca_file = "{ca}"
bind_dn = "{dn}"
bind_password = "{pw}"
user_base = "ou=people,dc=elsewhere,dc=example"
"#,
            ldap = slapd.ldap,
            ca = slapd.ca.display(),
            dn = crate::slapd::SERVICE_DN,
            pw = crate::slapd::SERVICE_PW,
        );
    let s = Running::start_in(dir, &text);
    let a = s.addrs.radius_auth.unwrap();
    let (slow, fast) = thread::scope(|sc| {
        let slow = sc.spawn(|| {
            let t = Instant::now();
            (radclient_pap(a, "dave", password("dave")), t.elapsed())
        });
        let fast = sc.spawn(|| {
            let t = Instant::now();
            (radclient_pap(a, "bob", "bob-pass-2"), t.elapsed())
        });
        (slow.join().unwrap(), fast.join().unwrap())
    });
    assert_eq!(
        slow.0.code.as_deref(),
        Some("Access-Reject"),
        "{}",
        slow.0.output
    );
    assert!(slow.1 < Duration::from_secs(1 + 5), "{:?}", slow.1);
    assert!(accepted(&fast.0), "{}", fast.0.output);
    let m = metrics(&s);
    for series in [
        "portcullis_directory_failures_total{directory=\"silent\",reason=\"timeout\"}",
        "portcullis_directory_failures_total{directory=\"elsewhere\",reason=\"referral\"}",
    ] {
        assert!(metric(&m, series).unwrap_or(0.0) >= 1.0, "{series}\n{m}");
    }
    s.wait_log("referral, which is not followed");
}

#[test]
fn a_bind_template_and_a_group_search_work_without_a_service_account() {
    let slapd = Slapd::start();
    let dir = tempfile::tempdir().unwrap();
    let text = demo_config(dir.path()).replace(
        "auth_order = \"local-first\"",
        "auth_order = \"remote-only\"",
    ) + &format!(
        r#"
[[directory]]
name = "direct"
urls = ["ldaps://127.0.0.1:{ldaps}"]
ca_file = "{ca}"
bind_template = "uid={{user}},ou=people,dc=example,dc=org"
user_base = "ou=people,dc=example,dc=org"
group_lookup = "member"
group_base = "ou=groups,dc=example,dc=org"
"#,
        ldaps = slapd.ldaps.port(),
        ca = slapd.ca.display(),
    );
    let s = Running::start_in(dir, &text);
    let a = s.addrs.radius_auth.unwrap();
    let r = radclient_pap(a, "dave", password("dave"));
    assert_eq!(r.avpairs, ADMIN, "{}", r.output);
    let r = radclient_pap(a, "bob", password("bob"));
    assert_eq!(r.avpairs, HELPDESK, "{}", r.output);
    let r = radclient_pap(a, "erin", password("erin"));
    assert_eq!(r.avpairs, READ_ONLY, "{}", r.output);
    // remote-only: the local alice is not asked; a DN-breaking name is
    // escaped into a DN that does not exist.
    for (user, pw) in [
        ("alice", "alice-pass-1"),
        ("dave", "wrong"),
        ("dave,ou=people", password("dave")),
    ] {
        let r = radclient_pap(a, user, pw);
        assert_eq!(
            r.code.as_deref(),
            Some("Access-Reject"),
            "{user}: {}",
            r.output
        );
    }
}

/// A TCP relay to `to` that holds each chunk the server sends for `delay`:
/// a slow directory, so that logins sent together overlap for certain.
fn slow_relay(to: std::net::SocketAddr, delay: Duration) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            thread::sleep(delay);
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    }
    thread::spawn(move || {
        for c in l.incoming().flatten() {
            let Ok(s) = TcpStream::connect(to) else { break };
            let (c2, s2) = (c.try_clone().unwrap(), s.try_clone().unwrap());
            thread::spawn(move || pump(c2, s, Duration::ZERO));
            thread::spawn(move || pump(s2, c, delay));
        }
    });
    addr
}

#[test]
fn identical_logins_arriving_together_cost_the_directory_one_bind() {
    let slapd = Slapd::start();
    let relay = slow_relay(slapd.ldap, Duration::from_millis(150));
    let dir = tempfile::tempdir().unwrap();
    let text = demo_config(dir.path()).replace(
        "auth_order = \"local-first\"",
        "auth_order = \"remote-first\"",
    ) + &slapd
        .directory_block("timeout = 10")
        .replace(&slapd.ldap.to_string(), &relay.to_string());
    let s = Running::start_in(dir, &text);
    let a = s.addrs.radius_auth.unwrap();
    const N: usize = 6;
    let answers: Vec<serde_json::Value> = thread::scope(|sc| {
        let all: Vec<_> = (0..N)
            .map(|_| {
                sc.spawn(|| {
                    pyrad(
                        a,
                        SECRET,
                        None,
                        ANSWER_WAIT,
                        &["pap", "erin", password("erin")],
                    )
                })
            })
            .collect();
        all.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &answers {
        assert_eq!(r["result"], "accept", "{r}");
    }
    let m = metrics(&s);
    let binds = metric(
        &m,
        "portcullis_directory_binds_total{directory=\"corp\",result=\"ok\"}",
    )
    .unwrap_or(0.0);
    let shared = metric(
        &m,
        "portcullis_directory_checks_shared_total{directory=\"corp\"}",
    )
    .unwrap_or(0.0);
    // Each check against the slowed directory takes several round trips of
    // 150 ms, so the six overlap; at most one straggler may land between a
    // check ending and its credential being cached.
    assert!(
        binds <= 2.0 && shared >= (N - 2) as f64,
        "binds {binds}, shared {shared}\n{m}"
    );
}

//! The operator commands: explain and hash-password.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::harness::{BIN, run};

fn explain(user: &str, extra: &[&str]) -> (i32, String) {
    let mut args = vec![
        "explain",
        "--config",
        "examples/portcullis.toml",
        "--user",
        user,
    ];
    args.extend_from_slice(extra);
    let (code, out, _) = run(&args);
    (code, out)
}

#[test]
fn explain_alice_shows_network_admin_and_the_rule() {
    let (code, out) = explain("alice", &[]);
    assert_eq!(code, 0, "{out}");
    for want in [
        "GRANTED role `network-admin`",
        "mapping #1 (group `netadmins` -> role `network-admin`)",
        "priv-lvl:    15",
        "rbac-roles:  OverlayAdmin",
        "rbac-aag:    Global",
        "Cisco-AVPair = \"LOGIN:priv-lvl=15\"",
        "Cisco-AVPair = \"LOGIN:rbac-roles=OverlayAdmin\"",
        "Cisco-AVPair = \"LOGIN:rbac-aag=Global\"",
        "role=admin",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

#[test]
fn explain_carol_shows_the_default_role() {
    let (code, out) = explain("carol", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("GRANTED role `read-only`"), "{out}");
    assert!(out.contains("default role (no mapping matches"), "{out}");
    assert!(out.contains("priv-lvl:    1"), "{out}");
}

#[test]
fn explain_refuses_mallory_and_unknown_users() {
    let (code, out) = explain("mallory", &[]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("REFUSED: account disabled"), "{out}");
    let (code, out) = explain("nobody", &[]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("REFUSED: unknown user"), "{out}");
}

#[test]
fn explain_judges_commands_and_unknown_clients() {
    let (_, out) = explain("bob", &["--command", "reload"]);
    assert!(
        out.contains("command `reload`: deny by the role's default"),
        "{out}"
    );
    let (_, out) = explain("bob", &["--command", "show version"]);
    assert!(
        out.contains("command `show version`: permit by rule #1 `show *`"),
        "{out}"
    );
    let (code, out) = explain("alice", &["--client", "192.0.2.1"]);
    assert_eq!(code, 3);
    assert!(out.contains("not a configured client"), "{out}");
}

#[test]
fn hash_password_output_verifies() {
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"s3cret pass\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let phc = String::from_utf8(out.stdout).unwrap();
    let phc = phc.trim();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    assert!(portcullis::authn::verify_blocking(phc, b"s3cret pass").unwrap());
    assert!(!portcullis::authn::verify_blocking(phc, b"s3cret pass\n").unwrap());
}

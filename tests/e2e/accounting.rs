//! Accounting end to end: records from independent clients (radclient,
//! pyrad, the PyPI tacacs_plus client) stored, listed and turned into
//! sessions by the CLI, and nothing acknowledged lost across a SIGKILL.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use crate::harness::*;

/// One radclient accounting request; returns whether it was answered.
fn radclient_acct(addr: SocketAddr, attrs: &str) -> bool {
    let mut child = Command::new("radclient")
        .args([
            "-r",
            "1",
            "-t",
            "5",
            &addr.to_string(),
            "acct",
            "testing123",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("radclient (freeradius-utils) installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(attrs.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains("Received Accounting-Response")
}

fn list(config: &std::path::Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let config = config.to_str().unwrap();
    let mut args = vec![
        "accounting",
        "list",
        "--config",
        config,
        "--format",
        "jsonl",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn sessions(config: &std::path::Path) -> Vec<serde_json::Value> {
    let (code, out, err) = run(&[
        "accounting",
        "sessions",
        "--config",
        config.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn radclient_start_and_stop_are_listed_and_make_a_session() {
    let s = Running::start_demo();
    let acct = s.addrs.radius_acct.unwrap();
    let start = "User-Name = alice\nAcct-Status-Type = Start\nAcct-Session-Id = \"sess-1\"\n\
                 NAS-IP-Address = 192.0.2.9\nFramed-IP-Address = 198.51.100.7\n\
                 Cisco-AVPair = \"connect-progress=up\"\nCisco-AVPair = \"vrf=blue\"\n";
    assert!(radclient_acct(acct, start));

    let rows = list(&s.config, &[]);
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r["protocol"], "radius");
    assert_eq!(r["client"], "loopback");
    assert_eq!(r["user"], "alice");
    assert_eq!(r["session_id"], "sess-1");
    assert_eq!(r["status"], "Start");
    // Named and typed by the dictionary; a repeated attribute is an array.
    assert_eq!(r["attributes"]["Framed-IP-Address"], "198.51.100.7");
    assert_eq!(r["attributes"]["Acct-Status-Type"], "Start");
    assert_eq!(
        r["attributes"]["Cisco-AVPair"],
        serde_json::json!(["connect-progress=up", "vrf=blue"])
    );
    let open = sessions(&s.config);
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["session_id"], "sess-1");
    assert_eq!(open[0]["user"], "alice");

    let stop = start.replace("Start", "Stop") + "Acct-Session-Time = 42\n";
    assert!(radclient_acct(acct, &stop));
    assert!(sessions(&s.config).is_empty());
    let rows = list(&s.config, &["--user", "alice"]);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["status"], "Stop");
    assert!(list(&s.config, &["--user", "bob"]).is_empty());
    // The table and CSV formats read the same store.
    let (code, table, _) = run(&["accounting", "list", "--config", s.config.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        table.contains("sess-1") && table.contains("Stop"),
        "{table}"
    );
    let (_, metrics) = s.http_get("/metrics");
    assert_eq!(
        metric(&metrics, "portcullis_accounting_records_stored_total"),
        Some(2.0)
    );
}

#[test]
fn accounting_request_with_a_wrong_secret_is_dropped_and_not_stored() {
    let s = Running::start_demo();
    let acct = s.addrs.radius_acct.unwrap().to_string();
    let mut child = Command::new("radclient")
        .args(["-r", "1", "-t", "1", &acct, "acct", "not-the-secret"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"User-Name = alice\nAcct-Status-Type = Start\nAcct-Session-Id = x\n")
        .unwrap();
    assert!(!child.wait().unwrap().success(), "no answer expected");
    assert!(list(&s.config, &[]).is_empty());
    let (_, metrics) = s.http_get("/metrics");
    assert_eq!(
        metric(
            &metrics,
            "portcullis_radius_drops_total{reason=\"bad_request_authenticator\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[test]
fn tacacs_accounting_is_stored_with_its_av_pairs() {
    let s = Running::start_demo();
    let t = s.addrs.tacacs.unwrap();
    let out = Command::new("python3")
        .arg(repo().join("tests/e2e/tacacs_client.py"))
        .args([
            &t.ip().to_string(),
            &t.port().to_string(),
            "tacacs123",
            "acct",
            "start",
            "bob",
        ])
        .output()
        .unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["valid"], true, "{reply}");
    let rows = list(&s.config, &["--user", "bob"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["protocol"], "tacacs");
    assert_eq!(rows[0]["status"], "Start");
    assert_eq!(rows[0]["session_id"], "42");
    assert_eq!(rows[0]["attributes"]["service"], "shell");
    assert_eq!(sessions(&s.config).len(), 1);
}

/// The issue's proof: thousands of records from independent clients, the
/// server SIGKILLed mid-stream and restarted where the clients expect it;
/// every acknowledged record is stored exactly once, retransmissions (plain,
/// with Acct-Delay-Time bumped, and after an acknowledgement) included.
#[test]
fn sigkill_mid_stream_loses_no_acknowledged_record() {
    const RADIUS: usize = 2000;
    const TACACS: usize = 600;
    let dir = tempfile::tempdir().unwrap();
    let text = demo_config_at(dir.path(), &restartable_addrs());
    let first = Running::start_in(dir, &text);
    let at = first.addrs.clone();
    let mut stream = Command::new("python3")
        .arg(repo().join("tests/e2e/acct_stream.py"))
        .args(["--radius", &at.radius_acct.unwrap().to_string()])
        .args(["--tacacs", &at.tacacs.unwrap().to_string()])
        .args(["--secret", "testing123", "--key", "tacacs123"])
        .args(["--radius-count", &RADIUS.to_string()])
        .args(["--tacacs-count", &TACACS.to_string()])
        .args(["--deadline", "240"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(stream.stdout.take().unwrap()).lines();
    let mut acked: HashSet<(String, String)> = HashSet::new();
    let mut reacks = 0;
    let take = |line: String, acked: &mut HashSet<_>, reacks: &mut usize| {
        let mut w = line.split(' ');
        match (w.next(), w.next(), w.next()) {
            (Some("ACK"), Some(p), Some(id)) => {
                assert!(
                    acked.insert((p.to_string(), id.to_string())),
                    "acked twice: {line}"
                );
            }
            (Some("REACK"), ..) => *reacks += 1,
            _ => {}
        }
    };
    // Mid-stream: a fifth of the records acknowledged, the rest in flight.
    while acked.len() < (RADIUS + TACACS) / 5 {
        let line = lines.next().expect("stream ended early").unwrap();
        take(line, &mut acked, &mut reacks);
    }
    let dir = first.sigkill();
    let acked_before_kill = acked.len();
    let text = demo_config_at(dir.path(), &at);
    let second = Running::start_in(dir, &text);
    for line in lines {
        take(line.unwrap(), &mut acked, &mut reacks);
    }
    assert!(
        stream.wait().unwrap().success(),
        "not every record acknowledged"
    );
    assert_eq!(acked.len(), RADIUS + TACACS);
    assert!(
        acked_before_kill < RADIUS + TACACS,
        "the kill was not mid-stream"
    );
    assert!(reacks > 0);

    let mut stored: HashMap<(String, String), usize> = HashMap::new();
    for r in list(&second.config, &[]) {
        let key = (
            r["protocol"].as_str().unwrap().to_string(),
            r["session_id"].as_str().unwrap().to_string(),
        );
        *stored.entry(key).or_default() += 1;
    }
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    for (p, id) in &acked {
        assert_eq!(
            stored.get(&(p.clone(), id.clone())),
            Some(&1),
            "acknowledged {p} {id} not stored"
        );
    }
    assert_eq!(stored.len(), RADIUS + TACACS);
    // The second server recognised retransmissions of what the first stored.
    let (_, metrics) = second.http_get("/metrics");
    assert!(metric(&metrics, "portcullis_accounting_duplicates_total").unwrap_or(0.0) > 0.0);
}

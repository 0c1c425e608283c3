//! Faults and shared throttling on a real PostgreSQL (Debian `postgresql`,
//! as in `store_pg`): a node started while the database is down serves
//! RADIUS and TACACS+ at once and withholds accounting until the store answers, then
//! heals without a restart; wrong passwords spread over two nodes lock the
//! name out on both, a clear on one clears both, and a failure during an
//! outage is shared once the store is back.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{self, Running, WAIT, demo_config, metric};
use crate::radius::radclient_pap;
use crate::store_pg::{PASSWORD, Postgres, healthz, wait_health};

/// A node of the demo on the shared store, with `extra` put at the start
/// of `[server]`.
fn node_with(pg: &Postgres, name: &str, extra: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut text = demo_config(dir.path()).replacen("[server]\n", &format!("[server]\n{extra}"), 1);
    text.push_str(&pg.store_section(dir.path(), name, PASSWORD));
    Running::start_in(dir, &text)
}

/// radclient (Debian freeradius-utils) sending one Accounting-Request and
/// retransmitting the same packet every second until answered (or `tries`
/// sends); its output lines with when they were seen.
fn radclient_acct_retrying(
    addr: SocketAddr,
    attrs: &str,
    tries: u32,
) -> (std::process::Child, mpsc::Receiver<(Instant, String)>) {
    // Line-buffered, so each send is seen when it happens.
    let mut child = Command::new("stdbuf")
        .args([
            "-oL",
            "radclient",
            "-x",
            "-r",
            &tries.to_string(),
            "-t",
            "1",
        ])
        .arg(addr.to_string())
        .args(["acct", "testing123"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("radclient (Debian freeradius-utils)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(attrs.as_bytes())
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn answered(lines: &[String]) -> bool {
    lines
        .iter()
        .any(|l| l.starts_with("Received Accounting-Response"))
}

#[test]
fn a_node_started_during_an_outage_serves_radius_and_tacacs_at_once_and_heals_without_a_restart() {
    let pg = Postgres::start();
    pg.stop_server();
    let started = Instant::now();
    let a = node_with(&pg, "a", "");
    let http = a.addrs.http.unwrap();
    // Authentication of a local user needs no store: RADIUS and TACACS+
    // (the PyPI tacacs_plus client).
    let r = radclient_pap(a.addrs.radius_auth.unwrap(), "alice", "alice-pass-1");
    assert_eq!(r.code.as_deref(), Some("Access-Accept"), "{}", r.output);
    let t = crate::tacacs::py(
        a.addrs.tacacs.unwrap(),
        "tacacs123",
        &["ascii", "bob", "bob-pass-2"],
    );
    assert_eq!(t["valid"], true, "{t}");
    assert!(
        started.elapsed() < WAIT,
        "start and first login took {:?}",
        started.elapsed()
    );
    let h = wait_health(http, "degraded");
    assert_eq!(
        h["reason"], "shared store unreachable: cannot connect to the database",
        "{h}"
    );
    // The web side has no shared cookie key yet: it says so.
    let (code, page) = a.http_get("/login");
    assert_eq!(code, 503, "{page}");
    assert!(page.contains("session store does not answer"), "{page}");

    // Accounting is not acknowledged while the schema is unchecked.
    let session = "outage-at-start-1";
    let (mut client, rx) = radclient_acct_retrying(
        a.addrs.radius_acct.unwrap(),
        &format!(
            "User-Name = \"alice\", Acct-Status-Type = Start, Acct-Session-Id = \"{session}\", NAS-IP-Address = 127.0.0.1\n"
        ),
        60,
    );
    let mut lines = Vec::new();
    // Three sends unanswered (the first, then two retransmissions).
    while lines
        .iter()
        .filter(|l: &&String| l.starts_with("Sent "))
        .count()
        < 3
    {
        let (_, l) = rx.recv_timeout(WAIT).expect("radclient sends");
        lines.push(l);
    }
    assert!(!answered(&lines), "acknowledged without a store: {lines:?}");
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, m) = a.http_get("/metrics");
        if metric(&m, "portcullis_accounting_commit_failures_total").unwrap_or(0.0) >= 1.0 {
            assert_eq!(metric(&m, "portcullis_store_up"), Some(0.0), "{m}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "unacknowledged records not counted: {m}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    a.wait_log("accounting batch not stored");

    // The database comes back: the node opens its store by itself.
    pg.start_server();
    let back = Instant::now();
    wait_health(http, "ok");
    for (at, l) in rx.iter() {
        lines.push(l);
        if answered(&lines) {
            assert!(at >= back, "answered before the database was back");
            break;
        }
    }
    assert!(answered(&lines), "never acknowledged: {lines:?}");
    let _ = client.wait();
    let stored = pg.psql(
        "portcullis",
        &format!("SELECT count(*) FROM acct_records WHERE session_id = '{session}'"),
    );
    assert_eq!(stored, "1", "stored {stored} times");
    a.wait_log("shared store open");
    // Web logins work on the same process, no restart.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let path = rt.block_on(async {
        let r = harness::post_login(&harness::browser(), http, "/login", "bob", "bob-pass-2").await;
        r.url().path().to_string()
    });
    assert_eq!(path, "/");
    let (_, m) = a.http_get("/metrics");
    assert_eq!(metric(&m, "portcullis_store_up"), Some(1.0), "{m}");
    assert!(metric(&m, "portcullis_store_outages_total").unwrap_or(0.0) >= 1.0);
}

#[test]
fn a_node_refused_by_its_store_at_start_still_exits_with_the_reason() {
    // A schema newer than the binary is not an outage: no degraded start.
    let pg = Postgres::start();
    pg.psql(
        "portcullis",
        "CREATE TABLE portcullis_schema (version integer PRIMARY KEY, name text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now());
         INSERT INTO portcullis_schema (version, name) VALUES (999, 'from the future')",
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("portcullis.toml");
    let text = demo_config(dir.path()) + &pg.store_section(dir.path(), "a", PASSWORD);
    std::fs::write(&cfg, text).unwrap();
    let served = Command::new(harness::BIN)
        .args(["serve", "--print-addresses", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!served.status.success());
    assert!(served.stdout.is_empty(), "announced readiness");
    let err = String::from_utf8_lossy(&served.stderr);
    assert!(err.contains("newer than this build"), "{err}");
}

/// What `/api/lockouts` on `http` lists, through an admin's browser.
async fn lockouts(admin: &reqwest::Client, http: SocketAddr) -> Vec<Value> {
    admin
        .get(format!("http://{http}/api/lockouts"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Polls until `carol` is (or is not) listed as locked out on `http`.
async fn wait_lockout(admin: &reqwest::Client, http: SocketAddr, locked: bool) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let l = lockouts(admin, http).await;
        if l.iter().any(|x| x["user"] == "carol") == locked {
            return l;
        }
        assert!(
            Instant::now() < deadline,
            "carol locked={} never seen on {http}: {l:?}",
            locked
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn pap(addr: SocketAddr, user: &'static str, password: &'static str) -> Option<String> {
    tokio::task::spawn_blocking(move || radclient_pap(addr, user, password).code)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_spread_over_two_nodes_lock_out_on_both_and_a_clear_on_one_clears_both() {
    let pg = Postgres::start();
    // Four failures allowed in all; long lockouts, so the poll sees them.
    let extra = "login_failures = 4\nlockout = 120\nlockout_max = 600\n";
    let a = node_with(&pg, "a", extra);
    let b = node_with(&pg, "b", extra);
    let (ra, rb) = (a.addrs.radius_auth.unwrap(), b.addrs.radius_auth.unwrap());
    let (ha, hb) = (a.addrs.http.unwrap(), b.addrs.http.unwrap());
    assert_eq!(healthz(ha)["status"], "ok");
    // Two wrong passwords on each node, alternating: neither node alone
    // reaches four.
    for (addr, guess) in [
        (ra, "guess-1"),
        (rb, "guess-2"),
        (ra, "guess-3"),
        (rb, "guess-4"),
    ] {
        assert_eq!(
            pap(addr, "carol", guess).await.as_deref(),
            Some("Access-Reject")
        );
    }
    // An administrator (alice, a session any node accepts) sees it on both.
    let admin = harness::browser();
    let r = harness::post_login(&admin, ha, "/login", "alice", "alice-pass-1").await;
    assert_eq!(r.url().path(), "/");
    for http in [ha, hb] {
        let l = wait_lockout(&admin, http, true).await;
        let carol = l.iter().find(|x| x["user"] == "carol").unwrap();
        assert_eq!(carol["failures"], 4, "{l:?}");
    }
    // Locked on both: the right password is refused too.
    for addr in [ra, rb] {
        assert_eq!(
            pap(addr, "carol", "carol-pass-3").await.as_deref(),
            Some("Access-Reject")
        );
    }
    let (_, m) = b.http_get("/metrics");
    assert!(
        metric(&m, "portcullis_login_throttled_total").unwrap_or(0.0) >= 1.0,
        "{m}"
    );
    assert!(
        metric(&m, "portcullis_throttle_sync_received_total").unwrap_or(0.0) >= 1.0,
        "{m}"
    );
    assert!(!m.contains("carol"), "a user name in the metrics: {m}");

    // Cleared on A, cleared on B.
    let cleared: Value = admin
        .post(format!("http://{ha}/api/lockouts/clear?user=carol"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["cleared"], true);
    wait_lockout(&admin, hb, false).await;
    assert_eq!(
        pap(rb, "carol", "carol-pass-3").await.as_deref(),
        Some("Access-Accept")
    );
    let carol_row = || {
        pg.psql(
            "portcullis",
            "SELECT failures FROM login_failures WHERE key = 'u:carol'",
        )
    };
    assert_eq!(carol_row(), "0");

    // In an outage a failure still counts here, and is shared once the
    // store is back (the round that failed is counted and retried).
    pg.stop_server();
    assert_eq!(
        pap(ra, "carol", "guess-5").await.as_deref(),
        Some("Access-Reject")
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, m) = a.http_get("/metrics");
        if metric(&m, "portcullis_throttle_sync_failures_total").unwrap_or(0.0) >= 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no failed sync counted: {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pg.start_server();
    let deadline = Instant::now() + WAIT;
    while carol_row() != "1" {
        assert!(
            Instant::now() < deadline,
            "the failure during the outage was never shared: {}",
            carol_row()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

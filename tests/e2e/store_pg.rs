//! Several nodes on one PostgreSQL (Debian `postgresql`, not our code),
//! started unprivileged by the test in a temporary directory on a loopback
//! port and torn down after: accounting spread over two nodes with one
//! SIGKILLed, an outage of the database under load, the store checks, and
//! browser sessions and console codes and refresh tokens used across nodes.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{self, Running, WAIT, demo_config, http_get, metric, repo, run};

pub(crate) const PASSWORD: &str = "pg-test-password-1";

/// A PostgreSQL cluster of our own. As root (CI), initdb and the server run
/// as the `postgres` system user, since PostgreSQL refuses to run as root.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

fn pg_bindir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Debian postgresql is installed (scripts/install-test-deps.sh)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("a PostgreSQL server binary directory")
}

fn as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Postgres {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = pg_bindir();
        let port = harness::restartable_addrs().http.unwrap().port();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, PASSWORD).unwrap();
        if as_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown to postgres");
        }
        let pg = Self { dir, bin, port };
        let data = pg.data();
        pg.cmd("initdb")
            .args([
                "-A",
                "scram-sha-256",
                "-U",
                "portcullis",
                "--no-sync",
                "-E",
                "UTF8",
            ])
            .arg(format!("--pwfile={}", pw.display()))
            .arg("-D")
            .arg(&data)
            .stdout(Stdio::null())
            .status_ok("initdb");
        pg.start_server();
        pg.psql("postgres", "CREATE DATABASE portcullis");
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn cmd(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    pub fn start_server(&self) {
        let opts = format!(
            "-p {} -h 127.0.0.1 -k {} -c fsync=on -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        self.cmd("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-t", "30", "-l"])
            .arg(self.dir.path().join("log"))
            .args(["-o", &opts, "start"])
            .stdout(Stdio::null())
            .status_ok("pg_ctl start");
    }

    pub fn stop_server(&self) {
        self.cmd("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-m", "fast", "stop"])
            .stdout(Stdio::null())
            .status_ok("pg_ctl stop");
    }

    /// Runs SQL through psql (Debian's client, over the Unix socket of the
    /// temp dir); returns its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self
            .cmd("psql")
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "portcullis",
                "-d",
                db,
                "-c",
                sql,
            ])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A `[store]` section for a node named `node`, with the password in a
    /// file beside its configuration.
    pub fn store_section(&self, node_dir: &Path, node: &str, password: &str) -> String {
        let pw = node_dir.join("db-password");
        std::fs::write(&pw, password).unwrap();
        format!(
            "\n[store]\nbackend = \"postgres\"\nurl = \"postgresql://portcullis@127.0.0.1:{}/portcullis\"\npassword = {{ file = {:?} }}\nnode = {node:?}\npool_size = 8\nconnect_timeout = 2\nquery_timeout = 3\n",
            self.port,
            pw.display().to_string()
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

trait StatusOk {
    fn status_ok(&mut self, what: &str);
}

impl StatusOk for Command {
    fn status_ok(&mut self, what: &str) {
        let out = self.stderr(Stdio::piped()).output().unwrap();
        assert!(
            out.status.success(),
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A node of the cluster: the demo configuration on its own ports and data
/// directory, with the shared store.
pub(crate) fn node(pg: &Postgres, name: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut text = demo_config(dir.path());
    text.push_str(&pg.store_section(dir.path(), name, PASSWORD));
    Running::start_in(dir, &text)
}

fn store_load(args: &[String]) -> Command {
    let mut c = Command::new("python3");
    c.arg(repo().join("tests/e2e/store_load.py")).args(args);
    c
}

/// Session ids of the acknowledged records in the script's output.
fn acked(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("ACK "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Every acknowledged record is in the database exactly once.
fn assert_stored_once(pg: &Postgres, acked: &[String]) {
    let rows = pg.psql(
        "portcullis",
        "SELECT session_id, count(*) FROM acct_records GROUP BY session_id",
    );
    let counts: std::collections::HashMap<&str, u32> = rows
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(s, n)| (s, n.parse().unwrap()))
        .collect();
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let missing: Vec<_> = acked
        .iter()
        .filter(|s| !counts.contains_key(s.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );
}

#[test]
fn two_nodes_share_accounting_and_a_sigkilled_node_loses_nothing() {
    let pg = Postgres::start();
    let a = node(&pg, "a");
    let b = node(&pg, "b");
    let acct = |r: &Running| r.addrs.radius_acct.unwrap().to_string();
    let count = 1200;
    let mut child = store_load(&[
        "acct".into(),
        "--servers".into(),
        format!("{},{}", acct(&a), acct(&b)),
        "--secret".into(),
        "testing123".into(),
        "--count".into(),
        count.to_string(),
        "--deadline".into(),
        "60".into(),
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = Vec::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut a = Some(a);
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        lines.push(line.trim().to_string());
        line.clear();
        // Mid-stream: node A dies without a chance to flush anything.
        if a.is_some() && acked(&lines).len() >= count / 3 {
            a.take().unwrap().sigkill();
        }
    }
    assert!(
        child.wait().unwrap().success(),
        "not every record was acknowledged"
    );
    assert!(a.is_none(), "node A was never killed");
    let acked = acked(&lines);
    assert_eq!(acked.len(), count);
    assert_stored_once(&pg, &acked);
    let stored: usize = pg
        .psql("portcullis", "SELECT count(*) FROM acct_records")
        .parse()
        .unwrap();
    assert_eq!(stored, count, "records stored besides those sent");
    // Both nodes wrote, and lost replies re-sent to the other node were
    // acknowledged as duplicates there.
    let nodes = pg.psql(
        "portcullis",
        "SELECT string_agg(DISTINCT node, ',' ORDER BY node) FROM acct_records",
    );
    assert_eq!(nodes, "a,b");
    assert!(
        lines.iter().any(|l| l.starts_with("REACK ")),
        "no duplicate sent"
    );
    let (_, m) = b.http_get("/metrics");
    assert!(
        metric(&m, "portcullis_accounting_duplicates_total").unwrap_or(0.0) >= 1.0,
        "{m}"
    );
    // `accounting list --user` reads the shared store.
    let (code, listed, err) = run(&[
        "accounting",
        "list",
        "--config",
        b.config.to_str().unwrap(),
        "--user",
        "user7",
        "--format",
        "jsonl",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(listed.lines().count(), count / 50, "{listed}");
    assert!(listed.lines().all(|l| l.contains("\"user\":\"user7\"")));
    // With a limit: the newest ones, still oldest first.
    let (code, newest, err) = run(&[
        "accounting",
        "list",
        "--config",
        b.config.to_str().unwrap(),
        "--user",
        "user7",
        "--limit",
        "2",
        "--format",
        "jsonl",
    ]);
    assert_eq!(code, 0, "{err}");
    let all: Vec<&str> = listed.lines().collect();
    assert_eq!(newest.lines().collect::<Vec<_>>(), all[all.len() - 2..]);
    // Every even record is a Start of its own session, the odd ones interim
    // updates of sessions never started.
    let (code, sessions, err) = run(&[
        "accounting",
        "sessions",
        "--config",
        b.config.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(sessions.lines().count(), count / 2);
}

pub(crate) fn healthz(http: SocketAddr) -> serde_json::Value {
    serde_json::from_str(&http_get(http, "/healthz").1).unwrap()
}

/// Polls `/healthz` until its status is `want`; returns the body.
pub(crate) fn wait_health(http: SocketAddr, want: &str) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let h = healthz(http);
        if h["status"] == want {
            return h;
        }
        assert!(Instant::now() < deadline, "healthz never said {want}: {h}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_database_outage_stops_acknowledgements_not_logins_and_heals_by_itself() {
    let pg = Postgres::start();
    let a = node(&pg, "a");
    let b = node(&pg, "b");
    let http = a.addrs.http.unwrap();
    assert_eq!(healthz(http)["status"], "ok");
    let auth = store_load(&[
        "auth".into(),
        "--servers".into(),
        a.addrs.radius_auth.unwrap().to_string(),
        "--secret".into(),
        "testing123".into(),
        "--user".into(),
        "alice".into(),
        "--password".into(),
        "alice-pass-1".into(),
        "--seconds".into(),
        "16".into(),
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut acct = store_load(&[
        "acct".into(),
        "--servers".into(),
        a.addrs.radius_acct.unwrap().to_string(),
        "--secret".into(),
        "testing123".into(),
        "--count".into(),
        "100000".into(),
        "--workers".into(),
        "2".into(),
        "--deadline".into(),
        "20".into(),
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut out = BufReader::new(acct.stdout.take().unwrap());
    // Each line with when the test saw it.
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, String)>();
    std::thread::spawn(move || {
        let mut line = String::new();
        while out.read_line(&mut line).unwrap_or(0) > 0 {
            if tx.send((Instant::now(), line.trim().to_string())).is_err() {
                break;
            }
            line.clear();
        }
    });
    let mut lines = Vec::new();
    // Load flows: some records acknowledged before the outage.
    while acked(&lines).len() < 50 {
        lines.push(rx.recv_timeout(WAIT).expect("records acknowledged").1);
    }
    pg.stop_server();
    let stopped_at = Instant::now();
    let down = wait_health(http, "degraded");
    // A reason from a closed set: nothing of the database's address.
    assert!(
        [
            "shared store unreachable: cannot connect to the database",
            "shared store unreachable: a database call timed out",
        ]
        .contains(&down["reason"].as_str().unwrap()),
        "{down}"
    );
    assert_eq!(
        wait_health(b.addrs.http.unwrap(), "degraded")["status"],
        "degraded"
    );
    let (_, m) = a.http_get("/metrics");
    assert_eq!(metric(&m, "portcullis_store_up"), Some(0.0), "{m}");
    // A web login cannot make a session: it says why.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, page) = rt.block_on(async {
        let r = harness::post_login(&harness::browser(), http, "/login", "bob", "bob-pass-2").await;
        (r.status(), r.text().await.unwrap())
    });
    assert_eq!(status, 503, "{page}");
    assert!(page.contains("session store does not answer"), "{page}");
    // Ten seconds without the database: nothing may be acknowledged.
    let mut during = Vec::new();
    while stopped_at.elapsed() < Duration::from_secs(10) {
        if let Ok((at, l)) = rx.recv_timeout(Duration::from_millis(200)) {
            // Lines printed before the stop may still be in the pipe for a
            // moment; after that, nothing may be acknowledged.
            if at > stopped_at + Duration::from_secs(1) {
                during.push(l.clone());
            }
            lines.push(l);
        }
    }
    assert!(
        acked(&during).is_empty(),
        "acknowledged while the database was down: {during:?}"
    );
    let before = acked(&lines).len();
    pg.start_server();
    wait_health(http, "ok");
    wait_health(b.addrs.http.unwrap(), "ok");
    for (_, l) in rx.iter() {
        lines.push(l);
    }
    let acked_all = acked(&lines);
    assert!(
        acked_all.len() > before + 10,
        "accounting did not resume after the outage: {} then {}",
        before,
        acked_all.len()
    );
    let _ = acct.wait();
    assert_stored_once(&pg, &acked_all);
    let auth = auth.wait_with_output().unwrap();
    let counts: serde_json::Value = serde_json::from_slice(&auth.stdout).expect("auth counts line");
    assert_eq!(counts["timeout"], 0, "{counts}");
    assert_eq!(counts["reject"], 0, "{counts}");
    assert!(counts["accept"].as_u64().unwrap() > 100, "{counts}");
    let (_, m) = a.http_get("/metrics");
    assert_eq!(metric(&m, "portcullis_store_up"), Some(1.0));
    assert!(metric(&m, "portcullis_store_outages_total").unwrap() >= 1.0);
    // What went unacknowledged was counted and logged.
    assert!(metric(&m, "portcullis_accounting_commit_failures_total").unwrap() >= 1.0);
    a.wait_log("accounting batch not stored");
    a.wait_log("shared store reachable again");
}

#[test]
fn store_checks_refuse_a_newer_schema_and_name_the_password_key() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("portcullis.toml");
    let mut text = demo_config(dir.path());
    text.push_str(&pg.store_section(dir.path(), "a", PASSWORD));
    std::fs::write(&cfg, &text).unwrap();
    let c = cfg.to_str().unwrap();
    let (code, out, err) = run(&["store", "check", "--config", c]);
    assert_eq!(code, 2, "empty database: migrations pending\n{out}{err}");
    let (code, out, err) = run(&["store", "migrate", "--config", c]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("applied"), "{out}");
    let (code, out, err) = run(&["store", "check", "--config", c]);
    assert_eq!(code, 0, "{out}{err}");
    // A second migrate is a no-op.
    let (code, out, _) = run(&["store", "migrate", "--config", c]);
    assert_eq!(code, 0);
    assert!(out.contains("is current"), "{out}");

    // A database migrated by a newer build.
    pg.psql(
        "portcullis",
        "INSERT INTO portcullis_schema (version, name) VALUES (999, 'from the future')",
    );
    let (code, _, err) = run(&["store", "check", "--config", c]);
    assert_eq!(code, 1);
    assert!(err.contains("version 999, newer than this build"), "{err}");
    let (code, _, err) = run(&["store", "migrate", "--config", c]);
    assert_eq!(code, 1);
    assert!(err.contains("newer than this build"), "{err}");
    let served = Command::new(harness::BIN)
        .args(["serve", "--config", c])
        .output()
        .unwrap();
    assert!(!served.status.success());
    assert!(
        String::from_utf8_lossy(&served.stderr).contains("newer than this build"),
        "{}",
        String::from_utf8_lossy(&served.stderr)
    );
    pg.psql(
        "portcullis",
        "DELETE FROM portcullis_schema WHERE version = 999",
    );

    // A wrong password names the key and the file to fix.
    std::fs::write(dir.path().join("db-password"), "not-the-password").unwrap();
    let (code, _, err) = run(&["store", "check", "--config", c]);
    assert_eq!(code, 1);
    assert!(
        err.contains("refused the password of user `portcullis`")
            && err.contains("`store.password`")
            && err.contains(c),
        "{err}"
    );
    let served = Command::new(harness::BIN)
        .args(["serve", "--config", c])
        .output()
        .unwrap();
    assert!(!served.status.success());
    assert!(String::from_utf8_lossy(&served.stderr).contains("`store.password`"));
}

/// Logs out through `node` with this browser's cookies.
async fn logout(b: &reqwest::Client, node: SocketAddr) {
    let r = harness::logout(b, node).await;
    assert_eq!(r.url().path(), "/login", "logout ended at {}", r.url());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_made_on_one_node_is_valid_on_the_other_until_logout() {
    use crate::harness::{add_to_config, api_me, assert_network_admin_from_idp, browser};
    use crate::oidc::{login, provider_block, start_idp, write_accounts};
    let pg = Postgres::start();
    let a = node(&pg, "a");
    let b = node(&pg, "b");
    let (http_a, http_b) = (a.addrs.http.unwrap(), b.addrs.http.unwrap());

    // Local form on A; the session holds on B; logout on B ends it on A.
    let br = browser();
    let r = harness::post_login(&br, http_a, "/login", "bob", "bob-pass-2").await;
    assert_eq!(r.url().path(), "/");
    let me = api_me(&br, http_b).await;
    assert_eq!(
        (me["user"].as_str(), me["role"].as_str()),
        (Some("bob"), Some("helpdesk")),
        "{me}"
    );
    logout(&br, http_b).await;
    assert_eq!(api_me(&br, http_a).await["error"], "not logged in");
    assert_eq!(api_me(&br, http_b).await["error"], "not logged in");

    // Through the IdP: started on A, the IdP sends the browser back to B
    // (the login waits in the store, no sticky balancer needed), and the
    // external user and the session are shared.
    let accounts = a.dir.path().join("accounts.json");
    write_accounts(
        &accounts,
        "u-alice",
        serde_json::json!([{"sub": "u-alice", "preferred_username": "alice.idp",
            "email": "alice@example.com", "name": "Alice Example",
            "groups": ["netadmins", "Everyone"]}]),
    );
    let idp = start_idp(
        &format!("http://{http_b}/auth/oidc/corp/callback"),
        &accounts,
    );
    let block = provider_block("corp", idp.get("issuer"), http_b);
    add_to_config(&a, &block);
    add_to_config(&b, &block);
    let (br, me) = login(http_a, "corp").await;
    assert_network_admin_from_idp(&me);
    let on_b = api_me(&br, http_b).await;
    assert_network_admin_from_idp(&on_b);
    // B lists the external user A recorded.
    let users: serde_json::Value = br
        .get(format!("http://{http_b}/api/users"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        users
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["user"] == "alice.idp" && u["source"] == "external"),
        "{users}"
    );
    logout(&br, http_b).await;
    assert_eq!(api_me(&br, http_a).await["error"], "not logged in");
    // A restarted node keeps accepting sessions: the key is in the store.
    let (br, _) = login(http_a, "corp").await;
    let dir = b.sigkill();
    let text = std::fs::read_to_string(dir.path().join("portcullis.toml")).unwrap();
    let b2 = Running::start_in(dir, &text);
    assert_network_admin_from_idp(&api_me(&br, b2.addrs.http.unwrap()).await);
}

#[test]
fn a_node_whose_configuration_differs_says_so() {
    let pg = Postgres::start();
    let _a = node(&pg, "a");
    let dir = tempfile::tempdir().unwrap();
    let mut text = demo_config(dir.path());
    text = text.replacen("priv_lvl = 7", "priv_lvl = 6", 1);
    text.push_str(&pg.store_section(dir.path(), "b", PASSWORD));
    let b = Running::start_in(dir, &text);
    let line = b.wait_log("differs from its peers");
    assert!(line.contains("\"a\""), "{line}");
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, m) = b.http_get("/metrics");
        if metric(&m, "portcullis_store_config_mismatch") == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "{m}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, m) = b.http_get("/metrics");
    assert_eq!(metric(&m, "portcullis_store_peers"), Some(1.0), "{m}");
}

/// Runs Debian's openssl CLI in `dir`.
pub(crate) fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a certificate for 127.0.0.1 signed by it; another CA beside.
fn make_certs(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for ca in ["ca", "other-ca"] {
        let (key, pem, cn) = (
            format!("{ca}.key"),
            format!("{ca}.pem"),
            format!("/CN={ca}"),
        );
        let mut a = vec![
            "req", "-x509", "-days", "2", "-subj", &cn, "-keyout", &key, "-out", &pem,
        ];
        a.extend(ec);
        openssl(dir, &a);
    }
    let mut a = vec![
        "req",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ];
    a.extend(ec);
    openssl(dir, &a);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
}

#[test]
fn tls_to_the_database_is_verified_against_the_configured_ca() {
    let pg = Postgres::start();
    let certs = pg.dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    make_certs(&certs);
    if as_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&certs)
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    // TLS on, and only TLS accepted from loopback TCP.
    let key = certs.join("server.key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    pg.psql(
        "postgres",
        &format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}'",
            certs.join("server.pem").display()
        ),
    );
    pg.psql(
        "postgres",
        &format!("ALTER SYSTEM SET ssl_key_file = '{}'", key.display()),
    );
    pg.psql("postgres", "ALTER SYSTEM SET ssl = on");
    let hba = pg.data().join("pg_hba.conf");
    std::fs::write(
        &hba,
        "local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
    )
    .unwrap();
    pg.psql("postgres", "SELECT pg_reload_conf()");

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("portcullis.toml");
    let base = demo_config(dir.path()) + &pg.store_section(dir.path(), "a", PASSWORD);
    let with_ca = |ca: &str| {
        format!(
            "{base}ca_file = {:?}\n",
            certs.join(ca).display().to_string()
        )
    };
    let c = cfg.to_str().unwrap();
    // The reload takes effect asynchronously: poll for the first success.
    std::fs::write(&cfg, with_ca("ca.pem")).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, out, err) = run(&["store", "migrate", "--config", c]);
        if code == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{out}{err}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A server certificate from another CA is refused.
    std::fs::write(&cfg, with_ca("other-ca.pem")).unwrap();
    let (code, _, err) = run(&["store", "check", "--config", c]);
    assert_eq!(code, 1);
    assert!(
        err.contains("UnknownIssuer") || err.contains("certificate"),
        "{err}"
    );
    // Not an outage to wait out: `serve` refuses to start, naming the key.
    let served = Command::new(harness::BIN)
        .args(["serve", "--config", c])
        .output()
        .unwrap();
    assert!(!served.status.success());
    let err = String::from_utf8_lossy(&served.stderr);
    assert!(
        err.contains("store.ca_file") && err.contains("UnknownIssuer"),
        "{err}"
    );
    // Without a CA the connection is plain, which this server refuses.
    std::fs::write(&cfg, &base).unwrap();
    let (code, _, err) = run(&["store", "check", "--config", c]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no encryption") || err.contains("pg_hba"),
        "{err}"
    );
    // A running node talks TLS.
    let node = Running::start_in(dir, &with_ca("ca.pem"));
    let deadline = Instant::now() + WAIT;
    while pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
          WHERE s.ssl AND a.application_name = 'portcullis a'",
    ) == "0"
    {
        assert!(Instant::now() < deadline, "no TLS connection from the node");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(node);
}

/// The consoles' side of a node: an HTTP client that shows redirects
/// instead of following them, keeping its cookies.
pub(crate) fn console_browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(WAIT)
        .build()
        .unwrap()
}

pub(crate) async fn jwks(http: SocketAddr) -> serde_json::Value {
    let r = reqwest::get(format!("http://{http}/oauth2/jwks"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

pub(crate) async fn console_token(
    http: SocketAddr,
    form: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{http}/oauth2/token"))
        .basic_auth("orchestrator", Some("orchestrator-secret-1"))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The ID token's claims, its signature checked against `jwks`.
pub(crate) fn id_claims(token: &serde_json::Value, jwks: &serde_json::Value) -> serde_json::Value {
    let id = token["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{token}"));
    let kid = jsonwebtoken::decode_header(id).unwrap().kid.unwrap();
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let jwk = set
        .find(&kid)
        .unwrap_or_else(|| panic!("{kid} not in {jwks}"));
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&["orchestrator"]);
    jsonwebtoken::decode::<serde_json::Value>(id, &key, &v)
        .unwrap()
        .claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_code_from_one_node_is_redeemed_at_the_other_and_a_replay_anywhere_revokes() {
    const REDIRECT: &str = "http://127.0.0.1:9600/gms/rest/authentication/oauth/redirect";
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let pg = Postgres::start();
    let a = node(&pg, "a");
    let b = node(&pg, "b");
    let (http_a, http_b) = (a.addrs.http.unwrap(), b.addrs.http.unwrap());

    // Both nodes make their keys on first use, here at the same moment:
    // one wins and the other reads its keys.
    let (ja, jb) = tokio::join!(jwks(http_a), jwks(http_b));
    assert_eq!(ja, jb, "both nodes publish the same keys");
    assert_eq!(ja["keys"].as_array().unwrap().len(), 2, "signing and next");

    // bob logs in on A; the console sends him to A's authorize.
    let br = console_browser();
    let r = harness::post_login(&br, http_a, "/login", "bob", "bob-pass-2").await;
    assert!(r.status().is_redirection(), "{}", r.status());
    let r = br
        .get(format!(
            "http://{http_a}/oauth2/authorize?response_type=code&client_id=orchestrator\
             &scope=openid+offline_access+email&state=st&nonce=n\
             &code_challenge={CHALLENGE}&code_challenge_method=S256&redirect_uri={}",
            url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
        ))
        .send()
        .await
        .unwrap();
    let to = r
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no redirect: {}", r.status()))
        .to_str()
        .unwrap()
        .to_string();
    assert!(to.starts_with(REDIRECT), "{to}");
    let q: std::collections::HashMap<String, String> = url::Url::parse(&to)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(q["state"], "st");
    let code = q["code"].clone();
    // Only its hash is stored.
    assert_eq!(
        pg.psql(
            "portcullis",
            &format!(
                "SELECT count(*) FROM idp_codes WHERE hash = sha256(convert_to('{code}', 'UTF8'))"
            )
        ),
        "1"
    );

    // Redeemed at B.
    let (st, t1) = console_token(
        http_b,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(st, 200, "{t1}");
    let claims = id_claims(&t1, &ja);
    assert_eq!(claims["ec-roles"], "Helpdesk", "{claims}");
    assert_eq!(claims["nonce"], "n", "{claims}");
    let rt1 = t1["refresh_token"].as_str().unwrap().to_string();
    // The same code again, at A this time: spent.
    let (st, again) = console_token(
        http_a,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!((st, again["error"].as_str()), (400, Some("invalid_grant")));

    // That replay revoked the family the code started.
    let (st, v) = console_token(
        http_b,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );

    // A fresh code for the refresh part.
    let r = br
        .get(format!(
            "http://{http_a}/oauth2/authorize?response_type=code&client_id=orchestrator\
             &scope=openid+offline_access+email&state=st2&nonce=n2\
             &code_challenge={CHALLENGE}&code_challenge_method=S256&redirect_uri={}",
            url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
        ))
        .send()
        .await
        .unwrap();
    let to = r.headers()["location"].to_str().unwrap().to_string();
    let code2 = url::Url::parse(&to)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let (st, t2) = console_token(
        http_b,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code2),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(st, 200, "{t2}");
    let old = t2["refresh_token"].as_str().unwrap().to_string();

    // A refresh at B works and rotates the token.
    let (st, t3) = console_token(
        http_b,
        &[("grant_type", "refresh_token"), ("refresh_token", &old)],
    )
    .await;
    assert_eq!(st, 200, "{t3}");
    assert_eq!(id_claims(&t3, &jb)["ec-roles"], "Helpdesk");
    let new = t3["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(new, old);

    // The old token replayed at A: refused, and the family is revoked, so
    // the current token is refused too, at either node.
    let (st, replay) = console_token(
        http_a,
        &[("grant_type", "refresh_token"), ("refresh_token", &old)],
    )
    .await;
    assert_eq!((st, replay["error"].as_str()), (400, Some("invalid_grant")));
    for http in [http_b, http_a] {
        let (st, v) = console_token(
            http,
            &[("grant_type", "refresh_token"), ("refresh_token", &new)],
        )
        .await;
        assert_eq!(
            (st, v["error"].as_str()),
            (400, Some("invalid_grant")),
            "{v}"
        );
    }

    // A restarted node and a third one publish the same keys.
    let dir = b.sigkill();
    let text = std::fs::read_to_string(dir.path().join("portcullis.toml")).unwrap();
    let b2 = Running::start_in(dir, &text);
    let c = node(&pg, "c");
    assert_eq!(jwks(b2.addrs.http.unwrap()).await, ja);
    assert_eq!(jwks(c.addrs.http.unwrap()).await, ja);
    assert_eq!(
        pg.psql("portcullis", "SELECT count(*) FROM idp_keys"),
        "2",
        "no node made keys of its own"
    );
    // Rotation works on the shared keys: the next key every node already
    // publishes starts signing.
    let next = pg.psql(
        "portcullis",
        "SELECT kid FROM idp_keys WHERE activated IS NULL",
    );
    let cfg = c.dir.path().join("portcullis.toml");
    let (code, out, err) = run(&["console", "rotate-key", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("signing key is now {next}")), "{out}");
    assert_eq!(
        pg.psql(
            "portcullis",
            "SELECT count(*) FROM idp_keys WHERE retired IS NULL"
        ),
        "2",
        "the new signing key and a new next key"
    );
}

/// Nodes racing on one code, one refresh token and the first keys, through
/// the store itself (a pool each, as separate nodes have): exactly one wins.
#[test]
fn nodes_racing_on_one_code_or_refresh_token_cannot_both_win() {
    use portcullis::idp::store::{CodeRecord, CodeTake, Family, RefreshTake};
    use portcullis::idp::{IdpStore, KeyAlg, PgIdpStore, Subject, ensure_keys};
    use std::sync::Arc;
    let pg = Postgres::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let settings = |node: &str| {
        let mut c = tokio_postgres::Config::new();
        c.host("127.0.0.1")
            .port(pg.port)
            .user("portcullis")
            .password(PASSWORD)
            .dbname("portcullis");
        Arc::new(portcullis::store::PgSettings {
            pg: c,
            config_file: "test.toml".into(),
            password_key: "store.password",
            ca_pem: None,
            pool_size: 4,
            connect_timeout: Duration::from_secs(2),
            query_timeout: Duration::from_secs(5),
            auto_migrate: true,
            node: node.into(),
            accounting_writers: 1,
            accounting_batch: 1,
        })
    };
    let nodes: Vec<PgIdpStore> = runtime.block_on(async {
        let mut v = Vec::new();
        for i in 0..4 {
            let s = portcullis::store::PgStore::new(settings(&format!("n{i}"))).unwrap();
            s.prepare().await.unwrap();
            v.push(PgIdpStore::new(s));
        }
        v
    });
    // Blocking calls from threads of our own, off the runtime.
    let race = |f: &(dyn Fn(&PgIdpStore) -> String + Sync)| -> Vec<String> {
        let mut out: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = nodes.iter().map(|n| s.spawn(move || f(n))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        out.sort();
        out
    };

    let rings = race(&|n| {
        let r = ensure_keys(n, KeyAlg::Rs256, 100, 3600).unwrap();
        r.jwks().to_string()
    });
    assert!(rings.iter().all(|r| *r == rings[0]), "{rings:?}");
    assert_eq!(nodes[0].keys().unwrap().len(), 2, "one signing, one next");

    let subject = Subject::Local { name: "bob".into() };
    let far = 4_000_000_000;
    nodes[0]
        .put_code(&CodeRecord {
            hash: [1; 32],
            client_id: "orchestrator".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            subject: subject.clone(),
            scope: "openid offline_access".into(),
            nonce: None,
            challenge: None,
            auth_time: 1,
            expires: far,
        })
        .unwrap();
    let takes = race(&|n| match n.take_code(&[1; 32]).unwrap() {
        CodeTake::Fresh(c) => {
            assert_eq!(c.subject, Subject::Local { name: "bob".into() });
            "fresh".into()
        }
        CodeTake::Reused { .. } => "reused".into(),
        CodeTake::Unknown => "unknown".into(),
    });
    assert_eq!(takes, ["fresh", "reused", "reused", "reused"]);

    // The family started from that (already replayed) code is born revoked;
    // a family from a clean code rotates once per token.
    let fam = |id: &str| Family {
        id: id.into(),
        client_id: "orchestrator".into(),
        subject: subject.clone(),
        scope: "openid offline_access".into(),
        auth_time: 1,
    };
    nodes[1]
        .new_family(&fam("f1"), &[1; 32], &[10; 32], far)
        .unwrap();
    assert!(!nodes[2].family_live("f1").unwrap());
    nodes[0]
        .put_code(&CodeRecord {
            hash: [2; 32],
            client_id: "orchestrator".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            subject: subject.clone(),
            scope: "openid offline_access".into(),
            nonce: None,
            challenge: None,
            auth_time: 1,
            expires: far,
        })
        .unwrap();
    assert!(matches!(
        nodes[3].take_code(&[2; 32]).unwrap(),
        CodeTake::Fresh(_)
    ));
    nodes[3]
        .new_family(&fam("f2"), &[2; 32], &[20; 32], far)
        .unwrap();
    let rotations = race(
        &|n| match n.rotate_refresh(&[20; 32], &[30; 32], 5, far).unwrap() {
            RefreshTake::Rotated(_) => "rotated".into(),
            RefreshTake::Replayed { .. } => "replayed".into(),
            RefreshTake::Invalid => "invalid".into(),
        },
    );
    assert_eq!(rotations, ["replayed", "replayed", "replayed", "rotated"]);
    assert!(!nodes[0].family_live("f2").unwrap(), "a replay revokes");
}

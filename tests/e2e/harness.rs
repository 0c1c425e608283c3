//! Starts the real `portcullis` binary on a copy of the demo configuration
//! with every port rewritten to 0, learns the bound addresses from its
//! `--print-addresses` line, and follows its log through a channel so tests
//! wait for events instead of sleeping.

#![allow(dead_code)] // helpers used by the protocol tests as they land

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

pub const DEMO: &str = include_str!("../../examples/portcullis.toml");
pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The demo configuration, made runnable from a temporary directory: ports
/// 0, absolute dictionary path, private data directory.
pub fn demo_config(dir: &Path) -> String {
    demo_config_at(dir, &Addrs::default())
}

/// The demo configuration on the given addresses (port 0 where `None`), to
/// restart a server where its clients expect it.
pub fn demo_config_at(dir: &Path, at: &Addrs) -> String {
    let port =
        |a: Option<SocketAddr>| a.map_or_else(|| "127.0.0.1:0".to_string(), |a| a.to_string());
    DEMO.replace("127.0.0.1:1812", &port(at.radius_auth))
        .replace("127.0.0.1:1813", &port(at.radius_acct))
        .replace("127.0.0.1:4949", &port(at.tacacs))
        .replace("127.0.0.1:8080", &port(at.http))
        .replace(
            "\"../dictionaries\"",
            &format!("{:?}", repo().join("dictionaries").display().to_string()),
        )
        .replace(
            "\"../target/demo-data\"",
            &format!("{:?}", dir.join("data").display().to_string()),
        )
}

#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct Addrs {
    pub http: Option<SocketAddr>,
    pub radius_auth: Option<SocketAddr>,
    pub radius_acct: Option<SocketAddr>,
    pub tacacs: Option<SocketAddr>,
}

/// Loopback addresses for a server that will be restarted on them: ports
/// below the kernel's ephemeral range, so that no client socket of a test
/// running meanwhile can take one between the kill and the restart (ports
/// bound to 0 come from that range). Each is free for TCP and UDP when
/// picked; the search starts at a random port so concurrent tests differ.
pub fn restartable_addrs() -> Addrs {
    let range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let ephemeral_low: u16 = range
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(32768);
    let low = 10_000u16.min(ephemeral_low / 2);
    let span = ephemeral_low - low;
    let mut next = low
        + (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            % u32::from(span)) as u16;
    let mut pick = || {
        for _ in 0..span {
            next = if next + 1 >= ephemeral_low {
                low
            } else {
                next + 1
            };
            let a = SocketAddr::from(([127, 0, 0, 1], next));
            if std::net::TcpListener::bind(a).is_ok() && std::net::UdpSocket::bind(a).is_ok() {
                return Some(a);
            }
        }
        panic!("no free port below the ephemeral range");
    };
    Addrs {
        http: pick(),
        radius_auth: pick(),
        radius_acct: pick(),
        tacacs: pick(),
    }
}

/// A running server; killed on drop.
pub struct Running {
    pub child: Child,
    pub addrs: Addrs,
    pub config: PathBuf,
    pub dir: tempfile::TempDir,
    log: Receiver<String>,
}

impl Running {
    /// Starts the server on `config_text` (written to a temp dir).
    pub fn start(config_text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, config_text)
    }

    pub fn start_demo() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = demo_config(dir.path());
        Self::start_in(dir, &text)
    }

    pub fn start_in(dir: tempfile::TempDir, config_text: &str) -> Self {
        let config = dir.path().join("portcullis.toml");
        std::fs::write(&config, config_text).unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--print-addresses", "--config"])
            .arg(&config)
            .env("PORTCULLIS_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn portcullis");
        let (tx, log) = channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("E2E_VERBOSE").is_some() {
                    eprintln!("[server] {line}");
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        assert!(
            !first.is_empty(),
            "server exited before listening; log:\n{}",
            log.try_iter().collect::<Vec<_>>().join("\n")
        );
        let addrs: Addrs = serde_json::from_str(&first).expect("address line");
        Self {
            child,
            addrs,
            config,
            dir,
            log,
        }
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no log line containing {needle:?} within {WAIT:?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("server exited while waiting for {needle:?}")
                }
            }
        }
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety effects.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    pub fn http_get(&self, path: &str) -> (u16, String) {
        http_get(self.addrs.http.expect("http listener"), path)
    }

    /// Kills the server with SIGKILL (no chance to flush or say goodbye) and
    /// hands back its directory, data included.
    pub fn sigkill(mut self) -> tempfile::TempDir {
        use std::os::unix::process::ExitStatusExt;
        self.signal(libc::SIGKILL);
        let status = self.child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET, enough for /metrics and /healthz.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Runs the binary to completion; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A Prometheus sample value by exact series name (with labels).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Appends `block` to the server's configuration and reloads it.
pub fn add_to_config(s: &Running, block: &str) {
    let mut text = std::fs::read_to_string(&s.config).unwrap();
    text.push_str(block);
    std::fs::write(&s.config, text).unwrap();
    s.signal(libc::SIGHUP);
    s.wait_log("configuration reloaded");
}

/// A scripted browser: a cookie jar, redirects followed.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The CSRF token of the form on `page`, as this browser gets it (the page
/// also sets the cookie the token must match).
pub async fn csrf_token(b: &reqwest::Client, http: SocketAddr, page: &str) -> String {
    let html = b
        .get(format!("http://{http}{page}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF token on {page}: {html}"))
        + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_string()
}

/// The local login form, posted as a browser does: the page first, then the
/// form with its token. `path` is `/login` or `/login?local=1`.
pub async fn post_login(
    b: &reqwest::Client,
    http: SocketAddr,
    path: &str,
    user: &str,
    password: &str,
) -> reqwest::Response {
    let token = csrf_token(b, http, path).await;
    b.post(format!("http://{http}{path}"))
        .form(&[("username", user), ("password", password), ("csrf", &token)])
        .send()
        .await
        .unwrap()
}

/// Logs this browser out with the button on `/logout`.
pub async fn logout(b: &reqwest::Client, http: SocketAddr) -> reqwest::Response {
    let token = csrf_token(b, http, "/logout").await;
    b.post(format!("http://{http}/logout"))
        .form(&[("csrf", &token)])
        .send()
        .await
        .unwrap()
}

/// A JSON array of strings.
pub fn strs(v: &serde_json::Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect()
}

/// What `/api/me` says to this browser.
pub async fn api_me(b: &reqwest::Client, http: SocketAddr) -> serde_json::Value {
    b.get(format!("http://{http}/api/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A test peer process (an IdP) that prints one JSON line when it is ready;
/// killed on drop.
pub struct Peer {
    child: Child,
    pub ready: serde_json::Value,
}

impl Peer {
    /// Spawns `cmd` and waits for its ready line; `hint` says what to
    /// install when it does not come.
    pub fn start(cmd: &mut Command, hint: &str) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e} ({hint})"));
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let ready = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("ready line {line:?}: {e} ({hint})"));
        // Keep draining stdout: a peer writing to a closed pipe dies of EPIPE.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Self { child, ready }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A string field of the ready line.
    pub fn get(&self, k: &str) -> &str {
        self.ready[k].as_str().unwrap()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `/api/me` of an external user whose IdP puts them in `netadmins` (and in
/// the IdP-only group `Everyone`): the demo table's network-admin grant.
pub fn assert_network_admin_from_idp(me: &serde_json::Value) {
    assert_eq!(me["source"], "external", "{me}");
    assert_eq!(me["role"], "network-admin", "{me}");
    assert_eq!(me["priv-lvl"], 15, "{me}");
    assert_eq!(me["rbac-roles"], "OverlayAdmin", "{me}");
    assert_eq!(me["rbac-aag"], "Global", "{me}");
    let groups = strs(&me["groups"]);
    assert!(
        groups.contains(&"netadmins") && groups.contains(&"all-users"),
        "{me}"
    );
    assert!(
        !groups.contains(&"Everyone"),
        "IdP-only groups are not local groups"
    );
}

/// The HTML entities the IdPs' and our pages use, undone.
pub fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x2B;", "+")
        .replace("&#43;", "+")
        .replace("&#x3D;", "=")
        .replace("&#61;", "=")
        .replace("&#x2F;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// An attribute's value in an HTML tag.
pub fn attr(tag: &str, name: &str) -> Option<String> {
    for q in ['"', '\''] {
        let key = format!(" {name}={q}");
        if let Some(i) = tag.find(&key) {
            let rest = &tag[i + key.len()..];
            let end = rest.find(q)?;
            return Some(unescape(&rest[..end]));
        }
    }
    None
}

/// The first form of a page: its action and every named input.
pub fn form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let f = html.find("<form")?;
    let tag_end = f + html[f..].find('>')?;
    let action = attr(&html[f..tag_end], "action").unwrap_or_default();
    let mut fields = Vec::new();
    let mut rest = &html[f..];
    while let Some(i) = rest.find("<input") {
        let end = i + rest[i..].find('>')?;
        let tag = &rest[i..end];
        if let Some(n) = attr(tag, "name") {
            fields.push((n, attr(tag, "value").unwrap_or_default()));
        }
        rest = &rest[end..];
    }
    Some((action, fields))
}

/// Sets a form field's value.
pub fn set(fields: &mut [(String, String)], k: &str, v: &str) {
    for f in fields.iter_mut() {
        if f.0 == k {
            f.1 = v.to_string();
        }
    }
}

/// One exchange through the PyPI `tacacs_plus` client
/// (tests/e2e/tacacs_client.py); its JSON answer.
pub fn tacacs_py(addr: SocketAddr, key: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(repo().join("tests/e2e/tacacs_client.py"))
        .args([
            addr.ip().to_string(),
            addr.port().to_string(),
            key.to_string(),
        ])
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

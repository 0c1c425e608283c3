//! The SAML IdP's console registry by metadata URL and its single logout
//! across consoles, with pysaml2 service providers (tests/e2e/saml_sp.py)
//! as the consoles: a console given by the URL of its SP metadata (served
//! by a loopback server this test runs), a logout one console starts that
//! reaches the session's other console and is answered, and the checks on
//! a console's LogoutResponse (signature, InResponseTo).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::console_saml::{ava, saml_metric, sp_url, sso, start_sp};
use crate::harness::*;

/// A loopback HTTP server answering every GET with the status and body it
/// holds at that moment (the test changes them); stopped on drop.
struct Served {
    addr: SocketAddr,
    answer: Arc<Mutex<(u16, Vec<u8>)>>,
    stop: Arc<AtomicBool>,
}

impl Served {
    fn start(body: Vec<u8>) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let answer = Arc::new(Mutex::new((200, body)));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (answer.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut c) = conn else { continue };
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let (status, body) = a.lock().unwrap().clone();
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/samlmetadata+xml\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = c.write_all(head.as_bytes());
                let _ = c.write_all(&body);
            }
        });
        Self { addr, answer, stop }
    }

    fn url(&self) -> String {
        format!("http://{}/sp/metadata", self.addr)
    }

    fn set(&self, status: u16, body: &[u8]) {
        *self.answer.lock().unwrap() = (status, body.to_vec());
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
    }
}

/// A config of one console given by URL, its data in `dir`.
fn url_only_config(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    let p = dir.join("by-url.toml");
    std::fs::write(
        &p,
        format!(
            "[server]\ndata_dir = {:?}\n\n[[console]]\nname = \"by-url\"\nmode = \"saml\"\n\
             sp_metadata_url = \"{url}\"\n",
            dir.join("data").display().to_string()
        ),
    )
    .unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_given_by_its_metadata_url_logs_in_and_outlives_the_url() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let sp = start_sp(
        http,
        &[
            "--entity-id",
            "auto/saml/metadata",
            "--acs",
            "auto/acs",
            "--slo",
            "auto/slo",
            "--sign-requests",
        ],
    );
    // pysaml2's own metadata, served from a server of this test's.
    let md = reqwest::get(sp_url(&sp, "/metadata"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(md.contains("SPSSODescriptor"), "{md}");
    let served = Served::start(md.clone().into_bytes());
    add_to_config(
        &s,
        &format!(
            "\n[[console]]\nname = \"by-url\"\nmode = \"saml\"\nsp_metadata_url = \"{}\"\n\
             require_signed_requests = true\nmetadata_refresh = 1\n",
            served.url()
        ),
    );
    // Entity ID, ACS and certificate all come from the metadata: the SP's
    // signed requests are checked with it (unsigned ones would be refused).
    let acs = sp.get("acs").to_string();
    let alice = sso(&browser(), &sp, "redirect", "alice", "alice-pass-1", &acs).await;
    assert_eq!(alice["ok"], true, "{alice}");
    assert_eq!(ava(&alice, "ec-roles"), "OverlayAdmin");

    // The console moves (another SP, other ACS and key): the periodic
    // check sees the metadata change and the configuration follows.
    let moved = start_sp(
        http,
        &[
            "--entity-id",
            "auto/saml/metadata",
            "--acs",
            "auto/acs",
            "--sign-requests",
        ],
    );
    let md2 = reqwest::get(sp_url(&moved, "/metadata"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    served.set(200, md2.as_bytes());
    let line = s.wait_log("SP metadata changed");
    assert!(line.contains("by-url"), "{line}");
    s.wait_log("configuration reloaded");
    let acs2 = moved.get("acs").to_string();
    let carol = sso(
        &browser(),
        &moved,
        "redirect",
        "carol",
        "carol-pass-3",
        &acs2,
    )
    .await;
    assert_eq!(ava(&carol, "ec-roles"), "Monitor", "{carol}");

    // The URL fails: checks change nothing, and a reload keeps the last
    // good copy, and says so.
    served.set(503, b"down");
    s.wait_log("SP metadata check failed; the last good metadata stays");
    s.signal(libc::SIGHUP);
    let w = s.wait_log("using the last good copy");
    s.wait_log("configuration reloaded");
    assert!(
        w.contains("console[by-url].sp_metadata_url") && w.contains("HTTP 503"),
        "{w}"
    );
    let bob = sso(&browser(), &moved, "post", "bob", "bob-pass-2", &acs2).await;
    assert_eq!(ava(&bob, "ec-roles"), "Helpdesk", "{bob}");

    // At start (here `check`, the same loading): with that copy, a
    // warning; without one, an error naming the file, line and key.
    let c = s.config.to_str().unwrap();
    let (code, out, err) = run(&["check", "--config", c]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("using the last good copy"), "{err}");
    let fresh = tempfile::tempdir().unwrap();
    let p = url_only_config(fresh.path(), &served.url());
    let (code, _, err) = run(&["check", "--config", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "{}:7:19: key `console[by-url].sp_metadata_url`",
            p.display()
        )) && err.contains("HTTP 503")
            && err.contains("no earlier copy"),
        "{err}"
    );
    // Hostile metadata: a DOCTYPE, or more than the cap, is refused.
    served.set(
        200,
        format!("<!DOCTYPE x [<!ENTITY a \"b\">]>{md}").as_bytes(),
    );
    let (code, _, err) = run(&["check", "--config", p.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("document type declarations are not accepted"),
        "{err}"
    );
    served.set(200, &vec![b' '; 2 << 20]);
    let (code, _, err) = run(&["check", "--config", p.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("larger than"), "{err}");
    // Plain http elsewhere than loopback is refused outright.
    let q = url_only_config(fresh.path(), "http://sp.example/metadata");
    let (code, _, err) = run(&["check", "--config", q.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("http:// only on loopback"), "{err}");
}

/// Two signing pysaml2 consoles, registered with their certificates.
fn two_consoles(s: &Running) -> (Peer, Peer) {
    let http = s.addrs.http.unwrap();
    let args = [
        "--entity-id",
        "auto/saml/metadata",
        "--acs",
        "auto/acs",
        "--slo",
        "auto/slo",
        "--sign-requests",
    ];
    let (one, two) = (start_sp(http, &args), start_sp(http, &args));
    let mut block = String::new();
    for (name, sp) in [("sp-one", &one), ("sp-two", &two)] {
        block.push_str(&format!(
            "\n[[console]]\nname = \"{name}\"\nmode = \"saml\"\nentity_id = \"{}\"\n\
             acs_url = \"{}\"\nslo_url = \"{}\"\ncert_file = \"{}\"\n",
            sp.get("entity_id"),
            sp.get("acs"),
            sp.get("slo"),
            sp.get("cert_file"),
        ));
    }
    add_to_config(s, &block);
    (one, two)
}

async fn state(sp: &Peer) -> Value {
    reqwest::get(sp_url(sp, "/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_from_one_console_reaches_the_other_and_is_answered() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let (one, two) = two_consoles(&s);
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let b = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .build()
        .unwrap();
    let a1 = sso(
        &b,
        &one,
        "redirect",
        "alice",
        "alice-pass-1",
        one.get("acs"),
    )
    .await;
    assert_eq!(a1["ok"], true, "{a1}");
    // The same browser session: no password the second time.
    let a2 = sso(&b, &two, "redirect", "-", "-", two.get("acs")).await;
    assert_eq!(a2["ok"], true, "{a2}");

    // Console one logs out: portcullis ends the session, sends console two
    // a LogoutRequest through the browser, then answers console one.
    let r = b.get(sp_url(&one, "/logout")).send().await.unwrap();
    assert_eq!(
        (r.url().port(), r.url().path()),
        (one.ready["port"].as_u64().map(|p| p as u16), "/slo"),
        "ends at console one's SLO: {}",
        r.url()
    );
    let done: Value = r.json().await.unwrap();
    assert_eq!(done["logged_out"], true, "{done}");
    assert_eq!(
        done["status"], "urn:oasis:names:tc:SAML:2.0:status:Success",
        "{done}"
    );
    assert!(done["request_id"].is_string(), "{done}");
    assert_eq!(
        done["in_response_to"], done["request_id"],
        "answers console one's request"
    );
    assert_eq!(
        done["issuer"],
        format!("http://{http}/saml/idp/metadata"),
        "{done}"
    );
    assert_eq!(
        state(&two).await["logged_out_by_idp"],
        1,
        "console two told"
    );
    assert_eq!(state(&one).await["logged_out_by_idp"], 0);
    let me = b.get(format!("http://{http}/api/me")).send().await.unwrap();
    assert_eq!(me.status(), 401, "the portcullis session ended");
    let line = s.wait_log("SAML logout answered by the console");
    assert!(line.contains("sp-two"), "{line}");
}

/// A browser that does not follow redirects, sharing `jar` with another.
fn manual(jar: &Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location ({})", r.status()))
        .to_str()
        .unwrap()
        .to_string()
}

/// `/logout` as far as the console's answer: the URL (to portcullis) the
/// console sent the browser to with its LogoutResponse.
async fn console_answer(m: &reqwest::Client, http: SocketAddr) -> String {
    let page = m
        .get(format!("http://{http}/logout"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (_, fields) = form(&page).expect("the logout form");
    let r = m
        .post(format!("http://{http}/logout"))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to_console = location(&r);
    assert!(to_console.contains("SAMLRequest="), "{to_console}");
    let r = m.get(&to_console).send().await.unwrap();
    let back = location(&r);
    assert!(
        back.starts_with(&format!("http://{http}/saml/idp/slo?SAMLResponse=")),
        "{back}"
    );
    assert!(back.contains("&Signature="), "pysaml2 signs it: {back}");
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_logout_response_must_be_signed_and_answer_the_request_sent() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let (one, _two) = two_consoles(&s);
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let follow = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .build()
        .unwrap();
    let m = manual(&jar);
    let acs = one.get("acs").to_string();
    let a = sso(&follow, &one, "redirect", "alice", "alice-pass-1", &acs).await;
    assert_eq!(a["ok"], true, "{a}");
    let first = console_answer(&m, http).await;

    let refusals = |reason: &str| {
        saml_metric(
            &s,
            "refusals",
            &format!("console=\"sp-one\",reason=\"{reason}\""),
        )
    };
    let refused = |url: String, reason: &'static str| {
        let m = m.clone();
        async move {
            let r = m.get(&url).send().await.unwrap();
            assert_eq!(r.status(), 400, "{reason}");
            let body = r.text().await.unwrap();
            assert!(body.contains(reason), "{reason}: {body}");
        }
    };
    // Unsigned: the signature parameters dropped.
    let unsigned = first[..first.find("&SigAlg=").unwrap()].to_string();
    refused(unsigned, "unsigned").await;
    assert_eq!(refusals("unsigned"), 1.0);
    // Forged: a signature that is not the console's.
    let sig = first.find("&Signature=").unwrap() + "&Signature=".len();
    let at = (sig + 8..first.len())
        // A letter of the base64 itself, not of a %-escape in it.
        .find(|i| {
            let b = first.as_bytes();
            b[*i].is_ascii_alphabetic() && b[*i - 1] != b'%' && b[*i - 2] != b'%'
        })
        .unwrap();
    let mut forged = first.clone();
    let c = if &first[at..at + 1] == "A" { "B" } else { "A" };
    forged.replace_range(at..at + 1, c);
    refused(forged, "bad_signature").await;
    assert_eq!(refusals("bad_signature"), 1.0);
    s.wait_log("console SAML LogoutResponse refused");

    // A second login to the console, and a second logout: the first
    // answer, genuine but to the earlier request, no longer fits.
    let a = sso(&follow, &one, "redirect", "-", "-", &acs).await;
    assert_eq!(a["ok"], true, "{a}");
    let second = console_answer(&m, http).await;
    refused(first, "unexpected_response").await;
    assert_eq!(refusals("unexpected_response"), 1.0);
    let me = |c: reqwest::Client| async move {
        c.get(format!("http://{http}/api/me"))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(me(m.clone()).await, 200, "no refused answer ended it");

    // The right answer goes on: the chain ends and so does the session.
    let r = m.get(&second).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login");
    assert_eq!(me(m.clone()).await, 401);
}

/// An HTTPS server (Python's ssl module, a certificate of a test CA)
/// answering every GET with `body`.
fn https_server(dir: &std::path::Path, body: &str) -> Peer {
    std::fs::write(dir.join("md.xml"), body).unwrap();
    let script = "import http.server, json, ssl, sys\n\
        d = sys.argv[1]\n\
        body = open(d + '/md.xml', 'rb').read()\n\
        class H(http.server.BaseHTTPRequestHandler):\n\
        \x20   def do_GET(self):\n\
        \x20       self.send_response(200)\n\
        \x20       self.send_header('Content-Length', str(len(body)))\n\
        \x20       self.end_headers()\n\
        \x20       self.wfile.write(body)\n\
        \x20   def log_message(self, *a):\n\
        \x20       pass\n\
        s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)\n\
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
        c.load_cert_chain(d + '/server.pem', d + '/server.key')\n\
        s.socket = c.wrap_socket(s.socket, server_side=True)\n\
        print(json.dumps({'port': s.server_address[1]}), flush=True)\n\
        s.serve_forever()\n";
    Peer::start(
        std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(dir),
        "python3",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_over_https_is_trusted_by_the_configured_ca_only() {
    let s = Running::start_demo();
    let sp = start_sp(
        s.addrs.http.unwrap(),
        &["--entity-id", "auto/md", "--acs", "auto/acs"],
    );
    let md = reqwest::get(sp_url(&sp, "/metadata"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::slapd::make_ca(dir.path(), "md-ca", true);
    let server = https_server(dir.path(), &md);
    let url = format!("https://127.0.0.1:{}/md", server.ready["port"]);
    let p = url_only_config(dir.path(), &url);
    // The system's roots do not know the test CA: refused, no copy.
    let (code, _, err) = run(&["check", "--config", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("console[by-url].sp_metadata_url") && err.contains("certificate"),
        "{err}"
    );
    // With `sp_metadata_ca_file`, the same server is trusted.
    let mut text = std::fs::read_to_string(&p).unwrap();
    text.push_str(&format!(
        "sp_metadata_ca_file = {:?}\n",
        ca.display().to_string()
    ));
    std::fs::write(&p, text).unwrap();
    let (code, out, err) = run(&["check", "--config", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !err.contains("last good copy"),
        "fetched, not cached: {err}"
    );
}

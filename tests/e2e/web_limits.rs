//! The HTTP listener's limits and the CSRF checks, from outside: slow and
//! idle connections are cut at the header deadline, one address cannot hold
//! every connection, a trickled body gets 408, an oversized one 413, and a
//! form posted from another site or without its token changes nothing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::harness::*;

const LIMITS: &str = "[web]\nheader_timeout = 1\nrequest_timeout = 2\n\
                      max_connections_per_address = 4\nmax_body = 2048\n";

fn start(extra: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let text = demo_config(dir.path()).replacen("[web]\n", extra, 1);
    assert!(
        text.contains("header_timeout"),
        "the demo config has a [web] table"
    );
    Running::start_in(dir, &text)
}

/// Reads until the peer closes; how long that took, or None if it answered
/// or stayed open past `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 512];
    match s.read(&mut buf) {
        Ok(0) => Some(t.elapsed()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(t.elapsed()),
        _ => None,
    }
}

/// One request on an open keep-alive connection; the status.
fn get_on(s: &mut TcpStream, path: &str) -> u16 {
    try_get(s, path).expect("closed before answering").0
}

/// One request on an open keep-alive connection; the status and body, or
/// None when the server closed it instead.
fn try_get(s: &mut TcpStream, path: &str) -> Option<(u16, String)> {
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    // The answers here carry Content-Length.
    loop {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len {
                let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                return Some((status, body.to_string()));
            }
        }
    }
}

fn connect_from(local: &str, to: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&format!("{local}:0").parse::<SocketAddr>().unwrap().into())
        .unwrap();
    sock.connect(&to.into()).unwrap();
    sock.into()
}

#[test]
fn slow_headers_and_idle_connections_are_cut_at_the_header_deadline() {
    let s = start(LIMITS);
    let http = s.addrs.http.unwrap();
    // Headers that never finish: one byte a while, as a slowloris does.
    let mut slow = TcpStream::connect(http).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    let took = closed_within(&mut slow, Duration::from_secs(8)).expect("slow headers cut");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // A keep-alive connection that answered once and then sits idle.
    let mut idle = TcpStream::connect(http).unwrap();
    assert_eq!(get_on(&mut idle, "/healthz"), 200);
    let took = closed_within(&mut idle, Duration::from_secs(8)).expect("idle connection cut");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn one_address_cannot_hold_every_connection() {
    let s = start(LIMITS);
    let http = s.addrs.http.unwrap();
    // Four answered connections from 127.0.0.1 hold its share...
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut c = connect_from("127.0.0.1", http);
            assert_eq!(get_on(&mut c, "/healthz"), 200);
            c
        })
        .collect();
    // ...so a fifth is closed on arrival, and counted...
    let mut fifth = connect_from("127.0.0.1", http);
    assert!(closed_within(&mut fifth, Duration::from_secs(5)).is_some());
    // ...while another address is served.
    let mut other = connect_from("127.0.0.2", http);
    let (status, m) = try_get(&mut other, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        metric(
            &m,
            "portcullis_http_connections_refused_total{reason=\"per_address\"}"
        ),
        Some(1.0),
        "{m}"
    );
    // A slot given back is a slot to use, once the server has seen the
    // close (asynchronously: retried within a bound).
    held.pop();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = connect_from("127.0.0.1", http);
        if try_get(&mut again, "/healthz").is_some_and(|(st, _)| st == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the slot never came back");
    }
}

#[test]
fn the_connection_cap_queues_new_clients_until_one_leaves() {
    let s = start("[web]\nmax_connections = 3\nheader_timeout = 60\n");
    let http = s.addrs.http.unwrap();
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut c = TcpStream::connect(http).unwrap();
            assert_eq!(get_on(&mut c, "/healthz"), 200);
            c
        })
        .collect();
    // Connected (the kernel's backlog) but not taken: no answer yet.
    let mut waiting = TcpStream::connect(http).unwrap();
    write!(waiting, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(waiting.read(&mut buf).is_err(), "answered past the cap");
    held.pop();
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let n = waiting.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[test]
fn trickled_and_oversized_bodies_are_refused() {
    let s = start(LIMITS);
    let http = s.addrs.http.unwrap();
    let mut c = TcpStream::connect(http).unwrap();
    write!(
        c,
        "POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 100\r\n\r\nusername=bob"
    )
    .unwrap();
    let t = Instant::now();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 256];
    let n = c.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());

    let big = format!("username=bob&password={}", "x".repeat(4096));
    let mut c = TcpStream::connect(http).unwrap();
    write!(
        c,
        "POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{big}",
        big.len()
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    let m = s.http_get("/metrics").1;
    assert_eq!(
        metric(&m, "portcullis_http_requests_timed_out_total"),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_from_another_site_or_without_their_token_change_nothing() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let b = browser();
    let token = csrf_token(&b, http, "/login").await;
    let post = |fields: Vec<(&'static str, String)>, origin: Option<String>| {
        let mut r = b.post(format!("http://{http}/login")).form(&fields);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        async move { r.send().await.unwrap() }
    };
    let creds = |csrf: Option<&str>| {
        let mut f = vec![
            ("username", "bob".to_string()),
            ("password", "bob-pass-2".to_string()),
        ];
        if let Some(t) = csrf {
            f.push(("csrf", t.to_string()));
        }
        f
    };
    // No token, a wrong token, another site's page: refused, no session.
    assert_eq!(post(creds(None), None).await.status(), 403);
    assert_eq!(post(creds(Some("0123")), None).await.status(), 403);
    let evil = post(creds(Some(&token)), Some("http://evil.example".into())).await;
    assert_eq!(evil.status(), 403);
    assert_eq!(api_me(&b, http).await["error"], "not logged in");
    // The same form from our own page logs in.
    let ok = post(creds(Some(&token)), Some(format!("http://{http}"))).await;
    assert_eq!(ok.url().path(), "/");
    assert_eq!(api_me(&b, http).await["user"], "bob");
    // A GET of /logout (a link, an <img> elsewhere) only shows the button.
    let r = b.get(format!("http://{http}/logout")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(api_me(&b, http).await["user"], "bob");
    // A logout posted without the token changes nothing; with it, ends it.
    let r = b
        .post(format!("http://{http}/logout"))
        .form(&[("csrf", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(api_me(&b, http).await["user"], "bob");
    assert_eq!(logout(&b, http).await.url().path(), "/login");
    assert_eq!(api_me(&b, http).await["error"], "not logged in");
}

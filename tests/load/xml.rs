//! Hostile XML at the SAML ACS, from outside: refused at once, and the
//! rest of the server keeps answering meanwhile.

use std::time::{Duration, Instant};

use crate::harness::*;
use crate::{radclient_pap, serial};

/// Nested elements each declaring a namespace prefix: what made the XML
/// parser's work grow as n³. About 500 KB, under the size bound, so the
/// depth and declaration bounds are what refuse it.
fn deep_namespaces() -> String {
    let mut x = String::from(
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_x\" Version=\"2.0\">",
    );
    let mut n = 0;
    while x.len() < 500_000 {
        x.push_str(&format!("<p{n}:e xmlns:p{n}=\"urn:x:{n}\">"));
        n += 1;
    }
    for i in (0..n).rev() {
        x.push_str(&format!("</p{i}:e>"));
    }
    x.push_str("</samlp:Response>");
    x
}

/// A ~500 KB deep-namespace post after an unauthenticated /start is
/// refused at once; while eight arrive together, /healthz and RADIUS
/// logins answer as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_namespace_posts_are_refused_at_once_and_stall_nothing() {
    use base64::Engine as _;
    let _serial = serial();
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let radius = s.addrs.radius_auth.unwrap();
    let cert = repo().join("tests/data/saml/idp-cert.pem");
    add_to_config(
        &s,
        &format!(
            "\n[[saml]]\nname = \"static\"\nidp_sso_url = \"http://127.0.0.1:9/sso\"\n\
             idp_entity_id = \"urn:test:idp\"\nidp_cert_file = \"{}\"\n\
             sp_entity_id = \"http://{http}/auth/saml/static/metadata\"\n\
             acs_url = \"http://{http}/auth/saml/static/acs\"\n",
            cert.display()
        ),
    );
    let body = base64::engine::general_purpose::STANDARD.encode(deep_namespaces());
    // Each attacker starts a login (for the binding cookie), then posts.
    let attacker = || async {
        let b = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = b
            .get(format!("http://{http}/auth/saml/static/start"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "start");
        b
    };
    let post = |b: reqwest::Client, body: String| async move {
        let t = Instant::now();
        let r = b
            .post(format!("http://{http}/auth/saml/static/acs"))
            .form(&[("SAMLResponse", body)])
            .send()
            .await
            .unwrap();
        (r.status(), t.elapsed())
    };
    // Alone: refused quickly (the median of five, so one descheduling of
    // the test process on a busy machine does not decide).
    let mut alone = Vec::new();
    for _ in 0..5 {
        let (status, took) = post(attacker().await, body.clone()).await;
        assert_eq!(status, 401);
        alone.push(took);
    }
    alone.sort();
    assert!(alone[2] < Duration::from_millis(50), "{alone:?}");
    // RADIUS (cached after the first) and /healthz, while eight arrive.
    assert_eq!(
        radclient_pap(radius, "alice", "alice-pass-1").0.as_deref(),
        Some("Access-Accept")
    );
    let mut posts = Vec::new();
    for _ in 0..8 {
        let b = attacker().await;
        posts.push(tokio::spawn(post(b, body.clone())));
    }
    let probes = tokio::task::spawn_blocking(move || {
        let mut worst = Duration::ZERO;
        for _ in 0..4 {
            let t = Instant::now();
            assert_eq!(http_get(http, "/healthz").0, 200);
            let (code, _) = radclient_pap(radius, "alice", "alice-pass-1");
            assert_eq!(code.as_deref(), Some("Access-Accept"));
            worst = worst.max(t.elapsed());
        }
        worst
    });
    for p in posts {
        assert_eq!(p.await.unwrap().0, 401);
    }
    let worst = probes.await.unwrap();
    eprintln!(
        "deep-namespace posts refused alone in {alone:?}; slowest probe during eight: {worst:?}"
    );
    // radclient is a process start as well as a round trip.
    assert!(worst < Duration::from_millis(500), "{worst:?}");
    let (_, m) = s.http_get("/metrics");
    assert_eq!(
        metric(
            &m,
            "portcullis_saml_verification_failures_total{provider=\"static\",reason=\"malformed\"}"
        ),
        Some(13.0),
        "{m}"
    );
}

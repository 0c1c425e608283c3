//! portcullis as the SAML 2.0 IdP of an appliance console, driven by a
//! service provider nobody on the team wrote: pysaml2 (tests/e2e/saml_sp.py),
//! which checks the signed Response and Assertion with xmlsec1. Every
//! signed Response is also checked by `xmlsec1 --verify` here, with the
//! certificate portcullis publishes. The browser is reqwest; it submits the
//! auto-post forms itself, as a browser's script would.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::harness::*;

/// The demo console's ACS (and entity ID), where Responses must go.
pub(crate) const DEMO_ACS: &str = "http://127.0.0.1:9602/saml/acs";

/// The pysaml2 SP, killed on drop.
pub(crate) fn start_sp(http: SocketAddr, args: &[&str]) -> Peer {
    Peer::start(
        Command::new("python3")
            .arg(repo().join("tests/e2e/saml_sp.py"))
            .args(["--port", "0", "--idp-metadata-url"])
            .arg(format!("http://{http}/saml/idp/metadata"))
            .args(args),
        "pysaml2 and xmlsec1: run scripts/install-test-deps.sh",
    )
}

pub(crate) fn sp_url(sp: &Peer, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", sp.ready["port"])
}

/// From the SP's login link through portcullis (its login form when there
/// is no session) to the auto-post page; returns that page's form.
async fn to_response(
    b: &reqwest::Client,
    sp: &Peer,
    binding: &str,
    user: &str,
    pw: &str,
) -> (String, Vec<(String, String)>) {
    let r = b
        .get(sp_url(sp, &format!("/login?binding={binding}&relay=rs-1")))
        .send()
        .await
        .unwrap();
    let (mut at, mut page) = (r.url().clone(), r.text().await.unwrap());
    if binding == "post" {
        // The SP's own auto-post page with the AuthnRequest.
        let (action, fields) = form(&page).expect("the SP's POST form");
        assert!(action.ends_with("/saml/idp/sso"), "{page}");
        let r = b.post(&action).form(&fields).send().await.unwrap();
        (at, page) = (r.url().clone(), r.text().await.unwrap());
    }
    if at.path() == "/oauth2/login" {
        let (action, mut fields) = form(&page).expect("the login form");
        set(&mut fields, "username", user);
        set(&mut fields, "password", pw);
        let r = b
            .post(at.join(&action).unwrap())
            .form(&fields)
            .send()
            .await
            .unwrap();
        (at, page) = (r.url().clone(), r.text().await.unwrap());
    }
    let f = form(&page).unwrap_or_else(|| panic!("no Response form at {at}: {page}"));
    assert!(f.1.iter().any(|(k, _)| k == "SAMLResponse"), "{page}");
    f
}

/// A whole SP-initiated login; returns what the SP made of the Response.
pub(crate) async fn sso(
    b: &reqwest::Client,
    sp: &Peer,
    binding: &str,
    user: &str,
    pw: &str,
    acs: &str,
) -> Value {
    let (action, fields) = to_response(b, sp, binding, user, pw).await;
    assert_eq!(action, acs, "the Response goes to the registered ACS");
    let relay = fields.iter().find(|(k, _)| k == "RelayState");
    assert_eq!(relay.map(|r| r.1.as_str()), Some("rs-1"));
    b.post(sp_url(sp, "/acs"))
        .form(&fields)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// portcullis's published signing certificate, as a PEM file.
async fn published_cert(http: SocketAddr, dir: &Path) -> std::path::PathBuf {
    let md = reqwest::get(format!("http://{http}/saml/idp/metadata"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = md.find("<ds:X509Certificate>").unwrap() + "<ds:X509Certificate>".len();
    let b64 = &md[start..start + md[start..].find('<').unwrap()];
    let der = STANDARD.decode(b64).unwrap();
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for c in STANDARD.encode(der).as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(c).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    let p = dir.join("portcullis-idp.pem");
    std::fs::write(&p, pem).unwrap();
    p
}

/// `xmlsec1 --verify` of the first signature in `xml` (the Response's, or
/// the Assertion's when it is verified on its own).
pub(crate) fn xmlsec_verify(xml: &str, cert: &Path, dir: &Path, name: &str) {
    let f = dir.join(name);
    std::fs::write(&f, xml).unwrap();
    let out = Command::new("xmlsec1")
        .args(["--verify", "--enabled-key-data", "raw-x509-cert"])
        .args(["--enabled-reference-uris", "empty,same-doc"])
        .arg("--pubkey-cert-pem")
        .arg(cert)
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:protocol:Response",
        ])
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        ])
        .arg(&f)
        .output()
        .expect("xmlsec1 (run scripts/install-test-deps.sh)");
    assert!(
        out.status.success(),
        "xmlsec1 refused {name}: {}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Both signatures of a Response, each by xmlsec1: the Response's in place,
/// the Assertion's on the Assertion alone (exclusive c14n makes it whole).
pub(crate) fn xmlsec_verify_both(xml: &str, cert: &Path, dir: &Path, tag: &str) {
    xmlsec_verify(xml, cert, dir, &format!("{tag}-response.xml"));
    let a = xml.find("<saml:Assertion").unwrap();
    let end = xml.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
    xmlsec_verify(&xml[a..end], cert, dir, &format!("{tag}-assertion.xml"));
}

pub(crate) fn ava<'a>(v: &'a Value, name: &str) -> &'a str {
    v["ava"][name][0]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {v}"))
}

pub(crate) fn saml_metric(s: &Running, name: &str, labels: &str) -> f64 {
    let (_, m) = s.http_get("/metrics");
    metric(
        &m,
        &format!("portcullis_console_saml_{name}_total{{{labels}}}"),
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pysaml2_logs_the_demo_users_in_with_the_roles_of_the_one_table() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    // The demo console exactly as registered: entity ID = ACS URL.
    let sp = start_sp(
        http,
        &[
            "--entity-id",
            DEMO_ACS,
            "--acs",
            DEMO_ACS,
            "--want-response-signed",
        ],
    );
    let cert = published_cert(http, s.dir.path()).await;

    let alice = sso(
        &browser(),
        &sp,
        "redirect",
        "alice",
        "alice-pass-1",
        DEMO_ACS,
    )
    .await;
    assert_eq!(alice["ok"], true, "{alice}");
    assert_eq!(ava(&alice, "ec-name"), "alice@example.net");
    assert_eq!(ava(&alice, "ec-roles"), "OverlayAdmin");
    assert_eq!(ava(&alice, "ec-aag"), "Global");
    assert_eq!(alice["response_signed"], true);
    assert_eq!(alice["assertion_signed"], true);
    assert_eq!(alice["audience"][0], DEMO_ACS);
    assert!(
        alice["in_response_to"]
            .as_str()
            .is_some_and(|i| !i.is_empty())
    );
    assert_eq!(
        alice["issuer"],
        format!("http://{http}/saml/idp/metadata"),
        "{alice}"
    );
    xmlsec_verify_both(alice["xml"].as_str().unwrap(), &cert, s.dir.path(), "alice");

    // bob, through the HTTP-POST binding.
    let bob = sso(&browser(), &sp, "post", "bob", "bob-pass-2", DEMO_ACS).await;
    assert_eq!(bob["ok"], true, "{bob}");
    assert_eq!(ava(&bob, "ec-name"), "bob@example.net");
    assert_eq!(ava(&bob, "ec-roles"), "Helpdesk");
    assert_eq!(ava(&bob, "ec-aag"), "Asia-Admin");
    xmlsec_verify_both(bob["xml"].as_str().unwrap(), &cert, s.dir.path(), "bob");

    // mallory is disabled: a signed RequestDenied Response, no assertion.
    let mallory = sso(
        &browser(),
        &sp,
        "redirect",
        "mallory",
        "mallory-pass-4",
        DEMO_ACS,
    )
    .await;
    assert_eq!(mallory["ok"], false, "{mallory}");
    assert!(
        mallory["error"].as_str().unwrap().contains("RequestDenied"),
        "{mallory}"
    );
    let xml = mallory["xml"].as_str().unwrap();
    assert!(!xml.contains("Assertion"), "{xml}");
    assert!(xml.contains("status:Responder") && xml.contains("status:RequestDenied"));
    xmlsec_verify(xml, &cert, s.dir.path(), "mallory-response.xml");
    assert_eq!(
        saml_metric(
            &s,
            "responses",
            "console=\"orchestrator-saml\",status=\"success\""
        ),
        2.0
    );
    assert_eq!(
        saml_metric(
            &s,
            "responses",
            "console=\"orchestrator-saml\",status=\"denied\""
        ),
        1.0
    );

    // A second login in the same browser needs no password: the session.
    let b = browser();
    let first = sso(&b, &sp, "redirect", "alice", "alice-pass-1", DEMO_ACS).await;
    assert_eq!(first["ok"], true);
    let again = sso(&b, &sp, "redirect", "-", "-", DEMO_ACS).await;
    assert_eq!(ava(&again, "ec-roles"), "OverlayAdmin", "{again}");
}

/// An AuthnRequest as a console would send it, with the redirect binding.
pub(crate) fn authn_request(issuer: &str, acs: &str, extra: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // xs:dateTime from epoch seconds, by the civil-from-days algorithm.
    let (days, rem) = ((now / 86_400) as i64, now % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let t = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    format!(
        "{extra}<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_r1\" Version=\"2.0\" \
         IssueInstant=\"{t}\" AssertionConsumerServiceURL=\"{acs}\">\
         <saml:Issuer>{issuer}</saml:Issuer></samlp:AuthnRequest>"
    )
}

pub(crate) fn redirect_query(xml: &str) -> String {
    use std::io::Write as _;
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(xml.as_bytes()).unwrap();
    let b64 = STANDARD.encode(z.finish().unwrap());
    format!(
        "SAMLRequest={}",
        url::form_urlencoded::byte_serialize(b64.as_bytes()).collect::<String>()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_authn_requests_are_refused_counted_and_logged() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let sso = format!("http://{http}/saml/idp/sso");
    // The well-formed request is accepted (on to the login page).
    let ok = client
        .get(format!(
            "{sso}?{}",
            redirect_query(&authn_request(DEMO_ACS, DEMO_ACS, ""))
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303, "a good request goes on to the login");

    let nested = |n: usize| format!("{}{}", "<a>".repeat(n), "</a>".repeat(n));
    let one_mb = nested(150_000);
    assert!(one_mb.len() >= 1_000_000);
    let deep_small = authn_request(DEMO_ACS, DEMO_ACS, "").replace(
        "</samlp:AuthnRequest>",
        &format!("{}</samlp:AuthnRequest>", nested(5_000)),
    );
    let cases: [(&str, String, bool, &str, &str); 5] = [
        (
            "unregistered ACS",
            authn_request(DEMO_ACS, "http://evil.example/acs", ""),
            false,
            "orchestrator-saml",
            "unregistered_acs",
        ),
        (
            "unknown issuer",
            authn_request("http://unknown.example/sp", DEMO_ACS, ""),
            false,
            "unknown",
            "unknown_issuer",
        ),
        (
            "DOCTYPE",
            authn_request(DEMO_ACS, DEMO_ACS, "<!DOCTYPE r [<!ENTITY x \"y\">]>"),
            false,
            "unknown",
            "doctype",
        ),
        ("1 MB nested (POST)", one_mb, true, "unknown", "too_large"),
        ("deeply nested", deep_small, false, "unknown", "too_large"),
    ];
    for (what, xml, post, console, reason) in cases {
        let labels = format!("console=\"{console}\",reason=\"{reason}\"");
        let before = saml_metric(&s, "refusals", &labels);
        if post {
            // Base64 makes it 1.3 MB: over `web.max_body`, so the HTTP
            // layer refuses it before any SAML code reads it.
            let too_large = || {
                metric(
                    &s.http_get("/metrics").1,
                    "portcullis_http_requests_too_large_total",
                )
                .unwrap()
            };
            let was = too_large();
            let r = client
                .post(&sso)
                .form(&[("SAMLRequest", STANDARD.encode(&xml))])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 413, "{what}");
            assert!(r.headers().get("location").is_none(), "{what}: no redirect");
            assert_eq!(too_large(), was + 1.0, "{what} counted");
            s.wait_log("body over web.max_body");
            continue;
        }
        let r = if post {
            client
                .post(&sso)
                .form(&[("SAMLRequest", STANDARD.encode(&xml))])
                .send()
                .await
                .unwrap()
        } else {
            client
                .get(format!("{sso}?{}", redirect_query(&xml)))
                .send()
                .await
                .unwrap()
        };
        let status = r.status();
        let location = r.headers().get("location").cloned();
        let body = r.text().await.unwrap();
        assert_eq!(status, 400, "{what}: {body}");
        assert!(location.is_none(), "{what}: no redirect");
        assert!(
            !body.contains("SAMLResponse"),
            "{what}: nothing posted anywhere"
        );
        assert!(body.contains(reason), "{what}: {body}");
        assert_eq!(
            saml_metric(&s, "refusals", &labels),
            before + 1.0,
            "{what} counted"
        );
        let line = s.wait_log(reason);
        assert!(line.contains("console SAML AuthnRequest refused"), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_logout_both_ways_with_a_signing_console() {
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
    let acs = sp.get("acs").to_string();
    // A console that signs its requests: portcullis checks them with its
    // certificate and refuses unsigned ones.
    add_to_config(
        &s,
        &format!(
            "\n[[console]]\nname = \"sp-slo\"\nmode = \"saml\"\nentity_id = \"{}\"\n\
             acs_url = \"{acs}\"\nslo_url = \"{}\"\ncert_file = \"{}\"\n\
             require_signed_requests = true\nsign = \"assertion\"\n",
            sp.get("entity_id"),
            sp.get("slo"),
            sp.get("cert_file"),
        ),
    );
    let cert = published_cert(http, s.dir.path()).await;
    let b = browser();
    let me = |b: reqwest::Client| async move {
        b.get(format!("http://{http}/api/me"))
            .send()
            .await
            .unwrap()
            .status()
    };

    // SP-initiated: the console's signed LogoutRequest ends the session.
    let alice = sso(&b, &sp, "redirect", "alice", "alice-pass-1", &acs).await;
    assert_eq!(alice["ok"], true, "{alice}");
    assert_eq!(alice["response_signed"], false, "sign = \"assertion\"");
    let a = alice["xml"].as_str().unwrap();
    let (start, end) = (
        a.find("<saml:Assertion").unwrap(),
        a.find("</saml:Assertion>").unwrap() + 17,
    );
    xmlsec_verify(&a[start..end], &cert, s.dir.path(), "slo-assertion.xml");
    assert_eq!(me(b.clone()).await, 200);
    let r = b.get(sp_url(&sp, "/logout")).send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["logged_out"], true, "{body}");
    assert_eq!(me(b.clone()).await, 401, "the portcullis session ended");
    s.wait_log("SAML logout from the console");

    // portcullis-initiated: /logout sends the console a LogoutRequest
    // first, and ends the session when it answers.
    let alice = sso(&b, &sp, "redirect", "alice", "alice-pass-1", &acs).await;
    assert_eq!(alice["ok"], true, "{alice}");
    let r = logout(&b, http).await;
    assert_eq!(r.url().path(), "/login", "back at the login page");
    let state: Value = reqwest::get(sp_url(&sp, "/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["logged_out_by_idp"], 1, "{state}");
    assert_eq!(me(b.clone()).await, 401);
    s.wait_log("SAML logout answered by the console");

    // The HTTP-POST binding with an enveloped signature, checked likewise.
    let b = browser();
    let bob = sso(&b, &sp, "post", "bob", "bob-pass-2", &acs).await;
    assert_eq!(ava(&bob, "ec-roles"), "Helpdesk", "{bob}");

    // An unsigned request from this console is refused.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let xml = authn_request(sp.get("entity_id"), &acs, "");
    let r = client
        .get(format!(
            "http://{http}/saml/idp/sso?{}",
            redirect_query(&xml)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        saml_metric(&s, "refusals", "console=\"sp-slo\",reason=\"unsigned\""),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_through_the_upstream_saml_idp_gives_the_console_the_mapped_role() {
    use crate::saml::{provider_block, publish_sp_metadata, start_idp, write_accounts};
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let accounts = s.dir.path().join("saml-accounts.json");
    let sp_md = s.dir.path().join("sp-metadata.xml");
    write_accounts(
        &accounts,
        serde_json::json!({"dave": {"password": "dave-idp-pw", "email": "dave@example.com",
                                    "name": "Dave", "groups": ["helpdesk"]}}),
    );
    let idp = start_idp(&accounts, &sp_md, &[]);
    add_to_config(&s, &provider_block("corp-saml", http, &idp, ""));
    publish_sp_metadata(http, "corp-saml", &sp_md).await;
    let sp = start_sp(http, &["--entity-id", DEMO_ACS, "--acs", DEMO_ACS]);

    let b = browser();
    // The console sends the person to portcullis, whose login page offers
    // the upstream IdP.
    let r = b
        .get(sp_url(&sp, "/login?binding=redirect&relay=rs-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.url().path(), "/oauth2/login");
    let page = r.text().await.unwrap();
    assert!(page.contains("/auth/saml/corp-saml/start"), "{page}");
    // Upstream: the IdP's login form, then its auto-post page to our ACS.
    let r = b
        .get(format!("http://{http}/auth/saml/corp-saml/start"))
        .send()
        .await
        .unwrap();
    let at = r.url().clone();
    let (action, mut fields) = form(&r.text().await.unwrap()).expect("the IdP's login form");
    set(&mut fields, "username", "dave");
    set(&mut fields, "password", "dave-idp-pw");
    let r = b
        .post(at.join(&action).unwrap())
        .form(&fields)
        .send()
        .await
        .unwrap();
    let (acs, fields) = form(&r.text().await.unwrap()).expect("the IdP's POST form");
    assert_eq!(acs, format!("http://{http}/auth/saml/corp-saml/acs"));
    // Our ACS logs dave in and resumes the console login it interrupted.
    let r = b.post(&acs).form(&fields).send().await.unwrap();
    let at = r.url().clone();
    let page = r.text().await.unwrap();
    let (action, fields) = form(&page).unwrap_or_else(|| panic!("at {at}: {page}"));
    assert_eq!(action, DEMO_ACS);
    let dave: Value = b
        .post(sp_url(&sp, "/acs"))
        .form(&fields)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dave["ok"], true, "{dave}");
    // dave's upstream group `helpdesk` maps to the helpdesk role.
    assert_eq!(ava(&dave, "ec-name"), "dave@example.com");
    assert_eq!(ava(&dave, "ec-roles"), "Helpdesk");
    assert_eq!(ava(&dave, "ec-aag"), "Asia-Admin");
}

/// The certificates metadata publishes, in order (signing, then next).
pub(crate) async fn published(http: SocketAddr) -> Vec<String> {
    let md = reqwest::get(format!("http://{http}/saml/idp/metadata"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    md.split("<ds:X509Certificate>")
        .skip(1)
        .map(|p| p[..p.find('<').unwrap()].to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollover_signs_with_the_certificate_published_as_next() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let before = published(http).await;
    assert_eq!(before.len(), 2, "signing and next certificates");
    let (code, out, err) = run(&[
        "idp",
        "saml-rotate-key",
        "--config",
        s.config.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    add_to_config(&s, "\n");
    let after = published(http).await;
    assert_eq!(
        after[0], before[1],
        "the published next certificate signs now"
    );
    assert!(!before.contains(&after[1]), "a new next certificate");
    // A Response verifies with the certificate published ahead of time.
    let sp = start_sp(http, &["--entity-id", DEMO_ACS, "--acs", DEMO_ACS]);
    let alice = sso(
        &browser(),
        &sp,
        "redirect",
        "alice",
        "alice-pass-1",
        DEMO_ACS,
    )
    .await;
    assert_eq!(alice["ok"], true, "{alice}");
    assert!(alice["xml"].as_str().unwrap().contains(&before[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_initiated_login_is_off_by_default_and_works_where_enabled() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let b = browser();
    let r = b
        .get(format!("http://{http}/saml/idp/init/orchestrator-saml"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(!r.text().await.unwrap().contains("SAMLResponse"));
    assert_eq!(
        saml_metric(
            &s,
            "refusals",
            "console=\"orchestrator-saml\",reason=\"idp_initiated_off\""
        ),
        1.0
    );
    let sp = start_sp(http, &["--entity-id", "auto/md", "--acs", "auto/acs"]);
    let acs = sp.get("acs").to_string();
    add_to_config(
        &s,
        &format!(
            "\n[[console]]\nname = \"portal\"\nmode = \"saml\"\nentity_id = \"{}\"\n\
             acs_url = \"{acs}\"\nidp_initiated = true\n",
            sp.get("entity_id")
        ),
    );
    // Started at portcullis: login, then an unsolicited Response.
    let r = b
        .get(format!(
            "http://{http}/saml/idp/init/portal?RelayState=%2Fdashboard"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.url().path(), "/oauth2/login");
    let at = r.url().clone();
    let (action, mut fields) = form(&r.text().await.unwrap()).unwrap();
    set(&mut fields, "username", "bob");
    set(&mut fields, "password", "bob-pass-2");
    let page = b
        .post(at.join(&action).unwrap())
        .form(&fields)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (action, fields) = form(&page).unwrap();
    assert_eq!(action, acs);
    let bob: Value = b
        .post(sp_url(&sp, "/acs"))
        .form(&fields)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bob["ok"], true, "{bob}");
    assert_eq!(bob["relay_state"], "/dashboard");
    assert!(bob["in_response_to"].is_null(), "unsolicited: {bob}");
    assert_eq!(ava(&bob, "ec-aag"), "Asia-Admin");
}

//! Web login through a SAML 2.0 IdP. The IdP is pysaml2 (tests/saml-idp/
//! idp.py), a real implementation nobody here wrote; it reads our SP
//! metadata, validates our AuthnRequest and signs with xmlsec1. The browser
//! is reqwest with a cookie jar; it submits the IdP's auto-post form itself,
//! as a browser's script would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::*;

/// The pysaml2 IdP, killed on drop.
pub(crate) fn start_idp(accounts: &Path, sp_metadata: &Path, extra: &[&str]) -> Peer {
    Peer::start(
        Command::new("python3")
            .arg(repo().join("tests/saml-idp/idp.py"))
            .args(["--port", "0", "--accounts"])
            .arg(accounts)
            .arg("--sp-metadata")
            .arg(sp_metadata)
            .args(extra),
        "pysaml2 and xmlsec1: run scripts/install-test-deps.sh",
    )
}

pub(crate) fn provider_block(name: &str, http: SocketAddr, idp: &Peer, extra: &str) -> String {
    format!(
        "\n[[saml]]\nname = \"{name}\"\nidp_metadata_url = \"{md}\"\n\
         sp_entity_id = \"http://{http}/auth/saml/{name}/metadata\"\n\
         acs_url = \"http://{http}/auth/saml/{name}/acs\"\nhttp_timeout = 10\n{extra}",
        md = idp.get("metadata_url"),
    )
}

/// Through our /start, the IdP's login form and its auto-post page: returns
/// the browser, the IdP's POST-binding form (ACS and fields), unsent.
async fn to_acs(
    http: SocketAddr,
    provider: &str,
    user: &str,
    pw: &str,
) -> (reqwest::Client, String, Vec<(String, String)>) {
    let b = browser();
    let r = b
        .get(format!("http://{http}/auth/saml/{provider}/start"))
        .send()
        .await
        .unwrap();
    let at = r.url().clone();
    let status = r.status();
    let page = r.text().await.unwrap();
    assert_eq!(status, 200, "IdP login page at {at}: {page}");
    let (action, mut fields) = form(&page).expect("a form");
    set(&mut fields, "username", user);
    set(&mut fields, "password", pw);
    let r = b
        .post(at.join(&action).unwrap())
        .form(&fields)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let page = r.text().await.unwrap();
    assert_eq!(status, 200, "IdP login: {page}");
    let (acs, fields) = form(&page).expect("a form");
    assert!(fields.iter().any(|(k, _)| k == "SAMLResponse"), "{page}");
    (b, acs, fields)
}

/// A whole login; returns the browser (with its session) and `/api/me`.
async fn login(http: SocketAddr, provider: &str, user: &str, pw: &str) -> (reqwest::Client, Value) {
    let (b, acs, fields) = to_acs(http, provider, user, pw).await;
    assert_eq!(acs, format!("http://{http}/auth/saml/{provider}/acs"));
    let r = b.post(&acs).form(&fields).send().await.unwrap();
    let at = r.url().clone();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!((status.as_u16(), at.path()), (200, "/"), "{body}");
    let me = api_me(&b, http).await;
    (b, me)
}

pub(crate) fn write_accounts(path: &Path, accounts: Value) {
    std::fs::write(path, accounts.to_string()).unwrap();
}

pub(crate) async fn publish_sp_metadata(http: SocketAddr, provider: &str, to: &PathBuf) -> String {
    let r = reqwest::get(format!("http://{http}/auth/saml/{provider}/metadata"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let md = r.text().await.unwrap();
    std::fs::write(to, &md).unwrap();
    md
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_saml_idp_login_syncs_groups_into_the_one_table() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let accounts = s.dir.path().join("saml-accounts.json");
    let sp_md = s.dir.path().join("sp-metadata.xml");
    let alice = |groups: Value| {
        json!({"password": "alice-idp-pw", "email": "alice@example.com",
               "name": "Alice Example", "groups": groups})
    };
    let dave = json!({"password": "dave-idp-pw", "email": "dave@example.com",
                      "name": "Dave", "groups": ["helpdesk"]});
    write_accounts(
        &accounts,
        json!({"alice": alice(json!(["netadmins", "Everyone"])), "dave": dave}),
    );
    let idp = start_idp(&accounts, &sp_md, &[]);
    add_to_config(&s, &provider_block("corp-saml", http, &idp, ""));
    let md = publish_sp_metadata(http, "corp-saml", &sp_md).await;
    assert!(
        md.contains(&format!(
            "Location=\"http://{http}/auth/saml/corp-saml/acs\""
        )),
        "{md}"
    );

    let page = browser()
        .get(format!("http://{http}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("/auth/saml/corp-saml/start"), "{page}");

    // alice in netadmins at the IdP: network-admin, priv-lvl 15.
    let (alice_browser, me) = login(http, "corp-saml", "alice", "alice-idp-pw").await;
    assert_eq!(me["user"], "alice", "{me}");
    assert_eq!(me["provider"], "corp-saml");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["full_name"], "Alice Example");
    assert_network_admin_from_idp(&me);

    // The IdP moves alice to helpdesk: the next login follows.
    write_accounts(
        &accounts,
        json!({"alice": alice(json!(["helpdesk"])), "dave": dave}),
    );
    let (_, me) = login(http, "corp-saml", "alice", "alice-idp-pw").await;
    assert_eq!(me["role"], "helpdesk", "{me}");
    assert_eq!(me["priv-lvl"], 7);
    assert!(!strs(&me["groups"]).contains(&"netadmins"), "{me}");

    // dave: helpdesk; then an assertion without a groups attribute leaves
    // his memberships alone.
    let (_, me) = login(http, "corp-saml", "dave", "dave-idp-pw").await;
    assert_eq!(me["role"], "helpdesk", "{me}");
    let mut no_groups = dave.clone();
    no_groups["groups"] = Value::Null;
    write_accounts(
        &accounts,
        json!({"alice": alice(json!(["helpdesk"])), "dave": no_groups}),
    );
    let (dave_browser, me) = login(http, "corp-saml", "dave", "dave-idp-pw").await;
    assert_eq!(me["role"], "helpdesk", "{me}");
    assert!(strs(&me["groups"]).contains(&"helpdesk"), "{me}");

    // Logout ends our session, then sends the browser to the IdP's SLO.
    let r = logout(&dave_browser, http).await;
    assert!(
        r.url().as_str().starts_with(idp.get("slo_url")),
        "logout ended at {}",
        r.url()
    );
    let r = dave_browser
        .get(format!("http://{http}/api/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    drop(alice_browser);

    // The same response posted twice: the second is a replay.
    let (b, acs, fields) = to_acs(http, "corp-saml", "alice", "alice-idp-pw").await;
    let first = b.post(&acs).form(&fields).send().await.unwrap();
    assert_eq!(first.url().path(), "/");
    let again = b.post(&acs).form(&fields).send().await.unwrap();
    assert_eq!(again.status(), 401);
    s.wait_log("replay");

    // A response to a login another browser started is refused.
    let (_, acs, fields) = to_acs(http, "corp-saml", "alice", "alice-idp-pw").await;
    let r = browser().post(&acs).form(&fields).send().await.unwrap();
    assert_eq!(r.status(), 401);

    let (_, metrics) = s.http_get("/metrics");
    assert_eq!(
        metric(
            &metrics,
            "portcullis_saml_logins_total{provider=\"corp-saml\",result=\"success\"}"
        ),
        Some(5.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "portcullis_saml_verification_failures_total{provider=\"corp-saml\",reason=\"replay\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "portcullis_saml_verification_failures_total{provider=\"corp-saml\",reason=\"in_response_to\"}"
        ),
        Some(1.0),
        "{metrics}"
    );

    // "Save and Test" against the live IdP, then against a dead one.
    let config = s.config.to_str().unwrap().to_string();
    let (code, out, err) = run(&[
        "idp",
        "test",
        "--config",
        &config,
        "--provider",
        "corp-saml",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("success") && out.contains("certificate"),
        "{out}"
    );
    drop(idp);
    let (code, out, _) = run(&[
        "idp",
        "test",
        "--config",
        &config,
        "--provider",
        "corp-saml",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL") && out.contains("metadata"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_requests_and_encrypted_assertions_interoperate_with_the_real_idp() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let accounts = s.dir.path().join("saml-accounts.json");
    let sp_md = s.dir.path().join("sp-metadata.xml");
    write_accounts(
        &accounts,
        json!({"alice": {"password": "alice-idp-pw", "email": "alice@example.com",
                         "name": "Alice Example", "groups": ["netadmins"]}}),
    );
    // The IdP insists on signed AuthnRequests (pysaml2 verifies the
    // redirect-binding signature against the certificate in our metadata),
    // signs its Response and encrypts the assertion to that certificate.
    let idp = start_idp(
        &accounts,
        &sp_md,
        &[
            "--want-signed-requests",
            "--sign-response",
            "--encrypt-assertion",
        ],
    );
    let data = repo().join("tests/data/saml");
    let keys = format!(
        "sp_key_file = \"{}\"\nsp_cert_file = \"{}\"\n",
        data.join("sp-key.pem").display(),
        data.join("sp-cert.pem").display()
    );
    add_to_config(&s, &provider_block("enc", http, &idp, &keys));
    let md = publish_sp_metadata(http, "enc", &sp_md).await;
    assert!(
        md.contains("AuthnRequestsSigned=\"true\"") && md.contains("use=\"encryption\""),
        "{md}"
    );

    // Our redirect carries SigAlg and Signature.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://{http}/auth/saml/enc/start"))
        .send()
        .await
        .unwrap();
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        to.contains("&SigAlg=") && to.contains("&Signature="),
        "{to}"
    );

    let (b, acs, fields) = to_acs(http, "enc", "alice", "alice-idp-pw").await;
    let posted = &fields.iter().find(|(k, _)| k == "SAMLResponse").unwrap().1;
    use base64::Engine as _;
    let xml = base64::engine::general_purpose::STANDARD
        .decode(posted)
        .unwrap();
    let xml = String::from_utf8(xml).unwrap();
    assert!(
        xml.contains("EncryptedAssertion") && !xml.contains("<saml:Assertion"),
        "{xml}"
    );
    let r = b.post(&acs).form(&fields).send().await.unwrap();
    let at = r.url().path().to_string();
    assert_eq!(at, "/", "{}", r.text().await.unwrap());
    let me = api_me(&b, http).await;
    assert_eq!(
        (me["user"].as_str(), me["role"].as_str()),
        (Some("alice"), Some("network-admin")),
        "{me}"
    );

    // Forged responses posted to the ACS are refused and counted by reason.
    for (file, reason) in [
        ("unsigned.xml", "unsigned"),
        ("doctype-entity.xml", "dtd"),
        ("xsw4.xml", "assertion_count"),
    ] {
        let body = std::fs::read(data.join(file)).unwrap();
        let enc = base64::engine::general_purpose::STANDARD.encode(body);
        let r = browser()
            .post(&acs)
            .form(&[("SAMLResponse", enc)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{file}");
        let (_, metrics) = s.http_get("/metrics");
        let series = format!(
            "portcullis_saml_verification_failures_total{{provider=\"enc\",reason=\"{reason}\"}}"
        );
        assert_eq!(metric(&metrics, &series), Some(1.0), "{file}: {metrics}");
    }
}

/// An IdP login whom no mapping and no default role covers: the error page,
/// no session, counted as `no_role`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmapped_external_user_gets_the_error_page_and_no_session() {
    let dir = tempfile::tempdir().unwrap();
    let text = demo_config(dir.path()).replace("default_role = \"read-only\"\n", "");
    assert!(!text.contains("default_role"));
    let s = Running::start_in(dir, &text);
    let http = s.addrs.http.unwrap();
    let accounts = s.dir.path().join("saml-accounts.json");
    let sp_md = s.dir.path().join("sp-metadata.xml");
    write_accounts(
        &accounts,
        json!({"erin": {"password": "erin-idp-pw", "email": "erin@example.com",
                        "name": "Erin", "groups": ["contractors"]}}),
    );
    let idp = start_idp(&accounts, &sp_md, &[]);
    add_to_config(&s, &provider_block("corp-saml", http, &idp, ""));
    publish_sp_metadata(http, "corp-saml", &sp_md).await;
    let (b, acs, fields) = to_acs(http, "corp-saml", "erin", "erin-idp-pw").await;
    let r = b.post(&acs).form(&fields).send().await.unwrap();
    assert_eq!(r.status(), 403, "login ended at {}", r.url());
    let page = r.text().await.unwrap();
    assert!(
        page.contains("none of your groups maps to a role"),
        "{page}"
    );
    let me = b.get(format!("http://{http}/api/me")).send().await.unwrap();
    assert_eq!(me.status(), 401);
    let (_, m) = s.http_get("/metrics");
    assert_eq!(
        metric(
            &m,
            "portcullis_saml_logins_total{provider=\"corp-saml\",result=\"no_role\"}"
        ),
        Some(1.0),
        "{m}"
    );
}

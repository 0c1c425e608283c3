//! Web login through an OpenID Provider. With a real one (the npm package
//! `oidc-provider`, tests/idp/idp.mjs) driven by a scripted browser (reqwest
//! with a cookie jar following redirects): group sync into the one role
//! table, `/api/me`, the admin API, `portcullis idp test`. With a scripted
//! loopback IdP that hands out crafted ID tokens: every refusal the issue
//! lists, each with its reason in the log.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::harness::*;

const CLIENT_ID: &str = "portcullis-test";
const CLIENT_SECRET: &str = "a-client-secret-for-tests";

/// The npm IdP (its ready line carries `issuer`), killed on drop.
pub(crate) fn start_idp(redirect_uri: &str, accounts: &Path) -> Peer {
    let dir = repo().join("tests/idp");
    assert!(
        dir.join("node_modules/oidc-provider").exists(),
        "run scripts/install-test-deps.sh (tests/idp/install.sh)"
    );
    Peer::start(
        Command::new("node")
            .arg(dir.join("idp.mjs"))
            .args(["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET])
            .args(["--redirect-uri", redirect_uri])
            .arg("--accounts")
            .arg(accounts),
        "node and tests/idp: run scripts/install-test-deps.sh",
    )
}

pub(crate) fn provider_block(name: &str, issuer: &str, http: SocketAddr) -> String {
    format!(
        "\n[[oidc]]\nname = \"{name}\"\nissuer = \"{issuer}\"\nclient_id = \"{CLIENT_ID}\"\n\
         client_secret = \"{CLIENT_SECRET}\"\nredirect_uri = \"http://{http}/auth/oidc/{name}/callback\"\n\
         http_timeout = 10\n"
    )
}

/// A whole login in a fresh browser; returns the browser (with its session
/// cookie) and what `/api/me` says.
async fn login(http: SocketAddr, provider: &str) -> (reqwest::Client, Value) {
    let b = browser();
    let r = b
        .get(format!("http://{http}/auth/oidc/{provider}/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "login ended at {}", r.url());
    assert_eq!(r.url().path(), "/", "login ended at {}", r.url());
    let me = api_me(&b, http).await;
    (b, me)
}

pub(crate) fn write_accounts(path: &Path, current: &str, accounts: Value) {
    std::fs::write(
        path,
        json!({"current": current, "accounts": accounts}).to_string(),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_provider_login_syncs_groups_into_the_one_table() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let accounts = s.dir.path().join("accounts.json");
    let alice = |groups: Value| {
        json!({"sub": "u-alice", "preferred_username": "alice.idp", "email": "alice@example.com",
               "name": "Alice Example", "groups": groups})
    };
    let dave = json!({"sub": "u-dave", "preferred_username": "dave", "email": "dave@example.com",
                      "name": "Dave", "groups": ["helpdesk"]});
    write_accounts(
        &accounts,
        "u-alice",
        json!([alice(json!(["netadmins", "Everyone"])), dave]),
    );
    let idp = start_idp(&format!("http://{http}/auth/oidc/corp/callback"), &accounts);
    add_to_config(&s, &provider_block("corp", idp.get("issuer"), http));

    // The login page offers the provider and the local form.
    let page = browser()
        .get(format!("http://{http}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("/auth/oidc/corp/start") && page.contains("name=\"password\""));

    // alice in netadmins at the IdP: network-admin, priv-lvl 15.
    let (admin_browser, me) = login(http, "corp").await;
    assert_eq!(me["user"], "alice.idp", "{me}");
    assert_network_admin_from_idp(&me);

    // network-admin may use the admin API; it lists the external user.
    let users: Value = admin_browser
        .get(format!("http://{http}/api/users"))
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
    let mappings: Value = admin_browser
        .get(format!("http://{http}/api/mappings"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mappings[0]["group"], "netadmins", "{mappings}");

    // The IdP moves alice to helpdesk: the next login follows.
    write_accounts(
        &accounts,
        "u-alice",
        json!([alice(json!(["helpdesk"])), dave]),
    );
    let (_, me) = login(http, "corp").await;
    assert_eq!(me["role"], "helpdesk", "{me}");
    assert_eq!(me["priv-lvl"], 7);
    assert!(!strs(&me["groups"]).contains(&"netadmins"), "{me}");

    // dave: helpdesk, no administration.
    write_accounts(
        &accounts,
        "u-dave",
        json!([alice(json!(["helpdesk"])), dave.clone()]),
    );
    let (dave_browser, me) = login(http, "corp").await;
    assert_eq!(
        (me["user"].as_str(), me["role"].as_str()),
        (Some("dave"), Some("helpdesk"))
    );
    let r = dave_browser
        .get(format!("http://{http}/api/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A token without any groups claim leaves dave's memberships alone.
    let mut no_groups = dave.clone();
    no_groups.as_object_mut().unwrap().remove("groups");
    write_accounts(
        &accounts,
        "u-dave",
        json!([alice(json!(["helpdesk"])), no_groups]),
    );
    let (_, me) = login(http, "corp").await;
    assert_eq!(me["role"], "helpdesk", "{me}");
    assert!(strs(&me["groups"]).contains(&"helpdesk"));

    // Logout ends the session.
    let r = dave_browser
        .get(format!("http://{http}/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.url().path(), "/login");
    let r = dave_browser
        .get(format!("http://{http}/api/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let (_, metrics) = s.http_get("/metrics");
    assert_eq!(
        metric(
            &metrics,
            "portcullis_oidc_logins_total{provider=\"corp\",result=\"success\"}"
        ),
        Some(4.0),
        "{metrics}"
    );

    // "Save and Test" against the live provider, and against a dead one.
    let config = s.config.to_str().unwrap().to_string();
    let (code, out, err) = run(&["idp", "test", "--config", &config, "--provider", "corp"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("success"), "{out}");
    drop(idp);
    let (code, out, _) = run(&["idp", "test", "--config", &config, "--provider", "corp"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL") && out.contains("discovery"), "{out}");
}

/// Provider names come from the URL; only configured ones may become metric
/// labels, or anyone could grow `/metrics` without bound.
#[test]
fn unknown_provider_paths_are_404s_that_leave_the_metrics_alone() {
    let s = Running::start_demo();
    let (_, before) = s.http_get("/metrics");
    for i in 0..300 {
        for path in [
            format!("/auth/oidc/nope{i}/callback?code=x&state=y"),
            format!("/auth/oidc/nope{i}/callback?error=access_denied"),
            format!("/auth/oidc/nope{i}/start"),
            format!("/auth/saml/nope{i}/start"),
            format!("/auth/saml/nope{i}/metadata"),
        ] {
            assert_eq!(s.http_get(&path).0, 404, "{path}");
        }
    }
    let (_, after) = s.http_get("/metrics");
    assert!(!after.contains("nope"), "{after}");
    assert_eq!(before.len(), after.len(), "{before}\n---\n{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_users_log_in_with_the_form_and_get_the_same_role() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let b = browser();
    let r = b
        .post(format!("http://{http}/login"))
        .form(&[("username", "bob"), ("password", "bob-pass-2")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.url().path(), "/");
    let me = api_me(&b, http).await;
    assert_eq!(
        (me["source"].as_str(), me["role"].as_str()),
        (Some("local"), Some("helpdesk"))
    );
    assert_eq!(me["rbac-aag"], "Asia-Admin");
    let wrong = browser()
        .post(format!("http://{http}/login"))
        .form(&[("username", "bob"), ("password", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.url().path(), "/login");
    // Session cookies are HttpOnly and SameSite=Lax.
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("http://{http}/login"))
        .form(&[("username", "alice"), ("password", "alice-pass-1")])
        .send()
        .await
        .unwrap();
    let cookie = raw.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
}

// --- a scripted IdP for the refusals ------------------------------------------

#[derive(Default)]
struct Script {
    jwks: Value,
    id_token: String,
}

struct FakeIdp {
    issuer: String,
    script: Arc<Mutex<Script>>,
}

fn fake_idp() -> FakeIdp {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", l.local_addr().unwrap());
    let script = Arc::new(Mutex::new(Script::default()));
    let (sc, iss) = (script.clone(), issuer.clone());
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let _ = respond(s, &sc, &iss);
        }
    });
    FakeIdp { issuer, script }
}

fn respond(mut s: TcpStream, script: &Mutex<Script>, issuer: &str) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut first = String::new();
    r.read_line(&mut first)?;
    let path = first.split(' ').nth(1).unwrap_or("").to_string();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    let out = {
        let sc = script.lock().unwrap();
        match path.as_str() {
            "/.well-known/openid-configuration" => json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/auth"),
                "token_endpoint": format!("{issuer}/token"),
                "jwks_uri": format!("{issuer}/jwks"),
                "id_token_signing_alg_values_supported": ["RS256"],
            }),
            "/jwks" => sc.jwks.clone(),
            "/token" => {
                json!({"id_token": sc.id_token, "token_type": "Bearer", "access_token": "x"})
            }
            _ => json!({}),
        }
        .to_string()
    };
    write!(
        s,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{out}",
        out.len()
    )
}

const RSA_PEM: &[u8] = include_bytes!("../../src/oidc/testdata/rsa1.pem");
const RSA_PUB_PEM: &[u8] = include_bytes!("../../src/oidc/testdata/rsa1.pub.pem");

fn jwks() -> Value {
    let key = EncodingKey::from_rsa_pem(RSA_PEM).unwrap();
    let mut j = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
    j.common.key_id = Some("k1".into());
    json!({ "keys": [j] })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token with these claims, signed as `alg` says: RS256 with the IdP's
/// key, HS256 keyed with the IdP's *public* key (the classic confusion), or
/// `none` with an empty signature.
fn token(alg: &str, claims: Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": "k1", "typ": "JWT"}).to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    let msg = format!("{h}.{c}");
    let sig = match alg {
        "RS256" => jsonwebtoken::crypto::sign(
            msg.as_bytes(),
            &EncodingKey::from_rsa_pem(RSA_PEM).unwrap(),
            Algorithm::RS256,
        )
        .unwrap(),
        "HS256" => jsonwebtoken::crypto::sign(
            msg.as_bytes(),
            &EncodingKey::from_secret(RSA_PUB_PEM),
            Algorithm::HS256,
        )
        .unwrap(),
        _ => String::new(),
    };
    format!("{msg}.{sig}")
}

/// Starts a login at our server without following it: the redirect to the
/// IdP carries the state and nonce; the browser keeps the login cookie.
async fn start(b: &reqwest::Client, http: SocketAddr) -> (String, String) {
    let r = b
        .get(format!("http://{http}/auth/oidc/fake/start"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let to = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let q = |k: &str| {
        to.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    (q("state"), q("nonce"))
}

/// A log line's `reason` field, however the formatter quotes it.
fn has_reason(line: &str, reason: &str) -> bool {
    line.contains(&format!("reason={reason}")) || line.contains(&format!("reason=\"{reason}\""))
}

async fn callback(b: &reqwest::Client, http: SocketAddr, state: &str) -> reqwest::StatusCode {
    let mut url = reqwest::Url::parse(&format!("http://{http}/auth/oidc/fake/callback")).unwrap();
    url.query_pairs_mut()
        .append_pair("code", "any-code")
        .append_pair("state", state);
    b.get(url).send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_tokens_and_replays_are_refused_with_the_reason_logged() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let idp = fake_idp();
    idp.script.lock().unwrap().jwks = jwks();
    add_to_config(&s, &provider_block("fake", &idp.issuer, http));
    let iss = idp.issuer.clone();
    let good = |nonce: &str| {
        json!({"iss": iss, "aud": CLIENT_ID, "sub": "s-1", "preferred_username": "eve",
               "exp": now() + 300, "iat": now(), "nonce": nonce, "groups": ["netadmins"]})
    };
    let no_redirects = || {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    };

    // Each crafted token: refused (401), reason in the log.
    type Craft = Box<dyn Fn(Value, &str) -> String>;
    let cases: Vec<(&str, Craft)> = vec![
        ("alg_refused", Box::new(|c, _| token("none", c))),
        ("alg_refused", Box::new(|c, _| token("HS256", c))),
        (
            "iss",
            Box::new(|mut c, _| {
                c["iss"] = "https://evil.example".into();
                token("RS256", c)
            }),
        ),
        (
            "aud",
            Box::new(|mut c, _| {
                c["aud"] = "someone-else".into();
                token("RS256", c)
            }),
        ),
        (
            "expired",
            Box::new(|mut c, _| {
                c["exp"] = (now() - 3600).into();
                c["iat"] = (now() - 7200).into();
                token("RS256", c)
            }),
        ),
        (
            "nonce",
            Box::new(|mut c, _| {
                c["nonce"] = "not-the-nonce".into();
                token("RS256", c)
            }),
        ),
    ];
    for (reason, craft) in &cases {
        let b = no_redirects();
        let (state, nonce) = start(&b, http).await;
        idp.script.lock().unwrap().id_token = craft(good(&nonce), &nonce);
        assert_eq!(callback(&b, http, &state).await, 401, "{reason}");
        let line = s.wait_log("oidc login failed");
        assert!(has_reason(&line, reason), "{reason}: {line}");
    }

    // A good token logs in once; the same callback again (a replay) fails.
    let b = no_redirects();
    let (state, nonce) = start(&b, http).await;
    idp.script.lock().unwrap().id_token = token("RS256", good(&nonce));
    assert_eq!(callback(&b, http, &state).await, 303);
    assert_eq!(callback(&b, http, &state).await, 401);
    let line = s.wait_log("oidc login refused");
    assert!(has_reason(&line, "state"), "{line}");

    // A state this browser did not start with is refused too.
    let b = no_redirects();
    let (_mine, _) = start(&b, http).await;
    let other = no_redirects();
    let (theirs, _) = start(&other, http).await;
    assert_eq!(callback(&b, http, &theirs).await, 401);
    let line = s.wait_log("oidc login refused");
    assert!(has_reason(&line, "state"), "{line}");

    let (_, metrics) = s.http_get("/metrics");
    for reason in ["alg_refused", "iss", "aud", "expired", "nonce"] {
        let series = format!(
            "portcullis_oidc_token_verification_failures_total{{provider=\"fake\",reason=\"{reason}\"}}"
        );
        assert!(
            metric(&metrics, &series).unwrap_or(0.0) >= 1.0,
            "{series}\n{metrics}"
        );
    }
}

/// An external user whom no mapping and no default role covers gets a clear
/// answer and no session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmapped_external_user_gets_the_error_page_and_no_session() {
    let dir = tempfile::tempdir().unwrap();
    let text = demo_config(dir.path()).replace("default_role = \"read-only\"\n", "");
    assert!(!text.contains("default_role"));
    let s = Running::start_in(dir, &text);
    let http = s.addrs.http.unwrap();
    let accounts = s.dir.path().join("accounts.json");
    let erin = json!({"sub": "u-erin", "preferred_username": "erin", "email": "erin@example.com",
                      "name": "Erin", "groups": ["contractors"]});
    write_accounts(&accounts, "u-erin", json!([erin]));
    let idp = start_idp(&format!("http://{http}/auth/oidc/corp/callback"), &accounts);
    add_to_config(&s, &provider_block("corp", idp.get("issuer"), http));

    let b = browser();
    let r = b
        .get(format!("http://{http}/auth/oidc/corp/start"))
        .send()
        .await
        .unwrap();
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
            "portcullis_oidc_logins_total{provider=\"corp\",result=\"no_role\"}"
        ),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_may_not_be_framed_and_personal_answers_not_stored() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let b = browser();
    for (path, stored) in [
        ("/login", false),
        ("/api/me", false),
        ("/auth/oidc/nope/start", false),
        ("/metrics", true),
        ("/healthz", true),
    ] {
        let r = b.get(format!("http://{http}{path}")).send().await.unwrap();
        let h = r.headers();
        let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(get("x-frame-options").as_deref(), Some("DENY"), "{path}");
        assert_eq!(
            get("content-security-policy").as_deref(),
            Some("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(get("x-content-type-options").as_deref(), Some("nosniff"));
        assert_eq!(
            get("cache-control").as_deref() == Some("no-store"),
            !stored,
            "{path}"
        );
    }
}

/// With `local_login = false`, local passwords are taken only through the
/// break-glass path, and only from the networks configured for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_local_login_takes_passwords_only_on_the_break_glass_path() {
    let dir = tempfile::tempdir().unwrap();
    let text = demo_config(dir.path()).replace(
        "local_login = true\n",
        "local_login = false\nbreak_glass_cidrs = [\"192.0.2.0/24\"]\n",
    );
    assert!(text.contains("break_glass_cidrs"));
    let s = Running::start_in(dir, &text);
    let http = s.addrs.http.unwrap();
    let post = |path: &'static str| async move {
        browser()
            .post(format!("http://{http}{path}"))
            .form(&[("username", "bob"), ("password", "bob-pass-2")])
            .send()
            .await
            .unwrap()
            .status()
    };
    // The plain form is gone; the break-glass one is not from here.
    assert_eq!(post("/login").await, 403);
    assert_eq!(post("/login?local=1").await, 403);
    let page = browser()
        .get(format!("http://{http}/login?local=1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("action=\"/login?local=1\""), "{page}");
    // Loopback allowed for break-glass: that path works, the plain one not.
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("192.0.2.0/24", "127.0.0.0/8");
    std::fs::write(&s.config, text).unwrap();
    s.signal(libc::SIGHUP);
    s.wait_log("configuration reloaded");
    assert_eq!(post("/login").await, 403);
    assert_eq!(post("/login?local=1").await, 200);
}

/// Wrong passwords lock the name out after the configured count; an
/// administrator sees the lockout and ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_web_logins_are_throttled_and_an_admin_can_clear_them() {
    let dir = tempfile::tempdir().unwrap();
    let text = demo_config(dir.path()).replace("[server]\n", "[server]\nlogin_failures = 3\n");
    let s = Running::start_in(dir, &text);
    let http = s.addrs.http.unwrap();
    let login = |user: &'static str, password: &'static str| async move {
        let b = browser();
        let r = b
            .post(format!("http://{http}/login"))
            .form(&[("username", user), ("password", password)])
            .send()
            .await
            .unwrap();
        let path = r.url().path().to_string();
        let body = r.text().await.unwrap();
        (b, path, body)
    };
    for _ in 0..3 {
        let (_, path, body) = login("bob", "guess").await;
        assert_eq!(path, "/login");
        assert!(body.contains("Login failed"), "{body}");
    }
    // Locked: the right password too, with the reason shown.
    let (_, path, body) = login("bob", "bob-pass-2").await;
    assert_eq!(path, "/login");
    assert!(body.contains("Too many failed logins"), "{body}");
    // Another person is not affected; alice administers.
    let (admin, path, _) = login("alice", "alice-pass-1").await;
    assert_eq!(path, "/");
    let locked: Value = admin
        .get(format!("http://{http}/api/lockouts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        locked
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["user"] == "bob"),
        "{locked}"
    );
    let cleared: Value = admin
        .post(format!("http://{http}/api/lockouts/clear?user=bob"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["cleared"], true);
    let (_, path, _) = login("bob", "bob-pass-2").await;
    assert_eq!(path, "/");
    let (_, m) = s.http_get("/metrics");
    assert!(
        metric(&m, "portcullis_login_throttled_total").unwrap_or(0.0) >= 1.0,
        "{m}"
    );
}

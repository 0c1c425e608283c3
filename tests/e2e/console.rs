//! portcullis as the OAuth/OIDC server and JWT issuer for appliance web
//! consoles, driven by libraries nobody on the team wrote: authlib (the
//! console's OAuth client, ID token checks) and PyJWT (JWT mode), through
//! tests/e2e/console_client.py. Refusals are driven with reqwest, each
//! checked for its answer, its metric and its log line.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

const REDIRECT: &str = "http://127.0.0.1:9600/gms/rest/authentication/oauth/redirect";

/// Runs the console client; returns its JSON answer.
fn console(http: SocketAddr, args: &[&str]) -> Value {
    // `--opt=value` (every option of the client takes a value): a base64url
    // token may start with `-`, which argparse would take for an option.
    let mut joined: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match it.clone().next() {
            Some(v) if a.starts_with("--") => {
                joined.push(format!("{a}={v}"));
                it.next();
            }
            _ => joined.push(a.to_string()),
        }
    }
    let out = Command::new("python3")
        .arg(repo().join("tests/e2e/console_client.py"))
        .args(&joined)
        .args(["--base", &format!("http://{http}")])
        .output()
        .expect("python3 (run scripts/install-test-deps.sh for authlib and PyJWT)");
    assert!(
        out.status.success(),
        "console_client {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "console_client {args:?}: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn login(http: SocketAddr, user: &str, password: &str) -> Value {
    console(http, &["login", "--user", user, "--password", password])
}

fn assert_claims(v: &Value, email: &str, roles: &str, aag: &str) {
    let c = &v["claims"];
    assert_eq!(c["email"], email, "{v}");
    assert_eq!(c["ec-roles"], roles, "{v}");
    assert_eq!(c["ec-aag"], aag, "{v}");
    assert_eq!(c["aud"], "orchestrator", "{v}");
}

fn refusals(s: &Running, console: &str, reason: &str) -> f64 {
    let (_, m) = s.http_get("/metrics");
    metric(
        &m,
        &format!("portcullis_console_refusals_total{{console=\"{console}\",reason=\"{reason}\"}}"),
    )
    .unwrap_or(0.0)
}

#[test]
fn authlib_logs_in_each_demo_user_with_the_claims_of_the_one_table() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let alice = login(http, "alice", "alice-pass-1");
    assert_claims(&alice, "alice@example.net", "OverlayAdmin", "Global");
    assert_eq!(alice["claims"]["sub"], "alice");
    assert!(
        alice["refresh_token"].is_string(),
        "offline_access: {alice}"
    );
    let bob = login(http, "bob", "bob-pass-2");
    assert_claims(&bob, "bob@example.net", "Helpdesk", "Asia-Admin");
    // carol maps to nothing: the default role's values.
    let carol = login(http, "carol", "carol-pass-3");
    assert_claims(&carol, "carol@example.net", "Monitor", "Global");
    // mallory is disabled: access_denied back at the console, no code.
    let mallory = login(http, "mallory", "mallory-pass-4");
    assert_eq!(mallory["error"], "access_denied", "{mallory}");
    assert_eq!(mallory["state_ok"], true, "{mallory}");
    assert_eq!(refusals(&s, "orchestrator", "access_denied"), 1.0);
    s.wait_log("account disabled");

    // The refresh token works once; replayed, it is refused and its whole
    // family goes (the token the first refresh gave is dead too).
    let rt = alice["refresh_token"].as_str().unwrap();
    let first = console(http, &["refresh", "--token", rt]);
    assert_claims(&first, "alice@example.net", "OverlayAdmin", "Global");
    let replay = console(http, &["refresh", "--token", rt]);
    assert_eq!(replay["error"], "invalid_grant", "{replay}");
    let next = first["refresh_token"].as_str().unwrap();
    let after = console(http, &["refresh", "--token", next]);
    assert_eq!(after["error"], "invalid_grant", "{after}");
    assert_eq!(refusals(&s, "orchestrator", "refresh_replayed"), 1.0);
    s.wait_log("refresh token replayed");

    // client_secret_post works as well as basic.
    let post = console(
        http,
        &[
            "login",
            "--user",
            "bob",
            "--password",
            "bob-pass-2",
            "--auth-method",
            "client_secret_post",
        ],
    );
    assert_claims(&post, "bob@example.net", "Helpdesk", "Asia-Admin");
}

fn edit_config(s: &Running, from: &str, to: &str) {
    let text = std::fs::read_to_string(&s.config).unwrap();
    assert!(text.contains(from), "{from} not in the config");
    std::fs::write(&s.config, text.replacen(from, to, 1)).unwrap();
    s.signal(libc::SIGHUP);
    s.wait_log("configuration reloaded");
}

#[test]
fn refresh_decides_again_after_a_reload_and_refuses_a_disabled_user() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let alice = login(http, "alice", "alice-pass-1");
    assert_claims(&alice, "alice@example.net", "OverlayAdmin", "Global");
    edit_config(&s, "groups = [\"netadmins\"]", "groups = [\"helpdesk\"]");
    let moved = console(
        http,
        &[
            "refresh",
            "--token",
            alice["refresh_token"].as_str().unwrap(),
        ],
    );
    assert_claims(&moved, "alice@example.net", "Helpdesk", "Asia-Admin");
    edit_config(
        &s,
        "full_name = \"Alice Admin\"\n",
        "full_name = \"Alice Admin\"\nenabled = false\n",
    );
    let disabled = console(
        http,
        &[
            "refresh",
            "--token",
            moved["refresh_token"].as_str().unwrap(),
        ],
    );
    assert_eq!(disabled["error"], "invalid_grant", "{disabled}");
    s.wait_log("refresh: the table refuses the user now");
}

#[test]
fn jwt_mode_tokens_verify_with_pyjwt_by_hmac_secret_and_by_the_jwks() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let iss = format!("http://{http}");
    let hs = console(
        http,
        &[
            "jwt",
            "--user",
            "bob",
            "--password",
            "bob-pass-2",
            "--issuer",
            &iss,
        ],
    );
    assert_eq!(hs["state_ok"], true, "{hs}");
    assert_eq!(hs["token_type"], "Bearer", "{hs}");
    assert_eq!(hs["wrong_key_accepted"], false, "{hs}");
    assert_eq!(
        hs["params"],
        serde_json::json!([
            "access_token",
            "expires_in",
            "id_token",
            "state",
            "token_type"
        ])
    );
    for t in ["id_token", "access_token"] {
        assert_eq!(hs[t]["email"], "bob@example.net", "{hs}");
        assert_eq!(hs[t]["ec-roles"], "Helpdesk", "{hs}");
        assert_eq!(hs[t]["ec-aag"], "Asia-Admin", "{hs}");
        assert_eq!(hs[t]["aud"], "orchestrator-jwt", "{hs}");
    }
    add_to_config(
        &s,
        "\n[[console]]\nname = \"jwt-rsa\"\nmode = \"jwt\"\njwt_alg = \"RS256\"\n\
         consume_url = \"http://127.0.0.1:9603/jwt/consume\"\naudience = \"jwt-rsa\"\n\
         username_claim = \"ec-name\"\nusername_from = \"email\"\n",
    );
    let rs = console(
        http,
        &[
            "jwt",
            "--user",
            "alice",
            "--password",
            "alice-pass-1",
            "--console",
            "jwt-rsa",
            "--consume-url",
            "http://127.0.0.1:9603/jwt/consume",
            "--alg",
            "RS256",
            "--jwks-url",
            &format!("{iss}/oauth2/jwks"),
            "--audience",
            "jwt-rsa",
            "--issuer",
            &iss,
            "--window",
            "5",
        ],
    );
    assert_eq!(rs["wrong_key_accepted"], false, "{rs}");
    assert_eq!(rs["id_token"]["ec-name"], "alice@example.net", "{rs}");
    assert_eq!(rs["id_token"]["ec-roles"], "OverlayAdmin", "{rs}");
    assert_eq!(rs["id_token"]["ec-aag"], "Global", "{rs}");
    // mallory gets a page at portcullis, and the console nothing.
    let m = console(
        http,
        &[
            "jwt",
            "--user",
            "mallory",
            "--password",
            "mallory-pass-4",
            "--issuer",
            &iss,
        ],
    );
    assert_eq!(m["page"]["status"], 403, "{m}");
}

/// A browser that shows each redirect instead of following it.
fn manual_browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(WAIT)
        .build()
        .unwrap()
}

fn location(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
}

fn query(u: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(u)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// The code the console at `redirect` gets after alice logs in (once per
/// browser; later requests ride the session).
async fn code(
    b: &reqwest::Client,
    http: SocketAddr,
    client: &str,
    redirect: &str,
    extra: &str,
) -> String {
    let mut url = format!(
        "http://{http}/oauth2/authorize?response_type=code&client_id={client}&scope=openid+offline_access+email&state=st&nonce=n&redirect_uri={}{extra}",
        url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
    );
    for _ in 0..5 {
        let r = b.get(&url).send().await.unwrap();
        let to = location(&r).unwrap_or_else(|| panic!("no redirect from {url}: {}", r.status()));
        if to.starts_with(redirect) {
            let q = query(&to);
            assert_eq!(q.get("state").map(String::as_str), Some("st"), "{to}");
            return q.get("code").unwrap_or_else(|| panic!("{to}")).clone();
        }
        if to.starts_with("/oauth2/login") {
            let page = b
                .get(format!("http://{http}{to}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let rid = page
                .split("name=\"rid\" value=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let r = b
                .post(format!("http://{http}/oauth2/login"))
                .form(&[
                    ("rid", rid),
                    ("username", "alice"),
                    ("password", "alice-pass-1"),
                ])
                .send()
                .await
                .unwrap();
            url = format!("http://{http}{}", location(&r).expect("back to authorize"));
            continue;
        }
        panic!("unexpected redirect to {to}");
    }
    panic!("no code")
}

async fn token(http: SocketAddr, client: (&str, &str), form: &[(&str, &str)]) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{http}/oauth2/token"))
        .basic_auth(client.0, Some(client.1))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

const ORCH: (&str, &str) = ("orchestrator", "orchestrator-secret-1");
const OTHER: (&str, &str) = ("other", "other-console-secret-0123456789");
const OTHER_REDIRECT: &str = "http://127.0.0.1:9604/cb";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_answered_counted_and_logged_and_never_redirects_elsewhere() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    add_to_config(
        &s,
        &format!(
            "\n[[console]]\nname = \"other\"\nmode = \"oauth\"\nclient_id = \"other\"\n\
             client_secret = \"{}\"\nredirect_uris = [\"{OTHER_REDIRECT}\"]\ncode_ttl = 1\n",
            OTHER.1
        ),
    );
    let b = manual_browser();
    let enc = |u: &str| url::form_urlencoded::byte_serialize(u.as_bytes()).collect::<String>();
    let authorize = |q: String| {
        let b = b.clone();
        async move {
            b.get(format!("http://{http}/oauth2/authorize?{q}"))
                .send()
                .await
                .unwrap()
        }
    };

    // Unknown client, unregistered redirect URI: a page here, no redirect.
    for (q, console, reason) in [
        (
            format!(
                "response_type=code&scope=openid&client_id=nobody&redirect_uri={}",
                enc(REDIRECT)
            ),
            "unknown",
            "unknown_client",
        ),
        (
            format!(
                "response_type=code&scope=openid&client_id=orchestrator&redirect_uri={}",
                enc("http://127.0.0.1:9600/elsewhere")
            ),
            "orchestrator",
            "unregistered_redirect_uri",
        ),
        (
            format!(
                "response_type=code&scope=openid&client_id=orchestrator&redirect_uri={}",
                enc(OTHER_REDIRECT)
            ),
            "orchestrator",
            "unregistered_redirect_uri",
        ),
    ] {
        let before = refusals(&s, console, reason);
        let r = authorize(q.clone()).await;
        assert_eq!(r.status(), 400, "{q}");
        assert!(location(&r).is_none(), "{q}: redirected");
        assert!(r.text().await.unwrap().contains(reason));
        assert_eq!(refusals(&s, console, reason), before + 1.0, "{q}");
        s.wait_log(reason);
    }

    // Unsupported response_type, a scope not allowed: back to the
    // registered URI with the error and the state.
    for (q, error, reason) in [
        (
            "response_type=token&scope=openid",
            "unsupported_response_type",
            "unsupported_response_type",
        ),
        (
            "response_type=code&scope=openid+admin",
            "invalid_scope",
            "scope_not_allowed",
        ),
    ] {
        let r = authorize(format!(
            "{q}&client_id=orchestrator&state=xyz&redirect_uri={}",
            enc(REDIRECT)
        ))
        .await;
        let to = location(&r).expect("redirect");
        assert!(to.starts_with(REDIRECT), "{to}");
        let got = query(&to);
        assert_eq!(
            (got["error"].as_str(), got["state"].as_str()),
            (error, "xyz")
        );
        assert!(!got.contains_key("code"));
        assert_eq!(refusals(&s, "orchestrator", reason), 1.0);
        s.wait_log(reason);
    }

    // Wrong secret, unknown client at the token endpoint.
    let c = code(&b, http, "orchestrator", REDIRECT, "").await;
    let (st, v) = token(
        http,
        ("orchestrator", "wrong-secret"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!((st, v["error"].as_str()), (401, Some("invalid_client")));
    assert_eq!(refusals(&s, "orchestrator", "wrong_secret"), 1.0);
    let (st, _) = token(
        http,
        ("nobody", "x"),
        &[("grant_type", "authorization_code"), ("code", &c)],
    )
    .await;
    assert_eq!(st, 401);
    s.wait_log("wrong_secret");

    // Unsupported grant.
    let (st, v) = token(
        http,
        ORCH,
        &[("grant_type", "password"), ("username", "alice")],
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    assert_eq!(refusals(&s, "orchestrator", "unsupported_grant_type"), 1.0);

    // A code used twice: the second use fails and the refresh token the
    // first gave is revoked.
    let ok_form = |c: &str| {
        vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", c.to_string()),
            ("redirect_uri", REDIRECT.to_string()),
        ]
    };
    let form = ok_form(&c);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (st, first) = token(http, ORCH, &form).await;
    assert_eq!(st, 200, "{first}");
    let rt = first["refresh_token"].as_str().unwrap().to_string();
    let (st, v) = token(http, ORCH, &form).await;
    assert_eq!((st, v["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(refusals(&s, "orchestrator", "code_reused"), 1.0);
    let (_, v) = token(
        http,
        ORCH,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await;
    assert_eq!(
        v["error"], "invalid_grant",
        "the reused code's refresh token is revoked"
    );
    s.wait_log("code_reused");

    // A code of one client presented by another.
    let c = code(&b, http, "orchestrator", REDIRECT, "").await;
    let (_, v) = token(
        http,
        OTHER,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(v["error"], "invalid_grant");
    assert_eq!(refusals(&s, "other", "code_other_client"), 1.0);
    s.wait_log("code_other_client");

    // PKCE: the wrong verifier fails, the right one (on a fresh code) works.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let pkce =
        "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";
    let c = code(&b, http, "orchestrator", REDIRECT, pkce).await;
    let (_, v) = token(
        http,
        ORCH,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier.replace('k', "K")),
        ],
    )
    .await;
    assert_eq!(v["error"], "invalid_grant");
    assert_eq!(refusals(&s, "orchestrator", "wrong_pkce_verifier"), 1.0);
    let c = code(&b, http, "orchestrator", REDIRECT, pkce).await;
    let (st, v) = token(
        http,
        ORCH,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    s.wait_log("wrong_pkce_verifier");

    // An expired code (this console's codes live one second).
    let c = code(&b, http, "other", OTHER_REDIRECT, "").await;
    let issued = Instant::now();
    while issued.elapsed() < Duration::from_millis(2100) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, v) = token(
        http,
        OTHER,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", OTHER_REDIRECT),
        ],
    )
    .await;
    assert_eq!(v["error"], "invalid_grant");
    assert_eq!(refusals(&s, "other", "code_expired"), 1.0);
    s.wait_log("code_expired");
}

#[test]
fn a_restart_keeps_refresh_tokens_valid_and_the_jwks() {
    let addrs = restartable_addrs();
    let dir = tempfile::tempdir().unwrap();
    let text = demo_config_at(dir.path(), &addrs);
    let s = Running::start_in(dir, &text);
    let http = s.addrs.http.unwrap();
    let (_, jwks) = s.http_get("/oauth2/jwks");
    let alice = login(http, "alice", "alice-pass-1");
    let dir = s.sigkill();
    let s = Running::start_in(dir, &text);
    assert_eq!(s.addrs.http, Some(http));
    let (_, again) = s.http_get("/oauth2/jwks");
    assert_eq!(
        serde_json::from_str::<Value>(&again).unwrap(),
        serde_json::from_str::<Value>(&jwks).unwrap()
    );
    let refreshed = console(
        http,
        &[
            "refresh",
            "--token",
            alice["refresh_token"].as_str().unwrap(),
        ],
    );
    assert_claims(&refreshed, "alice@example.net", "OverlayAdmin", "Global");
    // The ID token from before the restart still verifies against the JWKS.
    let keys: Value = serde_json::from_str(&again).unwrap();
    let kid = jsonwebtoken::decode_header(alice["id_token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap();
    assert!(
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid)
    );
}

#[test]
fn userinfo_revoke_and_logout() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let bob = login(http, "bob", "bob-pass-2");
    let at = bob["access_token"].as_str().unwrap();
    let info = console(http, &["userinfo", "--token", at]);
    assert_eq!(info["status"], 200, "{info}");
    assert_eq!(info["body"]["ec-roles"], "Helpdesk", "{info}");
    assert_eq!(info["body"]["email"], "bob@example.net", "{info}");
    // RFC 7009: the access token is refused from then on...
    assert_eq!(console(http, &["revoke", "--token", at])["status"], 200);
    assert_eq!(console(http, &["userinfo", "--token", at])["status"], 401);
    // ...and a revoked refresh token takes its family with it.
    let rt = bob["refresh_token"].as_str().unwrap();
    assert_eq!(console(http, &["revoke", "--token", rt])["status"], 200);
    assert_eq!(
        console(http, &["refresh", "--token", rt])["error"],
        "invalid_grant"
    );
    // Unknown tokens are not an error (RFC 7009 2.2).
    assert_eq!(
        console(http, &["revoke", "--token", "no-such-token"])["status"],
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp_initiated_logout_ends_the_session_and_returns_only_to_a_registered_uri() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let b = manual_browser();
    let c = code(&b, http, "orchestrator", REDIRECT, "").await;
    let (_, t) = token(
        http,
        ORCH,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    let id = t["id_token"].as_str().unwrap();
    // Without a hint, nothing ends: a link alone cannot log anyone out.
    let r = b
        .get(format!("http://{http}/oauth2/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("method=\"post\""));
    let me = b.get(format!("http://{http}/api/me")).send().await.unwrap();
    assert_eq!(me.status(), 200, "still logged in");
    // An unregistered post-logout URI: logged out, not sent there.
    let r = b
        .get(logout_url(
            http,
            &[
                ("id_token_hint", id),
                ("post_logout_redirect_uri", "http://evil.example/"),
            ],
        ))
        .send()
        .await
        .unwrap();
    assert!(location(&r).is_none());
    let me = b.get(format!("http://{http}/api/me")).send().await.unwrap();
    assert_eq!(me.status(), 401, "logged out");
    // A registered one, with state.
    let c = code(&b, http, "orchestrator", REDIRECT, "").await;
    let (_, t) = token(
        http,
        ORCH,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    let r = b
        .get(logout_url(
            http,
            &[
                ("id_token_hint", t["id_token"].as_str().unwrap()),
                ("post_logout_redirect_uri", REDIRECT),
                ("state", "bye"),
            ],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r).unwrap(), format!("{REDIRECT}?state=bye"));
}

fn logout_url(http: SocketAddr, q: &[(&str, &str)]) -> String {
    let mut u = url::Url::parse(&format!("http://{http}/oauth2/logout")).unwrap();
    u.query_pairs_mut().extend_pairs(q);
    u.to_string()
}

fn kids(jwks: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(jwks).unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

fn kid_of(token: &Value) -> String {
    jsonwebtoken::decode_header(token.as_str().unwrap())
        .unwrap()
        .kid
        .unwrap()
}

#[test]
fn a_rotated_key_was_published_before_it_signs_and_the_old_one_stays() {
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let before = kids(&s.http_get("/oauth2/jwks").1);
    assert_eq!(before.len(), 2, "the signing key and the next one");
    let old = kid_of(&login(http, "alice", "alice-pass-1")["id_token"]);
    let next = before.iter().find(|k| **k != old).unwrap().clone();
    let (code, out, err) = run(&[
        "console",
        "rotate-key",
        "--config",
        s.config.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&next), "{out}");
    s.signal(libc::SIGHUP);
    s.wait_log("configuration reloaded");
    let after = kids(&s.http_get("/oauth2/jwks").1);
    assert_eq!(after.len(), 3, "old, current, and a new next key");
    assert!(after.contains(&old) && after.contains(&next));
    let new = login(http, "bob", "bob-pass-2");
    assert_eq!(kid_of(&new["id_token"]), next);
}

#[test]
fn explain_shows_what_each_console_receives() {
    let demo = repo().join("examples/portcullis.toml");
    let (code, out, _) = run(&[
        "explain",
        "--config",
        demo.to_str().unwrap(),
        "--user",
        "bob",
    ]);
    assert_eq!(code, 0);
    let section = out.split("console `orchestrator` (oauth").nth(1).unwrap();
    for want in [
        "ec-roles = \"Helpdesk\"",
        "ec-aag = \"Asia-Admin\"",
        "email = \"bob@example.net\"",
    ] {
        assert!(section.contains(want), "{want} not in {out}");
    }
    assert!(out.contains("console `orchestrator-jwt` (jwt, aud orchestrator-jwt)"));
}

/// The chain: the console sends the person to portcullis, portcullis logs
/// them in through the upstream OpenID Provider (npm oidc-provider), and
/// the console's ID token carries the role their upstream groups map to.
#[test]
fn a_console_login_through_the_upstream_oidc_provider_carries_the_mapped_role() {
    use crate::oidc::{provider_block, start_idp, write_accounts};
    let s = Running::start_demo();
    let http = s.addrs.http.unwrap();
    let accounts = s.dir.path().join("accounts.json");
    write_accounts(
        &accounts,
        "u-dave",
        serde_json::json!([{"sub": "u-dave", "preferred_username": "dave", "email": "dave@example.com",
                 "name": "Dave", "groups": ["helpdesk", "Everyone"]}]),
    );
    let idp = start_idp(&format!("http://{http}/auth/oidc/corp/callback"), &accounts);
    add_to_config(&s, &provider_block("corp", idp.get("issuer"), http));
    let dave = console(http, &["login", "--via", "/auth/oidc/corp/start"]);
    assert_eq!(dave["claims"]["email"], "dave@example.com", "{dave}");
    assert_eq!(dave["claims"]["ec-roles"], "Helpdesk", "{dave}");
    assert_eq!(dave["claims"]["ec-aag"], "Asia-Admin", "{dave}");
    assert_eq!(dave["claims"]["sub"], "corp:u-dave", "{dave}");

    // A console that allows only the local form does not take the
    // upstream session: the person is asked to log in locally.
    add_to_config(
        &s,
        "\n[[console]]\nname = \"local-only\"\nmode = \"oauth\"\nclient_secret = \"local-only-secret-0123456789\"\n\
         redirect_uris = [\"http://127.0.0.1:9605/cb\"]\nlogin_methods = [\"local\"]\n",
    );
    let page = console(
        http,
        &[
            "login",
            "--via",
            "/auth/oidc/corp/start",
            "--client-id",
            "local-only",
            "--client-secret",
            "local-only-secret-0123456789",
            "--redirect-uri",
            "http://127.0.0.1:9605/cb",
            "--scope",
            "openid email",
        ],
    );
    let text = page["page"]["page"].as_str().unwrap_or_default();
    assert!(
        text.contains("name=\"password\"") && !text.contains("/auth/oidc/corp/start"),
        "{page}"
    );
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime), counted from after the command name.
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// One provider under load: how to reach it and which process serves it.
struct Target {
    authorize: String,
    token: String,
    client: (String, String),
    redirect: String,
    pid: u32,
}

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// One complete code flow for a browser that already has a session:
/// authorize (redirects followed by hand) to the code, then the token
/// exchange. `login`: log in at portcullis's local form on the way (a
/// cached credential after the first).
async fn flow(b: &reqwest::Client, t: &Target, login: Option<SocketAddr>) {
    let mut url = format!(
        "{}?response_type=code&client_id={}&scope=openid+email&state=s&nonce=n&code_challenge={CHALLENGE}&code_challenge_method=S256&redirect_uri={}",
        t.authorize,
        t.client.0,
        url::form_urlencoded::byte_serialize(t.redirect.as_bytes()).collect::<String>()
    );
    for _ in 0..10 {
        let r = b.get(&url).send().await.unwrap();
        let to = location(&r).unwrap_or_else(|| panic!("{url}: {}", r.status()));
        let to = url::Url::parse(&url)
            .unwrap()
            .join(&to)
            .unwrap()
            .to_string();
        if to.starts_with(&t.redirect) {
            let code = query(&to).remove("code").expect("code");
            let r = b
                .post(&t.token)
                .basic_auth(&t.client.0, Some(&t.client.1))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &t.redirect),
                    ("code_verifier", VERIFIER),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            assert!(v["id_token"].is_string());
            return;
        }
        if let (Some(http), true) = (login, to.contains("/oauth2/login")) {
            let page = b.get(&to).send().await.unwrap().text().await.unwrap();
            let rid = page
                .split("name=\"rid\" value=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let r = b
                .post(format!("http://{http}/oauth2/login"))
                .form(&[
                    ("rid", rid),
                    ("username", "alice"),
                    ("password", "alice-pass-1"),
                ])
                .send()
                .await
                .unwrap();
            url = format!("http://{http}{}", location(&r).unwrap());
            continue;
        }
        url = to;
    }
    panic!("no code from {}", t.authorize);
}

/// Completed flows per second and server CPU per flow, `clients` browsers
/// at once for `secs`; `fresh`: each flow after a logout (a new session,
/// so a login with a cached credential each time).
async fn measure(
    t: &Target,
    clients: usize,
    secs: f64,
    login: Option<SocketAddr>,
    fresh: bool,
) -> (f64, f64) {
    let browsers: Vec<reqwest::Client> = (0..clients).map(|_| manual_browser()).collect();
    for b in &browsers {
        flow(b, t, login).await; // warm: sessions, connections
    }
    let cpu0 = cpu_seconds(t.pid);
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for b in browsers {
        let t = Target {
            authorize: t.authorize.clone(),
            token: t.token.clone(),
            client: t.client.clone(),
            redirect: t.redirect.clone(),
            pid: t.pid,
        };
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                if let (true, Some(http)) = (fresh, login) {
                    // A new session each time: the next flow logs in again.
                    let r = b
                        .post(format!("http://{http}/oauth2/logout"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                }
                flow(&b, &t, login).await;
                n += 1;
            }
            n
        }));
    }
    let mut flows = 0;
    for t in tasks {
        flows += t.await.unwrap();
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(t.pid) - cpu0;
    (flows as f64 / wall, cpu / flows as f64 * 1e6)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Completed code flows per second, portcullis against npm oidc-provider in
/// the same run, rounds interleaved, medians reported. Run it on a release
/// build: `cargo test --release --test e2e bench_console -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by hand on a release build"]
async fn bench_console_code_flows_against_oidc_provider() {
    use crate::oidc::{start_idp, write_accounts};
    // BENCH_SIGNING_ALG=ES256 measures the provider with ECDSA keys.
    let s = match std::env::var("BENCH_SIGNING_ALG") {
        Ok(alg) => {
            let dir = tempfile::tempdir().unwrap();
            let text = demo_config(dir.path()) + &format!("\n[idp]\nsigning_alg = \"{alg}\"\n");
            Running::start_in(dir, &text)
        }
        Err(_) => Running::start_demo(),
    };
    let http = s.addrs.http.unwrap();
    let accounts = s.dir.path().join("accounts.json");
    write_accounts(
        &accounts,
        "u-a",
        serde_json::json!([{"sub": "u-a", "preferred_username": "a", "email": "a@example.com", "groups": []}]),
    );
    let cb = "http://127.0.0.1:9/cb";
    let idp = start_idp(cb, &accounts);
    let issuer = idp.get("issuer").to_string();
    let disc: Value = reqwest::get(format!("{issuer}/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let theirs = Target {
        authorize: disc["authorization_endpoint"].as_str().unwrap().into(),
        token: disc["token_endpoint"].as_str().unwrap().into(),
        client: ("portcullis-test".into(), "a-client-secret-for-tests".into()),
        redirect: cb.into(),
        pid: idp.pid(),
    };
    let ours = Target {
        authorize: format!("http://{http}/oauth2/authorize"),
        token: format!("http://{http}/oauth2/token"),
        client: (ORCH.0.into(), ORCH.1.into()),
        redirect: REDIRECT.into(),
        pid: s.child.id(),
    };
    let clients = std::env::var("BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let secs = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3.0);
    let (mut p, mut pl, mut o) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..5 {
        let a = measure(&ours, clients, secs, Some(http), false).await;
        let b = measure(&theirs, clients, secs, None, false).await;
        let c = measure(&ours, clients, secs, Some(http), true).await;
        eprintln!(
            "round {round}: portcullis {:.0}/s ({:.0} us CPU/flow), with a cached-credential login {:.0}/s ({:.0} us), oidc-provider {:.0}/s ({:.0} us)",
            a.0, a.1, c.0, c.1, b.0, b.1
        );
        p.push(a);
        pl.push(c);
        o.push(b);
    }
    let m = |v: &[(f64, f64)], i: usize| {
        median(v.iter().map(|x| if i == 0 { x.0 } else { x.1 }).collect())
    };
    eprintln!(
        "median: portcullis {:.0} flows/s ({:.0} us CPU/flow); with a cached-credential login each flow {:.0} flows/s ({:.0} us); npm oidc-provider {:.0} flows/s ({:.0} us); ratio {:.1}x",
        m(&p, 0),
        m(&p, 1),
        m(&pl, 0),
        m(&pl, 1),
        m(&o, 0),
        m(&o, 1),
        m(&p, 0) / m(&o, 0)
    );
}

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
    let out = Command::new("python3")
        .arg(repo().join("tests/e2e/console_client.py"))
        .args(args)
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

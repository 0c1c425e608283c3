//! Web logins across two nodes on one PostgreSQL (Debian `postgresql`),
//! with no sticky balancer: a login started on one node finishes on the
//! other, because the pending state, the SAML replay cache and the record
//! of which consoles a session logged in to are in the store. The peers are
//! the pysaml2 IdP (upstream), the pysaml2 SP (a SAML console) and the
//! browser (reqwest), as in the single-node tests.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::console_saml::{ava, sp_url, start_sp};
use crate::harness::{
    self, add_to_config, api_me, assert_network_admin_from_idp, browser, form, metric, set,
};
use crate::store_pg::{Postgres, console_browser, console_token, id_claims, jwks, node};

fn count(pg: &Postgres, sql: &str) -> i64 {
    pg.psql("portcullis", sql).parse().unwrap()
}

/// The Location of a redirect.
fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no redirect: {}", r.status()))
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saml_login_started_on_one_node_completes_on_the_other_and_a_replay_is_refused_on_both() {
    use crate::saml::{provider_block, publish_sp_metadata, start_idp, write_accounts};
    let pg = Postgres::start();
    let a = node(&pg, "a");
    let b = node(&pg, "b");
    let (http_a, http_b) = (a.addrs.http.unwrap(), b.addrs.http.unwrap());
    let accounts = a.dir.path().join("saml-accounts.json");
    let sp_md = a.dir.path().join("sp-metadata.xml");
    write_accounts(
        &accounts,
        json!({"alice": {"password": "alice-idp-pw", "email": "alice@example.com",
                         "name": "Alice Example", "groups": ["netadmins", "Everyone"]}}),
    );
    let idp = start_idp(&accounts, &sp_md, &[]);
    // One service provider as far as the IdP knows (the address a balancer
    // would have): B's ACS, on both nodes.
    let block = provider_block("corp-saml", http_b, &idp, "");
    add_to_config(&a, &block);
    add_to_config(&b, &block);
    publish_sp_metadata(http_a, "corp-saml", &sp_md).await;

    // Started at A: A's AuthnRequest, its ID in the store (hashed).
    let br = browser();
    let r = br
        .get(format!("http://{http_a}/auth/saml/corp-saml/start"))
        .send()
        .await
        .unwrap();
    let at = r.url().clone();
    let page = r.text().await.unwrap();
    let (action, mut fields) = form(&page).unwrap_or_else(|| panic!("IdP login at {at}: {page}"));
    set(&mut fields, "username", "alice");
    set(&mut fields, "password", "alice-idp-pw");
    let r = br
        .post(at.join(&action).unwrap())
        .form(&fields)
        .send()
        .await
        .unwrap();
    let page = r.text().await.unwrap();
    let (acs, fields) = form(&page).unwrap_or_else(|| panic!("IdP POST form: {page}"));
    assert_eq!(acs, format!("http://{http_b}/auth/saml/corp-saml/acs"));
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM web_login_state WHERE kind = 'saml_request'"
        ),
        1
    );

    // The IdP's Response lands on B, which never saw the request.
    let r = br.post(&acs).form(&fields).send().await.unwrap();
    let (status, path) = (r.status(), r.url().path().to_string());
    let body = r.text().await.unwrap();
    assert_eq!((status.as_u16(), path.as_str()), (200, "/"), "{body}");
    assert_network_admin_from_idp(&api_me(&br, http_a).await);
    assert_eq!(
        count(&pg, "SELECT count(*) FROM web_login_state"),
        0,
        "taken"
    );
    assert_eq!(count(&pg, "SELECT count(*) FROM web_replay"), 1);

    // The same Response posted to A (and to B again): a replay on both.
    for (node, http) in [(&a, http_a), (&b, http_b)] {
        let r = browser()
            .post(format!("http://{http}/auth/saml/corp-saml/acs"))
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let (_, m) = node.http_get("/metrics");
        assert_eq!(
            metric(
                &m,
                "portcullis_saml_logins_total{provider=\"corp-saml\",result=\"replay\"}"
            ),
            Some(1.0),
            "{m}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_oauth_login_started_on_one_node_finishes_on_the_other() {
    const REDIRECT: &str = "http://127.0.0.1:9600/gms/rest/authentication/oauth/redirect";
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let pg = Postgres::start();
    let a = node(&pg, "a");
    let b = node(&pg, "b");
    let (http_a, http_b) = (a.addrs.http.unwrap(), b.addrs.http.unwrap());

    // The console sends bob, who has no session, to A's authorize.
    let br = console_browser();
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
    let to_login = location(&r);
    let rid = to_login
        .strip_prefix("/oauth2/login?rid=")
        .unwrap_or_else(|| panic!("{to_login}"))
        .to_string();
    // Only the id's hash is stored.
    assert_eq!(
        count(
            &pg,
            &format!(
                "SELECT count(*) FROM web_login_state WHERE kind = 'console_login'
                  AND id_hash = sha256(convert_to('{rid}', 'UTF8'))"
            )
        ),
        1
    );

    // The login page and the form at B.
    let r = br
        .get(format!("http://{http_b}{to_login}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (action, mut fields) = form(&r.text().await.unwrap()).expect("the login form");
    set(&mut fields, "username", "bob");
    set(&mut fields, "password", "bob-pass-2");
    let r = br
        .post(format!("http://{http_b}{action}"))
        .form(&fields)
        .send()
        .await
        .unwrap();
    let resume = location(&r);
    assert!(resume.starts_with("/oauth2/authorize?"), "{resume}");
    // Used once, on every node.
    let r = br
        .get(format!("http://{http_a}{to_login}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "the login was taken at B");

    // Back at B's authorize with the session: the code.
    let r = br
        .get(format!("http://{http_b}{resume}"))
        .send()
        .await
        .unwrap();
    let to = location(&r);
    assert!(to.starts_with(REDIRECT), "{to}");
    let q: std::collections::HashMap<String, String> = url::Url::parse(&to)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(q["state"], "st");
    let redeem = [
        ("grant_type", "authorization_code"),
        ("code", q["code"].as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    // Redeemed at A, then spent at B.
    let (st, t) = console_token(http_a, &redeem).await;
    assert_eq!(st, 200, "{t}");
    let claims = id_claims(&t, &jwks(http_b).await);
    assert_eq!(claims["ec-roles"], "Helpdesk", "{claims}");
    assert_eq!(claims["nonce"], "n", "{claims}");
    let (st, again) = console_token(http_b, &redeem).await;
    assert_eq!((st, again["error"].as_str()), (400, Some("invalid_grant")));
}

/// A key pair both nodes sign SAML with (Debian's openssl CLI).
fn saml_key_pair(dir: &Path) -> String {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=portcullis-test-idp",
            "-keyout",
            "idp-key.pem",
            "-out",
            "idp-cert.pem",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!(
        "\n[idp]\nsaml_key_file = {:?}\nsaml_cert_file = {:?}\n",
        dir.join("idp-key.pem").display().to_string(),
        dir.join("idp-cert.pem").display().to_string(),
    )
}

/// From the SP's login link, through the IdP node `sso_at` (per the SP's
/// metadata), to a signed Response posted back to the SP: when there is no
/// session, the login form it was sent to is submitted at `login_at`.
/// Returns what the SP made of the Response.
async fn console_sso(b: &reqwest::Client, sp: &harness::Peer, login_at: SocketAddr) -> Value {
    let r = b
        .get(sp_url(sp, "/login?binding=redirect&relay=rs-1"))
        .send()
        .await
        .unwrap();
    let (mut at, mut page) = (r.url().clone(), r.text().await.unwrap());
    if at.path() == "/oauth2/login" {
        let (action, mut fields) = form(&page).expect("the login form");
        set(&mut fields, "username", "alice");
        set(&mut fields, "password", "alice-pass-1");
        let r = b
            .post(format!("http://{login_at}{action}"))
            .form(&fields)
            .send()
            .await
            .unwrap();
        (at, page) = (r.url().clone(), r.text().await.unwrap());
        assert_eq!(
            at.port(),
            Some(login_at.port()),
            "resumed where the login was"
        );
    }
    let (_, fields) = form(&page).unwrap_or_else(|| panic!("no Response form at {at}: {page}"));
    assert!(fields.iter().any(|(k, _)| k == "SAMLResponse"), "{page}");
    b.post(sp_url(sp, "/acs"))
        .form(&fields)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn sp_state(sp: &harness::Peer) -> Value {
    reqwest::get(sp_url(sp, "/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_saml_login_and_its_single_logout_work_across_nodes() {
    let pg = Postgres::start();
    let a = node(&pg, "a");
    let b = node(&pg, "b");
    let (http_a, http_b) = (a.addrs.http.unwrap(), b.addrs.http.unwrap());
    // One IdP as far as the console knows: one entity ID and base URL (A's,
    // where a balancer would be), one signing key.
    let keys = saml_key_pair(a.dir.path());
    let idp = format!("{keys}issuer = \"http://{http_a}\"\n");
    add_to_config(&a, &idp);
    add_to_config(&b, &idp);
    let sp = start_sp(
        http_a,
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
    let console = format!(
        "\n[[console]]\nname = \"sp-slo\"\nmode = \"saml\"\nentity_id = \"{}\"\n\
         acs_url = \"{}\"\nslo_url = \"{}\"\ncert_file = \"{}\"\n\
         require_signed_requests = true\n",
        sp.get("entity_id"),
        sp.get("acs"),
        sp.get("slo"),
        sp.get("cert_file"),
    );
    add_to_config(&a, &console);
    add_to_config(&b, &console);
    let me = |http: SocketAddr, b: reqwest::Client| async move {
        b.get(format!("http://{http}/api/me"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };

    // The AuthnRequest is accepted by A; the person logs in at B, which
    // answers it (and records the console login, for logout).
    let br = browser();
    let first = console_sso(&br, &sp, http_b).await;
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(ava(&first, "ec-roles"), "OverlayAdmin", "{first}");
    assert_eq!(
        first["issuer"],
        format!("http://{http_a}/saml/idp/metadata")
    );
    assert_eq!(
        count(&pg, "SELECT count(*) FROM web_login_state"),
        0,
        "both pending entries were taken"
    );
    assert_eq!(count(&pg, "SELECT count(*) FROM web_console_logins"), 1);

    // The console's own logout reaches A: the session B made ends.
    let r = br.get(sp_url(&sp, "/logout")).send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["logged_out"], true, "{body}");
    assert_eq!(me(http_b, br.clone()).await, 401, "the session ended");
    a.wait_log("SAML logout from the console");
    assert_eq!(count(&pg, "SELECT count(*) FROM web_console_logins"), 0);

    // Logged in again (at B); then A answers a second request from its
    // session at once, recording the console login there.
    let again = console_sso(&br, &sp, http_b).await;
    assert_eq!(again["ok"], true, "{again}");
    let third = console_sso(&br, &sp, http_a).await;
    assert_eq!(third["ok"], true, "{third}");
    assert_ne!(third["in_response_to"], again["in_response_to"]);

    // Logout started at B: the console that logged in via A hears of it
    // first, then the session ends everywhere.
    let r = harness::logout(&br, http_b).await;
    assert_eq!(r.url().path(), "/login", "logout ended at {}", r.url());
    assert_eq!(sp_state(&sp).await["logged_out_by_idp"], 1);
    assert_eq!(me(http_a, br.clone()).await, 401);
    assert_eq!(me(http_b, br.clone()).await, 401);
    b.wait_log("SAML logout sent to the console");
    a.wait_log("SAML logout answered by the console");
}

/// Console logins started from one address, spread over both nodes, are
/// bounded in the store as in memory: that address keeps its newest 32,
/// and another address's login is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_started_logins_from_one_address_displaces_only_its_own_in_the_store() {
    let pg = Postgres::start();
    let a = node(&pg, "a");
    let b = node(&pg, "b");
    let (http_a, http_b) = (a.addrs.http.unwrap(), b.addrs.http.unwrap());
    let authorize = "/oauth2/authorize?response_type=code&client_id=orchestrator\
                     &scope=openid&state=s&redirect_uri=http%3A%2F%2F127.0.0.1%3A9600%2Fgms\
                     %2Frest%2Fauthentication%2Foauth%2Fredirect";
    let victim = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let r = victim
        .get(format!("http://{http_a}{authorize}"))
        .send()
        .await
        .unwrap();
    let victim_login = location(&r);
    assert!(
        victim_login.starts_with("/oauth2/login?rid="),
        "{victim_login}"
    );
    let flood = console_browser();
    for i in 0..60 {
        let http = if i % 2 == 0 { http_a } else { http_b };
        let r = flood
            .get(format!("http://{http}{authorize}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
    }
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM web_login_state
              WHERE kind = 'console_login' AND source = '127.0.0.1'"
        ),
        32
    );
    let r = victim
        .get(format!("http://{http_b}{victim_login}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the other address's login is still there");
}

/// With the database down, each kind of login says why it cannot start (the
/// page every web login shows then), counted where logins are counted; it
/// works again once the database is back, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_store_logins_say_so_and_work_again_when_it_is_back() {
    use crate::console_saml::{DEMO_ACS, authn_request, redirect_query};
    use crate::saml::{provider_block, publish_sp_metadata, start_idp, write_accounts};
    let pg = Postgres::start();
    let a = node(&pg, "a");
    let http = a.addrs.http.unwrap();
    let accounts = a.dir.path().join("saml-accounts.json");
    let sp_md = a.dir.path().join("sp-metadata.xml");
    write_accounts(&accounts, json!({}));
    let idp = start_idp(&accounts, &sp_md, &[]);
    add_to_config(&a, &provider_block("corp-saml", http, &idp, ""));
    publish_sp_metadata(http, "corp-saml", &sp_md).await;
    let client = console_browser();
    let get = |path: String| {
        let client = client.clone();
        async move {
            let r = client
                .get(format!("http://{http}{path}"))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let starts = [
        "/auth/saml/corp-saml/start".to_string(),
        "/oauth2/authorize?response_type=code&client_id=orchestrator&scope=openid\
         &state=s&redirect_uri=http%3A%2F%2F127.0.0.1%3A9600%2Fgms%2Frest\
         %2Fauthentication%2Foauth%2Fredirect"
            .to_string(),
        format!(
            "/saml/idp/sso?{}",
            redirect_query(&authn_request(DEMO_ACS, DEMO_ACS, ""))
        ),
    ];
    // Up: each start goes on (the IdP's metadata is cached from here on).
    for path in &starts {
        let (status, body) = get(path.clone()).await;
        assert!([302, 303].contains(&status), "{path}: {status} {body}");
    }

    pg.stop_server();
    for path in &starts {
        let (status, body) = get(path.clone()).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert!(body.contains("does not answer"), "{path}: {body}");
    }
    let (_, m) = a.http_get("/metrics");
    assert_eq!(
        metric(
            &m,
            "portcullis_saml_logins_total{provider=\"corp-saml\",result=\"store_unavailable\"}"
        ),
        Some(1.0),
        "{m}"
    );
    a.wait_log("console login could not start: the shared store does not answer");
    a.wait_log("console SAML login could not start: the shared store does not answer");

    pg.start_server();
    let deadline = std::time::Instant::now() + harness::WAIT;
    for path in &starts {
        loop {
            let (status, body) = get(path.clone()).await;
            if [302, 303].contains(&status) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{path}: {status} {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// Nodes racing on one assertion ID and on one started login, through the
/// store itself (a pool each, as separate nodes have): exactly one wins.
#[test]
fn nodes_racing_on_one_assertion_or_one_started_login_cannot_both_win() {
    use portcullis::store::ephemeral::{Kind, PendingStore, ReplayCache};
    use portcullis::store::{PgSettings, PgStore};
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};
    let pg = Postgres::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stores: Vec<PgStore> = runtime.block_on(async {
        let mut v = Vec::new();
        for i in 0..4 {
            let mut c = tokio_postgres::Config::new();
            c.host("127.0.0.1")
                .port(pg.port)
                .user("portcullis")
                .password(crate::store_pg::PASSWORD)
                .dbname("portcullis");
            let s = PgStore::new(Arc::new(PgSettings {
                pg: c,
                config_file: "test.toml".into(),
                password_key: "store.password",
                ca_pem: None,
                pool_size: 2,
                connect_timeout: Duration::from_secs(2),
                query_timeout: Duration::from_secs(5),
                auto_migrate: true,
                node: format!("n{i}"),
                accounting_writers: 1,
                accounting_batch: 1,
            }))
            .unwrap();
            s.prepare().await.unwrap();
            v.push(s);
        }
        v
    });
    let now = SystemTime::now();
    let until = now + Duration::from_secs(300);
    for round in 0..20 {
        let id = format!("_assertion-{round}");
        let firsts: Vec<bool> = runtime.block_on(async {
            let caches: Vec<ReplayCache> =
                stores.iter().cloned().map(ReplayCache::shared).collect();
            let tries = caches.iter().map(|c| c.first_use("corp", &id, until, now));
            futures::future::join_all(tries)
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect()
        });
        assert_eq!(firsts.iter().filter(|f| **f).count(), 1, "{firsts:?}");

        let taken: Vec<Option<String>> = runtime.block_on(async {
            let p: Vec<PendingStore<String>> = stores
                .iter()
                .cloned()
                .map(|s| PendingStore::shared(Kind::SamlRequest, s))
                .collect();
            let rid = format!("_request-{round}");
            let ip = std::net::IpAddr::from([192, 0, 2, 1]);
            p[round % 4]
                .put(&rid, ip, "corp".into(), Duration::from_secs(60))
                .await
                .unwrap();
            let tries = p.iter().map(|p| p.take(&rid));
            futures::future::join_all(tries)
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect()
        });
        let won: Vec<_> = taken.iter().flatten().collect();
        assert_eq!(won, ["corp"], "{taken:?}");
    }
    // Past its time an ID is taken over, not a replay.
    let later = until + Duration::from_secs(1);
    let cache = ReplayCache::shared(stores[0].clone());
    runtime.block_on(async {
        assert!(!cache.is_seen("corp", "_assertion-0", later).await.unwrap());
        assert!(
            cache
                .first_use(
                    "corp",
                    "_assertion-0",
                    later + Duration::from_secs(60),
                    later
                )
                .await
                .unwrap()
        );
    });
}

//! The console SAML IdP's signing keys in the shared PostgreSQL (Debian
//! `postgresql`, started by the test): every node publishes the same
//! certificates and signs with the same key, `xmlsec1 --verify` accepts a
//! Response from one node with the certificate of another's metadata,
//! `console rotate-key` rolls every node over, and an upgraded node's key
//! files (made here by Debian's `openssl`) are imported into the store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::console_saml::{DEMO_ACS, authn_request, published, redirect_query, xmlsec_verify_both};
use crate::harness::{self, Running, demo_config, run};
use crate::store_pg::{PASSWORD, Postgres, console_browser, node, openssl};

/// A Response for alice signed by the node at `http`: she logs in there
/// and the demo console's AuthnRequest is answered with the auto-post form.
async fn signed_response(http: SocketAddr) -> String {
    let b = console_browser();
    let r = harness::post_login(&b, http, "/login", "alice", "alice-pass-1").await;
    assert!(r.status().is_redirection(), "{}", r.status());
    let r = b
        .get(format!(
            "http://{http}/saml/idp/sso?{}",
            redirect_query(&authn_request(DEMO_ACS, DEMO_ACS, ""))
        ))
        .send()
        .await
        .unwrap();
    let page = r.text().await.unwrap();
    let (action, fields) =
        harness::form(&page).unwrap_or_else(|| panic!("no Response form: {page}"));
    assert_eq!(action, DEMO_ACS, "the registered ACS");
    let b64 = &fields.iter().find(|(k, _)| k == "SAMLResponse").unwrap().1;
    String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap()
}

/// A base64 DER certificate (as metadata carries it) as a PEM file.
fn pem_file(dir: &Path, name: &str, b64: &str) -> PathBuf {
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for c in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(c).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    let p = dir.join(name);
    std::fs::write(&p, pem).unwrap();
    p
}

/// The one certificate of a PEM file, base64 DER as metadata carries it.
fn pem_b64(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

/// Checks a Response of the node at `signer` against the signing
/// certificate in the metadata of the node at `publisher`.
async fn verified_across(signer: SocketAddr, publisher: SocketAddr, dir: &Path, tag: &str) {
    let xml = signed_response(signer).await;
    let certs = published(publisher).await;
    let cert = pem_file(dir, &format!("{tag}.pem"), &certs[0]);
    xmlsec_verify_both(&xml, &cert, dir, tag);
    assert!(xml.contains(&certs[0]), "signed with the published key");
}

fn jwks_kids(s: &Running) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&s.http_get("/oauth2/jwks").1).unwrap();
    let mut k: Vec<String> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    k.sort();
    k
}

fn reload(nodes: &[&Running]) {
    for n in nodes {
        n.signal(libc::SIGHUP);
        n.wait_log("configuration reloaded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_publish_and_sign_with_one_saml_key_and_rotate_together() {
    let pg = Postgres::start();
    let a = node(&pg, "a");
    let b = node(&pg, "b");
    let (http_a, http_b) = (a.addrs.http.unwrap(), b.addrs.http.unwrap());
    let tmp = tempfile::tempdir().unwrap();

    // Both make their keys on first use, at the same moment, on an empty
    // database: one wins and the other reads its keys.
    let (ca, cb) = tokio::join!(published(http_a), published(http_b));
    assert_eq!(ca, cb, "both nodes publish the same certificates");
    assert_eq!(ca.len(), 2, "signing and next");
    assert_ne!(ca[0], ca[1]);
    assert_eq!(
        pg.psql("portcullis", "SELECT count(*) FROM idp_saml_keys"),
        "2",
        "one signing key and one next key in all"
    );
    // No node kept a key file of its own.
    for n in [&a, &b] {
        assert!(!n.dir.path().join("data/saml-idp").exists());
    }

    // B signs, A's metadata verifies (and the other way round).
    verified_across(http_b, http_a, tmp.path(), "b-by-a").await;
    verified_across(http_a, http_b, tmp.path(), "a-by-b").await;

    // One command rotates both kinds of keys, on the database.
    let kids = jwks_kids(&a);
    let cfg = a.config.to_str().unwrap();
    let (code, out, err) = run(&["console", "rotate-key", "--config", cfg]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("signing key is now"), "{out}");
    assert!(out.contains("SAML IdP now signs with"), "{out}");
    reload(&[&a, &b]);
    let (ra, rb) = tokio::join!(published(http_a), published(http_b));
    assert_eq!(
        ra, rb,
        "both publish the same certificates after the rotation"
    );
    assert_eq!(
        ra[0], ca[1],
        "the next certificate published before signs now"
    );
    assert!(!ca.contains(&ra[1]), "a new next certificate");
    assert_eq!(jwks_kids(&a), jwks_kids(&b));
    assert_ne!(jwks_kids(&a), kids, "the OAuth keys rotated too");
    verified_across(http_b, http_a, tmp.path(), "b-by-a-1").await;

    // The second rotation (SAML only): the certificate every node has
    // published as next since the first one signs on both.
    let kids = jwks_kids(&b);
    let (code, out, err) = run(&["console", "rotate-key", "--saml", "--config", cfg]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("signing key is now"), "{out}");
    reload(&[&a, &b]);
    let (sa, sb) = tokio::join!(published(http_a), published(http_b));
    assert_eq!(sa, sb);
    assert_eq!(
        sa[0], ra[1],
        "the next certificate of the first rotation signs"
    );
    assert_eq!(jwks_kids(&b), kids, "--saml left the OAuth keys alone");
    for (signer, publisher, tag) in [(http_b, http_a, "b-by-a-2"), (http_a, http_b, "a-by-b-2")] {
        verified_across(signer, publisher, tmp.path(), tag).await;
    }
    assert_eq!(
        pg.psql(
            "portcullis",
            "SELECT count(*) FROM idp_saml_keys WHERE retired IS NOT NULL"
        ),
        "1",
        "only the last retired key is kept"
    );
}

/// An earlier version's key files, as Debian's openssl makes them: a
/// PKCS#8 key and a self-signed certificate, for signing and next.
fn legacy_files(data: &Path) -> (String, String) {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = data.join("saml-idp");
    std::fs::create_dir_all(&dir).unwrap();
    for d in [data, &dir] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    for (k, c) in [
        ("signing-key.pem", "signing-cert.pem"),
        ("next-key.pem", "next-cert.pem"),
    ] {
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                k,
                "-out",
                c,
                "-days",
                "3650",
                "-subj",
                "/CN=old portcullis",
            ],
        );
    }
    (
        pem_b64(&dir.join("signing-cert.pem")),
        pem_b64(&dir.join("next-cert.pem")),
    )
}

fn node_with_files(pg: &Postgres, name: &str) -> (Running, (String, String)) {
    let dir = tempfile::tempdir().unwrap();
    let certs = legacy_files(&dir.path().join("data"));
    let mut text = demo_config(dir.path());
    text.push_str(&pg.store_section(dir.path(), name, PASSWORD));
    (Running::start_in(dir, &text), certs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_node_brings_its_key_files_into_the_empty_store() {
    let pg = Postgres::start();
    let (a, (signing, next)) = node_with_files(&pg, "a");
    let http_a = a.addrs.http.unwrap();
    assert_eq!(
        published(http_a).await,
        [signing.clone(), next.clone()],
        "the consoles' certificate and the announced next one stay"
    );
    a.wait_log("imported into the store");
    let tmp = tempfile::tempdir().unwrap();
    let cert = pem_file(tmp.path(), "old.pem", &signing);
    xmlsec_verify_both(&signed_response(http_a).await, &cert, tmp.path(), "old");

    // A second node with files of its own joins: the store's keys win, and
    // it says its files were not used.
    let (b, (theirs, _)) = node_with_files(&pg, "b");
    let http_b = b.addrs.http.unwrap();
    assert_eq!(published(http_b).await, [signing.clone(), next]);
    assert_ne!(theirs, signing);
    let line = b.wait_log("were not imported");
    assert!(!line.contains("PRIVATE"), "{line}");
    verified_across(http_b, http_a, tmp.path(), "b-old").await;
}

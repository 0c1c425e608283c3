//! Configuration validation: each mistake an operator can make gives an error
//! naming file, line and key, and `check` exits non-zero.

use std::path::Path;

use portcullis::config::{ConfigError, from_str};

use crate::harness::{self, DEMO, run};

/// Applies one textual edit to the demo config; panics if `from` is absent,
/// so a test cannot silently stop testing anything.
fn edit(from: &str, to: &str) -> String {
    assert!(DEMO.contains(from), "demo config has no {from:?}");
    DEMO.replacen(from, to, 1)
}

fn errors(text: &str) -> Vec<ConfigError> {
    match from_str(Path::new("/etc/portcullis/test.toml"), text) {
        Ok(_) => panic!("config unexpectedly valid"),
        Err(e) => e.0,
    }
}

/// The 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in text"));
    text[..at].matches('\n').count() + 1
}

/// Asserts exactly one error, at `needle`'s line, for `key`, mentioning `words`.
fn assert_one(text: &str, needle: &str, key: &str, words: &str) {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
    let e = &errs[0];
    assert_eq!(e.file, Path::new("/etc/portcullis/test.toml"));
    assert_eq!(e.key, key, "{e}");
    assert_eq!(e.line, line_of(text, needle), "{e}");
    assert!(e.message.contains(words), "{e}");
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("/etc/portcullis/test.toml:{}:", e.line)),
        "{shown}"
    );
}

#[test]
fn demo_config_is_valid_and_only_warns_about_its_short_secrets() {
    let loaded = from_str(Path::new("examples/portcullis.toml"), DEMO).expect("demo config valid");
    let keys: Vec<&str> = loaded.warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "client[loopback].radius_secret",
            "client[loopback].tacacs_key"
        ]
    );
    assert!(loaded.warnings[0].message.contains("weak secret"));
    assert_eq!(loaded.config.users.len(), 4);
    assert_eq!(loaded.config.policy.roles().len(), 3);
}

#[test]
fn check_accepts_the_demo_and_prints_a_summary() {
    let (code, out, err) = run(&["check", "--config", "examples/portcullis.toml"]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "OK",
        "clients: 1",
        "roles: 3",
        "users: 4 (3 enabled)",
        "group netadmins",
        "127.0.0.1:1812",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(err.contains("weak secret"), "{err}");
}

#[test]
fn check_rejects_a_misspelt_key_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = edit(
        "radius_secret = \"testing123\"",
        "radius_secert = \"testing123\"",
    );
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, &text).unwrap();
    let (code, _out, err) = run(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    let line = line_of(&text, "radius_secert");
    assert!(
        err.contains(&format!("{}:{line}:", path.display())),
        "{err}"
    );
    assert!(err.contains("radius_secert"), "{err}");
    assert!(err.contains("client.radius_secert"), "{err}");
}

#[test]
fn wrong_type_names_the_key() {
    let text = edit("priv_lvl = 7", "priv_lvl = \"seven\"");
    let errs = errors(&text);
    assert_eq!(errs[0].line, line_of(&text, "\"seven\""));
    assert_eq!(errs[0].key, "role.priv_lvl");
}

#[test]
fn undefined_role_in_mapping() {
    let text = edit("role = \"helpdesk\"", "role = \"help-desk\"");
    assert_one(
        &text,
        "\"help-desk\"",
        "mapping[1].role",
        "role `help-desk` is not defined",
    );
}

#[test]
fn undefined_default_role() {
    let text = edit(
        "default_role = \"read-only\"",
        "default_role = \"readonly\"",
    );
    assert_one(&text, "\"readonly\"", "policy.default_role", "not defined");
}

#[test]
fn undefined_group_in_user_and_mapping() {
    let text = edit("groups = [\"helpdesk\"]", "groups = [\"help\"]");
    assert_one(
        &text,
        "[\"help\"]",
        "user[bob].groups",
        "group `help` is not defined",
    );
    let text = edit("group = \"netadmins\"\nrole", "group = \"netadmin\"\nrole");
    assert_one(&text, "\"netadmin\"", "mapping[0].group", "not defined");
}

#[test]
fn duplicate_user() {
    let text = edit("name = \"carol\"", "name = \"bob\"");
    let second = text.match_indices("name = \"bob\"").nth(1).unwrap().0;
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].key, "user[bob].name");
    assert_eq!(errs[0].line, text[..second].matches('\n').count() + 1);
    assert!(errs[0].message.contains("defined twice"));
}

#[test]
fn duplicate_client() {
    let text = format!(
        "{DEMO}\n[[client]]\nname = \"loopback\"\ncidrs = [\"10.0.0.0/8\"]\nradius_secret = \"another-long-secret\"\n"
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].key, "client[loopback].name");
    assert!(errs[0].message.contains("defined twice"));
    assert_eq!(errs[0].line, text.lines().count() - 2);
}

#[test]
fn overlapping_networks_with_different_secrets() {
    let extra = "\n[[client]]\nname = \"lab\"\ncidrs = [\"127.0.5.0/24\"]\nradius_secret = \"a-different-secret-1\"\ntacacs_key = \"tacacs123\"\n";
    let text = format!("{DEMO}{extra}");
    assert_one(
        &text,
        "\"127.0.5.0/24\"",
        "client[lab].cidrs",
        "overlaps 127.0.0.0/8",
    );
    // The same secrets may overlap: the narrower client only changes the name.
    let same = extra.replace("a-different-secret-1", "testing123");
    assert!(from_str(Path::new("t.toml"), &format!("{DEMO}{same}")).is_ok());
}

#[test]
fn priv_lvl_out_of_range() {
    let text = edit("priv_lvl = 7", "priv_lvl = 16");
    assert_one(
        &text,
        "priv_lvl = 16",
        "role[helpdesk].priv_lvl",
        "outside 0..=15",
    );
}

#[test]
fn invalid_cidr() {
    let text = edit("cidrs = [\"127.0.0.0/8\"]", "cidrs = [\"127.0.0.0/33\"]");
    assert_one(
        &text,
        "\"127.0.0.0/33\"",
        "client[loopback].cidrs",
        "not a network",
    );
}

#[test]
fn empty_secret() {
    let text = edit("tacacs_key = \"tacacs123\"", "tacacs_key = \"\"");
    assert_one(
        &text,
        "tacacs_key = \"\"",
        "client[loopback].tacacs_key",
        "secret is empty",
    );
}

#[test]
fn password_hash_that_is_not_argon2() {
    let text = edit(
        "$argon2id$v=19$m=19456,t=2,p=1$2YgpYRvuTA2NnA3NrMCrWg$SULz5OqDiwSk27Ry6kLrHAZg4ybngNxJ4169s75Vfp8",
        "bob-pass-2",
    );
    assert_one(
        &text,
        "\"bob-pass-2\"",
        "user[bob].password_hash",
        "not a valid argon2 hash",
    );
    let text = edit(
        "$argon2id$v=19$m=19456,t=2,p=1$2Ygp",
        "$pbkdf2$v=19$m=19456,t=2,p=1$2Ygp",
    );
    assert_one(
        &text,
        "$pbkdf2",
        "user[bob].password_hash",
        "not a valid argon2 hash",
    );
}

#[test]
fn two_listeners_on_one_address() {
    let text = edit("127.0.0.1:8080", "127.0.0.1:4949");
    assert_one(
        &text,
        "http        = \"127.0.0.1:4949\"",
        "listen.http",
        "already used by `listen.tacacs`",
    );
}

#[test]
fn unknown_profile_and_tacacs_role() {
    let text = edit("profile = \"orchestrator\"", "profile = \"orchestra\"");
    assert_one(
        &text,
        "\"orchestra\"",
        "client[loopback].profile",
        "unknown profile",
    );
    let text = edit("tacacs_role = \"manager\"", "tacacs_role = \"boss\"");
    assert_one(
        &text,
        "\"boss\"",
        "role[helpdesk].tacacs_role",
        "admin, manager or monitor",
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let text =
        edit("priv_lvl = 7", "priv_lvl = 99").replace("role = \"helpdesk\"", "role = \"nope\"");
    assert_eq!(errors(&text).len(), 2);
}

#[test]
fn secrets_from_environment_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key");
    std::fs::write(&file, "file-secret-0123456789\n").unwrap();
    // SAFETY: this test alone sets this variable, and nothing reads the
    // environment concurrently in a way that depends on it.
    unsafe { std::env::set_var("PORTCULLIS_TEST_SECRET", "env-secret-0123456789") };
    let text = edit(
        "radius_secret = \"testing123\"",
        "radius_secret = { env = \"PORTCULLIS_TEST_SECRET\" }",
    )
    .replace(
        "tacacs_key = \"tacacs123\"",
        &format!("tacacs_key = {{ file = {:?} }}", file.display().to_string()),
    );
    let loaded = from_str(Path::new("t.toml"), &text).expect("valid");
    let c = loaded.config.clients.iter().next().unwrap();
    assert_eq!(
        c.radius_secret.as_ref().unwrap().expose(),
        b"env-secret-0123456789"
    );
    assert_eq!(
        c.tacacs_key.as_ref().unwrap().expose(),
        b"file-secret-0123456789"
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // A reference to something absent is an error on that key.
    let text = edit(
        "radius_secret = \"testing123\"",
        "radius_secret = { env = \"PORTCULLIS_NO_SUCH_VAR\" }",
    );
    assert_one(
        &text,
        "{ env = ",
        "client[loopback].radius_secret",
        "PORTCULLIS_NO_SUCH_VAR",
    );
    let text = edit(
        "radius_secret = \"testing123\"",
        "radius_secret = { file = \"/nonexistent/key\" }",
    );
    assert_one(
        &text,
        "{ file = ",
        "client[loopback].radius_secret",
        "cannot read secret file",
    );
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let loaded = from_str(Path::new("t.toml"), DEMO).unwrap();
    let shown = format!("{:?}", loaded.config);
    for secret in ["testing123", "tacacs123", "alice-pass-1"] {
        assert!(!shown.contains(secret), "{secret} leaked into Debug output");
    }
}

#[test]
fn harness_demo_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    from_str(
        &dir.path().join("p.toml"),
        &harness::demo_config(dir.path()),
    )
    .expect("valid");
}

#[test]
fn a_broken_dictionary_is_reported_with_its_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let dicts = dir.path().join("dicts");
    std::fs::create_dir(&dicts).unwrap();
    std::fs::write(
        dicts.join("dictionary"),
        "# site attributes\nATTRIBUTE\tSite-Thing\tnot-a-number\tstring\n",
    )
    .unwrap();
    let config = dir.path().join("portcullis.toml");
    let text = harness::demo_config(dir.path()).replace(
        &format!(
            "{:?}",
            harness::repo().join("dictionaries").display().to_string()
        ),
        "\"dicts\"",
    );
    std::fs::write(&config, text).unwrap();
    let (code, _, err) = run(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("dicts/dictionary:2"), "{err}");
    assert!(err.contains("radius.dictionary_dir"), "{err}");
}

#[test]
fn oidc_providers_are_validated_and_okta_issuers_resolved() {
    let block = |body: &str| {
        format!(
            "{DEMO}\n[[oidc]]\nname = \"okta\"\nclient_id = \"cid\"\nclient_secret = \"a-long-enough-client-secret\"\nredirect_uri = \"https://aaa.example.net/auth/oidc/okta/callback\"\n{body}"
        )
    };
    // Okta style: domain + server_id; "" is the org authorization server.
    for (server, issuer) in [
        (
            "server_id = \"default\"\n",
            "https://example.okta.com/oauth2/default",
        ),
        (
            "server_id = \"aus1\"\n",
            "https://example.okta.com/oauth2/aus1",
        ),
        ("server_id = \"\"\n", "https://example.okta.com"),
        ("", "https://example.okta.com/oauth2/default"),
    ] {
        let text = block(&format!("domain = \"example.okta.com\"\n{server}"));
        let loaded = from_str(Path::new("t.toml"), &text).expect("valid");
        assert_eq!(loaded.config.oidc[0].issuer, issuer);
        assert_eq!(loaded.config.oidc[0].groups_claim, "groups");
        assert_eq!(loaded.config.oidc[0].username_claim, "preferred_username");
    }
    let text = block("issuer = \"http://idp.example.net\"\n");
    assert_one(
        &text,
        "issuer = \"http://idp",
        "oidc[okta].issuer",
        "https://",
    );
    let text = block("issuer = \"https://idp.example.net\"\nclient_auth = \"private_key_jwt\"\n");
    assert_one(
        &text,
        "client_auth = ",
        "oidc[okta].client_auth",
        "client_secret_basic",
    );
    let text = block("issuer = \"https://idp.example.net\"\ndomain = \"x.okta.com\"\n");
    assert_one(&text, "issuer = \"https", "oidc[okta].issuer", "not both");
    let text = block("issuer = \"https://idp.example.net\"\nscopes = [\"profile\"]\n");
    assert_one(
        &text,
        "name = \"okta\"\nclient_id",
        "oidc[okta].scopes",
        "openid",
    );
    // The secret never shows in Debug output.
    let loaded = from_str(
        Path::new("t.toml"),
        &block("issuer = \"https://i.example\"\n"),
    )
    .unwrap();
    assert!(!format!("{:?}", loaded.config.oidc).contains("a-long-enough-client-secret"));
}

#[test]
fn saml_providers_are_validated_with_file_line_and_key() {
    let data = harness::repo().join("tests/data/saml");
    let f = |n: &str| data.join(n).to_str().unwrap().to_string();
    let block = |body: &str| {
        format!(
            "{}\n[[saml]]\nname = \"lab-saml\"\n{body}",
            edit(
                "[web]\n",
                "[web]\npublic_url = \"https://aaa.example.net/\"\n"
            )
        )
    };
    let okta = format!(
        "idp_sso_url = \"https://example.okta.com/app/x/sso/saml\"\nidp_entity_id = \"http://www.okta.com/exk1\"\nidp_cert_file = \"{}\"\n",
        f("idp-cert.pem")
    );
    let loaded = from_str(Path::new("t.toml"), &block(&okta)).expect("valid");
    let s = &loaded.config.saml[0];
    assert_eq!(s.acs_url, "https://aaa.example.net/auth/saml/lab-saml/acs");
    assert_eq!(
        s.sp_entity_id,
        "https://aaa.example.net/auth/saml/lab-saml/metadata"
    );
    assert!(!s.sign_requests && !s.allow_idp_initiated && !s.allow_sha1);

    // Our key and certificate: requests signed by default; they must match.
    let with_key = format!(
        "{okta}sp_key_file = \"{}\"\nsp_cert_file = \"{}\"\n",
        f("sp-key.pem"),
        f("sp-cert.pem")
    );
    let loaded = from_str(Path::new("t.toml"), &block(&with_key)).expect("valid");
    assert!(loaded.config.saml[0].sign_requests);
    let mismatched = format!(
        "{okta}sp_key_file = \"{}\"\nsp_cert_file = \"{}\"\n",
        f("sp-key.pem"),
        f("idp-cert.pem")
    );
    assert_one(
        &block(&mismatched),
        "sp_cert_file",
        "saml[lab-saml].sp_cert_file",
        "not for",
    );

    let missing = okta.replace("idp-cert.pem", "no-such.pem");
    assert_one(
        &block(&missing),
        "idp_cert_file",
        "saml[lab-saml].idp_cert_file",
        "cannot read",
    );
    let not_a_cert = okta.replace(&f("idp-cert.pem"), &f("sp-key.pem"));
    assert_one(
        &block(&not_a_cert),
        "idp_cert_file",
        "saml[lab-saml].idp_cert_file",
        "CERTIFICATE",
    );
    let http = okta.replace("https://example.okta.com", "http://example.okta.com");
    assert_one(
        &block(&http),
        "idp_sso_url",
        "saml[lab-saml].idp_sso_url",
        "https://",
    );
    assert_one(
        &block(&format!(
            "{okta}idp_metadata_url = \"https://example.okta.com/md\"\n"
        )),
        "name = \"lab-saml\"",
        "saml[lab-saml].idp_metadata_url",
        "exactly one",
    );
    assert_one(
        &block(&format!("{okta}sign_requests = true\n")),
        "sign_requests",
        "saml[lab-saml].sign_requests",
        "sp_key_file",
    );
    // Without web.public_url the ACS must be given.
    let text = format!("{DEMO}\n[[saml]]\nname = \"s\"\n{okta}");
    let errs = errors(&text);
    assert!(errs.iter().any(|e| e.key == "saml[s].acs_url"), "{errs:#?}");
    // A metadata file that is not metadata.
    let text = block(&format!("idp_metadata_file = \"{}\"\n", f("idp-cert.pem")));
    let errs = errors(&text);
    assert_eq!(errs[0].key, "saml[lab-saml].idp_metadata_file", "{errs:#?}");
}

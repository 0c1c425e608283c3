//! The appliance side of privilege: a console set to "Remote First" with an
//! enable password asks for the user `enableuser`; served here by a local
//! user of that name in a group mapped to the admin role, over TACACS+
//! enable and over RADIUS PAP.

use crate::harness::{Running, demo_config};
use crate::radius::{ADMIN, radclient_pap};
use crate::tacacs::py as tacacs;

/// `enable-secret-9`, hashed by `portcullis hash-password`.
const ENABLE_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$188uWYEBTRk3rKuapFA+eg$2IDP9oJKHAczaCE3Y7lLXF6Z805q9FAeGkPhDo0h/ag";

#[test]
fn enableuser_is_served_over_tacacs_enable_and_radius() {
    let dir = tempfile::tempdir().unwrap();
    let text = demo_config(dir.path())
        + &format!(
            r#"
[[group]]
name = "enable"

[[mapping]]
group = "enable"
role = "network-admin"

[[user]]
name = "enableuser"
password_hash = "{ENABLE_HASH}"
groups = ["enable"]
"#
        );
    let s = Running::start_in(dir, &text);
    let t = s.addrs.tacacs.unwrap();
    let r = tacacs(
        t,
        "tacacs123",
        &["enable", "enableuser", "enable-secret-9", "15"],
    );
    assert_eq!(r["status"], "PASS", "{r}");
    let r = tacacs(t, "tacacs123", &["enable", "enableuser", "wrong", "15"]);
    assert_eq!(r["status"], "FAIL", "{r}");
    // bob's role (priv-lvl 7) does not reach 15.
    let r = tacacs(t, "tacacs123", &["enable", "bob", "bob-pass-2", "15"]);
    assert_eq!(r["status"], "FAIL", "{r}");
    s.wait_log("tacacs+ enable refused");
    let r = radclient_pap(
        s.addrs.radius_auth.unwrap(),
        "enableuser",
        "enable-secret-9",
    );
    assert_eq!(r.code.as_deref(), Some("Access-Accept"), "{}", r.output);
    assert_eq!(r.avpairs, ADMIN, "{}", r.output);
}

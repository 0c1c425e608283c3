//! How appliance consoles read a RADIUS priv-lvl: the two thresholds per
//! client, and a warning where a role's RADIUS reading and its TACACS+
//! `role` disagree (the same person would get different access by door).

use super::Ctx;
use crate::client::{Client, PrivReading, PrivThresholds};
use crate::config::raw::{RawClient, RawRole};
use crate::policy::{Role, TacacsRole};

pub(super) fn thresholds(cx: &mut Ctx<'_>, key: &str, c: &RawClient) -> PrivThresholds {
    let d = PrivThresholds::default();
    let read_write = cx.int(
        &c.read_write_priv,
        &format!("{key}.read_write_priv"),
        0..16,
        i64::from(d.read_write),
    ) as u8;
    let read_only = cx.int(
        &c.read_only_priv,
        &format!("{key}.read_only_priv"),
        0..16,
        i64::from(d.read_only),
    ) as u8;
    if read_only > read_write
        && let Some(v) = &c.read_only_priv
    {
        cx.err(
            v.span(),
            format!("{key}.read_only_priv"),
            format!("{read_only} is above read_write_priv {read_write}"),
        );
    }
    PrivThresholds {
        read_write,
        read_only,
    }
}

/// What a TACACS+ role gives at such a console.
fn tacacs_reading(r: TacacsRole) -> PrivReading {
    match r {
        TacacsRole::Admin | TacacsRole::Manager => PrivReading::ReadWrite,
        TacacsRole::Monitor => PrivReading::ReadOnly,
    }
}

pub(super) fn disagreements(cx: &mut Ctx<'_>, raw: &[RawRole], roles: &[Role], clients: &[Client]) {
    for role in roles {
        let Some(t) = role.tacacs_role else { continue };
        let Some(r) = raw
            .iter()
            .find(|r| r.name.get_ref().as_str() == &*role.name)
        else {
            continue;
        };
        for c in clients {
            let radius = c.privilege.reading(role.priv_lvl);
            if radius != tacacs_reading(t) {
                cx.warn(
                    r.priv_lvl.span(),
                    format!("role[{}].priv_lvl", role.name),
                    format!(
                        "priv-lvl {} reads as {} at client `{}` (read-write from {}, read-only from {}), but tacacs_role `{}` gives {}: the same person would get different access over RADIUS and TACACS+",
                        role.priv_lvl,
                        radius.as_str(),
                        c.name,
                        c.privilege.read_write,
                        c.privilege.read_only,
                        t.as_str(),
                        tacacs_reading(t).as_str()
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::from_str;

    const BASE: &str = r#"
[[client]]
name = "console"
cidrs = ["192.0.2.0/24"]
radius_secret = "a-long-enough-secret-0123"
tacacs_key = "a-long-enough-secret-0123"
profile = "orchestrator"

[[role]]
name = "operator"
priv_lvl = 7
tacacs_role = "monitor"
"#;

    #[test]
    fn a_role_read_differently_by_radius_and_tacacs_is_warned_about() {
        let l = from_str(Path::new("t.toml"), BASE).unwrap();
        let w: Vec<_> = l
            .warnings
            .iter()
            .filter(|w| w.key == "role[operator].priv_lvl")
            .collect();
        assert_eq!(w.len(), 1, "{:?}", l.warnings);
        assert_eq!(w[0].line, 11);
        assert!(
            w[0].message
                .contains("reads as read-write at client `console`"),
            "{}",
            w[0].message
        );
        // The console set to read-write from 8 agrees with `monitor`.
        let l = from_str(
            Path::new("t.toml"),
            &BASE.replace(
                "profile = \"orchestrator\"",
                "profile = \"orchestrator\"\nread_write_priv = 8",
            ),
        )
        .unwrap();
        assert!(
            !l.warnings
                .iter()
                .any(|w| w.key == "role[operator].priv_lvl"),
            "{:?}",
            l.warnings
        );
        assert_eq!(
            l.config
                .clients
                .lookup("192.0.2.1".parse().unwrap())
                .unwrap()
                .privilege
                .read_write,
            8
        );
    }

    #[test]
    fn thresholds_are_checked() {
        let e = from_str(
            Path::new("t.toml"),
            &BASE.replace(
                "profile = \"orchestrator\"",
                "read_write_priv = 5\nread_only_priv = 6",
            ),
        )
        .unwrap_err();
        assert_eq!(e.0[0].key, "client[console].read_only_priv");
        let e = from_str(
            Path::new("t.toml"),
            &BASE.replace("profile = \"orchestrator\"", "read_write_priv = 16"),
        )
        .unwrap_err();
        assert_eq!(e.0[0].key, "client[console].read_write_priv");
    }
}

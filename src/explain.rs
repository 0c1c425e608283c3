//! `portcullis explain`: what the table gives one user from one client, which
//! rule decided it, and the exact attributes each protocol would send — the
//! operator's first debugging tool. Pure: it formats, the CLI prints.

use std::fmt::Write;
use std::net::IpAddr;

use crate::authn::{AuthnError, Login};
use crate::config::{AuthOrder, Config};
use crate::policy::{ClientCtx, DecidedBy};

/// The rendered explanation and whether the user would be let in.
#[derive(Debug)]
pub struct Explanation {
    pub text: String,
    pub granted: bool,
}

/// The explanation for a user of the configuration file (directories are
/// not asked; see [`explain_login`]).
pub fn explain(
    config: &Config,
    user: &str,
    client: Option<IpAddr>,
    command: Option<&str>,
) -> Explanation {
    explain_login(
        config,
        user,
        config.users.active(user).map(Login::Local),
        client,
        command,
    )
}

/// The explanation for whoever the credential sources said `user` is
/// (`Credentials::login` with a password, `Credentials::known` without).
pub fn explain_login(
    config: &Config,
    user: &str,
    found: Result<Login<'_>, AuthnError>,
    client: Option<IpAddr>,
    command: Option<&str>,
) -> Explanation {
    let mut out = String::new();
    let t = &config.policy;
    let client_ip = client.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    let client = config.clients.lookup(client_ip);
    let _ = writeln!(out, "user:        {user}");
    match client {
        Some(c) => {
            let _ = writeln!(
                out,
                "client:      {} (matched {client_ip}), profile {}",
                c.name,
                c.profile.as_str()
            );
        }
        None => {
            let _ = writeln!(out, "client:      none matches {client_ip}");
            let _ = writeln!(
                out,
                "decision:    REFUSED: {client_ip} is not a configured client; requests from it are dropped"
            );
            return Explanation {
                text: out,
                granted: false,
            };
        }
    }
    let client = client.expect("checked above");
    let dirs = &config.directories;
    if !dirs.is_empty() {
        let names: Vec<&str> = dirs.list.iter().map(|d| &*d.name).collect();
        let _ = writeln!(
            out,
            "auth order:  {} (directories: {}); {}",
            dirs.order.as_str(),
            names.join(", "),
            match dirs.order {
                AuthOrder::LocalFirst => "a local user of this name wins over any directory entry",
                AuthOrder::RemoteFirst =>
                    "the directories win; local users only when no directory can be reached",
                AuthOrder::RemoteOnly => "local users are not asked",
            }
        );
    }
    let login = match found {
        Ok(u) => u,
        Err(e) => {
            if e == AuthnError::Disabled {
                let _ = writeln!(out, "account:     local, disabled");
            }
            let _ = writeln!(out, "decision:    REFUSED: {e}");
            return Explanation {
                text: out,
                granted: false,
            };
        }
    };
    match &login {
        Login::Local(u) => {
            let _ = writeln!(
                out,
                "account:     local, enabled{}",
                if u.cleartext_password.is_some() {
                    "; CHAP/MS-CHAP opt-in"
                } else {
                    ""
                }
            );
        }
        Login::Directory(d) => {
            let _ = writeln!(
                out,
                "account:     directory {}, entry {}",
                d.directory, d.dn
            );
            let _ = writeln!(
                out,
                "methods:     PAP and ASCII only (a bind cannot serve CHAP or MS-CHAP)"
            );
            let raw: Vec<&str> = d.directory_groups.iter().map(|g| &**g).collect();
            let _ = writeln!(
                out,
                "dir groups:  {}",
                if raw.is_empty() {
                    "(none)".to_string()
                } else {
                    raw.join("; ")
                }
            );
        }
    }
    let identity = login.identity();
    let groups: Vec<&str> = identity.groups.iter().map(|&g| t.group_name(g)).collect();
    let _ = writeln!(out, "groups:      {}", groups.join(", "));
    let grant = match t.decide(&identity, &ClientCtx { name: &client.name }) {
        Ok(g) => g,
        Err(r) => {
            let _ = writeln!(out, "decision:    REFUSED: {r}");
            return Explanation {
                text: out,
                granted: false,
            };
        }
    };
    let role = grant.role;
    let _ = writeln!(out, "decision:    GRANTED role `{}`", role.name);
    match grant.decided_by {
        DecidedBy::Mapping { index, group } => {
            let _ = writeln!(
                out,
                "rule:        mapping #{} (group `{}` -> role `{}`), the first listed mapping matching the user's groups",
                index + 1,
                t.group_name(group),
                role.name
            );
        }
        DecidedBy::Default => {
            let _ = writeln!(
                out,
                "rule:        default role (no mapping matches the user's groups)"
            );
        }
    }
    let _ = writeln!(out, "priv-lvl:    {}", role.priv_lvl);
    let p = client.privilege;
    let _ = writeln!(
        out,
        "appliance:   priv-lvl {} -> {} at this console (read-write from {}, read-only from {}; set the same on the console)",
        role.priv_lvl,
        p.reading(role.priv_lvl).as_str(),
        p.read_write,
        p.read_only
    );
    let _ = writeln!(out, "rbac-roles:  {}", role.rbac_roles);
    let _ = writeln!(out, "rbac-aag:    {}", role.rbac_aag);
    let _ = writeln!(
        out,
        "tacacs role: {}",
        role.tacacs_role.map_or("(none)", |r| r.as_str())
    );
    let _ = write!(
        out,
        "commands:    default {}",
        role.commands.default.as_str()
    );
    for r in &role.commands.rules {
        let _ = write!(out, "; {} `{}`", r.action.as_str(), r.pattern.as_str());
    }
    let _ = writeln!(out);
    if let Some(cmd) = command {
        let v = role.commands.check_line(cmd);
        let _ = writeln!(out, "command `{cmd}`: {v}");
    }
    let _ = writeln!(out, "RADIUS Access-Accept ({}):", client.profile.as_str());
    for a in client.profile.radius_attributes(role) {
        let _ = writeln!(out, "  {a}");
    }
    let _ = writeln!(
        out,
        "TACACS+ shell authorization, PASS_ADD ({}):",
        client.profile.as_str()
    );
    for a in client.profile.tacacs_args(role) {
        let _ = writeln!(out, "  {a}");
    }
    let (name, email, full_name) = match &login {
        Login::Local(u) => (&*u.name, config.users.email(u), config.users.full_name(u)),
        Login::Directory(d) => (&*d.name, &*d.email, &*d.full_name),
    };
    consoles(&mut out, config, name, email, full_name, role);
    Explanation {
        text: out,
        granted: true,
    }
}

/// What each registered appliance console would receive: the claims its
/// ID token (OAuth mode) or tokens (JWT mode) carry beyond the standard ones,
/// or, in SAML mode, the NameID and attributes of its assertion.
fn consoles(
    out: &mut String,
    config: &Config,
    name: &str,
    email: &str,
    full_name: &str,
    role: &crate::policy::Role,
) {
    use crate::idp::oauth::{Person, console_claims, profile_claims};
    let person = Person {
        sub: name.to_string(),
        name: name.to_string(),
        email: (!email.is_empty()).then(|| email.to_string()),
        full_name: (!full_name.is_empty()).then(|| full_name.to_string()),
        rbac_roles: role.rbac_roles.to_string(),
        rbac_aag: role.rbac_aag.to_string(),
    };
    for c in &config.consoles {
        if let Some(text) = crate::idp::saml::explain_console(c, &person) {
            out.push_str(&text);
            continue;
        }
        let mut m = serde_json::Map::new();
        profile_claims(&person, &c.scopes, &mut m);
        console_claims(c, &person, &mut m);
        let _ = writeln!(
            out,
            "console `{}` ({}, aud {}):",
            c.name,
            c.mode.as_str(),
            c.audience
        );
        for (k, v) in &m {
            let _ = writeln!(out, "  {k} = {v}");
        }
    }
}

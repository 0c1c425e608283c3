//! `[[directory]]`: LDAP / AD credential sources, checked into
//! `authn::directory::DirectorySettings` (TLS roots read here, so a bad CA
//! file is a configuration error with its line, not a failed login later).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::Ctx;
use crate::authn::directory::{BindMethod, DirectorySettings, GroupLookup, ServerUrl, Transport};
use crate::config::raw::RawDirectory;
use crate::metrics::Name;

pub(super) fn directories(
    cx: &mut Ctx<'_>,
    raw: &[RawDirectory],
    groups: &HashMap<String, crate::policy::GroupId>,
) -> Vec<Arc<DirectorySettings>> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for d in raw {
        let name = d.name.get_ref();
        let key = |k: &str| format!("directory[{name}].{k}");
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            cx.err(
                d.name.span(),
                key("name"),
                "a directory name is 1..=64 letters, digits, `-`, `_` or `.` (it is a metric label)",
            );
            continue;
        }
        if !names.insert(name.clone()) {
            cx.err(
                d.name.span(),
                key("name"),
                format!("directory `{name}` is defined twice"),
            );
            continue;
        }
        let starttls = d.starttls.as_ref().is_none_or(|s| *s.get_ref());
        let allow_plaintext = d.allow_plaintext.as_ref().is_some_and(|s| *s.get_ref());
        let mut servers = Vec::new();
        if d.urls.get_ref().is_empty() {
            cx.err(
                d.urls.span(),
                key("urls"),
                "at least one server URL is needed",
            );
        }
        for u in d.urls.get_ref() {
            let parsed = url::Url::parse(u.get_ref());
            let url = match parsed {
                Ok(url) if url.host_str().is_some_and(|h| !h.is_empty()) => url,
                _ => {
                    cx.err(
                        u.span(),
                        key("urls"),
                        format!(
                            "`{}` is not an ldap:// or ldaps:// URL with a host",
                            u.get_ref()
                        ),
                    );
                    continue;
                }
            };
            let transport = match (url.scheme(), starttls) {
                ("ldaps", _) => Transport::Ldaps,
                ("ldap", true) => Transport::StartTls,
                ("ldap", false) => {
                    let host = url.host_str().unwrap_or("");
                    let loopback = host == "localhost"
                        || host
                            .trim_matches(['[', ']'])
                            .parse::<std::net::IpAddr>()
                            .is_ok_and(|a| a.is_loopback());
                    if !(allow_plaintext && loopback) {
                        cx.err(
                            u.span(),
                            key("urls"),
                            "passwords would cross the network in the clear: use ldaps://, or ldap:// with StartTLS; `starttls = false` needs `allow_plaintext = true` and a loopback address",
                        );
                    }
                    Transport::Plain
                }
                (other, _) => {
                    cx.err(
                        u.span(),
                        key("urls"),
                        format!("scheme `{other}`: expected ldap:// or ldaps://"),
                    );
                    continue;
                }
            };
            servers.push(ServerUrl {
                url: u.get_ref().clone(),
                transport,
                label: Name(u.get_ref().as_str().into()),
            });
        }
        let (tls, ca_digest) = d
            .ca_file
            .as_ref()
            .and_then(|f| {
                let path = cx.path(f.get_ref());
                match client_config(&path) {
                    Ok((c, digest)) => Some((Some(c), Some(digest))),
                    Err(e) => {
                        cx.err(f.span(), key("ca_file"), e);
                        None
                    }
                }
            })
            .unwrap_or_default();
        let bind = match (&d.bind_dn, &d.bind_password, &d.bind_template) {
            (Some(dn), Some(pw), None) => {
                let password = cx.secret_unweighed(pw, &key("bind_password"));
                password.map(|password| BindMethod::SearchThenBind {
                    dn: dn.get_ref().clone(),
                    password,
                })
            }
            (None, None, Some(t)) if t.get_ref().contains("{user}") => {
                Some(BindMethod::Template(t.get_ref().clone()))
            }
            (None, None, Some(t)) => {
                cx.err(
                    t.span(),
                    key("bind_template"),
                    "the template needs `{user}`",
                );
                None
            }
            _ => {
                cx.err(
                    d.name.span(),
                    key("bind_dn"),
                    "give either bind_dn and bind_password (search, then bind as the user) or bind_template (bind directly)",
                );
                None
            }
        };
        let user_filter = d
            .user_filter
            .as_ref()
            .map_or_else(|| "(uid={user})".to_string(), |f| f.get_ref().clone());
        if !user_filter.contains("{user}")
            || ldap3::parse_filter(user_filter.replace("{user}", "x")).is_err()
        {
            let span = d
                .user_filter
                .as_ref()
                .map_or_else(|| d.name.span(), |f| f.span());
            cx.err(
                span,
                key("user_filter"),
                "expected an LDAP filter with `{user}`, such as `(&(objectClass=person)(uid={user}))`",
            );
        }
        let group_lookup = match &d.group_lookup {
            None => GroupLookup::MemberOf,
            Some(g) => GroupLookup::parse(g.get_ref()).unwrap_or_else(|| {
                cx.err(
                    g.span(),
                    key("group_lookup"),
                    format!("`{}`: expected one of {}", g.get_ref(), GroupLookup::NAMES),
                );
                GroupLookup::MemberOf
            }),
        };
        if group_lookup != GroupLookup::MemberOf && d.group_base.is_none() {
            cx.err(
                d.name.span(),
                key("group_base"),
                "a group search needs group_base",
            );
        }
        let mut rename = HashMap::new();
        for (from, to) in &d.group_rename {
            if !groups.contains_key(to.get_ref()) {
                cx.warn(
                    to.span(),
                    key("group_rename"),
                    format!(
                        "group `{}` is not defined; this rename gives nothing",
                        to.get_ref()
                    ),
                );
            }
            rename.insert(from.to_lowercase(), to.get_ref().clone());
        }
        let secs = |cx: &mut Ctx<'_>, v, k: &str, range, default| {
            Duration::from_secs(cx.int(v, &key(k), range, default) as u64)
        };
        let timeout = secs(cx, &d.timeout, "timeout", 1..61, 5);
        let settings = DirectorySettings {
            name: name.as_str().into(),
            servers,
            tls,
            ca_digest,
            bind: bind.unwrap_or(BindMethod::Template(String::new())),
            user_base: d.user_base.get_ref().clone(),
            user_filter,
            group_lookup,
            group_base: d
                .group_base
                .as_ref()
                .map_or_else(|| d.user_base.get_ref().clone(), |g| g.get_ref().clone()),
            group_name_attribute: d
                .group_name_attribute
                .as_ref()
                .map_or_else(|| "cn".into(), |a| a.get_ref().clone()),
            email_attribute: d
                .email_attribute
                .as_ref()
                .map_or_else(|| "mail".into(), |a| a.get_ref().clone()),
            name_attribute: d
                .name_attribute
                .as_ref()
                .map_or_else(|| "cn".into(), |a| a.get_ref().clone()),
            rename,
            strip_prefix: d.group_strip_prefix.as_ref().map(|p| p.get_ref().clone()),
            timeout,
            pool_size: cx.int(&d.pool_size, &key("pool_size"), 1..257, 4) as usize,
            cache_ttl: secs(cx, &d.cache_ttl, "cache_ttl", 0..86_401, 300),
            group_cache_ttl: secs(cx, &d.group_cache_ttl, "group_cache_ttl", 0..86_401, 60),
            retry_interval: secs(cx, &d.retry_interval, "retry_interval", 1..3601, 10),
        };
        out.push(Arc::new(settings));
    }
    out
}

/// A rustls client configuration trusting only the CA certificates in
/// `path` (PEM), and a SHA-256 over those certificates (a reload compares
/// it: the configuration itself cannot be compared).
fn client_config(path: &std::path::Path) -> Result<(Arc<rustls::ClientConfig>, [u8; 32]), String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use sha2::{Digest, Sha256};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("cannot read CA certificates from `{}`: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no PEM certificate in `{}`", path.display()));
    }
    let mut digest = Sha256::new();
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        digest.update(c.as_ref());
        roots
            .add(c)
            .map_err(|e| format!("`{}`: not a usable CA certificate: {e}", path.display()))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((Arc::new(config), digest.finalize().into()))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{AuthOrder, from_str};

    const OK: &str = r#"
[server]
auth_order = "remote-only"

[[group]]
name = "netadmins"

[[directory]]
name = "corp"
urls = ["ldaps://dc1.corp.example", "ldap://127.0.0.1:3389"]
bind_template = "{user}@corp.example"
user_base = "dc=corp,dc=example"
user_filter = "(sAMAccountName={user})"
group_lookup = "ad-nested"
group_base = "ou=groups,dc=corp,dc=example"
group_rename = { "CN=NetAdmins,OU=Groups,DC=corp,DC=example" = "netadmins" }
"#;

    #[test]
    fn a_directory_is_read_with_its_defaults() {
        let l = from_str(Path::new("t.toml"), OK).unwrap();
        let d = &l.config.directories;
        assert_eq!(d.order, AuthOrder::RemoteOnly);
        let s = &d.list[0];
        assert_eq!(&*s.name, "corp");
        assert_eq!(s.servers.len(), 2);
        assert_eq!(s.servers[1].transport, super::Transport::StartTls);
        assert_eq!(s.timeout.as_secs(), 5);
        assert_eq!(s.group_cache_ttl.as_secs(), 60);
        assert_eq!(
            s.table_name("cn=netadmins,ou=groups,dc=corp,dc=example", true)
                .as_deref(),
            Some("netadmins")
        );
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    }

    #[test]
    fn directory_mistakes_name_their_line_and_key() {
        for (needle, replacement, key, line, words) in [
            (
                "\"ldap://127.0.0.1:3389\"]",
                "\"ldap://dc2.corp.example\"]\nstarttls = false\nallow_plaintext = true",
                "directory[corp].urls",
                10,
                "in the clear",
            ),
            (
                "group_lookup = \"ad-nested\"",
                "group_lookup = \"nested\"",
                "directory[corp].group_lookup",
                14,
                "expected one of",
            ),
            (
                "bind_template = \"{user}@corp.example\"",
                "bind_template = \"corp.example\"",
                "directory[corp].bind_template",
                11,
                "{user}",
            ),
            (
                "user_filter = \"(sAMAccountName={user})\"",
                "user_filter = \"(sAMAccountName=x\"",
                "directory[corp].user_filter",
                13,
                "LDAP filter",
            ),
            (
                "[[directory]]\nname = \"corp\"",
                "[[directory]]\nname = \"corp\"\nca_file = \"/nonexistent/ca.pem\"",
                "directory[corp].ca_file",
                10,
                "cannot read CA",
            ),
        ] {
            let text = OK.replace(needle, replacement);
            let e = from_str(Path::new("t.toml"), &text).unwrap_err();
            let e =
                e.0.iter()
                    .find(|e| e.key == key)
                    .unwrap_or_else(|| panic!("{key}: {e}"));
            assert_eq!(e.line, line, "{key}: {e}");
            assert!(e.message.contains(words), "{key}: {}", e.message);
        }
    }

    #[test]
    fn a_rename_to_an_unknown_group_and_an_order_without_directories_are_warned_about() {
        let l = from_str(
            Path::new("t.toml"),
            &OK.replace("= \"netadmins\" }", "= \"netadmin\" }"),
        )
        .unwrap();
        assert!(
            l.warnings
                .iter()
                .any(|w| w.key == "directory[corp].group_rename"),
            "{:?}",
            l.warnings
        );
        let l = from_str(
            Path::new("t.toml"),
            "[server]\nauth_order = \"remote-first\"\n",
        )
        .unwrap();
        assert_eq!(l.warnings[0].key, "server.auth_order");
    }
}

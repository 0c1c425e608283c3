//! LDAP v3 / Active Directory as a credential source behind RADIUS and
//! TACACS+: a cleartext password is checked with a bind (search-then-bind
//! or a bind template), the user's groups are read and renamed into the
//! policy table's names. Reached only through [`super::Credentials`].

mod metrics;
mod pool;
pub mod text;

pub use metrics::DirectoryMetrics;
pub(crate) use pool::{DirError, Directory, Found};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::config::AuthOrder;
use crate::policy::{GroupId, Identity, PolicyTable, Source};
use crate::secret::Secret;

/// How the connection to one server URL is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `ldaps://`: TLS from the first byte.
    Ldaps,
    /// `ldap://` upgraded with StartTLS before anything is sent.
    StartTls,
    /// `ldap://` in the clear: only to a loopback address, and only when
    /// `allow_plaintext` says so.
    Plain,
}

#[derive(Debug, Clone)]
pub struct ServerUrl {
    pub url: String,
    pub transport: Transport,
    /// The URL as a metric label (it comes from the configuration).
    pub label: crate::metrics::Name,
}

/// How a user's password is checked.
#[derive(Debug, Clone)]
pub enum BindMethod {
    /// Bind as the service account, find the user's entry with the user
    /// filter, bind as that entry's DN with the password.
    SearchThenBind { dn: String, password: Secret },
    /// Bind directly as the template filled with the name
    /// (`{user}@corp.example`, `uid={user},ou=people,dc=example,dc=org`).
    Template(String),
}

/// How a user's groups are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupLookup {
    /// The user entry's `memberOf` values (OpenLDAP memberof overlay, AD).
    MemberOf,
    /// Groups whose `member` holds the user's DN.
    Member,
    /// Groups whose `uniqueMember` holds the user's DN.
    UniqueMember,
    /// Groups whose `memberUid` holds the user name (posixGroup).
    MemberUid,
    /// AD: groups the user is in directly or through nesting
    /// (LDAP_MATCHING_RULE_IN_CHAIN on `member`).
    AdNested,
}

impl GroupLookup {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "memberof" => Self::MemberOf,
            "member" => Self::Member,
            "uniquemember" => Self::UniqueMember,
            "memberuid" => Self::MemberUid,
            "ad-nested" => Self::AdNested,
            _ => return None,
        })
    }

    pub const NAMES: &'static str = "memberof, member, uniquemember, memberuid, ad-nested";
}

/// One `[[directory]]`, validated.
pub struct DirectorySettings {
    pub name: Arc<str>,
    /// Tried in order; the first that answers is used.
    pub servers: Vec<ServerUrl>,
    /// Roots from `ca_file`; `None`: the system's.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// SHA-256 over the certificates `tls` trusts, so that a reload can
    /// tell whether the trust changed (a client configuration cannot be
    /// compared).
    pub ca_digest: Option<[u8; 32]>,
    pub bind: BindMethod,
    pub user_base: String,
    /// With `{user}`, replaced by the RFC 4515-escaped name.
    pub user_filter: String,
    pub group_lookup: GroupLookup,
    pub group_base: String,
    pub group_name_attribute: String,
    pub email_attribute: String,
    pub name_attribute: String,
    /// Lowercased group DN or name → the table's group name.
    pub rename: HashMap<String, String>,
    /// Taken off the front of a group name when present.
    pub strip_prefix: Option<String>,
    /// Bound on one whole check (connect, binds, searches).
    pub timeout: Duration,
    pub pool_size: usize,
    /// How long a verified password is remembered.
    pub cache_ttl: Duration,
    /// How long a user's groups are used before they are read again.
    pub group_cache_ttl: Duration,
    /// After a failure to reach every server, how long the directory is
    /// treated as down without trying (a dead server costs one timeout per
    /// interval, not one per login).
    pub retry_interval: Duration,
}

impl std::fmt::Debug for DirectorySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectorySettings")
            .field("name", &self.name)
            .field("servers", &self.servers)
            .field("bind", &self.bind)
            .field("user_base", &self.user_base)
            .field("group_lookup", &self.group_lookup)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl DirectorySettings {
    /// What a pooled connection was made under: servers, trust, the service
    /// bind, the bound on a check. Equal across a reload, the connections
    /// (and the back-off of a dead directory) carry over.
    fn connection_digest(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for s in &self.servers {
            h.update(format!("{}\0{:?}\0", s.url, s.transport));
        }
        h.update(self.ca_digest.unwrap_or_default());
        match &self.bind {
            BindMethod::SearchThenBind { dn, password } => {
                h.update(b"search\0");
                h.update(dn.as_bytes());
                h.update(b"\0");
                h.update(Sha256::digest(password.expose()));
            }
            BindMethod::Template(t) => {
                h.update(b"template\0");
                h.update(t.as_bytes());
            }
        }
        h.update(format!("\0{:?}\0{}", self.timeout, self.pool_size));
        h.finalize().into()
    }

    /// What a cached entry (DN, raw groups, mail, name) was read under: the
    /// connection and the searches. Equal across a reload, the group cache
    /// carries over, so a reload during a directory outage does not cost
    /// cached users their login. Renames and the prefix apply after the
    /// cache, so changing them keeps it.
    fn lookup_digest(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.connection_digest());
        for f in [
            &self.user_base,
            &self.user_filter,
            &self.group_base,
            &self.group_name_attribute,
            &self.email_attribute,
            &self.name_attribute,
        ] {
            h.update(f.as_bytes());
            h.update(b"\0");
        }
        h.update(format!("{:?}", self.group_lookup));
        h.finalize().into()
    }

    /// The table's name for a group as the directory gave it (a DN from
    /// `memberOf`, or the name attribute of a group entry), if it has one.
    pub fn table_name(&self, raw: &str, from_dn: bool) -> Option<String> {
        if let Some(n) = self.rename.get(&raw.to_lowercase()) {
            return Some(n.clone());
        }
        let name = if from_dn {
            let v = text::first_rdn_value(raw, &self.group_name_attribute)?;
            if let Some(n) = self.rename.get(&v.to_lowercase()) {
                return Some(n.clone());
            }
            v
        } else {
            raw.to_string()
        };
        match &self.strip_prefix {
            Some(p) if name.len() > p.len() && name[..p.len()].eq_ignore_ascii_case(p) => {
                Some(name[p.len()..].to_string())
            }
            _ => Some(name),
        }
    }
}

/// The directories of one configuration generation and the order in
/// which they and the local users are asked.
#[derive(Debug, Clone)]
pub struct Directories {
    pub order: AuthOrder,
    pub list: Vec<Arc<DirectorySettings>>,
}

impl Default for Directories {
    fn default() -> Self {
        Self {
            order: AuthOrder::LocalFirst,
            list: Vec::new(),
        }
    }
}

impl Directories {
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// A person the directory vouched for, with groups already in table ids.
#[derive(Debug, Clone)]
pub struct DirectoryUser {
    pub name: Box<str>,
    pub directory: Arc<str>,
    pub dn: Arc<str>,
    /// Table ids, `all-users` included.
    pub groups: Arc<[GroupId]>,
    /// The groups as the directory named them, before renaming.
    pub directory_groups: Arc<[Box<str>]>,
    pub email: Arc<str>,
    pub full_name: Arc<str>,
}

impl DirectoryUser {
    pub fn identity(&self) -> Identity<'_> {
        Identity {
            user: &self.name,
            groups: &self.groups,
            source: Source::Directory,
        }
    }

    /// Resolves what a directory said into the table of this generation.
    pub(crate) fn resolve(
        settings: &DirectorySettings,
        policy: &PolicyTable,
        name: &str,
        found: &Found,
    ) -> Self {
        let mut groups: Vec<GroupId> = found
            .groups
            .iter()
            .filter_map(|(raw, from_dn)| settings.table_name(raw, *from_dn))
            .filter_map(|n| policy.group_id(&n))
            .filter(|&g| g != policy.all_users())
            .collect();
        groups.sort_unstable();
        groups.dedup();
        groups.push(policy.all_users());
        Self {
            name: name.into(),
            directory: settings.name.clone(),
            dn: found.dn.clone(),
            groups: groups.into(),
            directory_groups: found
                .groups
                .iter()
                .map(|(g, _)| g.as_str().into())
                .collect(),
            email: found.email.clone(),
            full_name: found.full_name.clone(),
        }
    }
}

/// The running side of every directory, shared by all generations like
/// the credential cache: pools and group caches. A reload that changes a
/// directory's settings gets a new one, which keeps the old connections and
/// group cache when what they depend on is unchanged.
#[derive(Debug, Default)]
pub(crate) struct Runtime {
    dirs: Mutex<HashMap<Arc<str>, Arc<Directory>>>,
    metrics: DirectoryMetrics,
}

impl Runtime {
    pub(crate) fn new(metrics: DirectoryMetrics) -> Self {
        Self {
            dirs: Mutex::default(),
            metrics,
        }
    }

    /// The live directory for `settings` (of the caller's generation).
    pub(crate) fn get(&self, settings: &Arc<DirectorySettings>) -> Arc<Directory> {
        let mut dirs = self.dirs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(d) = dirs.get(&settings.name)
            && d.serves(settings)
        {
            return d.clone();
        }
        let d = Directory::new(settings.clone(), self.metrics.clone());
        if let Some(old) = dirs.get(&settings.name) {
            let before = old.settings();
            d.inherit(
                old,
                before.connection_digest() == settings.connection_digest(),
                before.lookup_digest() == settings.lookup_digest(),
            );
        }
        let d = Arc::new(d);
        dirs.insert(settings.name.clone(), d.clone());
        d
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn settings(rename: &[(&str, &str)], prefix: Option<&str>) -> DirectorySettings {
        DirectorySettings {
            name: "corp".into(),
            servers: vec![],
            tls: None,
            ca_digest: None,
            bind: BindMethod::Template("{user}@corp".into()),
            user_base: "dc=x".into(),
            user_filter: "(uid={user})".into(),
            group_lookup: GroupLookup::MemberOf,
            group_base: "dc=x".into(),
            group_name_attribute: "cn".into(),
            email_attribute: "mail".into(),
            name_attribute: "cn".into(),
            rename: rename
                .iter()
                .map(|(a, b)| (a.to_lowercase(), b.to_string()))
                .collect(),
            strip_prefix: prefix.map(Into::into),
            timeout: Duration::from_secs(1),
            pool_size: 1,
            cache_ttl: Duration::from_secs(1),
            group_cache_ttl: Duration::from_secs(1),
            retry_interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn directory_group_names_become_table_names() {
        let s = settings(
            &[("CN=NetAdmins,OU=Groups,DC=corp", "netadmins")],
            Some("pc-"),
        );
        assert_eq!(
            s.table_name("cn=netadmins,ou=groups,dc=corp", true)
                .as_deref(),
            Some("netadmins"),
            "renamed, DN compared without case"
        );
        assert_eq!(
            s.table_name("cn=helpdesk,ou=groups,dc=x", true).as_deref(),
            Some("helpdesk")
        );
        assert_eq!(
            s.table_name("cn=PC-ops,dc=x", true).as_deref(),
            Some("ops"),
            "prefix taken off"
        );
        assert_eq!(s.table_name("pc-", false).as_deref(), Some("pc-"));
        assert_eq!(s.table_name("ou=x,dc=x", true), None);
        assert_eq!(s.table_name("plain", false).as_deref(), Some("plain"));
    }
}

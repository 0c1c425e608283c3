//! The one role-mapping table. RADIUS, TACACS+ and web logins all ask it the
//! same question — "this identity, from this client: what may they do?" — and
//! get a protocol-neutral [`Grant`] or a [`Refusal`]. No I/O; swapped whole on
//! reload, so a request sees one consistent table from start to finish.

mod commands;

pub use commands::{
    Action, CommandPattern, CommandRule, CommandRules, CommandVerdict, MAX_WORDS, PatternError,
};

use std::collections::HashMap;
use std::fmt;

/// Index of a role in the table.
pub type RoleId = u16;
/// Index of a group in the table.
pub type GroupId = u16;

/// The built-in group every user belongs to. It may be mapped like any other.
pub const ALL_USERS: &str = "all-users";

/// The TACACS+ `role=` value an SD-WAN orchestrator reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TacacsRole {
    Admin,
    Manager,
    Monitor,
}

impl TacacsRole {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "manager" => Some(Self::Manager),
            "monitor" => Some(Self::Monitor),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Manager => "manager",
            Self::Monitor => "monitor",
        }
    }
}

/// What a role grants. Rendered per client by a vendor profile.
#[derive(Debug, Clone)]
pub struct Role {
    pub name: Box<str>,
    /// 0..=15, Cisco privilege level.
    pub priv_lvl: u8,
    pub rbac_roles: Box<str>,
    pub rbac_aag: Box<str>,
    pub tacacs_role: Option<TacacsRole>,
    /// May use the administration API.
    pub admin: bool,
    pub commands: CommandRules,
}

/// Where an identity was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A user of the configuration file.
    Local,
    /// A user known through an upstream identity provider.
    External,
    /// A user an LDAP / AD directory vouched for with a bind.
    Directory,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::External => "external",
            Self::Directory => "directory",
        }
    }
}

/// Who is asking, as authn established it. Groups are already resolved to
/// table ids, so `decide` never touches a string map.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    pub user: &'a str,
    pub groups: &'a [GroupId],
    pub source: Source,
}

/// The appliance that relays the request.
#[derive(Debug, Clone, Copy)]
pub struct ClientCtx<'a> {
    pub name: &'a str,
}

/// Which rule of the table produced a grant; `explain` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    /// The `index`-th mapping (0-based, file order) matched `group`.
    Mapping { index: usize, group: GroupId },
    /// No mapping matched; the default role applied.
    Default,
}

/// A decision to let someone in, borrowing the role from the table.
#[derive(Debug, Clone, Copy)]
pub struct Grant<'a> {
    pub role_id: RoleId,
    pub role: &'a Role,
    pub decided_by: DecidedBy,
}

/// Why the table refused someone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no mapping matches the user's groups and no default role is configured")]
    NoRole,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Self::NoRole => "no_role",
        }
    }
}

/// One row of the mapping list, in precedence order.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub group: GroupId,
    pub role: RoleId,
}

/// The compiled table.
#[derive(Debug, Clone)]
pub struct PolicyTable {
    roles: Vec<Role>,
    groups: Vec<Box<str>>,
    group_ids: HashMap<Box<str>, GroupId>,
    mappings: Vec<Mapping>,
    /// For each group, the first mapping that names it (index into
    /// `mappings`), so `decide` is one pass over the user's groups.
    first_mapping: Vec<Option<u32>>,
    default_role: Option<RoleId>,
}

/// Errors building a table; config validation catches these first with file
/// and line, so reaching one means the caller skipped validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("too many {0} (at most 65535)")]
    TooMany(&'static str),
    #[error("mapping refers to unknown id")]
    BadReference,
}

impl PolicyTable {
    /// Builds the table. Group names must be unique; `all-users` is added if
    /// absent. Mappings are in precedence order: the first whose group the
    /// user is in decides the role.
    pub fn new(
        roles: Vec<Role>,
        group_names: Vec<Box<str>>,
        mappings: Vec<Mapping>,
        default_role: Option<RoleId>,
    ) -> Result<Self, TableError> {
        let mut groups = group_names;
        if !groups.iter().any(|g| &**g == ALL_USERS) {
            groups.push(ALL_USERS.into());
        }
        if groups.len() > usize::from(GroupId::MAX) {
            return Err(TableError::TooMany("groups"));
        }
        if roles.len() > usize::from(RoleId::MAX) {
            return Err(TableError::TooMany("roles"));
        }
        let group_ids = groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.clone(), i as GroupId))
            .collect();
        let mut first_mapping = vec![None; groups.len()];
        for (i, m) in mappings.iter().enumerate() {
            let slot = first_mapping
                .get_mut(usize::from(m.group))
                .ok_or(TableError::BadReference)?;
            if usize::from(m.role) >= roles.len() {
                return Err(TableError::BadReference);
            }
            slot.get_or_insert(i as u32);
        }
        if default_role.is_some_and(|r| usize::from(r) >= roles.len()) {
            return Err(TableError::BadReference);
        }
        Ok(Self {
            roles,
            groups,
            group_ids,
            mappings,
            first_mapping,
            default_role,
        })
    }

    /// The decision for one identity. Cheap: a pass over the user's groups,
    /// no allocation. Precedence: the mapping listed first in the file wins.
    pub fn decide<'a>(
        &'a self,
        identity: &Identity<'_>,
        _client: &ClientCtx<'_>,
    ) -> Result<Grant<'a>, Refusal> {
        let best = identity
            .groups
            .iter()
            .chain(std::iter::once(&self.all_users()))
            .filter_map(|&g| self.first_mapping.get(usize::from(g)).copied().flatten())
            .min();
        if let Some(index) = best {
            let m = &self.mappings[index as usize];
            return Ok(Grant {
                role_id: m.role,
                role: &self.roles[usize::from(m.role)],
                decided_by: DecidedBy::Mapping {
                    index: index as usize,
                    group: m.group,
                },
            });
        }
        match self.default_role {
            Some(r) => Ok(Grant {
                role_id: r,
                role: &self.roles[usize::from(r)],
                decided_by: DecidedBy::Default,
            }),
            None => Err(Refusal::NoRole),
        }
    }

    pub fn all_users(&self) -> GroupId {
        self.group_ids[ALL_USERS]
    }

    pub fn group_id(&self, name: &str) -> Option<GroupId> {
        self.group_ids.get(name).copied()
    }

    pub fn group_name(&self, id: GroupId) -> &str {
        self.groups.get(usize::from(id)).map_or("?", |g| g)
    }

    pub fn groups(&self) -> &[Box<str>] {
        &self.groups
    }

    pub fn role(&self, id: RoleId) -> &Role {
        &self.roles[usize::from(id)]
    }

    pub fn role_by_name(&self, name: &str) -> Option<(RoleId, &Role)> {
        self.roles
            .iter()
            .enumerate()
            .find(|(_, r)| &*r.name == name)
            .map(|(i, r)| (i as RoleId, r))
    }

    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    pub fn mappings(&self) -> &[Mapping] {
        &self.mappings
    }

    pub fn default_role(&self) -> Option<RoleId> {
        self.default_role
    }
}

impl fmt::Display for DecidedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mapping { index, .. } => write!(f, "mapping #{}", index + 1),
            Self::Default => f.write_str("default role"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, priv_lvl: u8) -> Role {
        Role {
            name: name.into(),
            priv_lvl,
            rbac_roles: "R".into(),
            rbac_aag: "G".into(),
            tacacs_role: Some(TacacsRole::Monitor),
            admin: false,
            commands: CommandRules::permit_all(),
        }
    }

    fn table(default: Option<RoleId>) -> PolicyTable {
        PolicyTable::new(
            vec![role("admin", 15), role("help", 7), role("ro", 1)],
            vec!["netadmins".into(), "helpdesk".into(), "other".into()],
            vec![Mapping { group: 0, role: 0 }, Mapping { group: 1, role: 1 }],
            default,
        )
        .unwrap()
    }

    fn id<'a>(groups: &'a [GroupId]) -> Identity<'a> {
        Identity {
            user: "u",
            groups,
            source: Source::Local,
        }
    }

    const CLIENT: ClientCtx<'static> = ClientCtx { name: "c" };

    #[test]
    fn first_listed_mapping_wins_whatever_the_group_order() {
        let t = table(Some(2));
        let g = t.decide(&id(&[1, 0]), &CLIENT).unwrap();
        assert_eq!(&*g.role.name, "admin");
        assert_eq!(g.decided_by, DecidedBy::Mapping { index: 0, group: 0 });
        let g = t.decide(&id(&[1]), &CLIENT).unwrap();
        assert_eq!(&*g.role.name, "help");
    }

    #[test]
    fn unmapped_user_gets_default_or_is_refused() {
        let t = table(Some(2));
        let g = t.decide(&id(&[2]), &CLIENT).unwrap();
        assert_eq!(&*g.role.name, "ro");
        assert_eq!(g.decided_by, DecidedBy::Default);
        assert_eq!(
            table(None).decide(&id(&[]), &CLIENT).unwrap_err(),
            Refusal::NoRole
        );
    }

    #[test]
    fn all_users_group_is_implicit_and_mappable() {
        let mut t = table(None);
        let all = t.all_users();
        t = PolicyTable::new(
            t.roles.clone(),
            t.groups.clone(),
            vec![Mapping {
                group: all,
                role: 2,
            }],
            None,
        )
        .unwrap();
        assert_eq!(&*t.decide(&id(&[]), &CLIENT).unwrap().role.name, "ro");
    }

    #[test]
    fn unknown_group_ids_are_ignored() {
        let t = table(None);
        assert!(t.decide(&id(&[999]), &CLIENT).is_err());
    }
}

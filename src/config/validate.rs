//! The one validation pass: every check runs and every failure is collected,
//! so an operator sees all mistakes at once. Cross-references (roles, groups)
//! carry the span of the key that names them.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use super::error::Locator;

mod console;
mod console_saml;
mod directory;
mod privilege;
mod saml;
mod store;
mod web;
use super::raw::*;
use super::*;
use crate::authn::{LocalUsersBuilder, NewUser, ThrottleSettings};
use crate::client::Client;
use crate::policy::{
    Action, CommandPattern, CommandRule, CommandRules, GroupId, Mapping, PolicyTable, Role, RoleId,
    TacacsRole,
};
use crate::profile::Profile;
use crate::secret::Secret;

/// Secrets shorter than this draw a warning (RFC 6614 §2.3 and common
/// hardening guides ask for at least 16 random characters).
const WEAK_SECRET: usize = 16;
/// rbac strings end up in one RADIUS attribute with a prefix such as
/// `LOGIN:rbac-roles=`; keep well under the 253-byte limit.
const MAX_ATTR_TEXT: usize = 200;

struct Ctx<'a> {
    loc: Locator<'a>,
    base: PathBuf,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
    /// The first secret written inline.
    inline_secret: Option<ConfigError>,
    /// Whether consoles' SP metadata URLs are fetched (loading a file), or
    /// only their last good copies read (validating text: tests, fuzzing).
    fetch_metadata: bool,
    /// `server.data_dir`, once read: where those copies are kept.
    data_dir: PathBuf,
}

impl Ctx<'_> {
    fn err(&mut self, span: Range<usize>, key: impl Into<String>, msg: impl Into<String>) {
        let e = self.loc.error(span, key, msg);
        self.errors.push(e);
    }

    fn warn(&mut self, span: Range<usize>, key: impl Into<String>, msg: impl Into<String>) {
        let e = self.loc.error(span, key, msg);
        self.warnings.push(e);
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// A whole number within `range`, or the default when absent.
    fn int(&mut self, v: &Option<Spanned<i64>>, key: &str, range: Range<i64>, default: i64) -> i64 {
        match v {
            None => default,
            Some(v) if range.contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                self.err(
                    v.span(),
                    key,
                    format!(
                        "{} is out of range ({}..={})",
                        v.get_ref(),
                        range.start,
                        range.end - 1
                    ),
                );
                default
            }
        }
    }

    fn secret(&mut self, raw: &Spanned<RawSecret>, key: &str) -> Option<Secret> {
        let span = raw.span();
        let value = match raw.get_ref() {
            RawSecret::Inline(s) => {
                if self.inline_secret.is_none() {
                    self.inline_secret = Some(self.loc.error(span.clone(), key, "secret inline"));
                }
                s.clone().into_bytes()
            }
            RawSecret::Env { env } => match std::env::var(env) {
                Ok(v) => v.into_bytes(),
                Err(_) => {
                    self.err(
                        span,
                        key,
                        format!("environment variable `{env}` is not set"),
                    );
                    return None;
                }
            },
            RawSecret::File { file } => match std::fs::read(self.path(file)) {
                Ok(mut v) => {
                    // Editors and `echo` add a final newline that is not part of the secret.
                    while matches!(v.last(), Some(b'\n' | b'\r')) {
                        v.pop();
                    }
                    v
                }
                Err(e) => {
                    self.err(span, key, format!("cannot read secret file `{file}`: {e}"));
                    return None;
                }
            },
        };
        if value.is_empty() {
            self.err(span, key, "secret is empty");
            return None;
        }
        if value.len() < WEAK_SECRET {
            self.warn(
                span,
                key,
                format!(
                    "weak secret: {} bytes, at least {WEAK_SECRET} recommended",
                    value.len()
                ),
            );
        }
        Some(Secret::new(value))
    }

    fn listen(&mut self, v: &Option<Spanned<String>>, key: &str) -> Option<SocketAddr> {
        let v = v.as_ref()?;
        match v.get_ref().parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    v.span(),
                    key,
                    format!(
                        "`{}` is not an address:port such as 127.0.0.1:1812",
                        v.get_ref()
                    ),
                );
                None
            }
        }
    }
}

pub(super) fn validate(path: &Path, text: &str) -> Result<Loaded, ConfigErrors> {
    validate_with(path, text, false)
}

/// As [`validate`]; `fetch_metadata`: fetch consoles' SP metadata URLs.
pub(super) fn validate_with(
    path: &Path,
    text: &str,
    fetch_metadata: bool,
) -> Result<Loaded, ConfigErrors> {
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut cx = Ctx {
        loc: Locator::new(path, text),
        base,
        errors: Vec::new(),
        warnings: Vec::new(),
        inline_secret: None,
        fetch_metadata,
        data_dir: PathBuf::new(),
    };
    let raw: RawConfig = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => return Err(ConfigErrors(vec![cx.loc.toml_error(&e)])),
    };

    let listen = listen(&mut cx, &raw.listen);
    let server = server(&mut cx, &raw.server);
    cx.data_dir = server.data_dir.clone();
    let radius = radius(&mut cx, &raw.radius);
    let tacacs = tacacs(&mut cx, &raw.tacacs);
    let accounting = AccountingSettings {
        retention: match cx.int(
            &raw.accounting.retention_days,
            "accounting.retention_days",
            0..36_501,
            0,
        ) {
            0 => None,
            d => Some(Duration::from_secs(d as u64 * 86_400)),
        },
        queue: cx.int(
            &raw.accounting.queue,
            "accounting.queue",
            1..1_000_001,
            65_536,
        ) as usize,
    };
    let (roles, role_ids) = roles(&mut cx, &raw.roles);
    let (group_names, group_ids) = groups(&mut cx, &raw.groups);
    let mappings = mappings(&mut cx, &raw.mappings, &role_ids, &group_ids);
    let default_role = raw.policy.default_role.as_ref().and_then(|d| {
        let id = role_ids.get(d.get_ref().as_str()).copied();
        if id.is_none() {
            cx.err(
                d.span(),
                "policy.default_role",
                format!("role `{}` is not defined", d.get_ref()),
            );
        }
        id
    });
    let clients = clients(&mut cx, &raw.clients);
    privilege::disagreements(&mut cx, &raw.roles, &roles, &clients);
    let all_users = group_ids[crate::policy::ALL_USERS];
    let users = users(&mut cx, &raw.users, &group_ids, all_users);
    let web_settings = web::web(&mut cx, &raw.web);
    let oidc = web::oidc(&mut cx, &raw.oidc);
    let saml = saml::saml(&mut cx, &raw.saml, &web_settings, &oidc);
    let (consoles, idp) = console::consoles(&mut cx, &raw.consoles, &raw.idp, &oidc, &saml);
    let directories = crate::authn::Directories {
        order: server.auth_order,
        list: directory::directories(&mut cx, &raw.directories, &group_ids),
    };
    if server.auth_order != AuthOrder::LocalFirst
        && directories.is_empty()
        && let Some(v) = &raw.server.auth_order
    {
        cx.warn(
            v.span(),
            "server.auth_order",
            "no [[directory]] is configured: local users answer whatever the order",
        );
    }
    let store = store::store(&mut cx, &raw.store, path);

    if !cx.errors.is_empty() {
        return Err(ConfigErrors(cx.errors));
    }
    let policy = match PolicyTable::new(roles, group_names, mappings, default_role) {
        Ok(p) => p,
        Err(e) => return Err(ConfigErrors(vec![cx.loc.file_error(e.to_string())])),
    };
    debug_assert_eq!(policy.all_users(), all_users);
    let renderings = Renderings::build(&policy);
    let config = Config {
        path: path.to_path_buf(),
        generation: 0,
        listen,
        users: users
            .finish(server.credential_cache_ttl)
            .with_throttle(server.throttle),
        server,
        radius,
        tacacs,
        accounting,
        clients: ClientTable::new(clients),
        policy,
        renderings,
        dictionary: dict::builtin(),
        web: web_settings,
        oidc,
        saml,
        consoles,
        idp,
        directories,
        store,
    };
    Ok(Loaded {
        config,
        warnings: cx.warnings,
        inline_secret: cx.inline_secret,
    })
}

fn listen(cx: &mut Ctx<'_>, raw: &RawListen) -> Listen {
    let l = Listen {
        radius_auth: cx.listen(&raw.radius_auth, "listen.radius_auth"),
        radius_acct: cx.listen(&raw.radius_acct, "listen.radius_acct"),
        tacacs: cx.listen(&raw.tacacs, "listen.tacacs"),
        http: cx.listen(&raw.http, "listen.http"),
    };
    let named = [
        ("listen.radius_auth", &raw.radius_auth, l.radius_auth),
        ("listen.radius_acct", &raw.radius_acct, l.radius_acct),
        ("listen.tacacs", &raw.tacacs, l.tacacs),
        ("listen.http", &raw.http, l.http),
    ];
    for (i, (key, raw_v, addr)) in named.iter().enumerate() {
        let (Some(addr), Some(raw_v)) = (addr, raw_v) else {
            continue;
        };
        // Port 0 asks the kernel for a free port each time, so it never clashes.
        if addr.port() == 0 {
            continue;
        }
        if let Some((other, _, _)) = named[..i].iter().find(|(_, _, a)| a.as_ref() == Some(addr)) {
            cx.err(
                raw_v.span(),
                *key,
                format!("{addr} is already used by `{other}`"),
            );
        }
    }
    l
}

fn server(cx: &mut Ctx<'_>, raw: &RawServer) -> ServerSettings {
    let auth_order = match raw.auth_order.as_ref() {
        None => AuthOrder::LocalFirst,
        Some(v) => match v.get_ref().as_str() {
            "local-first" => AuthOrder::LocalFirst,
            "remote-first" => AuthOrder::RemoteFirst,
            "remote-only" => AuthOrder::RemoteOnly,
            other => {
                cx.err(
                    v.span(),
                    "server.auth_order",
                    format!("`{other}`: expected `local-first`, `remote-first` or `remote-only`"),
                );
                AuthOrder::LocalFirst
            }
        },
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    ServerSettings {
        data_dir: raw.data_dir.as_ref().map_or_else(
            || PathBuf::from("/var/lib/portcullis"),
            |d| cx.path(d.get_ref()),
        ),
        auth_order,
        credential_cache_ttl: Duration::from_secs(cx.int(
            &raw.credential_cache_ttl,
            "server.credential_cache_ttl",
            0..86_401,
            300,
        ) as u64),
        argon2_threads: cx.int(&raw.argon2_threads, "server.argon2_threads", 1..1025, cores)
            as usize,
        argon2_queue: cx.int(&raw.argon2_queue, "server.argon2_queue", 0..1_000_001, 256) as usize,
        throttle: ThrottleSettings {
            failures: cx.int(
                &raw.login_failures,
                "server.login_failures",
                0..1_000_001,
                5,
            ) as u32,
            source_failures: cx.int(
                &raw.login_failures_per_source,
                "server.login_failures_per_source",
                0..1_000_001,
                20,
            ) as u32,
            base: Duration::from_secs(cx.int(&raw.lockout, "server.lockout", 1..86_401, 2) as u64),
            max: Duration::from_secs(
                cx.int(&raw.lockout_max, "server.lockout_max", 1..604_801, 300) as u64,
            ),
        },
    }
}

fn radius(cx: &mut Ctx<'_>, raw: &RawRadius) -> RadiusSettings {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    RadiusSettings {
        dictionary_dir: raw.dictionary_dir.as_ref().map(|d| cx.path(d.get_ref())),
        extra_dictionaries: raw
            .dictionaries
            .iter()
            .map(|d| cx.path(d.get_ref()))
            .collect(),
        workers: cx.int(&raw.workers, "radius.workers", 1..1025, cores) as usize,
        recv_buffer: cx.int(
            &raw.recv_buffer,
            "radius.recv_buffer",
            65_536..1_073_741_825,
            8 << 20,
        ) as usize,
        duplicate_window: Duration::from_secs(cx.int(
            &raw.duplicate_window,
            "radius.duplicate_window",
            0..301,
            5,
        ) as u64),
    }
}

fn tacacs(cx: &mut Ctx<'_>, raw: &RawTacacs) -> TacacsSettings {
    TacacsSettings {
        max_connections: cx.int(
            &raw.max_connections,
            "tacacs.max_connections",
            1..1_000_001,
            4096,
        ) as usize,
        max_connections_per_client: cx.int(
            &raw.max_connections_per_client,
            "tacacs.max_connections_per_client",
            1..1_000_001,
            1024,
        ) as usize,
        max_connections_per_address: cx.int(
            &raw.max_connections_per_address,
            "tacacs.max_connections_per_address",
            1..1_000_001,
            256,
        ) as usize,
        idle_timeout: Duration::from_secs(cx.int(
            &raw.idle_timeout,
            "tacacs.idle_timeout",
            1..86_401,
            60,
        ) as u64),
        read_timeout: Duration::from_secs(cx.int(
            &raw.read_timeout,
            "tacacs.read_timeout",
            1..3601,
            10,
        ) as u64),
        banner: raw.banner.clone(),
        username_prompt: raw
            .username_prompt
            .clone()
            .unwrap_or_else(|| "Username: ".into()),
        password_prompt: raw
            .password_prompt
            .clone()
            .unwrap_or_else(|| "Password: ".into()),
    }
}

fn roles(cx: &mut Ctx<'_>, raw: &[RawRole]) -> (Vec<Role>, HashMap<String, RoleId>) {
    let mut roles = Vec::new();
    let mut ids = HashMap::new();
    for r in raw {
        let name = r.name.get_ref();
        let key = format!("role[{name}]");
        if name.trim().is_empty() {
            cx.err(r.name.span(), format!("{key}.name"), "role name is empty");
            continue;
        }
        if ids.contains_key(name) {
            cx.err(
                r.name.span(),
                format!("{key}.name"),
                format!("role `{name}` is defined twice"),
            );
            continue;
        }
        let priv_lvl = *r.priv_lvl.get_ref();
        if !(0..=15).contains(&priv_lvl) {
            cx.err(
                r.priv_lvl.span(),
                format!("{key}.priv_lvl"),
                format!("priv_lvl {priv_lvl} is outside 0..=15"),
            );
        }
        let tacacs_role = r.tacacs_role.as_ref().and_then(|t| {
            let parsed = TacacsRole::parse(t.get_ref());
            if parsed.is_none() {
                cx.err(
                    t.span(),
                    format!("{key}.tacacs_role"),
                    format!("`{}`: expected admin, manager or monitor", t.get_ref()),
                );
            }
            parsed
        });
        for (field, v) in [("rbac_roles", &r.rbac_roles), ("rbac_aag", &r.rbac_aag)] {
            if v.len() > MAX_ATTR_TEXT || v.chars().any(char::is_control) {
                cx.err(
                    r.name.span(),
                    format!("{key}.{field}"),
                    format!("must be printable and at most {MAX_ATTR_TEXT} bytes"),
                );
            }
        }
        let commands = r
            .commands
            .as_ref()
            .map_or_else(CommandRules::permit_all, |c| commands(cx, &key, c));
        ids.insert(name.clone(), roles.len() as RoleId);
        roles.push(Role {
            name: name.as_str().into(),
            priv_lvl: priv_lvl.clamp(0, 15) as u8,
            rbac_roles: r.rbac_roles.as_str().into(),
            rbac_aag: r.rbac_aag.as_str().into(),
            tacacs_role,
            admin: r.admin,
            commands,
        });
    }
    (roles, ids)
}

fn commands(cx: &mut Ctx<'_>, key: &str, raw: &RawCommands) -> CommandRules {
    let action = |cx: &mut Ctx<'_>, v: &Spanned<String>, k: String| {
        Action::parse(v.get_ref()).unwrap_or_else(|| {
            cx.err(
                v.span(),
                k,
                format!("`{}`: expected permit or deny", v.get_ref()),
            );
            Action::Deny
        })
    };
    let default = action(cx, &raw.default, format!("{key}.commands.default"));
    let mut rules = Vec::new();
    for (i, r) in raw.rules.iter().enumerate() {
        let a = action(cx, &r.action, format!("{key}.commands.rule[{i}].action"));
        match CommandPattern::parse(r.pattern.get_ref()) {
            Ok(pattern) => rules.push(CommandRule { action: a, pattern }),
            Err(e) => cx.err(
                r.pattern.span(),
                format!("{key}.commands.rule[{i}].match"),
                e.to_string(),
            ),
        }
    }
    CommandRules { default, rules }
}

fn groups(cx: &mut Ctx<'_>, raw: &[RawGroup]) -> (Vec<Box<str>>, HashMap<String, GroupId>) {
    let mut names: Vec<Box<str>> = Vec::new();
    let mut ids = HashMap::new();
    for g in raw {
        let name = g.name.get_ref();
        let key = format!("group[{name}].name");
        if name.trim().is_empty() {
            cx.err(g.name.span(), key, "group name is empty");
        } else if name == crate::policy::ALL_USERS {
            cx.err(
                g.name.span(),
                key,
                "`all-users` is built in; map it without defining it",
            );
        } else if ids.contains_key(name) {
            cx.err(
                g.name.span(),
                key,
                format!("group `{name}` is defined twice"),
            );
        } else {
            ids.insert(name.clone(), names.len() as GroupId);
            names.push(name.as_str().into());
        }
    }
    // The built-in group takes the next id; PolicyTable::new adds the same.
    ids.insert(crate::policy::ALL_USERS.to_string(), names.len() as GroupId);
    names.push(crate::policy::ALL_USERS.into());
    (names, ids)
}

fn mappings(
    cx: &mut Ctx<'_>,
    raw: &[RawMapping],
    roles: &HashMap<String, RoleId>,
    groups: &HashMap<String, GroupId>,
) -> Vec<Mapping> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, m) in raw.iter().enumerate() {
        let g = groups.get(m.group.get_ref()).copied();
        if g.is_none() {
            cx.err(
                m.group.span(),
                format!("mapping[{i}].group"),
                format!("group `{}` is not defined", m.group.get_ref()),
            );
        }
        let r = roles.get(m.role.get_ref()).copied();
        if r.is_none() {
            cx.err(
                m.role.span(),
                format!("mapping[{i}].role"),
                format!("role `{}` is not defined", m.role.get_ref()),
            );
        }
        if let (Some(group), Some(role)) = (g, r) {
            if !seen.insert(group) {
                cx.warn(
                    m.group.span(),
                    format!("mapping[{i}].group"),
                    format!(
                        "group `{}` is already mapped above; this mapping never applies",
                        m.group.get_ref()
                    ),
                );
            }
            out.push(Mapping { group, role });
        }
    }
    out
}

fn clients(cx: &mut Ctx<'_>, raw: &[RawClient]) -> Vec<Client> {
    let mut out: Vec<Client> = Vec::new();
    // (network, client index, span) for the overlap check.
    let mut nets: Vec<(IpNet, usize, Range<usize>)> = Vec::new();
    for c in raw {
        let name = c.name.get_ref();
        let key = format!("client[{name}]");
        if out.iter().any(|o| &*o.name == name) {
            cx.err(
                c.name.span(),
                format!("{key}.name"),
                format!("client `{name}` is defined twice"),
            );
            continue;
        }
        let mut networks = Vec::new();
        if c.cidrs.get_ref().is_empty() {
            cx.err(
                c.cidrs.span(),
                format!("{key}.cidrs"),
                "at least one network is needed",
            );
        }
        for n in c.cidrs.get_ref() {
            let s = n.get_ref();
            let parsed = s
                .parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from));
            match parsed {
                Ok(net) => {
                    let net = net.trunc();
                    networks.push(net);
                    nets.push((net, out.len(), n.span()));
                }
                Err(_) => cx.err(
                    n.span(),
                    format!("{key}.cidrs"),
                    format!("`{s}` is not a network such as 10.0.0.0/8 or an address"),
                ),
            }
        }
        let radius_secret = c
            .radius_secret
            .as_ref()
            .and_then(|s| cx.secret(s, &format!("{key}.radius_secret")));
        let tacacs_key = c
            .tacacs_key
            .as_ref()
            .and_then(|s| cx.secret(s, &format!("{key}.tacacs_key")));
        if c.radius_secret.is_none() && c.tacacs_key.is_none() {
            cx.err(
                c.name.span(),
                key.clone(),
                "a client needs a radius_secret, a tacacs_key, or both",
            );
        }
        let profile = match &c.profile {
            None => Profile::CiscoIos,
            Some(p) => Profile::parse(p.get_ref()).unwrap_or_else(|| {
                let known: Vec<&str> = Profile::ALL.iter().map(|p| p.as_str()).collect();
                cx.err(
                    p.span(),
                    format!("{key}.profile"),
                    format!(
                        "unknown profile `{}`; known: {}",
                        p.get_ref(),
                        known.join(", ")
                    ),
                );
                Profile::CiscoIos
            }),
        };
        out.push(Client {
            name: name.as_str().into(),
            networks,
            radius: radius_secret
                .as_ref()
                .map(|s| crate::radius::codec::Secret::new(s.expose())),
            radius_secret,
            tacacs_key,
            profile,
            require_message_authenticator: c.require_message_authenticator,
            allow_unencrypted_tacacs: c.allow_unencrypted_tacacs,
            privilege: privilege::thresholds(cx, &key, c),
        });
    }
    for (i, (a, ca, _)) in nets.iter().enumerate() {
        for (b, cb, span) in &nets[i + 1..] {
            if ca == cb || !(a.contains(&b.network()) || b.contains(&a.network())) {
                continue;
            }
            let (x, y) = (&out[*ca], &out[*cb]);
            let key = format!("client[{}].cidrs", y.name);
            if a == b {
                cx.err(
                    span.clone(),
                    key,
                    format!("{b} is already claimed by client `{}`", x.name),
                );
            } else if x.radius_secret != y.radius_secret || x.tacacs_key != y.tacacs_key {
                cx.err(
                    span.clone(),
                    key,
                    format!(
                        "{b} overlaps {a} of client `{}` with a different secret; which secret applies would depend on the source address in a way that is easy to get wrong",
                        x.name
                    ),
                );
            }
        }
    }
    out
}

/// The users, with `all-users` appended to each one's groups.
fn users(
    cx: &mut Ctx<'_>,
    raw: &[RawUser],
    groups: &HashMap<String, GroupId>,
    all_users: GroupId,
) -> LocalUsersBuilder {
    let mut out = LocalUsersBuilder::with_capacity(raw.len());
    let mut seen: HashSet<&str> = HashSet::with_capacity(raw.len());
    let mut ids = Vec::new();
    for u in raw {
        let name = u.name.get_ref();
        // Only formatted when there is something to report: with 100,000
        // users, one string each would be 100,000 allocations for nothing.
        let key = |field: &str| format!("user[{name}].{field}");
        if name.is_empty() || name.len() > 253 || name.chars().any(char::is_control) {
            cx.err(
                u.name.span(),
                key("name"),
                "user name must be 1..=253 printable bytes",
            );
            continue;
        }
        if !seen.insert(name) {
            cx.err(
                u.name.span(),
                key("name"),
                format!("user `{name}` is defined twice"),
            );
            continue;
        }
        let hash = out.hash(u.password_hash.get_ref()).map_err(|e| {
            cx.err(
                u.password_hash.span(),
                key("password_hash"),
                format!("not a valid argon2 hash ({e}); make one with `portcullis hash-password`"),
            );
        });
        ids.clear();
        for g in &u.groups {
            match groups.get(g.get_ref()) {
                // Everyone is in it already; listing it is harmless.
                Some(_) if g.get_ref() == crate::policy::ALL_USERS => {}
                Some(&id) => ids.push(id),
                None => cx.err(
                    g.span(),
                    key("groups"),
                    format!("group `{}` is not defined", g.get_ref()),
                ),
            }
        }
        ids.push(all_users);
        let cleartext_password = u
            .cleartext_password
            .as_ref()
            .and_then(|s| cx.secret_unweighed(s, &key("cleartext_password")));
        let Ok(hash) = hash else { continue };
        let user = NewUser {
            name,
            groups: &ids,
            enabled: u.enabled,
            full_name: &u.full_name,
            email: &u.email,
            cleartext_password,
        };
        if let Err(e) = out.push(user, hash) {
            cx.err(u.name.span(), key("name"), e.to_string());
        }
    }
    out
}

impl Ctx<'_> {
    /// A secret whose length is the user's business (a password), so no
    /// weak-secret warning.
    fn secret_unweighed(&mut self, raw: &Spanned<RawSecret>, key: &str) -> Option<Secret> {
        let before = self.warnings.len();
        let s = self.secret(raw, key);
        self.warnings.truncate(before);
        s
    }
}

//! Configuration: the TOML schema operators write (`raw`), and one validation
//! pass (`validate`) that reports every mistake with file, line and key and
//! builds the runtime values: clients, policy table, users, renderings.

mod error;
mod handle;
mod raw;
mod validate;

pub use error::{ConfigError, ConfigErrors};
pub use handle::ConfigHandle;
pub use raw::RawConfig;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::authn::LocalUsers;
use crate::client::ClientTable;
use crate::dict::{self, DictError, Dictionary, DictionaryBuilder};
use crate::policy::PolicyTable;
use crate::profile::Renderings;

/// Which credential source is asked first: the configuration's users or
/// the `[[directory]]`s (see `authn::Login`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOrder {
    LocalFirst,
    /// Directories first; local users only when every directory is
    /// unreachable (the break-glass account keeps working in an outage).
    RemoteFirst,
    /// Directories only.
    RemoteOnly,
}

impl AuthOrder {
    /// As written in `server.auth_order`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LocalFirst => "local-first",
            Self::RemoteFirst => "remote-first",
            Self::RemoteOnly => "remote-only",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listen {
    pub radius_auth: Option<SocketAddr>,
    pub radius_acct: Option<SocketAddr>,
    pub tacacs: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub data_dir: PathBuf,
    pub auth_order: AuthOrder,
    pub credential_cache_ttl: Duration,
    pub argon2_threads: usize,
    pub argon2_queue: usize,
    pub throttle: crate::authn::ThrottleSettings,
}

#[derive(Debug, Clone)]
pub struct RadiusSettings {
    /// `None`: the built-in set (the files of `dictionaries/`, compiled in).
    pub dictionary_dir: Option<PathBuf>,
    pub extra_dictionaries: Vec<PathBuf>,
    pub workers: usize,
    pub recv_buffer: usize,
    pub duplicate_window: Duration,
}

#[derive(Debug, Clone)]
pub struct TacacsSettings {
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    /// Per source address: one host cannot fill its client's share.
    pub max_connections_per_address: usize,
    pub idle_timeout: Duration,
    pub read_timeout: Duration,
    pub banner: Option<String>,
    pub username_prompt: String,
    pub password_prompt: String,
}

#[derive(Debug, Clone)]
pub struct AccountingSettings {
    pub retention: Option<Duration>,
    pub queue: usize,
}

/// The browser side: login page and sessions.
#[derive(Debug, Clone)]
pub struct WebSettings {
    pub session_ttl: Duration,
    /// A session unused this long ends, whatever its `session_ttl`.
    pub session_idle_timeout: Duration,
    /// Show the local form on /login (it stays reachable at /login?local=1).
    pub local_login: bool,
    /// With `local_login = false`, where the break-glass local login is
    /// accepted from; empty: anywhere.
    pub break_glass_cidrs: Vec<ipnet::IpNet>,
    /// Mark cookies Secure: browsers reach us over TLS (`public_url` https).
    pub secure_cookies: bool,
    /// `web.public_url` without a trailing `/`: the base of SAML defaults.
    pub public_url: Option<String>,
    /// Read at start: connection limits and timeouts bind to the listener.
    pub limits: HttpLimits,
}

/// What one HTTP connection and one request may hold and take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// To send a request's headers, or to sit idle between requests.
    pub header_timeout: Duration,
    /// For a whole request: its body read and its answer made.
    pub request_timeout: Duration,
    pub max_body: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_connections_per_address: 64,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_body: 1 << 20,
        }
    }
}

/// A validated configuration, ready to serve.
#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
    /// 1 for the first configuration, +1 per reload; set by
    /// [`ConfigHandle`] before the configuration is published, 0 until then.
    pub generation: u64,
    pub listen: Listen,
    pub server: ServerSettings,
    pub radius: RadiusSettings,
    pub tacacs: TacacsSettings,
    pub accounting: AccountingSettings,
    pub clients: ClientTable,
    pub policy: PolicyTable,
    pub users: LocalUsers,
    pub renderings: Renderings,
    /// RADIUS attribute names and types, for logs and accounting records.
    pub dictionary: Arc<Dictionary>,
    pub web: WebSettings,
    /// OpenID Providers, in file order (the login page shows them so).
    pub oidc: Vec<crate::oidc::ProviderSettings>,
    /// SAML identity providers, in file order.
    pub saml: Vec<crate::saml::SamlSettings>,
    /// Appliance web consoles, in file order.
    pub consoles: Vec<crate::idp::ConsoleSettings>,
    pub idp: crate::idp::IdpSettings,
    /// `[[directory]]`s and `server.auth_order`.
    pub directories: crate::authn::Directories,
    /// Where shared state lives; read at start only (a reload keeps the
    /// store it has).
    pub store: crate::store::StoreSettings,
}

/// A validated configuration and the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<ConfigError>,
    /// Where the first secret written inline stands, if any: [`load`] warns
    /// there when the file is readable by other users.
    pub inline_secret: Option<ConfigError>,
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            col: 0,
            key: String::new(),
            message: format!("cannot read: {e}"),
        }])
    })?;
    // Unlike `from_str`, loading fetches consoles' SP metadata URLs.
    let loaded = validate::validate_with(path, &text, true).and_then(with_dictionaries);
    drop(text);
    release_free_memory();
    let mut loaded = loaded?;
    if let Some(mut w) = loaded.inline_secret.take() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_or(0, |m| m.permissions().mode());
        if mode & 0o004 != 0 {
            w.message = format!(
                "this file holds secrets inline (the first here) and every user can read it \
                 (mode {:03o}): `chmod 600` it, or give the secrets as {{ env = \"...\" }} or \
                 {{ file = \"...\" }}",
                mode & 0o777
            );
            loaded.warnings.push(w);
        }
    }
    Ok(loaded)
}

/// Gives the kernel back the pages that loading used and freed.
///
/// Parsing is by far the hungriest thing this server does: toml builds a
/// token list, an event list and a document tree some 20 times the size of
/// the text (over 300 MB for a 17 MB file of 100,000 users) before any of it
/// becomes the compact runtime tables. glibc's malloc returns freed memory
/// to the kernel only from the top of its heaps, and the tables allocated
/// meanwhile pin those, so the process used to keep about 100 MB of freed
/// heap resident for its whole life. `malloc_trim` releases every whole
/// free page, in every arena (a reload parses on a runtime worker, in that
/// thread's arena). musl and the other libcs have no such call and leave
/// nothing comparable behind, hence the gate.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions: it takes glibc's own arena
    // locks and only advises the kernel about memory that is free.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Validates configuration text; `path` names it in errors and anchors
/// relative paths.
pub fn from_str(path: &Path, text: &str) -> Result<Loaded, ConfigErrors> {
    validate::validate(path, text)
}

/// Replaces the built-in dictionary set that `from_str` gives with the
/// configured directories, when there are any. Kept out of `from_str` so
/// validating text (tests, the fuzzer) reads no dictionary files.
fn with_dictionaries(mut loaded: Loaded) -> Result<Loaded, ConfigErrors> {
    let r = &loaded.config.radius;
    if r.dictionary_dir.is_some() || !r.extra_dictionaries.is_empty() {
        loaded.config.dictionary = load_dictionaries(r).map_err(|e| {
            let (file, line) = match &e {
                DictError::Parse { file, line, .. } => (file.clone(), *line),
                DictError::Read { path, .. } => (path.clone(), 0),
            };
            ConfigErrors(vec![ConfigError {
                file,
                line,
                col: 0,
                key: "radius.dictionary_dir".into(),
                message: e.to_string(),
            }])
        })?;
    }
    Ok(loaded)
}

/// The configured dictionary directory (or the built-in set), then each
/// extra directory's `dictionary` file, later definitions adding to earlier.
fn load_dictionaries(r: &RadiusSettings) -> Result<Arc<Dictionary>, DictError> {
    let mut b = DictionaryBuilder::new();
    match &r.dictionary_dir {
        Some(dir) => b.load_file(&dir.join("dictionary"))?,
        None => dict::add_builtin(&mut b)?,
    }
    for dir in &r.extra_dictionaries {
        b.load_file(&dir.join("dictionary"))?;
    }
    Ok(Arc::new(b.finish()?))
}

/// Fuzz entry: parsing and validating arbitrary bytes never panics.
pub fn fuzz_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = from_str(Path::new("fuzz.toml"), text);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const INLINE: &str = "[[client]]\nname = \"nas\"\ncidrs = [\"192.0.2.0/24\"]\nradius_secret = \"an-inline-secret-0123\"\n";

    fn load_with_mode(text: &str, mode: u32) -> Loaded {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        load(&path).unwrap()
    }

    #[test]
    fn inline_secrets_in_a_file_others_can_read_are_warned_about() {
        let l = load_with_mode(INLINE, 0o644);
        let w: Vec<_> = l
            .warnings
            .iter()
            .filter(|w| w.message.contains("chmod 600"))
            .collect();
        assert_eq!(w.len(), 1, "{:?}", l.warnings);
        assert_eq!(w[0].key, "client[nas].radius_secret");
        assert_eq!(w[0].line, 4);
        assert!(w[0].message.contains("mode 644"), "{}", w[0].message);
        for quiet in [load_with_mode(INLINE, 0o600), load_with_mode(INLINE, 0o640)] {
            assert!(
                !quiet.warnings.iter().any(|w| w.message.contains("chmod")),
                "{:?}",
                quiet.warnings
            );
        }
        // A file with no inline secret may be readable by anyone.
        let by_env = INLINE.replace(
            "\"an-inline-secret-0123\"",
            "{ env = \"PORTCULLIS_TEST_NEVER_SET_SECRET\" }",
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, by_env).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load(&path).unwrap_err();
        assert!(!e.to_string().contains("chmod"), "{e}");
    }

    #[test]
    fn break_glass_networks_are_checked() {
        let ok = from_str(
            Path::new("t.toml"),
            "[web]\nlocal_login = false\nbreak_glass_cidrs = [\"10.1.0.0/16\", \"192.0.2.7\"]\n",
        )
        .unwrap();
        assert_eq!(ok.config.web.break_glass_cidrs.len(), 2);
        let e = from_str(
            Path::new("t.toml"),
            "[web]\nbreak_glass_cidrs = [\"nope\"]\n",
        )
        .unwrap_err();
        assert_eq!(e.0[0].key, "web.break_glass_cidrs");
        assert_eq!(e.0[0].line, 2);
    }
}

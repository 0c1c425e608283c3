//! The configuration file as written: serde structs that mirror the TOML one
//! to one. Nothing here is checked beyond its type; `validate` turns these into
//! the runtime values and reports every mistake with its file, line and key.

use serde::Deserialize;
use toml::Spanned;

/// Top level of `portcullis.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub listen: RawListen,
    #[serde(default)]
    pub radius: RawRadius,
    #[serde(default)]
    pub tacacs: RawTacacs,
    #[serde(default)]
    pub policy: RawPolicy,
    #[serde(default)]
    pub accounting: RawAccounting,
    #[serde(default, rename = "client")]
    pub clients: Vec<RawClient>,
    #[serde(default, rename = "role")]
    pub roles: Vec<RawRole>,
    #[serde(default, rename = "group")]
    pub groups: Vec<RawGroup>,
    #[serde(default, rename = "mapping")]
    pub mappings: Vec<RawMapping>,
    #[serde(default, rename = "user")]
    pub users: Vec<RawUser>,
    #[serde(default)]
    pub web: RawWeb,
    #[serde(default)]
    pub oidc: Vec<RawOidc>,
    #[serde(default)]
    pub saml: Vec<RawSaml>,
    /// Appliance web consoles portcullis issues tokens to.
    #[serde(default, rename = "console")]
    pub consoles: Vec<RawConsole>,
    #[serde(default)]
    pub idp: RawIdp,
    #[serde(default, rename = "directory")]
    pub directories: Vec<RawDirectory>,
    #[serde(default)]
    pub store: RawStore,
}

/// `[[directory]]`: one LDAP v3 / Active Directory credential source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDirectory {
    pub name: Spanned<String>,
    /// `ldaps://host:636` or `ldap://host:389`, tried in order.
    pub urls: Spanned<Vec<Spanned<String>>>,
    /// `ldap://` URLs use StartTLS unless this is false (loopback only,
    /// with `allow_plaintext`).
    pub starttls: Option<Spanned<bool>>,
    pub allow_plaintext: Option<Spanned<bool>>,
    pub ca_file: Option<Spanned<String>>,
    /// Search-then-bind: the service account.
    pub bind_dn: Option<Spanned<String>>,
    pub bind_password: Option<Spanned<RawSecret>>,
    /// Direct bind: `{user}@corp.example` or `uid={user},ou=people,...`.
    pub bind_template: Option<Spanned<String>>,
    pub user_base: Spanned<String>,
    pub user_filter: Option<Spanned<String>>,
    /// memberof, member, uniquemember, memberuid, ad-nested.
    pub group_lookup: Option<Spanned<String>>,
    pub group_base: Option<Spanned<String>>,
    pub group_name_attribute: Option<Spanned<String>>,
    pub email_attribute: Option<Spanned<String>>,
    pub name_attribute: Option<Spanned<String>>,
    /// Directory group (DN or name) → the table's group name.
    #[serde(default)]
    pub group_rename: std::collections::BTreeMap<String, Spanned<String>>,
    pub group_strip_prefix: Option<Spanned<String>>,
    /// Seconds for one whole check.
    pub timeout: Option<Spanned<i64>>,
    pub pool_size: Option<Spanned<i64>>,
    /// Seconds a verified directory password is remembered (0: never).
    pub cache_ttl: Option<Spanned<i64>>,
    /// Seconds a user's groups are used before they are read again.
    pub group_cache_ttl: Option<Spanned<i64>>,
    /// Seconds a directory that could not be reached is left alone.
    pub retry_interval: Option<Spanned<i64>>,
}

/// `[store]`: where shared state lives (SQLite files, or PostgreSQL shared
/// by several nodes).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `sqlite` (default) or `postgres`.
    pub backend: Option<Spanned<String>>,
    /// A PostgreSQL URL or key=value string, without the password.
    pub url: Option<Spanned<String>>,
    pub password: Option<Spanned<RawSecret>>,
    /// PEM file of the CA the database's certificate chains to; turns TLS on.
    pub ca_file: Option<Spanned<String>>,
    pub pool_size: Option<Spanned<i64>>,
    /// Seconds to establish a connection.
    pub connect_timeout: Option<Spanned<i64>>,
    /// Seconds any one database call may take.
    pub query_timeout: Option<Spanned<i64>>,
    pub auto_migrate: Option<bool>,
    /// This node's name among its peers (default: the host name).
    pub node: Option<Spanned<String>>,
    pub accounting_writers: Option<Spanned<i64>>,
    pub accounting_batch: Option<Spanned<i64>>,
}

/// `[web]`: the browser side (login page, sessions).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    /// Seconds a login session lasts.
    pub session_ttl: Option<Spanned<i64>>,
    /// Seconds a session may go unused before it ends.
    pub session_idle_timeout: Option<Spanned<i64>>,
    /// Show the local username/password form on /login.
    pub local_login: Option<bool>,
    /// With `local_login = false`: the networks the break-glass local login
    /// is accepted from (empty: any).
    pub break_glass_cidrs: Option<Vec<Spanned<String>>>,
    /// The URL browsers use to reach us; `https://` marks cookies Secure.
    pub public_url: Option<Spanned<String>>,
    /// Open HTTP connections at most; beyond it new ones wait in the backlog.
    pub max_connections: Option<Spanned<i64>>,
    /// Open HTTP connections from one address at most; beyond it, closed.
    pub max_connections_per_address: Option<Spanned<i64>>,
    /// Seconds a connection may take to send a request's headers, or sit
    /// idle between requests.
    pub header_timeout: Option<Spanned<i64>>,
    /// Seconds a request may take, body and answer included.
    pub request_timeout: Option<Spanned<i64>>,
    /// Bytes a request body may have.
    pub max_body: Option<Spanned<i64>>,
}

/// `[[oidc]]`: one OpenID Provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOidc {
    pub name: Spanned<String>,
    pub issuer: Option<Spanned<String>>,
    /// Okta-style: `domain` (+ `server_id`) instead of `issuer`.
    pub domain: Option<Spanned<String>>,
    pub server_id: Option<Spanned<String>>,
    pub client_id: Spanned<String>,
    pub client_secret: Spanned<RawSecret>,
    pub redirect_uri: Spanned<String>,
    pub scopes: Option<Vec<String>>,
    pub audience: Option<String>,
    pub groups_claim: Option<String>,
    pub username_claim: Option<String>,
    pub clock_skew: Option<Spanned<i64>>,
    /// Enables HS256 ID tokens, verified with this shared secret only.
    pub hmac_secret: Option<Spanned<RawSecret>>,
    /// `client_secret_basic` or `client_secret_post`.
    pub client_auth: Option<Spanned<String>>,
    pub http_timeout: Option<Spanned<i64>>,
}

/// `[[saml]]`: one SAML 2.0 identity provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSaml {
    pub name: Spanned<String>,
    /// The IdP's metadata, fetched (https) and cached...
    pub idp_metadata_url: Option<Spanned<String>>,
    /// ...or read from a file...
    pub idp_metadata_file: Option<Spanned<String>>,
    /// ...or given Okta-style: SSO URL, issuer (entity ID), certificate.
    pub idp_sso_url: Option<Spanned<String>>,
    pub idp_entity_id: Option<Spanned<String>>,
    pub idp_cert_file: Option<Spanned<String>>,
    pub idp_slo_url: Option<Spanned<String>>,
    /// Seconds between metadata refreshes.
    pub metadata_refresh: Option<Spanned<i64>>,
    pub sp_entity_id: Option<Spanned<String>>,
    pub acs_url: Option<Spanned<String>>,
    /// Our key (PKCS#8 PEM) and certificate: sign AuthnRequests, decrypt.
    pub sp_key_file: Option<Spanned<String>>,
    pub sp_cert_file: Option<Spanned<String>>,
    pub sign_requests: Option<Spanned<bool>>,
    pub name_id_format: Option<Spanned<String>>,
    pub username_attribute: Option<Spanned<String>>,
    pub email_attribute: Option<Spanned<String>>,
    pub name_attribute: Option<Spanned<String>>,
    pub groups_attribute: Option<Spanned<String>>,
    pub clock_skew: Option<Spanned<i64>>,
    pub allow_idp_initiated: Option<bool>,
    pub allow_sha1: Option<bool>,
    pub login_timeout: Option<Spanned<i64>>,
    pub http_timeout: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Where durable state (accounting, external users) lives.
    pub data_dir: Option<Spanned<String>>,
    /// Which credential sources are asked first.
    #[serde(default)]
    pub auth_order: Option<Spanned<String>>,
    /// How long a verified password stays cached, in seconds (0 disables).
    pub credential_cache_ttl: Option<Spanned<i64>>,
    /// Threads that may run argon2 at once (default: the core count).
    pub argon2_threads: Option<Spanned<i64>>,
    /// Verifications that may wait for a thread before new ones are shed.
    pub argon2_queue: Option<Spanned<i64>>,
    /// Failed logins for one name before lockouts start (0: never).
    pub login_failures: Option<Spanned<i64>>,
    /// Failed web logins from one address before it is locked out (0: never).
    pub login_failures_per_source: Option<Spanned<i64>>,
    /// Seconds of the first lockout; each further failure doubles it.
    pub lockout: Option<Spanned<i64>>,
    /// Seconds of the longest lockout.
    pub lockout_max: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    pub radius_auth: Option<Spanned<String>>,
    pub radius_acct: Option<Spanned<String>>,
    pub tacacs: Option<Spanned<String>>,
    pub http: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRadius {
    /// Extra dictionary directories, read after the built-in `dictionaries/`.
    #[serde(default)]
    pub dictionaries: Vec<Spanned<String>>,
    /// The dictionary directory shipped with portcullis.
    pub dictionary_dir: Option<Spanned<String>>,
    /// UDP worker sockets (SO_REUSEPORT); default the core count.
    pub workers: Option<Spanned<i64>>,
    /// Kernel receive buffer per socket, bytes.
    pub recv_buffer: Option<Spanned<i64>>,
    /// RFC 5080 duplicate-detection window, seconds.
    pub duplicate_window: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTacacs {
    pub max_connections: Option<Spanned<i64>>,
    pub max_connections_per_client: Option<Spanned<i64>>,
    pub max_connections_per_address: Option<Spanned<i64>>,
    /// Seconds a connection may sit between packets before it is closed.
    pub idle_timeout: Option<Spanned<i64>>,
    /// Seconds a started packet may take to arrive in full.
    pub read_timeout: Option<Spanned<i64>>,
    pub banner: Option<String>,
    pub username_prompt: Option<String>,
    pub password_prompt: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// The role of a user no mapping matches; absent means such users are refused.
    pub default_role: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccounting {
    /// Days a record is kept before the pruner removes it (0 keeps forever).
    pub retention_days: Option<Spanned<i64>>,
    /// Records waiting for a commit before new ones are dropped unanswered.
    pub queue: Option<Spanned<i64>>,
}

/// A secret written inline, or a reference to where it is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawSecret {
    Inline(String),
    Env { env: String },
    File { file: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    pub name: Spanned<String>,
    pub cidrs: Spanned<Vec<Spanned<String>>>,
    pub radius_secret: Option<Spanned<RawSecret>>,
    pub tacacs_key: Option<Spanned<RawSecret>>,
    pub profile: Option<Spanned<String>>,
    /// BlastRADIUS (CVE-2024-3596): drop Access-Requests without a valid
    /// Message-Authenticator. Only legacy gear should turn this off.
    #[serde(default = "yes")]
    pub require_message_authenticator: bool,
    /// Accept TACACS+ packets with the UNENCRYPTED flag set.
    #[serde(default)]
    pub allow_unencrypted_tacacs: bool,
    /// The console's "Read-Write Privilege": priv-lvl from which it gives
    /// read-write access (default 7).
    pub read_write_priv: Option<Spanned<i64>>,
    /// The console's "Read-Only Privilege" (default 0).
    pub read_only_priv: Option<Spanned<i64>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    pub name: Spanned<String>,
    pub priv_lvl: Spanned<i64>,
    #[serde(default)]
    pub rbac_roles: String,
    #[serde(default)]
    pub rbac_aag: String,
    pub tacacs_role: Option<Spanned<String>>,
    /// May use the administration API.
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub commands: Option<RawCommands>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCommands {
    /// `permit` or `deny` when no rule matches.
    pub default: Spanned<String>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<RawCommandRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCommandRule {
    pub action: Spanned<String>,
    #[serde(rename = "match")]
    pub pattern: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMapping {
    pub group: Spanned<String>,
    pub role: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub name: Spanned<String>,
    pub password_hash: Spanned<String>,
    #[serde(default)]
    pub groups: Vec<Spanned<String>>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub full_name: String,
    #[serde(default)]
    pub email: String,
    /// Opt-in: a cleartext-equivalent kept so CHAP and MS-CHAP can work.
    pub cleartext_password: Option<Spanned<RawSecret>>,
}

/// `[[console]]`: one appliance web console portcullis logs people in to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsole {
    pub name: Spanned<String>,
    /// `oauth` or `jwt`.
    pub mode: Spanned<String>,
    pub client_id: Option<Spanned<String>>,
    pub client_secret: Option<Spanned<RawSecret>>,
    pub redirect_uris: Option<Vec<Spanned<String>>>,
    pub consume_url: Option<Spanned<String>>,
    pub audience: Option<Spanned<String>>,
    pub scopes: Option<Vec<Spanned<String>>>,
    pub username_claim: Option<Spanned<String>>,
    /// `email` or `name`.
    pub username_from: Option<Spanned<String>>,
    pub roles_claim: Option<Spanned<String>>,
    pub aag_claim: Option<Spanned<String>>,
    /// Seconds.
    pub id_token_ttl: Option<Spanned<i64>>,
    pub access_token_ttl: Option<Spanned<i64>>,
    pub refresh_token_ttl: Option<Spanned<i64>>,
    pub code_ttl: Option<Spanned<i64>>,
    /// JWT mode: HS256, HS384, HS512 (the secret) or RS256 (the JWKS).
    pub jwt_alg: Option<Spanned<String>>,
    /// `local`, `oidc:NAME`, `saml:NAME`.
    pub login_methods: Option<Vec<Spanned<String>>>,
    /// SAML mode: the console's entity ID (default: its ACS URL).
    pub entity_id: Option<Spanned<String>>,
    /// SAML mode: where Responses are posted (the only place).
    pub acs_url: Option<Spanned<String>>,
    /// SAML mode: the console's single logout endpoint.
    pub slo_url: Option<Spanned<String>>,
    /// SAML mode: the console's signing certificate(s), PEM.
    pub cert_file: Option<Spanned<String>>,
    /// SAML mode: the console's SP metadata file, instead of the above.
    pub sp_metadata_file: Option<Spanned<String>>,
    /// SAML mode: the URL of the console's SP metadata, fetched at start
    /// and on reload (https; http only to loopback).
    pub sp_metadata_url: Option<Spanned<String>>,
    /// SAML mode: the CA (PEM) that `sp_metadata_url`'s server certificate
    /// must chain to, instead of the system's roots.
    pub sp_metadata_ca_file: Option<Spanned<String>>,
    /// SAML mode: seconds between checks of `sp_metadata_url` (0: none).
    pub metadata_refresh: Option<Spanned<i64>>,
    pub require_signed_requests: Option<bool>,
    /// `unspecified`, `emailAddress`, `persistent`, `transient` or a URN.
    pub name_id_format: Option<Spanned<String>>,
    /// `email`, `name` or `subject`.
    pub name_id_from: Option<Spanned<String>>,
    /// `response`, `assertion` or `both`.
    pub sign: Option<Spanned<String>>,
    pub idp_initiated: Option<bool>,
    /// Seconds an assertion may be presented.
    pub assertion_ttl: Option<Spanned<i64>>,
}

/// `[idp]`: portcullis as the provider for consoles.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdp {
    pub issuer: Option<Spanned<String>>,
    /// RS256 (default) or ES256.
    pub signing_alg: Option<Spanned<String>>,
    /// SAML IdP: our entity ID (default: the metadata URL).
    pub saml_entity_id: Option<Spanned<String>>,
    /// SAML IdP: a configured key (PKCS#8 PEM) and certificate instead of
    /// the pair generated in the data directory; the next certificate is
    /// published in metadata ahead of a rollover.
    pub saml_key_file: Option<Spanned<String>>,
    pub saml_cert_file: Option<Spanned<String>>,
    pub saml_next_cert_file: Option<Spanned<String>>,
}

//! The PostgreSQL schema as numbered migrations. A migration is never edited
//! once released: a change is a new entry. Each node applies what is missing
//! at start (under an advisory lock, so nodes starting together take turns)
//! and refuses a database whose schema is newer than it knows.

/// One step of the schema.
#[derive(Debug)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order; the versions are 1, 2, … without gaps.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "accounting records, dedup keys, nodes and shared keys",
        // Records are appended and read by time, user or session; a dedup key
        // lives in a table of its own, pruned after the dedup window, so that a
        // retransmission to any node within the window stores nothing, and the
        // records table carries no unique index on a random key.
        sql: "
CREATE TABLE acct_records (
    id             bigserial PRIMARY KEY,
    received_at_us bigint  NOT NULL,
    protocol       text    NOT NULL,
    client         text    NOT NULL,
    client_addr    text    NOT NULL,
    src_port       integer NOT NULL,
    username       text    NOT NULL,
    session_id     text    NOT NULL,
    status         text    NOT NULL,
    attributes     json    NOT NULL,
    dedup_key      bytea   NOT NULL,
    node           text    NOT NULL,
    stored_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX acct_records_received ON acct_records (received_at_us);
CREATE INDEX acct_records_user ON acct_records (username, received_at_us);
CREATE INDEX acct_records_session ON acct_records (session_id, received_at_us);
CREATE TABLE acct_dedup (
    dedup_key      bytea  PRIMARY KEY,
    received_at_us bigint NOT NULL
);
CREATE INDEX acct_dedup_received ON acct_dedup (received_at_us);
CREATE TABLE portcullis_nodes (
    node          text PRIMARY KEY,
    config_digest text NOT NULL,
    version       text NOT NULL,
    seen_at       timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE portcullis_keys (
    name       text  PRIMARY KEY,
    secret     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
",
    },
    Migration {
        version: 2,
        name: "web sessions, pending logins and external users",
        // A session is found by the SHA-256 of its cookie's id, so reading
        // the table does not hand out live sessions. `user_key` groups one
        // person's sessions for the per-person bound.
        sql: "
CREATE TABLE web_sessions (
    id_hash    bytea PRIMARY KEY,
    user_key   text  NOT NULL,
    session    json  NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_key, started_at);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);
CREATE TABLE web_pending (
    state_hash bytea PRIMARY KEY,
    provider   text  NOT NULL,
    data       json  NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE TABLE external_users (
    provider   text   NOT NULL,
    subject    text   NOT NULL,
    username   text   NOT NULL,
    email      text   NOT NULL,
    full_name  text   NOT NULL,
    groups     json   NOT NULL,
    created_at bigint NOT NULL,
    last_login bigint NOT NULL,
    PRIMARY KEY (provider, subject)
);
",
    },
    Migration {
        version: 3,
        name: "console provider: signing keys, codes, refresh families, access tokens",
        // As the provider's SQLite file: codes and tokens by SHA-256 hash
        // only; times in seconds since the epoch. One signing key and one
        // next key per algorithm, enforced here, so that nodes making the
        // first keys together cannot both succeed.
        sql: "
CREATE TABLE idp_keys (
    kid       text   PRIMARY KEY,
    alg       text   NOT NULL,
    pkcs8     bytea  NOT NULL,
    created   bigint NOT NULL,
    activated bigint,
    retired   bigint
);
CREATE UNIQUE INDEX idp_keys_one_signing ON idp_keys ((activated IS NOT NULL))
    WHERE activated IS NOT NULL AND retired IS NULL;
CREATE UNIQUE INDEX idp_keys_one_next ON idp_keys (alg)
    WHERE activated IS NULL AND retired IS NULL;
CREATE TABLE idp_codes (
    hash         bytea    PRIMARY KEY,
    client_id    text     NOT NULL,
    redirect_uri text     NOT NULL,
    kind         text     NOT NULL,
    provider     text     NOT NULL,
    subject      text     NOT NULL,
    scope        text     NOT NULL,
    nonce        text,
    challenge    text,
    auth_time    bigint   NOT NULL,
    expires      bigint   NOT NULL,
    used         smallint NOT NULL DEFAULT 0,
    family       text
);
CREATE INDEX idp_codes_expires ON idp_codes (expires);
CREATE TABLE idp_families (
    id        text    PRIMARY KEY,
    client_id text    NOT NULL,
    kind      text    NOT NULL,
    provider  text    NOT NULL,
    subject   text    NOT NULL,
    scope     text    NOT NULL,
    auth_time bigint  NOT NULL,
    revoked   boolean NOT NULL DEFAULT false,
    expires   bigint  NOT NULL
);
CREATE INDEX idp_families_expires ON idp_families (expires);
CREATE TABLE idp_refresh_tokens (
    hash    bytea   PRIMARY KEY,
    family  text    NOT NULL,
    expires bigint  NOT NULL,
    used    boolean NOT NULL DEFAULT false
);
CREATE INDEX idp_refresh_tokens_family ON idp_refresh_tokens (family);
CREATE INDEX idp_refresh_tokens_expires ON idp_refresh_tokens (expires);
CREATE TABLE idp_access_tokens (
    hash      bytea  PRIMARY KEY,
    client_id text   NOT NULL,
    kind      text   NOT NULL,
    provider  text   NOT NULL,
    subject   text   NOT NULL,
    scope     text   NOT NULL,
    expires   bigint NOT NULL
);
CREATE INDEX idp_access_tokens_expires ON idp_access_tokens (expires);
",
    },
    Migration {
        version: 4,
        name: "web login state: pending SAML and console logins, SAML replay cache, console logins for logout",
        // Entries are found by the SHA-256 of their id (ids travel in URLs
        // and cookies, so reading the table hands out nothing usable).
        // `source` and (kind, created_at) serve the per-address and overall
        // bounds; expired rows are swept by the nodes now and then.
        sql: "
CREATE TABLE web_login_state (
    kind       text  NOT NULL,
    id_hash    bytea NOT NULL,
    source     inet  NOT NULL,
    data       json  NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (kind, id_hash)
);
CREATE INDEX web_login_state_source ON web_login_state (kind, source, created_at);
CREATE INDEX web_login_state_age ON web_login_state (kind, created_at);
CREATE INDEX web_login_state_expires ON web_login_state (expires_at);
CREATE TABLE web_replay (
    scope    text   NOT NULL,
    id_hash  bytea  NOT NULL,
    until_us bigint NOT NULL,
    PRIMARY KEY (scope, id_hash)
);
CREATE INDEX web_replay_until ON web_replay (until_us);
CREATE TABLE web_console_logins (
    sid_hash       bytea NOT NULL,
    console        text  NOT NULL,
    name_id        text  NOT NULL,
    name_id_format text  NOT NULL,
    session_index  text  NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at     timestamptz NOT NULL,
    PRIMARY KEY (sid_hash, console)
);
CREATE INDEX web_console_logins_name ON web_console_logins (console, name_id);
CREATE INDEX web_console_logins_expires ON web_console_logins (expires_at);
",
    },
    Migration {
        version: 5,
        name: "SAML IdP signing keys and certificates",
        // As idp_keys: one signing key and one next key, enforced here, so
        // nodes making or importing the first keys together keep one set.
        sql: "
CREATE TABLE idp_saml_keys (
    id        text   PRIMARY KEY,
    pkcs8     bytea  NOT NULL,
    cert      bytea  NOT NULL,
    created   bigint NOT NULL,
    activated bigint,
    retired   bigint
);
CREATE UNIQUE INDEX idp_saml_keys_one_signing ON idp_saml_keys ((activated IS NOT NULL))
    WHERE activated IS NOT NULL AND retired IS NULL;
CREATE UNIQUE INDEX idp_saml_keys_one_next ON idp_saml_keys ((activated IS NULL))
    WHERE activated IS NULL AND retired IS NULL;
",
    },
    Migration {
        version: 6,
        name: "login failures shared by every node",
        // One row per throttled key (`u:<name>` or `s:<address>`): failures
        // since its last reset, summed over every node. Nodes read what
        // changed since their last look, hence the index on the time.
        sql: "
CREATE TABLE login_failures (
    key        text        PRIMARY KEY,
    failures   integer     NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX login_failures_updated ON login_failures (updated_at);
",
    },
];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Where a database's schema stands against this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    /// The database's version before anything was applied (0: empty).
    pub found: i32,
    /// This build's version.
    pub known: i32,
    /// Versions applied by this call.
    pub applied: Vec<i32>,
}

impl SchemaStatus {
    pub fn current(&self) -> i32 {
        self.applied.last().copied().unwrap_or(self.found)
    }
}

/// Taken for the length of a migration transaction; any constant works as
/// long as every node uses the same one.
pub(super) const MIGRATION_LOCK: i64 = 0x706f_7274_6375_6c6c; // "portcull"

pub(super) const SCHEMA_TABLE: &str = "CREATE TABLE IF NOT EXISTS portcullis_schema (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_dense_and_ordered() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.name);
            assert!(!m.sql.trim().is_empty());
        }
        assert_eq!(SCHEMA_VERSION, MIGRATIONS.len() as i32);
    }
}

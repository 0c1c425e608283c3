//! External users: people who logged in through an identity provider, keyed
//! by (provider, subject) so they never merge with a local user of the same
//! name. Kept in `identity.sqlite3` in the data directory; each login updates
//! the profile and syncs group memberships (see `oidc::sync_groups`). With a
//! shared store they live in PostgreSQL instead ([`Identities`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use crate::datadir::OpenError;
use serde::Serialize;

mod shared;
pub use self::shared::{Identities, IdentitiesError, PgIdentities};

/// File name inside the data directory.
pub const DB_FILE: &str = "identity.sqlite3";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS external_users (
    provider   TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    username   TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    full_name  TEXT    NOT NULL,
    groups     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    last_login INTEGER NOT NULL,
    PRIMARY KEY (provider, subject)
);
";

/// One external user as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExternalUser {
    pub provider: String,
    pub subject: String,
    pub username: String,
    pub email: String,
    pub full_name: String,
    /// Local group names this user is a member of (built-ins excluded).
    pub groups: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub last_login: i64,
}

/// What a login says about the person.
#[derive(Debug, Clone)]
pub struct Profile<'a> {
    pub provider: &'a str,
    pub subject: &'a str,
    pub username: &'a str,
    pub email: Option<&'a str>,
    pub full_name: Option<&'a str>,
    /// `None`: the token had no groups claim (memberships stay as they are).
    pub groups: Option<&'a [String]>,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot create {}: {cause}", path.display())]
    CreateDir {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("identity store {}: {cause}", path.display())]
    Db {
        path: PathBuf,
        cause: rusqlite::Error,
    },
    #[error("stored groups of {provider}/{subject} are unreadable: {cause}")]
    Corrupt {
        provider: String,
        subject: String,
        cause: serde_json::Error,
    },
}

/// The store. Calls block on SQLite: use them from `spawn_blocking`.
#[derive(Debug, Clone)]
pub struct IdentityStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl IdentityStore {
    pub fn open(data_dir: &Path) -> Result<Self, IdentityError> {
        let (path, conn) = crate::datadir::open_sqlite(data_dir, DB_FILE, "FULL", SCHEMA).map_err(
            |e| match e {
                OpenError::Create { path, cause } => IdentityError::CreateDir { path, cause },
                OpenError::Db { path, cause } => IdentityError::Db { path, cause },
            },
        )?;
        Ok(Self {
            path,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn db(&self, cause: rusqlite::Error) -> IdentityError {
        IdentityError::Db {
            path: self.path.clone(),
            cause,
        }
    }

    pub fn get(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<ExternalUser>, IdentityError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT provider, subject, username, email, full_name, groups, created_at, last_login
                   FROM external_users WHERE provider = ?1 AND subject = ?2",
                params![provider, subject],
                raw_row,
            )
            .optional()
            .map_err(|e| self.db(e))?;
        row.map(decode).transpose()
    }

    /// Every external user, by provider then username.
    pub fn list(&self) -> Result<Vec<ExternalUser>, IdentityError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT provider, subject, username, email, full_name, groups, created_at, last_login
                   FROM external_users ORDER BY provider, username",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([], raw_row)
            .map_err(|e| self.db(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.db(e))?;
        rows.into_iter().map(decode).collect()
    }

    /// Records a login: creates the user on first sight, updates the
    /// profile, and syncs groups against `local_groups` (the table's group
    /// names) leaving `builtin` ones alone. One transaction, so two logins
    /// of one person at once cannot interleave their read and write.
    pub fn login(
        &self,
        p: &Profile<'_>,
        local_groups: &[String],
        builtin: &[String],
    ) -> Result<ExternalUser, IdentityError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.db(e))?;
        let current = tx
            .query_row(
                "SELECT provider, subject, username, email, full_name, groups, created_at, last_login
                   FROM external_users WHERE provider = ?1 AND subject = ?2",
                params![p.provider, p.subject],
                raw_row,
            )
            .optional()
            .map_err(|e| IdentityError::Db {
                path: self.path.clone(),
                cause: e,
            })?
            .map(decode)
            .transpose()?;
        let (current_groups, created_at, email, full_name) = match &current {
            Some(u) => (
                u.groups.clone(),
                u.created_at,
                u.email.clone(),
                u.full_name.clone(),
            ),
            None => (Vec::new(), now, String::new(), String::new()),
        };
        let groups = crate::oidc::sync_groups(&current_groups, p.groups, local_groups, builtin);
        let user = ExternalUser {
            provider: p.provider.to_string(),
            subject: p.subject.to_string(),
            username: p.username.to_string(),
            email: p.email.map_or(email, str::to_string),
            full_name: p.full_name.map_or(full_name, str::to_string),
            groups,
            created_at,
            last_login: now,
        };
        let groups_json = serde_json::to_string(&user.groups).unwrap_or_else(|_| "[]".into());
        tx.execute(
            "INSERT INTO external_users
                 (provider, subject, username, email, full_name, groups, created_at, last_login)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (provider, subject) DO UPDATE SET
                 username = excluded.username, email = excluded.email,
                 full_name = excluded.full_name, groups = excluded.groups,
                 last_login = excluded.last_login",
            params![
                user.provider,
                user.subject,
                user.username,
                user.email,
                user.full_name,
                groups_json,
                user.created_at,
                user.last_login
            ],
        )
        .map_err(|e| IdentityError::Db {
            path: self.path.clone(),
            cause: e,
        })?;
        tx.commit().map_err(|e| self.db(e))?;
        Ok(user)
    }
}

type RawRow = (String, String, String, String, String, String, i64, i64);

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn decode(r: RawRow) -> Result<ExternalUser, IdentityError> {
    let (provider, subject, username, email, full_name, groups, created_at, last_login) = r;
    let groups = serde_json::from_str(&groups).map_err(|cause| IdentityError::Corrupt {
        provider: provider.clone(),
        subject: subject.clone(),
        cause,
    })?;
    Ok(ExternalUser {
        provider,
        subject,
        username,
        email,
        full_name,
        groups,
        created_at,
        last_login,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn first_login_creates_and_later_logins_sync() {
        let dir = tempfile::tempdir().unwrap();
        let store = IdentityStore::open(dir.path()).unwrap();
        let local = strings(&["netadmins", "helpdesk"]);
        let builtin = strings(&["all-users"]);
        let g1 = strings(&["netadmins", "Everyone"]);
        let p = Profile {
            provider: "okta",
            subject: "00u1",
            username: "alice",
            email: Some("alice@example.com"),
            full_name: Some("Alice"),
            groups: Some(&g1),
        };
        let u = store.login(&p, &local, &builtin).unwrap();
        assert_eq!(u.groups, strings(&["netadmins"]));
        // Moved to helpdesk at the IdP.
        let g2 = strings(&["helpdesk"]);
        let u = store
            .login(
                &Profile {
                    groups: Some(&g2),
                    email: None,
                    ..p.clone()
                },
                &local,
                &builtin,
            )
            .unwrap();
        assert_eq!(u.groups, strings(&["helpdesk"]));
        assert_eq!(
            u.email, "alice@example.com",
            "absent email keeps the old one"
        );
        // No groups claim at all: memberships stay.
        let u = store
            .login(
                &Profile {
                    groups: None,
                    ..p.clone()
                },
                &local,
                &builtin,
            )
            .unwrap();
        assert_eq!(u.groups, strings(&["helpdesk"]));
        // The same subject at another provider is another person.
        let other = store
            .login(
                &Profile {
                    provider: "azure",
                    ..p.clone()
                },
                &local,
                &builtin,
            )
            .unwrap();
        assert_eq!(other.groups, strings(&["netadmins"]));
        assert_eq!(store.list().unwrap().len(), 2);
        // Survives a reopen.
        drop(store);
        let store = IdentityStore::open(dir.path()).unwrap();
        assert_eq!(
            store.get("okta", "00u1").unwrap().unwrap().groups,
            strings(&["helpdesk"])
        );
    }
}

//! What the provider remembers: signing keys (OAuth/JWT, and the SAML
//! IdP's keys with their certificates), authorization codes (short lived),
//! refresh-token families and revoked access tokens. Codes and refresh
//! tokens are stored as SHA-256 hashes only. Behind [`IdpStore`]:
//! SQLite here for one machine, PostgreSQL (`pg.rs`) for several nodes;
//! every call blocks, so callers run them off the async runtime.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};

use super::keys::StoredKey;
use super::saml::keys::StoredSamlKey;
use super::settings::KeyAlg;
use crate::datadir::OpenError;
use crate::secret::Secret;

/// File name inside the data directory.
pub const DB_FILE: &str = "idp.sqlite3";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create {}: {cause}", path.display())]
    Create {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("idp store {}: {cause}", path.display())]
    Db {
        path: PathBuf,
        cause: rusqlite::Error,
    },
    #[error("idp store {}: a stored row is unreadable: {what}", path.display())]
    Corrupt { path: PathBuf, what: &'static str },
    #[error("idp store: {0}")]
    Shared(#[from] crate::store::DbError),
}

/// Who a code or refresh family is for: a local user by name, or an
/// external one by provider and subject (as the identity store keys them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Local { name: String },
    External { provider: String, subject: String },
}

impl Subject {
    pub(super) fn encode(&self) -> (String, String, String) {
        match self {
            Self::Local { name } => ("local".into(), String::new(), name.clone()),
            Self::External { provider, subject } => {
                ("external".into(), provider.clone(), subject.clone())
            }
        }
    }

    pub(super) fn decode(kind: &str, provider: String, id: String) -> Option<Self> {
        match kind {
            "local" => Some(Self::Local { name: id }),
            "external" => Some(Self::External {
                provider,
                subject: id,
            }),
            _ => None,
        }
    }

    /// The `sub` claim: stable, and distinct between a local user and an
    /// external one of the same name.
    pub fn sub(&self) -> String {
        match self {
            Self::Local { name } => name.clone(),
            Self::External { provider, subject } => format!("{provider}:{subject}"),
        }
    }
}

/// An issued authorization code.
#[derive(Debug, Clone)]
pub struct CodeRecord {
    pub hash: [u8; 32],
    pub client_id: String,
    pub redirect_uri: String,
    pub subject: Subject,
    pub scope: String,
    pub nonce: Option<String>,
    /// The S256 challenge, if the request had one.
    pub challenge: Option<String>,
    pub auth_time: i64,
    pub expires: i64,
}

/// What taking a code found.
#[derive(Debug)]
pub enum CodeTake {
    /// First use: it is now spent.
    Fresh(CodeRecord),
    /// Already spent; the refresh family it started (if any) is revoked.
    Reused {
        client_id: String,
    },
    Unknown,
}

/// A refresh-token family: every token rotated from one code exchange.
#[derive(Debug, Clone)]
pub struct Family {
    pub id: String,
    pub client_id: String,
    pub subject: Subject,
    pub scope: String,
    pub auth_time: i64,
}

/// An issued access token (opaque to the console; userinfo reads it).
#[derive(Debug, Clone)]
pub struct AccessRecord {
    pub client_id: String,
    pub subject: Subject,
    pub scope: String,
    pub expires: i64,
}

/// What presenting a refresh token found.
#[derive(Debug)]
pub enum RefreshTake {
    /// Valid: it is spent, and `new_hash` is the family's current token.
    Rotated(Family),
    /// Already spent: a replay, and the family is now revoked.
    Replayed { client_id: String },
    /// Expired, revoked, or never issued.
    Invalid,
}

/// The provider's durable state. Calls block.
pub trait IdpStore: Send + Sync + std::fmt::Debug {
    fn keys(&self) -> Result<Vec<StoredKey>, StoreError>;
    /// Adds a key. A shared store may drop it when another node filled the
    /// same role first (signing key, or next key of its algorithm), so read
    /// [`keys`](Self::keys) again after adding.
    fn add_key(&self, key: &StoredKey) -> Result<(), StoreError>;
    /// Makes the oldest next key of `alg` sign from `now` (the current one
    /// retired at `now`), then adds a fresh next key. Returns the new
    /// signing key's id, or `None` when there was no next key to promote.
    fn rotate(
        &self,
        alg: KeyAlg,
        now: i64,
        fresh: &StoredKey,
    ) -> Result<Option<String>, StoreError>;

    fn put_code(&self, code: &CodeRecord) -> Result<(), StoreError>;
    /// Spends a code; a second use revokes the family issued from it.
    fn take_code(&self, hash: &[u8; 32]) -> Result<CodeTake, StoreError>;

    /// Starts a family from the code `from_code`, with its first token.
    fn new_family(
        &self,
        family: &Family,
        from_code: &[u8; 32],
        token: &[u8; 32],
        expires: i64,
    ) -> Result<(), StoreError>;
    /// Spends `old` and makes `new` the family's token, in one transaction.
    fn rotate_refresh(
        &self,
        old: &[u8; 32],
        new: &[u8; 32],
        now: i64,
        expires: i64,
    ) -> Result<RefreshTake, StoreError>;
    /// Revokes the family of a refresh token (RFC 7009); whether one was found.
    fn revoke_refresh(&self, token: &[u8; 32], client_id: &str) -> Result<bool, StoreError>;
    fn revoke_family(&self, id: &str) -> Result<(), StoreError>;
    fn family_live(&self, id: &str) -> Result<bool, StoreError>;

    /// Records an issued (opaque) access token by its hash.
    fn put_access(&self, hash: &[u8; 32], token: &AccessRecord) -> Result<(), StoreError>;
    /// The access token's record, if it is live at `now`.
    fn get_access(&self, hash: &[u8; 32], now: i64) -> Result<Option<AccessRecord>, StoreError>;
    /// Revokes an access token of `client_id` (RFC 7009); whether one was found.
    fn revoke_access(&self, hash: &[u8; 32], client_id: &str) -> Result<bool, StoreError>;
    /// Removes what expired before `now`.
    fn prune(&self, now: i64) -> Result<(), StoreError>;

    /// The SAML IdP's keys: the signing one, the next one, the last retired.
    fn saml_keys(&self) -> Result<Vec<StoredSamlKey>, StoreError>;
    /// Adds keys in one transaction, each dropped when its role (signing,
    /// or next) is already filled, so nodes filling an empty store together
    /// keep the first one's keys; read [`saml_keys`](Self::saml_keys) after.
    fn add_saml_keys(&self, keys: &[StoredSamlKey]) -> Result<(), StoreError>;
    /// Makes the next SAML key sign from `now` (the signing one retired at
    /// `now`, keys retired earlier deleted) and adds `fresh` as the next
    /// one. Returns the new signing key's id, or `None` when there was no
    /// next key to promote.
    fn rotate_saml(&self, now: i64, fresh: &StoredSamlKey) -> Result<Option<String>, StoreError>;
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS keys (
    kid TEXT PRIMARY KEY, alg TEXT NOT NULL, pkcs8 BLOB NOT NULL,
    created INTEGER NOT NULL, activated INTEGER, retired INTEGER
);
CREATE TABLE IF NOT EXISTS codes (
    hash BLOB PRIMARY KEY, client_id TEXT NOT NULL, redirect_uri TEXT NOT NULL,
    kind TEXT NOT NULL, provider TEXT NOT NULL, subject TEXT NOT NULL,
    scope TEXT NOT NULL, nonce TEXT, challenge TEXT,
    auth_time INTEGER NOT NULL, expires INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0, family TEXT
);
CREATE TABLE IF NOT EXISTS families (
    id TEXT PRIMARY KEY, client_id TEXT NOT NULL,
    kind TEXT NOT NULL, provider TEXT NOT NULL, subject TEXT NOT NULL,
    scope TEXT NOT NULL, auth_time INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0, expires INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    hash BLOB PRIMARY KEY, family TEXT NOT NULL, expires INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS refresh_by_family ON refresh_tokens (family);
CREATE TABLE IF NOT EXISTS access_tokens (
    hash BLOB PRIMARY KEY, client_id TEXT NOT NULL,
    kind TEXT NOT NULL, provider TEXT NOT NULL, subject TEXT NOT NULL,
    scope TEXT NOT NULL, expires INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS saml_keys (
    id TEXT PRIMARY KEY, pkcs8 BLOB NOT NULL, cert BLOB NOT NULL,
    created INTEGER NOT NULL, activated INTEGER, retired INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS saml_keys_one_signing ON saml_keys ((activated IS NOT NULL))
    WHERE activated IS NOT NULL AND retired IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS saml_keys_one_next ON saml_keys ((activated IS NULL))
    WHERE activated IS NULL AND retired IS NULL;
";

/// The SQLite store, `idp.sqlite3` in the data directory.
#[derive(Debug, Clone)]
pub struct SqliteIdpStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl SqliteIdpStore {
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let (path, conn) = crate::datadir::open_sqlite(data_dir, DB_FILE, "NORMAL", SCHEMA)
            .map_err(|e| match e {
                OpenError::Create { path, cause } => StoreError::Create { path, cause },
                OpenError::Db { path, cause } => StoreError::Db { path, cause },
            })?;
        Ok(Self {
            path,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |cause| StoreError::Db {
            path: self.path.clone(),
            cause,
        }
    }

    fn corrupt(&self, what: &'static str) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            what,
        }
    }
}

fn family_of(tx: &Connection, id: &str) -> rusqlite::Result<Option<(Family, bool, i64)>> {
    tx.query_row(
        "SELECT id, client_id, kind, provider, subject, scope, auth_time, revoked, expires
           FROM families WHERE id = ?1",
        params![id],
        |r| {
            let kind: String = r.get(2)?;
            Ok((
                kind,
                Family {
                    id: r.get(0)?,
                    client_id: r.get(1)?,
                    subject: Subject::Local {
                        name: String::new(),
                    },
                    scope: r.get(5)?,
                    auth_time: r.get(6)?,
                },
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(7)? != 0,
                r.get::<_, i64>(8)?,
            ))
        },
    )
    .optional()
    .map(|o| {
        o.and_then(|(kind, mut f, provider, subject, revoked, expires)| {
            f.subject = Subject::decode(&kind, provider, subject)?;
            Some((f, revoked, expires))
        })
    })
}

impl IdpStore for SqliteIdpStore {
    fn keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT kid, alg, pkcs8, created, activated, retired FROM keys ORDER BY created, kid")
            .map_err(self.db())?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                ))
            })
            .map_err(self.db())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.db())?;
        rows.into_iter()
            .map(|(kid, alg, pkcs8, created, activated, retired)| {
                Ok(StoredKey {
                    kid,
                    alg: KeyAlg::parse(&alg).ok_or_else(|| self.corrupt("key algorithm"))?,
                    pkcs8: Secret::new(pkcs8),
                    created,
                    activated,
                    retired,
                })
            })
            .collect()
    }

    fn add_key(&self, k: &StoredKey) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO keys (kid, alg, pkcs8, created, activated, retired) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![k.kid, k.alg.as_str(), k.pkcs8.expose(), k.created, k.activated, k.retired],
            )
            .map_err(self.db())?;
        Ok(())
    }

    fn rotate(
        &self,
        alg: KeyAlg,
        now: i64,
        fresh: &StoredKey,
    ) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.db())?;
        let next: Option<String> = tx
            .query_row(
                "SELECT kid FROM keys WHERE alg = ?1 AND activated IS NULL AND retired IS NULL
                  ORDER BY created, kid LIMIT 1",
                params![alg.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db())?;
        let Some(next) = next else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE keys SET retired = ?1 WHERE activated IS NOT NULL AND retired IS NULL",
            params![now],
        )
        .map_err(self.db())?;
        tx.execute(
            "UPDATE keys SET activated = ?1 WHERE kid = ?2",
            params![now, next],
        )
        .map_err(self.db())?;
        tx.execute(
            "INSERT INTO keys (kid, alg, pkcs8, created) VALUES (?1, ?2, ?3, ?4)",
            params![fresh.kid, fresh.alg.as_str(), fresh.pkcs8.expose(), now],
        )
        .map_err(self.db())?;
        tx.commit().map_err(self.db())?;
        Ok(Some(next))
    }

    fn put_code(&self, c: &CodeRecord) -> Result<(), StoreError> {
        let (kind, provider, subject) = c.subject.encode();
        self.conn()
            .execute(
                "INSERT INTO codes (hash, client_id, redirect_uri, kind, provider, subject, scope,
                    nonce, challenge, auth_time, expires) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
                params![
                    &c.hash[..],
                    c.client_id,
                    c.redirect_uri,
                    kind,
                    provider,
                    subject,
                    c.scope,
                    c.nonce,
                    c.challenge,
                    c.auth_time,
                    c.expires
                ],
            )
            .map_err(self.db())?;
        Ok(())
    }

    fn take_code(&self, hash: &[u8; 32]) -> Result<CodeTake, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.db())?;
        type Row = (
            String,
            String,
            String,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            i64,
            i64,
            i64,
            Option<String>,
        );
        let row: Option<Row> = tx
            .query_row(
                "SELECT client_id, redirect_uri, kind, provider, subject, scope, nonce, challenge,
                        auth_time, expires, used, family FROM codes WHERE hash = ?1",
                params![&hash[..]],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                        r.get(11)?,
                    ))
                },
            )
            .optional()
            .map_err(self.db())?;
        let Some((
            client_id,
            redirect_uri,
            kind,
            provider,
            subject,
            scope,
            nonce,
            challenge,
            auth_time,
            expires,
            used,
            family,
        )) = row
        else {
            return Ok(CodeTake::Unknown);
        };
        if used != 0 {
            if let Some(f) = family {
                tx.execute("UPDATE families SET revoked = 1 WHERE id = ?1", params![f])
                    .map_err(self.db())?;
            }
            // Marked replayed: a family this code is still about to start
            // is born revoked (see new_family).
            tx.execute(
                "UPDATE codes SET used = 2 WHERE hash = ?1",
                params![&hash[..]],
            )
            .map_err(self.db())?;
            tx.commit().map_err(self.db())?;
            return Ok(CodeTake::Reused { client_id });
        }
        tx.execute(
            "UPDATE codes SET used = 1 WHERE hash = ?1",
            params![&hash[..]],
        )
        .map_err(self.db())?;
        tx.commit().map_err(self.db())?;
        let subject = Subject::decode(&kind, provider, subject)
            .ok_or_else(|| self.corrupt("code subject"))?;
        Ok(CodeTake::Fresh(CodeRecord {
            hash: *hash,
            client_id,
            redirect_uri,
            subject,
            scope,
            nonce,
            challenge,
            auth_time,
            expires,
        }))
    }

    fn new_family(
        &self,
        f: &Family,
        from_code: &[u8; 32],
        token: &[u8; 32],
        expires: i64,
    ) -> Result<(), StoreError> {
        let (kind, provider, subject) = f.subject.encode();
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.db())?;
        tx.execute(
            "INSERT INTO families (id, client_id, kind, provider, subject, scope, auth_time, expires)
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
            params![f.id, f.client_id, kind, provider, subject, f.scope, f.auth_time, expires],
        )
        .map_err(self.db())?;
        tx.execute(
            "INSERT INTO refresh_tokens (hash, family, expires) VALUES (?1, ?2, ?3)",
            params![&token[..], f.id, expires],
        )
        .map_err(self.db())?;
        tx.execute(
            "UPDATE codes SET family = ?1 WHERE hash = ?2",
            params![f.id, &from_code[..]],
        )
        .map_err(self.db())?;
        // A code replayed between its exchange and this write revoked
        // nothing; look again so the family cannot outlive the replay.
        tx.execute(
            "UPDATE families SET revoked = 1 WHERE id = ?1 AND
               (SELECT used FROM codes WHERE hash = ?2) > 1",
            params![f.id, &from_code[..]],
        )
        .map_err(self.db())?;
        tx.commit().map_err(self.db())?;
        Ok(())
    }

    fn rotate_refresh(
        &self,
        old: &[u8; 32],
        new: &[u8; 32],
        now: i64,
        expires: i64,
    ) -> Result<RefreshTake, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.db())?;
        let row: Option<(String, i64, i64)> = tx
            .query_row(
                "SELECT family, expires, used FROM refresh_tokens WHERE hash = ?1",
                params![&old[..]],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(self.db())?;
        let Some((fid, token_expires, used)) = row else {
            return Ok(RefreshTake::Invalid);
        };
        let Some((family, revoked, family_expires)) = family_of(&tx, &fid).map_err(self.db())?
        else {
            return Ok(RefreshTake::Invalid);
        };
        if used != 0 {
            tx.execute(
                "UPDATE families SET revoked = 1 WHERE id = ?1",
                params![fid],
            )
            .map_err(self.db())?;
            tx.commit().map_err(self.db())?;
            return Ok(RefreshTake::Replayed {
                client_id: family.client_id,
            });
        }
        if revoked || token_expires <= now || family_expires <= now {
            return Ok(RefreshTake::Invalid);
        }
        tx.execute(
            "UPDATE refresh_tokens SET used = 1 WHERE hash = ?1",
            params![&old[..]],
        )
        .map_err(self.db())?;
        tx.execute(
            "INSERT INTO refresh_tokens (hash, family, expires) VALUES (?1, ?2, ?3)",
            params![&new[..], fid, expires],
        )
        .map_err(self.db())?;
        tx.execute(
            "UPDATE families SET expires = max(expires, ?1) WHERE id = ?2",
            params![expires, fid],
        )
        .map_err(self.db())?;
        tx.commit().map_err(self.db())?;
        Ok(RefreshTake::Rotated(family))
    }

    fn revoke_refresh(&self, token: &[u8; 32], client_id: &str) -> Result<bool, StoreError> {
        let conn = self.conn();
        let n = conn
            .execute(
                "UPDATE families SET revoked = 1 WHERE client_id = ?2 AND id =
                   (SELECT family FROM refresh_tokens WHERE hash = ?1)",
                params![&token[..], client_id],
            )
            .map_err(self.db())?;
        Ok(n > 0)
    }

    fn revoke_family(&self, id: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("UPDATE families SET revoked = 1 WHERE id = ?1", params![id])
            .map_err(self.db())?;
        Ok(())
    }

    fn family_live(&self, id: &str) -> Result<bool, StoreError> {
        let conn = self.conn();
        Ok(family_of(&conn, id)
            .map_err(self.db())?
            .is_some_and(|(_, revoked, _)| !revoked))
    }

    fn put_access(&self, hash: &[u8; 32], t: &AccessRecord) -> Result<(), StoreError> {
        let (kind, provider, subject) = t.subject.encode();
        self.conn()
            .execute(
                "INSERT INTO access_tokens (hash, client_id, kind, provider, subject, scope, expires)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![&hash[..], t.client_id, kind, provider, subject, t.scope, t.expires],
            )
            .map_err(self.db())?;
        Ok(())
    }

    fn get_access(&self, hash: &[u8; 32], now: i64) -> Result<Option<AccessRecord>, StoreError> {
        let conn = self.conn();
        let row: Option<(String, String, String, String, String, i64)> = conn
            .query_row(
                "SELECT client_id, kind, provider, subject, scope, expires FROM access_tokens
                  WHERE hash = ?1 AND expires > ?2",
                params![&hash[..], now],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .optional()
            .map_err(self.db())?;
        let Some((client_id, kind, provider, subject, scope, expires)) = row else {
            return Ok(None);
        };
        let subject = Subject::decode(&kind, provider, subject)
            .ok_or_else(|| self.corrupt("access subject"))?;
        Ok(Some(AccessRecord {
            client_id,
            subject,
            scope,
            expires,
        }))
    }

    fn revoke_access(&self, hash: &[u8; 32], client_id: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute(
                "DELETE FROM access_tokens WHERE hash = ?1 AND client_id = ?2",
                params![&hash[..], client_id],
            )
            .map_err(self.db())?;
        Ok(n > 0)
    }

    fn prune(&self, now: i64) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute_batch(&format!(
            "DELETE FROM codes WHERE expires < {now} - 86400;
             DELETE FROM refresh_tokens WHERE expires < {now};
             DELETE FROM families WHERE expires < {now};
             DELETE FROM access_tokens WHERE expires < {now};"
        ))
        .map_err(self.db())?;
        Ok(())
    }

    fn saml_keys(&self) -> Result<Vec<StoredSamlKey>, StoreError> {
        let conn = self.conn();
        let mut st = conn
            .prepare(
                "SELECT id, pkcs8, cert, created, activated, retired FROM saml_keys
                  ORDER BY created, id",
            )
            .map_err(self.db())?;
        st.query_map([], |r| {
            Ok(StoredSamlKey {
                id: r.get(0)?,
                pkcs8: Secret::new(r.get::<_, Vec<u8>>(1)?),
                cert: r.get(2)?,
                created: r.get(3)?,
                activated: r.get(4)?,
                retired: r.get(5)?,
            })
        })
        .map_err(self.db())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(self.db())
    }

    fn add_saml_keys(&self, keys: &[StoredSamlKey]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.db())?;
        for k in keys {
            tx.execute(
                "INSERT INTO saml_keys (id, pkcs8, cert, created, activated, retired)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                params![
                    k.id,
                    k.pkcs8.expose(),
                    k.cert,
                    k.created,
                    k.activated,
                    k.retired
                ],
            )
            .map_err(self.db())?;
        }
        tx.commit().map_err(self.db())
    }

    fn rotate_saml(&self, now: i64, fresh: &StoredSamlKey) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.db())?;
        let next: Option<String> = tx
            .query_row(
                "SELECT id FROM saml_keys WHERE activated IS NULL AND retired IS NULL
                  ORDER BY created, id LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db())?;
        let Some(next) = next else {
            return Ok(None);
        };
        tx.execute_batch(&format!(
            "DELETE FROM saml_keys WHERE retired IS NOT NULL;
             UPDATE saml_keys SET retired = {now} WHERE activated IS NOT NULL AND retired IS NULL;"
        ))
        .map_err(self.db())?;
        tx.execute(
            "UPDATE saml_keys SET activated = ?1 WHERE id = ?2",
            params![now, next],
        )
        .map_err(self.db())?;
        tx.execute(
            "INSERT INTO saml_keys (id, pkcs8, cert, created) VALUES (?1, ?2, ?3, ?4)",
            params![fresh.id, fresh.pkcs8.expose(), fresh.cert, now],
        )
        .map_err(self.db())?;
        tx.commit().map_err(self.db())?;
        Ok(Some(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(hash: u8, expires: i64) -> CodeRecord {
        CodeRecord {
            hash: [hash; 32],
            client_id: "c".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            subject: Subject::External {
                provider: "okta".into(),
                subject: "u-1".into(),
            },
            scope: "openid".into(),
            nonce: Some("n".into()),
            challenge: None,
            auth_time: 1,
            expires,
        }
    }

    #[test]
    fn a_code_is_spent_once_and_its_reuse_revokes_the_family() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteIdpStore::open(dir.path()).unwrap();
        s.put_code(&code(1, 100)).unwrap();
        let CodeTake::Fresh(c) = s.take_code(&[1; 32]).unwrap() else {
            panic!("fresh")
        };
        assert_eq!(c.subject.sub(), "okta:u-1");
        let f = Family {
            id: "f1".into(),
            client_id: "c".into(),
            subject: c.subject.clone(),
            scope: "openid offline_access".into(),
            auth_time: 1,
        };
        s.new_family(&f, &[1; 32], &[9; 32], 1000).unwrap();
        assert!(s.family_live("f1").unwrap());
        assert!(matches!(
            s.take_code(&[1; 32]).unwrap(),
            CodeTake::Reused { .. }
        ));
        assert!(!s.family_live("f1").unwrap());
        assert!(matches!(s.take_code(&[2; 32]).unwrap(), CodeTake::Unknown));
    }

    #[test]
    fn refresh_rotates_and_a_replay_revokes_the_family_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteIdpStore::open(dir.path()).unwrap();
        s.put_code(&code(1, 100)).unwrap();
        let _ = s.take_code(&[1; 32]).unwrap();
        let f = Family {
            id: "f1".into(),
            client_id: "c".into(),
            subject: Subject::Local {
                name: "alice".into(),
            },
            scope: "openid offline_access".into(),
            auth_time: 1,
        };
        s.new_family(&f, &[1; 32], &[10; 32], 1000).unwrap();
        drop(s);
        let s = SqliteIdpStore::open(dir.path()).unwrap();
        let RefreshTake::Rotated(got) = s.rotate_refresh(&[10; 32], &[11; 32], 5, 1000).unwrap()
        else {
            panic!("rotated")
        };
        assert_eq!(got.subject, f.subject);
        assert!(matches!(
            s.rotate_refresh(&[10; 32], &[12; 32], 6, 1000).unwrap(),
            RefreshTake::Replayed { .. }
        ));
        // The replay took the current token down with it.
        assert!(matches!(
            s.rotate_refresh(&[11; 32], &[13; 32], 7, 1000).unwrap(),
            RefreshTake::Invalid
        ));
        // Expired tokens are refused.
        s.put_code(&code(2, 100)).unwrap();
        let f2 = Family {
            id: "f2".into(),
            ..f
        };
        s.new_family(&f2, &[2; 32], &[20; 32], 50).unwrap();
        assert!(matches!(
            s.rotate_refresh(&[20; 32], &[21; 32], 60, 1000).unwrap(),
            RefreshTake::Invalid
        ));
    }

    #[test]
    fn the_store_is_private_to_the_server() {
        use std::os::unix::fs::PermissionsExt;
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("data");
        let s = SqliteIdpStore::open(&dir).unwrap();
        s.put_code(&code(1, 100)).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(DB_FILE)), 0o600);
    }

    #[test]
    fn access_tokens_are_found_by_hash_until_they_expire_or_are_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteIdpStore::open(dir.path()).unwrap();
        let rec = AccessRecord {
            client_id: "c".into(),
            subject: Subject::Local { name: "bob".into() },
            scope: "openid".into(),
            expires: 100,
        };
        s.put_access(&[5; 32], &rec).unwrap();
        assert!(s.get_access(&[5; 32], 99).unwrap().is_some());
        assert!(s.get_access(&[5; 32], 100).unwrap().is_none(), "expired");
        assert!(
            !s.revoke_access(&[5; 32], "other").unwrap(),
            "only its own client revokes it"
        );
        assert!(s.revoke_access(&[5; 32], "c").unwrap());
        assert!(s.get_access(&[5; 32], 99).unwrap().is_none());
    }

    #[tokio::test]
    async fn the_pruner_removes_expired_state_and_keeps_live_state() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(SqliteIdpStore::open(dir.path()).unwrap());
        let rec = |expires| AccessRecord {
            client_id: "c".into(),
            subject: Subject::Local { name: "bob".into() },
            scope: "openid".into(),
            expires,
        };
        s.put_access(&[1; 32], &rec(100)).unwrap();
        let live = super::super::now() + 3600;
        s.put_access(&[2; 32], &rec(live)).unwrap();
        // Asked about an earlier instant, the store still has the old one.
        assert!(s.get_access(&[1; 32], 50).unwrap().is_some());
        let task = super::super::spawn_pruner(s.clone(), std::time::Duration::from_millis(5));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while s.get_access(&[1; 32], 50).unwrap().is_some() {
            assert!(std::time::Instant::now() < deadline, "never pruned");
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        task.abort();
        assert!(
            s.get_access(&[2; 32], live - 1).unwrap().is_some(),
            "live token kept"
        );
    }
}

//! External users wherever the store keeps them: [`Identities`] is what the
//! web side holds, the SQLite file of one node (calls moved off the runtime)
//! or the PostgreSQL database every node shares.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{ExternalUser, IdentityError, IdentityStore, Profile};
use crate::store::{DbError, PgStore};

/// External users in one place or the other. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Identities {
    Sqlite(IdentityStore),
    Postgres(PgIdentities),
}

impl From<IdentityStore> for Identities {
    fn from(s: IdentityStore) -> Self {
        Self::Sqlite(s)
    }
}

/// Why an external-user call failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentitiesError {
    #[error(transparent)]
    Sqlite(#[from] IdentityError),
    #[error("identity store: {0}")]
    Shared(#[from] DbError),
    #[error("identity store task failed: {0}")]
    Task(String),
}

/// Runs a blocking SQLite call on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, IdentityError> + Send + 'static,
) -> Result<T, IdentitiesError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(IdentitiesError::from),
        Err(e) => Err(IdentitiesError::Task(e.to_string())),
    }
}

impl Identities {
    pub async fn get(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<ExternalUser>, IdentitiesError> {
        match self {
            Self::Sqlite(s) => {
                let (s, p, sub) = (s.clone(), provider.to_string(), subject.to_string());
                blocking(move || s.get(&p, &sub)).await
            }
            Self::Postgres(pg) => Ok(pg.get(provider, subject).await?),
        }
    }

    /// Every external user, by provider then username.
    pub async fn list(&self) -> Result<Vec<ExternalUser>, IdentitiesError> {
        match self {
            Self::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.list()).await
            }
            Self::Postgres(pg) => Ok(pg.list().await?),
        }
    }

    /// As [`IdentityStore::login`].
    pub async fn login(
        &self,
        p: &Profile<'_>,
        local_groups: Vec<String>,
        builtin: Vec<String>,
    ) -> Result<ExternalUser, IdentitiesError> {
        match self {
            Self::Sqlite(s) => {
                let s = s.clone();
                let owned = OwnedProfile::from(p);
                blocking(move || s.login(&owned.as_profile(), &local_groups, &builtin)).await
            }
            Self::Postgres(pg) => Ok(pg.login(p, &local_groups, &builtin).await?),
        }
    }
}

struct OwnedProfile {
    provider: String,
    subject: String,
    username: String,
    email: Option<String>,
    full_name: Option<String>,
    groups: Option<Vec<String>>,
}

impl From<&Profile<'_>> for OwnedProfile {
    fn from(p: &Profile<'_>) -> Self {
        Self {
            provider: p.provider.to_string(),
            subject: p.subject.to_string(),
            username: p.username.to_string(),
            email: p.email.map(str::to_string),
            full_name: p.full_name.map(str::to_string),
            groups: p.groups.map(<[String]>::to_vec),
        }
    }
}

impl OwnedProfile {
    fn as_profile(&self) -> Profile<'_> {
        Profile {
            provider: &self.provider,
            subject: &self.subject,
            username: &self.username,
            email: self.email.as_deref(),
            full_name: self.full_name.as_deref(),
            groups: self.groups.as_deref(),
        }
    }
}

/// External users in the shared PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgIdentities {
    store: PgStore,
}

const SELECT: &str = "SELECT provider, subject, username, email, full_name, groups::text,
    created_at, last_login FROM external_users";

fn decode(r: &tokio_postgres::Row) -> Result<ExternalUser, DbError> {
    let groups: &str = r.get(5);
    let provider: String = r.get(0);
    let subject: String = r.get(1);
    let groups = serde_json::from_str(groups).map_err(|e| {
        DbError::Corrupt(format!("groups of external user {provider}/{subject}: {e}"))
    })?;
    Ok(ExternalUser {
        provider,
        subject,
        username: r.get(2),
        email: r.get(3),
        full_name: r.get(4),
        groups,
        created_at: r.get(6),
        last_login: r.get(7),
    })
}

impl PgIdentities {
    pub fn new(store: PgStore) -> Self {
        Self { store }
    }

    pub async fn get(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<ExternalUser>, DbError> {
        let s = &self.store;
        s.timed("external user lookup", async {
            let c = s.client().await?;
            let row = c
                .query_opt(
                    &format!("{SELECT} WHERE provider = $1 AND subject = $2"),
                    &[&provider, &subject],
                )
                .await
                .map_err(|e| s.query_error("external user lookup", e))?;
            row.as_ref().map(decode).transpose()
        })
        .await
    }

    pub async fn list(&self) -> Result<Vec<ExternalUser>, DbError> {
        let s = &self.store;
        s.timed("external user list", async {
            let c = s.client().await?;
            let rows = c
                .query(&format!("{SELECT} ORDER BY provider, username"), &[])
                .await
                .map_err(|e| s.query_error("external user list", e))?;
            rows.iter().map(decode).collect()
        })
        .await
    }

    /// One transaction; the person's row is locked from read to write, so
    /// two nodes recording two logins of one person do not interleave.
    pub async fn login(
        &self,
        p: &Profile<'_>,
        local_groups: &[String],
        builtin: &[String],
    ) -> Result<ExternalUser, DbError> {
        let s = &self.store;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        s.timed("external user login", async {
            let mut c = s.client().await?;
            let q = |e| s.query_error("external user login", e);
            let tx = c.transaction().await.map_err(q)?;
            // A first login creates the row before reading it, so a second
            // node's first login of the same person waits on its lock.
            tx.execute(
                "INSERT INTO external_users
                     (provider, subject, username, email, full_name, groups, created_at, last_login)
                 VALUES ($1, $2, $3, '', '', '[]', $4, $4)
                 ON CONFLICT (provider, subject) DO NOTHING",
                &[&p.provider, &p.subject, &p.username, &now],
            )
            .await
            .map_err(q)?;
            let row = tx
                .query_one(
                    &format!("{SELECT} WHERE provider = $1 AND subject = $2 FOR UPDATE"),
                    &[&p.provider, &p.subject],
                )
                .await
                .map_err(q)?;
            let current = decode(&row)?;
            let groups = crate::oidc::sync_groups(&current.groups, p.groups, local_groups, builtin);
            let user = ExternalUser {
                provider: p.provider.to_string(),
                subject: p.subject.to_string(),
                username: p.username.to_string(),
                email: p.email.map_or(current.email, str::to_string),
                full_name: p.full_name.map_or(current.full_name, str::to_string),
                groups,
                created_at: current.created_at,
                last_login: now,
            };
            let groups_json = serde_json::to_string(&user.groups).unwrap_or_else(|_| "[]".into());
            tx.execute(
                "UPDATE external_users SET username = $3, email = $4, full_name = $5,
                        groups = $6::text::json, last_login = $7
                  WHERE provider = $1 AND subject = $2",
                &[
                    &user.provider,
                    &user.subject,
                    &user.username,
                    &user.email,
                    &user.full_name,
                    &groups_json,
                    &user.last_login,
                ],
            )
            .await
            .map_err(q)?;
            tx.commit().await.map_err(q)?;
            Ok(user)
        })
        .await
    }
}

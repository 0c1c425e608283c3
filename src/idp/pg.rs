//! The console provider's state in the shared PostgreSQL database, so a code
//! issued by one node is redeemed at another and a refresh token replayed
//! anywhere revokes its family everywhere. Same semantics as the SQLite
//! store; each operation is one transaction whose row locks decide races.

use std::future::Future;

use deadpool_postgres::Transaction;
use tokio::runtime::Handle;
use tokio_postgres::Row;

use super::keys::StoredKey;
use super::saml::keys::StoredSamlKey;
use super::settings::KeyAlg;
use super::store::{
    AccessRecord, CodeRecord, CodeTake, Family, IdpStore, RefreshTake, StoreError, Subject,
};
use crate::secret::Secret;
use crate::store::{DbError, PgStore};

/// The provider's store on PostgreSQL (schema versions 3 and 5). Its calls block
/// on the runtime captured at construction: call them from
/// `spawn_blocking` threads or other non-runtime threads, never from an
/// async task.
#[derive(Debug, Clone)]
pub struct PgIdpStore {
    store: PgStore,
    handle: Handle,
}

impl PgIdpStore {
    /// Call on the runtime the pool was made on.
    pub fn new(store: PgStore) -> Self {
        Self {
            store,
            handle: Handle::current(),
        }
    }

    fn run<T>(
        &self,
        what: &'static str,
        fut: impl Future<Output = Result<T, DbError>>,
    ) -> Result<T, StoreError> {
        Ok(self.handle.block_on(self.store.timed(what, fut))?)
    }

    fn q(&self, what: &'static str) -> impl Fn(tokio_postgres::Error) -> DbError + '_ {
        move |e| self.store.query_error(what, e)
    }
}

fn corrupt(what: &str) -> DbError {
    DbError::Corrupt(format!("console provider {what}"))
}

fn subject(kind: &str, provider: String, id: String, what: &str) -> Result<Subject, DbError> {
    Subject::decode(kind, provider, id).ok_or_else(|| corrupt(what))
}

/// The family `id` with whether it is revoked and when it expires; `None`
/// when there is none or its subject is unreadable (the token is then
/// simply invalid, as with SQLite). Locks the row.
async fn family_of(
    c: &Transaction<'_>,
    id: &str,
) -> Result<Option<(Family, bool, i64)>, tokio_postgres::Error> {
    let row = c
        .query_opt(
            "SELECT id, client_id, kind, provider, subject, scope, auth_time, revoked, expires
               FROM idp_families WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?;
    Ok(row.and_then(|r| {
        let kind: String = r.get(2);
        let subject = Subject::decode(&kind, r.get(3), r.get(4))?;
        Some((
            Family {
                id: r.get(0),
                client_id: r.get(1),
                subject,
                scope: r.get(5),
                auth_time: r.get(6),
            },
            r.get(7),
            r.get(8),
        ))
    }))
}

fn stored_key(r: &Row) -> Result<StoredKey, DbError> {
    let alg: String = r.get(1);
    Ok(StoredKey {
        kid: r.get(0),
        alg: KeyAlg::parse(&alg).ok_or_else(|| corrupt("key algorithm"))?,
        pkcs8: Secret::new(r.get::<_, Vec<u8>>(2)),
        created: r.get(3),
        activated: r.get(4),
        retired: r.get(5),
    })
}

impl IdpStore for PgIdpStore {
    fn keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let q = self.q("console keys");
        self.run("console keys", async {
            let c = self.store.client().await?;
            let rows = c
                .query(
                    "SELECT kid, alg, pkcs8, created, activated, retired FROM idp_keys
                      ORDER BY created, kid",
                    &[],
                )
                .await
                .map_err(q)?;
            rows.iter().map(stored_key).collect()
        })
    }

    /// A key in a role already filled (a signing key, or a next key of the
    /// same algorithm) is not added: the unique indexes let only the first
    /// of several nodes starting together make the keys, and the others
    /// read that node's (see `ensure_keys`).
    fn add_key(&self, k: &StoredKey) -> Result<(), StoreError> {
        let q = self.q("console key insert");
        self.run("console key insert", async {
            let c = self.store.client().await?;
            c.execute(
                "INSERT INTO idp_keys (kid, alg, pkcs8, created, activated, retired)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[
                    &k.kid,
                    &k.alg.as_str(),
                    &k.pkcs8.expose(),
                    &k.created,
                    &k.activated,
                    &k.retired,
                ],
            )
            .await
            .map_err(q)?;
            Ok(())
        })
    }

    fn rotate(
        &self,
        alg: KeyAlg,
        now: i64,
        fresh: &StoredKey,
    ) -> Result<Option<String>, StoreError> {
        let q = self.q("console key rotation");
        self.run("console key rotation", async {
            let mut c = self.store.client().await?;
            let tx = c.transaction().await.map_err(&q)?;
            let next = tx
                .query_opt(
                    "SELECT kid FROM idp_keys WHERE alg = $1 AND activated IS NULL
                        AND retired IS NULL ORDER BY created, kid LIMIT 1 FOR UPDATE",
                    &[&alg.as_str()],
                )
                .await
                .map_err(&q)?;
            let Some(next) = next.map(|r| r.get::<_, String>(0)) else {
                return Ok(None);
            };
            tx.execute(
                "UPDATE idp_keys SET retired = $1 WHERE activated IS NOT NULL AND retired IS NULL",
                &[&now],
            )
            .await
            .map_err(&q)?;
            tx.execute(
                "UPDATE idp_keys SET activated = $1 WHERE kid = $2",
                &[&now, &next],
            )
            .await
            .map_err(&q)?;
            tx.execute(
                "INSERT INTO idp_keys (kid, alg, pkcs8, created) VALUES ($1, $2, $3, $4)",
                &[&fresh.kid, &fresh.alg.as_str(), &fresh.pkcs8.expose(), &now],
            )
            .await
            .map_err(&q)?;
            tx.commit().await.map_err(&q)?;
            Ok(Some(next))
        })
    }

    fn put_code(&self, code: &CodeRecord) -> Result<(), StoreError> {
        let (kind, provider, subject) = code.subject.encode();
        let q = self.q("authorization code insert");
        self.run("authorization code insert", async {
            let c = self.store.client().await?;
            c.execute(
                "INSERT INTO idp_codes (hash, client_id, redirect_uri, kind, provider, subject,
                    scope, nonce, challenge, auth_time, expires)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                &[
                    &&code.hash[..],
                    &code.client_id,
                    &code.redirect_uri,
                    &kind,
                    &provider,
                    &subject,
                    &code.scope,
                    &code.nonce,
                    &code.challenge,
                    &code.auth_time,
                    &code.expires,
                ],
            )
            .await
            .map_err(q)?;
            Ok(())
        })
    }

    fn take_code(&self, hash: &[u8; 32]) -> Result<CodeTake, StoreError> {
        let q = self.q("authorization code exchange");
        self.run("authorization code exchange", async {
            let mut c = self.store.client().await?;
            let tx = c.transaction().await.map_err(&q)?;
            // The row lock makes two nodes exchanging one code take turns:
            // the second sees it spent.
            let Some(r) = tx
                .query_opt(
                    "SELECT client_id, redirect_uri, kind, provider, subject, scope, nonce,
                            challenge, auth_time, expires, used, family
                       FROM idp_codes WHERE hash = $1 FOR UPDATE",
                    &[&&hash[..]],
                )
                .await
                .map_err(&q)?
            else {
                return Ok(CodeTake::Unknown);
            };
            let used: i16 = r.get(10);
            if used != 0 {
                let family: Option<String> = r.get(11);
                if let Some(f) = family {
                    tx.execute(
                        "UPDATE idp_families SET revoked = true WHERE id = $1",
                        &[&f],
                    )
                    .await
                    .map_err(&q)?;
                }
                // Marked replayed: a family this code is still about to
                // start is born revoked (see new_family).
                tx.execute(
                    "UPDATE idp_codes SET used = 2 WHERE hash = $1",
                    &[&&hash[..]],
                )
                .await
                .map_err(&q)?;
                tx.commit().await.map_err(&q)?;
                return Ok(CodeTake::Reused {
                    client_id: r.get(0),
                });
            }
            tx.execute(
                "UPDATE idp_codes SET used = 1 WHERE hash = $1",
                &[&&hash[..]],
            )
            .await
            .map_err(&q)?;
            tx.commit().await.map_err(&q)?;
            let kind: String = r.get(2);
            Ok(CodeTake::Fresh(CodeRecord {
                hash: *hash,
                client_id: r.get(0),
                redirect_uri: r.get(1),
                subject: subject(&kind, r.get(3), r.get(4), "code subject")?,
                scope: r.get(5),
                nonce: r.get(6),
                challenge: r.get(7),
                auth_time: r.get(8),
                expires: r.get(9),
            }))
        })
    }

    fn new_family(
        &self,
        f: &Family,
        from_code: &[u8; 32],
        token: &[u8; 32],
        expires: i64,
    ) -> Result<(), StoreError> {
        let (kind, provider, subject) = f.subject.encode();
        let q = self.q("refresh family insert");
        self.run("refresh family insert", async {
            let mut c = self.store.client().await?;
            let tx = c.transaction().await.map_err(&q)?;
            tx.execute(
                "INSERT INTO idp_families (id, client_id, kind, provider, subject, scope,
                    auth_time, expires) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &f.id,
                    &f.client_id,
                    &kind,
                    &provider,
                    &subject,
                    &f.scope,
                    &f.auth_time,
                    &expires,
                ],
            )
            .await
            .map_err(&q)?;
            tx.execute(
                "INSERT INTO idp_refresh_tokens (hash, family, expires) VALUES ($1, $2, $3)",
                &[&&token[..], &f.id, &expires],
            )
            .await
            .map_err(&q)?;
            // Taking the code's row lock first: a replay racing with this
            // either finds the family recorded (and revokes it) or has
            // committed its mark, which the next statement reads.
            tx.execute(
                "UPDATE idp_codes SET family = $1 WHERE hash = $2",
                &[&f.id, &&from_code[..]],
            )
            .await
            .map_err(&q)?;
            tx.execute(
                "UPDATE idp_families SET revoked = true WHERE id = $1 AND
                   (SELECT used FROM idp_codes WHERE hash = $2) > 1",
                &[&f.id, &&from_code[..]],
            )
            .await
            .map_err(&q)?;
            tx.commit().await.map_err(&q)
        })
    }

    fn rotate_refresh(
        &self,
        old: &[u8; 32],
        new: &[u8; 32],
        now: i64,
        expires: i64,
    ) -> Result<RefreshTake, StoreError> {
        let q = self.q("refresh token rotation");
        self.run("refresh token rotation", async {
            let mut c = self.store.client().await?;
            let tx = c.transaction().await.map_err(&q)?;
            // Locked: of two nodes presenting one token, the second waits
            // and then sees it spent, a replay.
            let Some(r) = tx
                .query_opt(
                    "SELECT family, expires, used FROM idp_refresh_tokens
                      WHERE hash = $1 FOR UPDATE",
                    &[&&old[..]],
                )
                .await
                .map_err(&q)?
            else {
                return Ok(RefreshTake::Invalid);
            };
            let (fid, token_expires, used): (String, i64, bool) = (r.get(0), r.get(1), r.get(2));
            let Some((family, revoked, family_expires)) = family_of(&tx, &fid).await.map_err(&q)?
            else {
                return Ok(RefreshTake::Invalid);
            };
            if used {
                tx.execute(
                    "UPDATE idp_families SET revoked = true WHERE id = $1",
                    &[&fid],
                )
                .await
                .map_err(&q)?;
                tx.commit().await.map_err(&q)?;
                return Ok(RefreshTake::Replayed {
                    client_id: family.client_id,
                });
            }
            if revoked || token_expires <= now || family_expires <= now {
                return Ok(RefreshTake::Invalid);
            }
            tx.execute(
                "UPDATE idp_refresh_tokens SET used = true WHERE hash = $1",
                &[&&old[..]],
            )
            .await
            .map_err(&q)?;
            tx.execute(
                "INSERT INTO idp_refresh_tokens (hash, family, expires) VALUES ($1, $2, $3)",
                &[&&new[..], &fid, &expires],
            )
            .await
            .map_err(&q)?;
            tx.execute(
                "UPDATE idp_families SET expires = GREATEST(expires, $1) WHERE id = $2",
                &[&expires, &fid],
            )
            .await
            .map_err(&q)?;
            tx.commit().await.map_err(&q)?;
            Ok(RefreshTake::Rotated(family))
        })
    }

    fn revoke_refresh(&self, token: &[u8; 32], client_id: &str) -> Result<bool, StoreError> {
        let q = self.q("refresh token revocation");
        self.run("refresh token revocation", async {
            let c = self.store.client().await?;
            let n = c
                .execute(
                    "UPDATE idp_families SET revoked = true WHERE client_id = $2 AND id =
                       (SELECT family FROM idp_refresh_tokens WHERE hash = $1)",
                    &[&&token[..], &client_id],
                )
                .await
                .map_err(q)?;
            Ok(n > 0)
        })
    }

    fn revoke_family(&self, id: &str) -> Result<(), StoreError> {
        let q = self.q("refresh family revocation");
        self.run("refresh family revocation", async {
            let c = self.store.client().await?;
            c.execute(
                "UPDATE idp_families SET revoked = true WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(q)?;
            Ok(())
        })
    }

    fn family_live(&self, id: &str) -> Result<bool, StoreError> {
        let q = self.q("refresh family lookup");
        self.run("refresh family lookup", async {
            let c = self.store.client().await?;
            let row = c
                .query_opt("SELECT revoked FROM idp_families WHERE id = $1", &[&id])
                .await
                .map_err(q)?;
            Ok(row.is_some_and(|r| !r.get::<_, bool>(0)))
        })
    }

    fn put_access(&self, hash: &[u8; 32], t: &AccessRecord) -> Result<(), StoreError> {
        let (kind, provider, subject) = t.subject.encode();
        let q = self.q("access token insert");
        self.run("access token insert", async {
            let c = self.store.client().await?;
            c.execute(
                "INSERT INTO idp_access_tokens (hash, client_id, kind, provider, subject, scope,
                    expires) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &&hash[..],
                    &t.client_id,
                    &kind,
                    &provider,
                    &subject,
                    &t.scope,
                    &t.expires,
                ],
            )
            .await
            .map_err(q)?;
            Ok(())
        })
    }

    fn get_access(&self, hash: &[u8; 32], now: i64) -> Result<Option<AccessRecord>, StoreError> {
        let q = self.q("access token lookup");
        self.run("access token lookup", async {
            let c = self.store.client().await?;
            let Some(r) = c
                .query_opt(
                    "SELECT client_id, kind, provider, subject, scope, expires
                       FROM idp_access_tokens WHERE hash = $1 AND expires > $2",
                    &[&&hash[..], &now],
                )
                .await
                .map_err(q)?
            else {
                return Ok(None);
            };
            let kind: String = r.get(1);
            Ok(Some(AccessRecord {
                client_id: r.get(0),
                subject: subject(&kind, r.get(2), r.get(3), "access subject")?,
                scope: r.get(4),
                expires: r.get(5),
            }))
        })
    }

    fn revoke_access(&self, hash: &[u8; 32], client_id: &str) -> Result<bool, StoreError> {
        let q = self.q("access token revocation");
        self.run("access token revocation", async {
            let c = self.store.client().await?;
            let n = c
                .execute(
                    "DELETE FROM idp_access_tokens WHERE hash = $1 AND client_id = $2",
                    &[&&hash[..], &client_id],
                )
                .await
                .map_err(q)?;
            Ok(n > 0)
        })
    }

    fn prune(&self, now: i64) -> Result<(), StoreError> {
        let q = self.q("console state prune");
        self.run("console state prune", async {
            let mut c = self.store.client().await?;
            let tx = c.transaction().await.map_err(&q)?;
            // Spent codes stay a day so that a late replay still revokes.
            tx.execute(
                "DELETE FROM idp_codes WHERE expires < $1::bigint - 86400",
                &[&now],
            )
            .await
            .map_err(&q)?;
            for sql in [
                "DELETE FROM idp_refresh_tokens WHERE expires < $1",
                "DELETE FROM idp_families WHERE expires < $1",
                "DELETE FROM idp_access_tokens WHERE expires < $1",
            ] {
                tx.execute(sql, &[&now]).await.map_err(&q)?;
            }
            tx.commit().await.map_err(&q)
        })
    }

    fn saml_keys(&self) -> Result<Vec<StoredSamlKey>, StoreError> {
        let q = self.q("SAML keys");
        self.run("SAML keys", async {
            let c = self.store.client().await?;
            let rows = c
                .query(
                    "SELECT id, pkcs8, cert, created, activated, retired FROM idp_saml_keys
                      ORDER BY created, id",
                    &[],
                )
                .await
                .map_err(q)?;
            Ok(rows
                .iter()
                .map(|r| StoredSamlKey {
                    id: r.get(0),
                    pkcs8: Secret::new(r.get::<_, Vec<u8>>(1)),
                    cert: r.get(2),
                    created: r.get(3),
                    activated: r.get(4),
                    retired: r.get(5),
                })
                .collect())
        })
    }

    /// The unique indexes of migration 5 drop a key whose role is filled;
    /// a node inserting after another's uncommitted keys waits for that
    /// transaction, so it keeps all or none of its own.
    fn add_saml_keys(&self, keys: &[StoredSamlKey]) -> Result<(), StoreError> {
        let q = self.q("SAML key insert");
        self.run("SAML key insert", async {
            let mut c = self.store.client().await?;
            let tx = c.transaction().await.map_err(&q)?;
            for k in keys {
                tx.execute(
                    "INSERT INTO idp_saml_keys (id, pkcs8, cert, created, activated, retired)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    &[
                        &k.id,
                        &k.pkcs8.expose(),
                        &k.cert,
                        &k.created,
                        &k.activated,
                        &k.retired,
                    ],
                )
                .await
                .map_err(&q)?;
            }
            tx.commit().await.map_err(&q)
        })
    }

    fn rotate_saml(&self, now: i64, fresh: &StoredSamlKey) -> Result<Option<String>, StoreError> {
        let q = self.q("SAML key rotation");
        self.run("SAML key rotation", async {
            let mut c = self.store.client().await?;
            let tx = c.transaction().await.map_err(&q)?;
            let next = tx
                .query_opt(
                    "SELECT id FROM idp_saml_keys WHERE activated IS NULL AND retired IS NULL
                      ORDER BY created, id LIMIT 1 FOR UPDATE",
                    &[],
                )
                .await
                .map_err(&q)?;
            let Some(next) = next.map(|r| r.get::<_, String>(0)) else {
                return Ok(None);
            };
            tx.execute("DELETE FROM idp_saml_keys WHERE retired IS NOT NULL", &[])
                .await
                .map_err(&q)?;
            tx.execute(
                "UPDATE idp_saml_keys SET retired = $1
                  WHERE activated IS NOT NULL AND retired IS NULL",
                &[&now],
            )
            .await
            .map_err(&q)?;
            tx.execute(
                "UPDATE idp_saml_keys SET activated = $1 WHERE id = $2",
                &[&now, &next],
            )
            .await
            .map_err(&q)?;
            tx.execute(
                "INSERT INTO idp_saml_keys (id, pkcs8, cert, created) VALUES ($1, $2, $3, $4)",
                &[&fresh.id, &fresh.pkcs8.expose(), &fresh.cert, &now],
            )
            .await
            .map_err(&q)?;
            tx.commit().await.map_err(&q)?;
            Ok(Some(next))
        })
    }
}

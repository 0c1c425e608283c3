//! Browser sessions in the shared database, and the key that signs their
//! cookies, so any node accepts a cookie any node set and a logout anywhere
//! ends the session everywhere. The web side decides what a session holds
//! (it hands JSON here); this file only keeps it.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{DbError, PgStore};

/// Sessions in PostgreSQL. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PgSessions {
    store: PgStore,
}

fn id_hash(id: &str) -> Vec<u8> {
    Sha256::digest(id.as_bytes()).to_vec()
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl PgSessions {
    pub fn new(store: PgStore) -> Self {
        Self { store }
    }

    /// The pool these sessions use (the web side keeps its other login
    /// state there too).
    pub fn store(&self) -> &PgStore {
        &self.store
    }

    /// The key every node signs cookies with: made by the first node that
    /// asks, read by the others.
    pub async fn cookie_key(&self) -> Result<[u8; 32], DbError> {
        let mut fresh = [0u8; 32];
        aws_lc_rs::rand::fill(&mut fresh).expect("system CSPRNG");
        let s = &self.store;
        s.timed("cookie key", async {
            let c = s.client().await?;
            let q = |e| s.query_error("cookie key", e);
            c.execute(
                "INSERT INTO portcullis_keys (name, secret) VALUES ('web-cookie', $1)
                 ON CONFLICT (name) DO NOTHING",
                &[&&fresh[..]],
            )
            .await
            .map_err(q)?;
            let row = c
                .query_one(
                    "SELECT secret FROM portcullis_keys WHERE name = 'web-cookie'",
                    &[],
                )
                .await
                .map_err(q)?;
            let key: &[u8] = row.get(0);
            let mut out = [0u8; 32];
            if key.len() != out.len() {
                return Err(DbError::Corrupt(format!(
                    "stored web-cookie key is {} bytes, expected 32",
                    key.len()
                )));
            }
            out.copy_from_slice(key);
            Ok(out)
        })
        .await
    }

    /// Stores a new session; the person's oldest beyond `max_per_user - 1`
    /// give way first, and expired sessions are swept now and then.
    pub async fn create(
        &self,
        id: &str,
        user_key: &str,
        session: &str,
        ttl: Duration,
        max_per_user: i64,
    ) -> Result<(), DbError> {
        let s = &self.store;
        let hash = id_hash(id);
        s.timed("session create", async {
            let mut c = s.client().await?;
            let q = |e| s.query_error("session create", e);
            let tx = c.transaction().await.map_err(q)?;
            tx.execute(
                "DELETE FROM web_sessions WHERE id_hash IN (
                    SELECT id_hash FROM web_sessions WHERE user_key = $1
                     ORDER BY started_at DESC OFFSET $2)",
                &[&user_key, &(max_per_user - 1).max(0)],
            )
            .await
            .map_err(q)?;
            tx.execute(
                "INSERT INTO web_sessions (id_hash, user_key, session, expires_at)
                 VALUES ($1, $2, $3::text::json, now() + make_interval(secs => $4))",
                &[&hash, &user_key, &session, &secs(ttl)],
            )
            .await
            .map_err(q)?;
            // Sweeping here bounds the table without a task of its own.
            if hash.first().is_some_and(|b| *b < 8) {
                tx.execute(
                    "DELETE FROM web_sessions WHERE expires_at < now()
                        OR last_seen < now() - interval '30 days'",
                    &[],
                )
                .await
                .map_err(q)?;
            }
            tx.commit().await.map_err(q)
        })
        .await
    }

    /// The session's JSON if it is live (not expired, used within `idle`);
    /// using it keeps it alive. A dead one is removed.
    pub async fn touch(&self, id: &str, idle: Duration) -> Result<Option<String>, DbError> {
        let s = &self.store;
        let hash = id_hash(id);
        s.timed("session lookup", async {
            let c = s.client().await?;
            let q = |e| s.query_error("session lookup", e);
            let row = c
                .query_opt(
                    "UPDATE web_sessions SET last_seen = now()
                      WHERE id_hash = $1 AND expires_at > now()
                        AND last_seen > now() - make_interval(secs => $2)
                     RETURNING session::text",
                    &[&hash, &secs(idle)],
                )
                .await
                .map_err(q)?;
            if row.is_none() {
                c.execute("DELETE FROM web_sessions WHERE id_hash = $1", &[&hash])
                    .await
                    .map_err(q)?;
            }
            Ok(row.map(|r| r.get(0)))
        })
        .await
    }

    /// Ends the session; its JSON if it existed.
    pub async fn remove(&self, id: &str) -> Result<Option<String>, DbError> {
        let s = &self.store;
        let hash = id_hash(id);
        s.timed("session end", async {
            let c = s.client().await?;
            let row = c
                .query_opt(
                    "DELETE FROM web_sessions WHERE id_hash = $1 RETURNING session::text",
                    &[&hash],
                )
                .await
                .map_err(|e| s.query_error("session end", e))?;
            Ok(row.map(|r| r.get(0)))
        })
        .await
    }
}

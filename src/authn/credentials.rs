//! The credential checker the doors hold: one argon2 pool shared by every
//! configuration generation, asked about the users of whichever generation
//! a request holds.

use std::sync::Arc;

use super::{Argon2Pool, AuthnError, LocalUser, LocalUsers};

#[derive(Debug, Clone)]
pub struct Credentials {
    pool: Arc<Argon2Pool>,
}

impl Credentials {
    pub fn new(pool: Arc<Argon2Pool>) -> Self {
        Self { pool }
    }

    /// Checks a cleartext password (PAP, ASCII login, web form): from the
    /// verified-credential cache, else argon2 off the async workers.
    pub async fn password<'u>(
        &self,
        users: &'u LocalUsers,
        name: &str,
        password: &[u8],
    ) -> Result<&'u LocalUser, AuthnError> {
        users.check_password(&self.pool, name, password).await
    }

    /// Whether (user, password) passed argon2 recently, counted as a cache
    /// hit when it did: lets a repeat login skip the pool entirely.
    pub fn cached(&self, users: &LocalUsers, name: &str, password: &[u8]) -> bool {
        let hit = users.cached(name, password);
        if hit {
            self.pool.metrics().cache_hit();
        }
        hit
    }
}

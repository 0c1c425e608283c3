//! Credential checks. Answers "who is this, and which groups are they in?",
//! never "what may they do" (that is `policy`). Local users come from the
//! configuration with argon2 hashes; upstream identity providers plug in here.

mod cache;
mod pool;

pub use cache::{CredentialCache, Fingerprint};
pub use pool::{Argon2Pool, PoolMetrics, verify_blocking};

use std::collections::HashMap;

use crate::policy::{GroupId, Identity, Source};
use crate::secret::Secret;

/// A user of the configuration file.
#[derive(Debug, Clone)]
pub struct LocalUser {
    pub name: Box<str>,
    /// argon2 PHC string, checked at load.
    pub password_hash: Box<str>,
    /// Group ids in the policy table, `all-users` included.
    pub groups: Box<[GroupId]>,
    pub enabled: bool,
    pub full_name: Box<str>,
    pub email: Box<str>,
    /// Opt-in cleartext-equivalent, needed by CHAP and MS-CHAP only.
    pub cleartext_password: Option<Secret>,
}

impl LocalUser {
    pub fn identity(&self) -> Identity<'_> {
        Identity {
            user: &self.name,
            groups: &self.groups,
            source: Source::Local,
        }
    }
}

/// Why a credential was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthnError {
    #[error("unknown user")]
    UnknownUser,
    #[error("account disabled")]
    Disabled,
    #[error("wrong password")]
    BadPassword,
    #[error("this method needs a stored cleartext-equivalent, and the user has not opted in")]
    NoCleartext,
    #[error("password verification is overloaded; request shed")]
    Overloaded,
    #[error("stored password hash could not be used")]
    BadHash,
}

impl AuthnError {
    pub fn label(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::Disabled => "disabled",
            Self::BadPassword => "bad_password",
            Self::NoCleartext => "no_cleartext",
            Self::Overloaded => "overloaded",
            Self::BadHash => "bad_hash",
        }
    }
}

/// The local user database of one configuration generation, with its
/// verified-credential cache (a reload starts a fresh cache).
#[derive(Debug)]
pub struct LocalUsers {
    users: HashMap<Box<str>, LocalUser>,
    cache: CredentialCache,
}

impl LocalUsers {
    pub fn new(users: Vec<LocalUser>, cache: CredentialCache) -> Self {
        Self {
            users: users.into_iter().map(|u| (u.name.clone(), u)).collect(),
            cache,
        }
    }

    pub fn get(&self, name: &str) -> Option<&LocalUser> {
        self.users.get(name)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &LocalUser> {
        self.users.values()
    }

    /// The enabled user `name`, or why there is none.
    pub fn active(&self, name: &str) -> Result<&LocalUser, AuthnError> {
        let user = self.users.get(name).ok_or(AuthnError::UnknownUser)?;
        if !user.enabled {
            return Err(AuthnError::Disabled);
        }
        Ok(user)
    }

    /// Checks a cleartext password (PAP, ASCII login, web form). A repeat of
    /// a recently verified pair is answered from the cache in microseconds;
    /// otherwise argon2 runs on the bounded blocking pool, never on the
    /// async workers.
    pub async fn check_password(
        &self,
        pool: &Argon2Pool,
        name: &str,
        password: &[u8],
    ) -> Result<&LocalUser, AuthnError> {
        let user = self.active(name)?;
        let fingerprint = self.cache.fingerprint(name, password);
        if self.cache.contains(&fingerprint) {
            pool.metrics().cache_hit();
            return Ok(user);
        }
        pool.metrics().cache_miss();
        if pool.verify(&user.password_hash, password).await? {
            self.cache.insert(fingerprint);
            Ok(user)
        } else {
            Err(AuthnError::BadPassword)
        }
    }

    /// Whether (user, password) passed argon2 recently: the fast path that
    /// lets a repeat login skip the blocking pool entirely.
    pub fn cached(&self, name: &str, password: &[u8]) -> bool {
        self.cache.contains(&self.cache.fingerprint(name, password))
    }

    /// The cleartext-equivalent for CHAP / MS-CHAP, for an enabled user who
    /// opted in.
    pub fn cleartext(&self, name: &str) -> Result<(&LocalUser, &Secret), AuthnError> {
        let user = self.active(name)?;
        let secret = user
            .cleartext_password
            .as_ref()
            .ok_or(AuthnError::NoCleartext)?;
        Ok((user, secret))
    }
}

/// Hashes a password into an argon2id PHC string with the crate's default
/// (OWASP-recommended) parameters.
pub fn hash_password(password: &[u8]) -> Result<String, argon2::password_hash::Error> {
    use argon2::PasswordHasher;
    let hash: argon2::PasswordHash = argon2::Argon2::default().hash_password(password)?;
    Ok(hash.to_string())
}

/// Whether `s` is an argon2 PHC string that `verify` can use.
pub fn check_hash(s: &str) -> Result<(), String> {
    let parsed = argon2::PasswordHash::new(s).map_err(|e| format!("not a PHC string: {e}"))?;
    match parsed.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" => {}
        other => return Err(format!("algorithm `{other}` is not argon2")),
    }
    argon2::Params::try_from(&parsed).map_err(|e| format!("bad argon2 parameters: {e}"))?;
    if parsed.hash.is_none() {
        return Err("the PHC string has no hash part".into());
    }
    Ok(())
}

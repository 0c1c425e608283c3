//! Which source answers a login: the configuration's users, the
//! directories, in `server.auth_order`. The doors ask [`Credentials`] and
//! get a [`Login`], never knowing whether a bind or argon2 decided.

use std::time::Instant;

use tracing::{debug, info, warn};

use super::directory::{self, DirError, Directories, DirectoryUser};
use super::{AuthnError, Credentials, LocalUser, LocalUsers, ThrottleKey};
use crate::config::AuthOrder;
use crate::policy::{Identity, PolicyTable};
use crate::secret::Secret;

/// Who a login turned out to be.
#[derive(Debug, Clone)]
pub enum Login<'u> {
    Local(&'u LocalUser),
    Directory(DirectoryUser),
}

impl Login<'_> {
    pub fn identity(&self) -> Identity<'_> {
        match self {
            Self::Local(u) => u.identity(),
            Self::Directory(d) => d.identity(),
        }
    }

    /// "local" or "directory NAME", for logs and `explain`.
    pub fn source(&self) -> String {
        match self {
            Self::Local(_) => "local".into(),
            Self::Directory(d) => format!("directory {}", d.directory),
        }
    }
}

/// The cache key's stored-credential part for a directory: distinct per
/// directory, so one directory's verification never answers for another.
fn directory_tag(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"directory\0".iter().chain(name.as_bytes()) {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h | 1 << 63
}

impl Credentials {
    /// Checks a cleartext password (PAP, ASCII login) against the sources
    /// in `dirs.order`. A name that exists locally and in a directory is
    /// never merged: `local-first` takes the local user, `remote-first`
    /// the directory's unless every directory is unreachable.
    pub async fn login<'u>(
        &self,
        users: &'u LocalUsers,
        dirs: &Directories,
        policy: &PolicyTable,
        name: &str,
        password: &[u8],
    ) -> Result<Login<'u>, AuthnError> {
        if dirs.is_empty() {
            return self.password(users, name, password).await.map(Login::Local);
        }
        match dirs.order {
            AuthOrder::LocalFirst if users.get(name).is_some() => {
                self.password(users, name, password).await.map(Login::Local)
            }
            AuthOrder::LocalFirst | AuthOrder::RemoteOnly => self
                .ask_directories(users, dirs, policy, name, password)
                .await
                .map(Login::Directory),
            AuthOrder::RemoteFirst => {
                match self
                    .ask_directories(users, dirs, policy, name, password)
                    .await
                {
                    Err(AuthnError::DirectoryUnavailable) => {
                        warn!(
                            user = name,
                            "no directory answered; local users answer instead (remote-first)"
                        );
                        self.password(users, name, password).await.map(Login::Local)
                    }
                    r => r.map(Login::Directory),
                }
            }
        }
    }

    /// The answer [`Self::login`] would give from caches alone, without
    /// waiting for anything; `None` when it would have to wait.
    pub fn cached_login<'u>(
        &self,
        users: &'u LocalUsers,
        dirs: &Directories,
        policy: &PolicyTable,
        name: &str,
        password: &[u8],
    ) -> Option<Login<'u>> {
        let local = || match users.active(name) {
            Ok(u) if self.cached(users, name, password) => Some(Login::Local(u)),
            _ => None,
        };
        if dirs.is_empty() || (dirs.order == AuthOrder::LocalFirst && users.get(name).is_some()) {
            return local();
        }
        for s in &dirs.list {
            if s.cache_ttl.is_zero() {
                continue;
            }
            let fp = self
                .shared
                .cache
                .fingerprint(name, password, directory_tag(&s.name));
            if !self.shared.cache.contains(&fp) {
                continue;
            }
            let d = self.directories.get(s);
            if let Some((found, age)) = d.cached(name)
                && age < s.group_cache_ttl
            {
                self.pool.metrics().cache_hit();
                return Some(Login::Directory(DirectoryUser::resolve(
                    s, policy, name, &found,
                )));
            }
        }
        None
    }

    async fn ask_directories(
        &self,
        users: &LocalUsers,
        dirs: &Directories,
        policy: &PolicyTable,
        name: &str,
        password: &[u8],
    ) -> Result<DirectoryUser, AuthnError> {
        directory::text::check_name(name).map_err(AuthnError::BadName)?;
        if password.is_empty() {
            // An empty password is an unauthenticated bind (RFC 4513
            // §5.1.2), which servers answer with success.
            return Err(AuthnError::EmptyPassword);
        }
        let password = match std::str::from_utf8(password) {
            Ok(p) if !p.contains('\0') => p,
            _ => return Err(AuthnError::PasswordNotText),
        };
        let t = users.throttle();
        let throttle = &self.shared.throttle;
        let name_key = ThrottleKey::User(name.into());
        if throttle.locked(&name_key, Instant::now()) {
            self.pool.metrics().throttled();
            return Err(AuthnError::Throttled);
        }
        let mut unavailable = false;
        for s in &dirs.list {
            let d = self.directories.get(s);
            let fp =
                self.shared
                    .cache
                    .fingerprint(name, password.as_bytes(), directory_tag(&s.name));
            let outcome = if !s.cache_ttl.is_zero() && self.shared.cache.contains(&fp) {
                self.pool.metrics().cache_hit();
                match d.cached(name) {
                    Some((found, age)) if age < s.group_cache_ttl => Ok(found),
                    stale => match d.refresh(name, password).await {
                        // The password was verified within its TTL; the
                        // groups last read stand in while the directory
                        // cannot be asked.
                        Err(DirError::Unavailable(_)) if stale.is_some() => {
                            debug!(user = name, directory = %s.name, "groups not refreshed: directory unavailable; last known groups used");
                            Ok(stale.expect("checked").0)
                        }
                        r => r,
                    },
                }
            } else {
                self.pool.metrics().cache_miss();
                let r = d.check_once(fp.mac(), name, password).await;
                if r.is_ok() && !s.cache_ttl.is_zero() {
                    self.shared.cache.insert(fp, s.cache_ttl);
                }
                r
            };
            match outcome {
                Ok(found) => {
                    throttle.succeeded(&name_key);
                    return Ok(DirectoryUser::resolve(s, policy, name, &found));
                }
                Err(DirError::NotFound) => continue,
                Err(DirError::BadPassword) => {
                    throttle.failed(name_key, t.failures, t, Instant::now());
                    return Err(AuthnError::BadPassword);
                }
                Err(DirError::Busy) => return Err(AuthnError::Overloaded),
                Err(DirError::Unavailable(reason)) => {
                    info!(user = name, directory = %s.name, reason, "directory unavailable for this login");
                    unavailable = true;
                }
            }
        }
        if unavailable {
            return Err(AuthnError::DirectoryUnavailable);
        }
        throttle.failed(name_key, t.failures, t, Instant::now());
        Err(AuthnError::UnknownUser)
    }

    /// Who `name` is without a password (TACACS+ authorization after a
    /// login, `explain`): the local user or what a directory said lately,
    /// in `dirs.order`. A directory entry read longer ago than the
    /// directory's credential TTL is read again (service account only).
    pub async fn known<'u>(
        &self,
        users: &'u LocalUsers,
        dirs: &Directories,
        policy: &PolicyTable,
        name: &str,
    ) -> Result<Login<'u>, AuthnError> {
        let local = || users.active(name).map(Login::Local);
        if dirs.is_empty() || (dirs.order == AuthOrder::LocalFirst && users.get(name).is_some()) {
            return local();
        }
        match self.directory_entry(dirs, policy, name).await {
            Ok(d) => Ok(Login::Directory(d)),
            Err(AuthnError::DirectoryUnavailable) if dirs.order == AuthOrder::RemoteFirst => {
                local()
            }
            Err(e) => Err(e),
        }
    }

    async fn directory_entry(
        &self,
        dirs: &Directories,
        policy: &PolicyTable,
        name: &str,
    ) -> Result<DirectoryUser, AuthnError> {
        directory::text::check_name(name).map_err(AuthnError::BadName)?;
        let mut unavailable = false;
        for s in &dirs.list {
            let d = self.directories.get(s);
            let cached = d.cached(name);
            if let Some((found, age)) = &cached
                && *age < s.group_cache_ttl
            {
                return Ok(DirectoryUser::resolve(s, policy, name, found));
            }
            match d.lookup(name).await {
                Ok(found) => return Ok(DirectoryUser::resolve(s, policy, name, &found)),
                Err(e) => {
                    if let Some((found, age)) = &cached
                        && *age < s.cache_ttl.max(s.group_cache_ttl)
                    {
                        return Ok(DirectoryUser::resolve(s, policy, name, found));
                    }
                    unavailable |= matches!(e, DirError::Unavailable(_) | DirError::Busy);
                }
            }
        }
        Err(if unavailable {
            AuthnError::DirectoryUnavailable
        } else {
            AuthnError::UnknownUser
        })
    }

    /// The cleartext-equivalent CHAP and MS-CHAP need. Only local users who
    /// opted in have one; a name not found locally while directories are
    /// configured (and every name under `remote-only`) is refused with the
    /// reason that a bind cannot give one.
    pub fn cleartext<'u>(
        &self,
        users: &'u LocalUsers,
        dirs: &Directories,
        name: &str,
    ) -> Result<(&'u LocalUser, &'u Secret), AuthnError> {
        if dirs.is_empty() {
            return users.cleartext(name);
        }
        if dirs.order == AuthOrder::RemoteOnly {
            return Err(AuthnError::DirectoryMethod);
        }
        match users.cleartext(name) {
            Err(AuthnError::UnknownUser) => Err(AuthnError::DirectoryMethod),
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_directory_has_its_own_cache_tag() {
        assert_ne!(directory_tag("corp"), directory_tag("lab"));
        assert_eq!(directory_tag("corp"), directory_tag("corp"));
        assert!(directory_tag("") >> 63 == 1);
    }
}

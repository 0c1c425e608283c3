//! Credential checks. Answers "who is this, and which groups are they in?",
//! never "what may they do" (that is `policy`). Local users come from the
//! configuration with argon2 hashes; CHAP and MS-CHAP are checked here for
//! both protocols; directories and upstream identity providers plug in here.

mod cache;
pub mod chap;
mod credentials;
pub mod directory;
mod hash;
mod login;
pub mod mschap;
mod pool;
mod throttle;

pub use cache::{CredentialCache, Fingerprint};
pub use credentials::Credentials;
pub use directory::{Directories, DirectoryMetrics, DirectoryUser};
pub use hash::{HashError, PasswordCheck, check_hash, verify_blocking};
pub use login::Login;
pub use pool::{Argon2Pool, Door, PoolMetrics};
pub use throttle::{
    Change as ThrottleChange, Key as ThrottleKey, Lockout, Throttle, ThrottleSettings,
};

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use crate::policy::{GroupId, Identity, Source};
use crate::secret::Secret;
use hash::{HashStore, HashStoreBuilder, StoredHash};

/// A user of the configuration file. With 100,000 of them every byte here
/// counts a hundred thousand times: variable-length data the hot path never
/// reads lives in [`LocalUsers`]' shared buffers instead.
#[derive(Debug, Clone)]
pub struct LocalUser {
    pub name: Box<str>,
    /// Group ids in the policy table, `all-users` included. Users with the
    /// same list share it.
    pub groups: Arc<[GroupId]>,
    pub enabled: bool,
    /// Opt-in cleartext-equivalent, needed by CHAP and MS-CHAP only.
    pub cleartext_password: Option<Secret>,
    /// The decoded argon2 hash, in [`LocalUsers`]' hash store.
    hash: StoredHash,
    full_name: TextSpan,
    email: TextSpan,
}

/// A piece of [`LocalUsers`]' text buffer.
#[derive(Debug, Clone, Copy)]
struct TextSpan {
    at: u32,
    len: u32,
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
    #[error("too many failed logins; locked out for a while")]
    Throttled,
    #[error("not sent to a directory: {0}")]
    BadName(directory::text::NameError),
    #[error("empty password: never sent to a directory (it would be an unauthenticated bind)")]
    EmptyPassword,
    #[error("password has a NUL byte or is not UTF-8: not sent to a directory")]
    PasswordNotText,
    #[error("no directory could be reached in time")]
    DirectoryUnavailable,
    #[error(
        "not a local user with a stored cleartext-equivalent: directory users log in with PAP or ASCII only (CHAP and MS-CHAP need a cleartext-equivalent that a bind cannot give)"
    )]
    DirectoryMethod,
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
            Self::Throttled => "throttled",
            Self::BadName(_) => "bad_name",
            Self::EmptyPassword => "empty_password",
            Self::PasswordNotText => "password_not_text",
            Self::DirectoryUnavailable => "directory_unavailable",
            Self::DirectoryMethod => "not_for_directory_users",
        }
    }
}

/// The local user database of one configuration generation. What was
/// verified lives in [`Credentials`], which outlives generations.
pub struct LocalUsers {
    /// In configuration order.
    users: Box<[LocalUser]>,
    index: NameIndex,
    hashes: HashStore,
    /// Every user's full name and email, back to back.
    text: Box<str>,
    /// `server.credential_cache_ttl` of this generation; zero disables.
    cache_ttl: Duration,
    throttle: ThrottleSettings,
}

impl std::fmt::Debug for LocalUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalUsers")
            .field("users", &self.users.len())
            .field("hashes", &self.hashes)
            .field("cache_ttl", &self.cache_ttl)
            .finish()
    }
}

impl LocalUsers {
    pub fn get(&self, name: &str) -> Option<&LocalUser> {
        self.index
            .find(&self.users, name)
            .map(|i| &self.users[i as usize])
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// In the order of the configuration file.
    pub fn iter(&self) -> impl Iterator<Item = &LocalUser> {
        self.users.iter()
    }

    /// `user` must come from this table (its text lives here).
    pub fn full_name(&self, user: &LocalUser) -> &str {
        self.text_of(user.full_name)
    }

    /// `user` must come from this table (its text lives here).
    pub fn email(&self, user: &LocalUser) -> &str {
        self.text_of(user.email)
    }

    fn text_of(&self, s: TextSpan) -> &str {
        &self.text[s.at as usize..(s.at + s.len) as usize]
    }

    /// The enabled user `name`, or why there is none.
    pub fn active(&self, name: &str) -> Result<&LocalUser, AuthnError> {
        let user = self.get(name).ok_or(AuthnError::UnknownUser)?;
        if !user.enabled {
            return Err(AuthnError::Disabled);
        }
        Ok(user)
    }

    /// This generation's failed-login throttling.
    pub fn throttle(&self) -> &ThrottleSettings {
        &self.throttle
    }

    /// The same users under `throttle`.
    pub fn with_throttle(mut self, throttle: ThrottleSettings) -> Self {
        self.throttle = throttle;
        self
    }

    /// How long a verified credential is remembered; zero: not at all.
    pub fn cache_ttl(&self) -> Duration {
        self.cache_ttl
    }

    /// Which stored credential `user` has, for the credential cache's key.
    pub(crate) fn credential_tag(&self, user: &LocalUser) -> u64 {
        self.hashes.tag(user.hash)
    }

    /// A check that costs what a user's does and that nothing passes.
    pub(crate) fn decoy_check(&self) -> PasswordCheck {
        self.hashes.decoy()
    }

    /// What checking `user`'s password takes; `user` must come from this
    /// table.
    pub(crate) fn password_check(&self, user: &LocalUser) -> PasswordCheck {
        self.hashes.check(user.hash)
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

/// A user as the configuration file describes it, for [`LocalUsersBuilder`].
#[derive(Debug)]
pub struct NewUser<'a> {
    pub name: &'a str,
    /// Group ids in the policy table, `all-users` included.
    pub groups: &'a [GroupId],
    pub enabled: bool,
    pub full_name: &'a str,
    pub email: &'a str,
    pub cleartext_password: Option<Secret>,
}

/// A limit of the compact user table that no real file reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TableFull {
    #[error("too many users for one configuration")]
    Users,
    #[error("too much user text for one configuration")]
    Text,
}

/// A decoded password hash waiting for its user; see
/// [`LocalUsersBuilder::hash`].
#[derive(Debug, Clone, Copy)]
pub struct UserHash(StoredHash);

/// Collects users into the compact form [`LocalUsers`] keeps. Names must be
/// unique (the configuration check reports duplicates with their line).
pub struct LocalUsersBuilder {
    users: Vec<LocalUser>,
    hashes: HashStoreBuilder,
    text: String,
    group_lists: HashSet<Arc<[GroupId]>>,
}

impl LocalUsersBuilder {
    /// Room for `users` users, so that nothing is copied while growing.
    pub fn with_capacity(users: usize) -> Self {
        Self {
            users: Vec::with_capacity(users),
            hashes: HashStoreBuilder::with_capacity(users),
            text: String::new(),
            group_lists: HashSet::new(),
        }
    }

    /// Decodes an argon2 PHC string, or says why it cannot be used.
    pub fn hash(&mut self, phc: &str) -> Result<UserHash, HashError> {
        self.hashes.add(phc).map(UserHash)
    }

    /// Adds a user with a hash from [`Self::hash`]; fails only past limits
    /// (4 GiB of text or hashes, 2^31 users) no real file reaches.
    pub fn push(&mut self, user: NewUser<'_>, hash: UserHash) -> Result<(), TableFull> {
        if self.users.len() >= NameIndex::MAX_USERS {
            return Err(TableFull::Users);
        }
        let groups = match self.group_lists.get(user.groups) {
            Some(g) => g.clone(),
            None => {
                let g: Arc<[GroupId]> = user.groups.into();
                self.group_lists.insert(g.clone());
                g
            }
        };
        let full_name = self.text(user.full_name)?;
        let email = self.text(user.email)?;
        self.users.push(LocalUser {
            name: user.name.into(),
            groups,
            enabled: user.enabled,
            cleartext_password: user.cleartext_password,
            hash: hash.0,
            full_name,
            email,
        });
        Ok(())
    }

    fn text(&mut self, s: &str) -> Result<TextSpan, TableFull> {
        let at = u32::try_from(self.text.len()).map_err(|_| TableFull::Text)?;
        let len = u32::try_from(s.len()).map_err(|_| TableFull::Text)?;
        at.checked_add(len).ok_or(TableFull::Text)?;
        self.text.push_str(s);
        Ok(TextSpan { at, len })
    }

    /// `cache_ttl`: how long a verified credential is remembered.
    pub fn finish(self, cache_ttl: Duration) -> LocalUsers {
        let users: Box<[LocalUser]> = self.users.into();
        LocalUsers {
            index: NameIndex::new(&users),
            users,
            hashes: self.hashes.finish(),
            text: self.text.into(),
            cache_ttl,
            throttle: ThrottleSettings::default(),
        }
    }
}

/// Name to position in `users`: an open-addressing table of `u32`s, 8 to 16
/// bytes per user, where a `HashMap<Box<str>, LocalUser>` spent a second
/// copy of every name plus a bucket the size of the whole record.
struct NameIndex {
    /// Positions in `users`, `EMPTY` where free; at most half full, so a
    /// lookup, even of an unknown name, compares one or two names on average.
    slots: Box<[u32]>,
    /// Keyed per table, like `HashMap`'s: names to look up arrive from the
    /// network, and must not be able to aim at one long probe run.
    hasher: std::hash::RandomState,
}

impl NameIndex {
    const EMPTY: u32 = u32::MAX;
    const MAX_USERS: usize = (u32::MAX / 2) as usize;

    fn new(users: &[LocalUser]) -> Self {
        let mut index = Self {
            slots: vec![Self::EMPTY; (users.len() * 2).next_power_of_two()].into(),
            hasher: std::hash::RandomState::new(),
        };
        let mask = index.slots.len() - 1;
        for (i, u) in users.iter().enumerate() {
            let mut s = index.hasher.hash_one(&*u.name) as usize & mask;
            loop {
                let slot = &mut index.slots[s];
                if *slot == Self::EMPTY || users[*slot as usize].name == u.name {
                    // A repeated name: the later entry wins, as in a map.
                    *slot = i as u32;
                    break;
                }
                s = (s + 1) & mask;
            }
        }
        index
    }

    fn find(&self, users: &[LocalUser], name: &str) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut s = self.hasher.hash_one(name) as usize & mask;
        loop {
            match self.slots[s] {
                Self::EMPTY => return None,
                i if &*users[i as usize].name == name => return Some(i),
                _ => s = (s + 1) & mask,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn users(n: usize) -> LocalUsers {
        let phc = hash::tests::cheap(b"pw", argon2::Algorithm::Argon2id, 32);
        let mut b = LocalUsersBuilder::with_capacity(n);
        for i in 0..n {
            let name = format!("user{i}");
            let groups: &[GroupId] = if i % 2 == 0 { &[0, 9] } else { &[9] };
            let hash = b.hash(&phc).unwrap();
            let full_name = format!("User Number {i}");
            let user = NewUser {
                name: &name,
                groups,
                enabled: i != 3,
                full_name: &full_name,
                email: if i == 1 { "one@example.net" } else { "" },
                cleartext_password: (i == 2).then(|| Secret::new(b"two".to_vec())),
            };
            b.push(user, hash).unwrap();
        }
        b.finish(Duration::from_secs(60))
    }

    #[test]
    fn every_user_is_found_by_name_and_no_one_else() {
        let u = users(1000);
        assert_eq!(u.len(), 1000);
        for i in 0..1000 {
            let name = format!("user{i}");
            assert_eq!(&*u.get(&name).unwrap().name, name);
        }
        for missing in ["", "user", "user1000", "User1", "user-1"] {
            assert!(u.get(missing).is_none(), "{missing}");
        }
        assert!(users(0).get("user0").is_none());
        let order: Vec<&str> = u.iter().take(3).map(|x| &*x.name).collect();
        assert_eq!(order, ["user0", "user1", "user2"]);
    }

    #[test]
    fn users_keep_their_details() {
        let u = users(4);
        let one = u.get("user1").unwrap();
        assert_eq!(&*one.groups, &[9]);
        assert_eq!(u.full_name(one), "User Number 1");
        assert_eq!(u.email(one), "one@example.net");
        assert_eq!(u.email(u.get("user0").unwrap()), "");
        assert_eq!(u.active("user3").unwrap_err(), AuthnError::Disabled);
        assert_eq!(u.active("nobody").unwrap_err(), AuthnError::UnknownUser);
        assert_eq!(u.cleartext("user1").unwrap_err(), AuthnError::NoCleartext);
        assert!(u.cleartext("user2").unwrap().1.ct_eq(b"two"));
    }

    #[test]
    fn equal_group_lists_are_stored_once() {
        let u = users(4);
        let (a, b) = (u.get("user0").unwrap(), u.get("user2").unwrap());
        assert!(Arc::ptr_eq(&a.groups, &b.groups));
        assert_eq!(&*a.groups, &[0, 9]);
        assert_eq!(u.get("user0").unwrap().identity().groups, &[0, 9]);
    }

    #[tokio::test]
    async fn passwords_are_checked_against_the_decoded_hash() {
        let u = users(2);
        let c = Credentials::new(Arc::new(Argon2Pool::new(1, 4, PoolMetrics::default())));
        assert!(c.password(&u, "user0", b"pw").await.is_ok());
        assert!(c.cached(&u, "user0", b"pw"));
        assert_eq!(
            c.password(&u, "user1", b"wrong").await.unwrap_err(),
            AuthnError::BadPassword
        );
    }
}

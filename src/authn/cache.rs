//! The verified-credential cache: remembers that (user, password) passed
//! argon2 against a stored hash recently, keyed by an HMAC under a random
//! per-process key, so the cache never holds anything a reader could turn
//! back into a password. The stored hash is part of the key: an entry
//! outlives a reload exactly when that user's credential did not change.

use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Upper bound on entries; past it the cache is emptied rather than grown,
/// so a flood of distinct valid logins cannot exhaust memory.
const MAX_ENTRIES: usize = 200_000;

/// A credential's cache key: an HMAC of user and password, and a tag of the
/// stored hash they were checked against (a reload that changes the hash
/// changes the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    mac: [u8; 16],
    stored: u64,
}

impl Fingerprint {
    /// The MAC part alone: names (user, password) whatever hash they meet.
    pub fn mac(&self) -> [u8; 16] {
        self.mac
    }
}

pub struct CredentialCache {
    mac: HmacSha256,
    entries: papaya::HashMap<Fingerprint, Instant>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl Default for CredentialCache {
    /// An empty cache with a fresh random key.
    fn default() -> Self {
        let key: [u8; 32] = rand::random();
        Self {
            mac: HmacSha256::new_from_slice(&key).expect("any key length"),
            entries: papaya::HashMap::new(),
        }
    }
}

impl CredentialCache {
    /// The key of (user, password) checked against the stored hash whose
    /// tag is `stored`. The MAC covers user and password only, one SHA-256
    /// block for common lengths: this runs on every cached login.
    pub fn fingerprint(&self, user: &str, password: &[u8], stored: u64) -> Fingerprint {
        let mut mac = self.mac.clone();
        // Length-prefix the user so ("ab","c") and ("a","bc") differ.
        mac.update(&(user.len() as u32).to_be_bytes());
        mac.update(user.as_bytes());
        mac.update(password);
        let full = mac.finalize().into_bytes();
        let mut out = [0; 16];
        out.copy_from_slice(&full[..16]);
        Fingerprint { mac: out, stored }
    }

    pub fn contains(&self, fp: &Fingerprint) -> bool {
        self.contains_at(fp, Instant::now())
    }

    /// Remembers `fp` for `ttl`.
    pub fn insert(&self, fp: Fingerprint, ttl: Duration) {
        self.insert_at(fp, Instant::now() + ttl);
    }

    fn contains_at(&self, fp: &Fingerprint, now: Instant) -> bool {
        let map = self.entries.pin();
        match map.get(fp) {
            Some(expires) if *expires > now => true,
            Some(_) => {
                map.remove(fp);
                false
            }
            None => false,
        }
    }

    fn insert_at(&self, fp: Fingerprint, expires: Instant) {
        let map = self.entries.pin();
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(fp, expires);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_only_the_exact_pair_and_hash() {
        let c = CredentialCache::default();
        let (h1, h2) = (1, 2);
        let fp = c.fingerprint("alice", b"pw", h1);
        assert!(!c.contains(&fp));
        c.insert(fp, Duration::from_secs(60));
        assert!(c.contains(&c.fingerprint("alice", b"pw", h1)));
        assert!(!c.contains(&c.fingerprint("alice", b"pw2", h1)));
        assert!(!c.contains(&c.fingerprint("alic", b"epw", h1)));
        // The same password under a new hash (the user re-keyed) is new.
        assert!(!c.contains(&c.fingerprint("alice", b"pw", h2)));
    }

    #[test]
    fn expired_entries_do_not_count() {
        let c = CredentialCache::default();
        let fp = c.fingerprint("a", b"b", 1);
        let t0 = Instant::now();
        c.insert_at(fp, t0 + Duration::from_secs(60));
        assert!(c.contains_at(&fp, t0 + Duration::from_secs(59)));
        assert!(!c.contains_at(&fp, t0 + Duration::from_secs(60)));
        // The expired entry was removed on sight.
        assert!(!c.contains_at(&fp, t0));
    }

    #[test]
    fn each_process_keys_its_own() {
        let (a, b) = (CredentialCache::default(), CredentialCache::default());
        assert_ne!(a.fingerprint("u", b"p", 1), b.fingerprint("u", b"p", 1));
    }
}

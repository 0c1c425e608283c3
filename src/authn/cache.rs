//! The verified-credential cache: remembers that (user, password) passed
//! argon2 recently, keyed by an HMAC under a per-generation random key so the
//! cache never holds anything a reader could turn back into a password.

use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Upper bound on entries; past it the cache is emptied rather than grown,
/// so a flood of distinct valid logins cannot exhaust memory.
const MAX_ENTRIES: usize = 200_000;

pub type Fingerprint = [u8; 16];

pub struct CredentialCache {
    mac: Option<HmacSha256>,
    ttl: Duration,
    entries: papaya::HashMap<Fingerprint, Instant>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("ttl", &self.ttl)
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl CredentialCache {
    /// A cache with a fresh random key; `ttl` of zero disables it.
    pub fn new(ttl: Duration) -> Self {
        let key: [u8; 32] = rand::random();
        Self {
            mac: (!ttl.is_zero())
                .then(|| HmacSha256::new_from_slice(&key).expect("any key length")),
            ttl,
            entries: papaya::HashMap::new(),
        }
    }

    pub fn fingerprint(&self, user: &str, password: &[u8]) -> Fingerprint {
        let Some(mac) = &self.mac else {
            return [0; 16];
        };
        let mut mac = mac.clone();
        // Length-prefix the user so ("ab","c") and ("a","bc") differ.
        mac.update(&(user.len() as u32).to_be_bytes());
        mac.update(user.as_bytes());
        mac.update(password);
        let full = mac.finalize().into_bytes();
        let mut out = [0; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    pub fn contains(&self, fp: &Fingerprint) -> bool {
        self.contains_at(fp, Instant::now())
    }

    pub fn insert(&self, fp: Fingerprint) {
        self.insert_at(fp, Instant::now());
    }

    fn contains_at(&self, fp: &Fingerprint, now: Instant) -> bool {
        if self.mac.is_none() {
            return false;
        }
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

    fn insert_at(&self, fp: Fingerprint, now: Instant) {
        if self.mac.is_none() {
            return;
        }
        let map = self.entries.pin();
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(fp, now + self.ttl);
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
    fn remembers_only_the_exact_pair() {
        let c = CredentialCache::new(Duration::from_secs(60));
        let fp = c.fingerprint("alice", b"pw");
        assert!(!c.contains(&fp));
        c.insert(fp);
        assert!(c.contains(&c.fingerprint("alice", b"pw")));
        assert!(!c.contains(&c.fingerprint("alice", b"pw2")));
        assert!(!c.contains(&c.fingerprint("alic", b"epw")));
    }

    #[test]
    fn expired_entries_do_not_count() {
        let c = CredentialCache::new(Duration::from_secs(60));
        let fp = c.fingerprint("a", b"b");
        let t0 = Instant::now();
        c.insert_at(fp, t0);
        assert!(c.contains_at(&fp, t0 + Duration::from_secs(59)));
        assert!(!c.contains_at(&fp, t0 + Duration::from_secs(60)));
        // The expired entry was removed on sight.
        assert!(!c.contains_at(&fp, t0));
    }

    #[test]
    fn zero_ttl_disables() {
        let c = CredentialCache::new(Duration::ZERO);
        let fp = c.fingerprint("a", b"b");
        c.insert(fp);
        assert!(!c.contains(&fp));
    }

    #[test]
    fn a_new_generation_forgets() {
        let a = CredentialCache::new(Duration::from_secs(60));
        let b = CredentialCache::new(Duration::from_secs(60));
        assert_ne!(a.fingerprint("u", b"p"), b.fingerprint("u", b"p"));
    }
}

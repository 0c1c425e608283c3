//! Failed-login throttling: after `failures` wrong passwords for one user
//! name (and, on the web, from one source address), further checks of that
//! name are refused without running argon2 for a lockout that doubles with
//! each failure, up to a bound. A right password resets the name. The
//! verified-credential cache still answers for a credential it holds, so a
//! guesser cannot lock the real person out of a login the server knows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Entries kept at most; past it, ones not locked are forgotten first.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures allowed before the lockouts start; 0 turns throttling off.
    pub failures: u32,
    /// The first lockout; each further failure doubles it.
    pub base: Duration,
    /// The longest lockout.
    pub max: Duration,
    /// Failures allowed from one source address (web logins) before it is
    /// locked out the same way, whatever names it tries.
    pub source_failures: u32,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            failures: 5,
            base: Duration::from_secs(2),
            max: Duration::from_secs(300),
            source_failures: 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    User(Box<str>),
    Source(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    until: Option<Instant>,
    last: Instant,
}

/// One lockout as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lockout {
    pub key: Key,
    pub failures: u32,
    /// Time left.
    pub remaining: Duration,
}

#[derive(Debug, Default)]
pub struct Throttle {
    entries: Mutex<HashMap<Key, Entry>>,
}

impl Throttle {
    /// Whether `key` is locked out at `now`.
    pub fn locked(&self, key: &Key, now: Instant) -> bool {
        let e = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        e.get(key).and_then(|e| e.until).is_some_and(|u| u > now)
    }

    /// Counts a failure; past `allowed` failures the key is locked out.
    pub fn failed(&self, key: Key, allowed: u32, s: &ThrottleSettings, now: Instant) {
        if allowed == 0 {
            return;
        }
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
            map.retain(|_, e| e.until.is_some_and(|u| u > now));
            if map.len() >= MAX_ENTRIES {
                return;
            }
        }
        let e = map.entry(key).or_insert(Entry {
            failures: 0,
            until: None,
            last: now,
        });
        // A name quiet for longer than the longest lockout starts afresh.
        if now.duration_since(e.last) > s.max {
            e.failures = 0;
            e.until = None;
        }
        e.failures = e.failures.saturating_add(1);
        e.last = now;
        if e.failures >= allowed {
            let doublings = (e.failures - allowed).min(30);
            let lock = s.base.saturating_mul(1 << doublings).min(s.max);
            e.until = Some(now + lock);
        }
    }

    /// A right password: the name starts afresh.
    pub fn succeeded(&self, key: &Key) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// Keys locked out now, longest remaining first.
    pub fn lockouts(&self, now: Instant) -> Vec<Lockout> {
        let map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut v: Vec<Lockout> = map
            .iter()
            .filter_map(|(k, e)| {
                let u = e.until.filter(|u| *u > now)?;
                Some(Lockout {
                    key: k.clone(),
                    failures: e.failures,
                    remaining: u - now,
                })
            })
            .collect();
        v.sort_by_key(|l| std::cmp::Reverse(l.remaining));
        v
    }

    /// Ends a lockout (and forgets the failures); whether there was one.
    pub fn clear(&self, key: &Key) -> bool {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key)
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockouts_start_after_the_allowed_failures_and_double() {
        let t = Throttle::default();
        let s = ThrottleSettings::default();
        let bob = Key::User("bob".into());
        let t0 = Instant::now();
        for i in 0..4 {
            t.failed(bob.clone(), s.failures, &s, t0 + Duration::from_millis(i));
            assert!(!t.locked(&bob, t0 + Duration::from_millis(i)));
        }
        t.failed(bob.clone(), s.failures, &s, t0);
        assert!(t.locked(&bob, t0 + Duration::from_secs(1)));
        assert!(!t.locked(&bob, t0 + Duration::from_secs(2)));
        t.failed(bob.clone(), s.failures, &s, t0 + Duration::from_secs(3));
        assert!(t.locked(&bob, t0 + Duration::from_secs(6)));
        assert!(!t.locked(&bob, t0 + Duration::from_secs(7)));
        let l = t.lockouts(t0 + Duration::from_secs(3));
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].key.clone(), l[0].failures), (bob.clone(), 6));
        // Another name is untouched; a success or a clear starts afresh.
        assert!(!t.locked(&Key::User("alice".into()), t0));
        t.succeeded(&bob);
        assert!(!t.locked(&bob, t0 + Duration::from_secs(4)));
        for _ in 0..5 {
            t.failed(bob.clone(), s.failures, &s, t0);
        }
        assert!(t.clear(&bob));
        assert!(!t.locked(&bob, t0));
    }

    #[test]
    fn lockouts_are_bounded_and_zero_turns_them_off() {
        let t = Throttle::default();
        let s = ThrottleSettings::default();
        let k = Key::Source(IpAddr::from([192, 0, 2, 1]));
        let t0 = Instant::now();
        for _ in 0..100 {
            t.failed(k.clone(), 3, &s, t0);
        }
        assert!(t.locked(&k, t0 + s.max - Duration::from_secs(1)));
        assert!(!t.locked(&k, t0 + s.max));
        let off = Key::User("x".into());
        for _ in 0..100 {
            t.failed(off.clone(), 0, &s, t0);
        }
        assert!(!t.locked(&off, t0));
    }
}

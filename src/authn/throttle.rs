//! Failed-login throttling: after `failures` wrong passwords for one user
//! name (and, on the web, from one source address), further checks of that
//! name are refused without running argon2 for a lockout that doubles with
//! each failure, up to a bound. A right password resets the name. The
//! verified-credential cache still answers for a credential it holds, so a
//! guesser cannot lock the real person out of a login the server knows.
//! Checks still running count against the allowance too (distinct
//! passwords only), so guesses sent all at once cannot outrun it.

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

#[derive(Debug, Clone)]
struct Entry {
    failures: u32,
    until: Option<Instant>,
    last: Instant,
    /// Distinct attempts being checked now, with how many checks share
    /// each. At most the allowance, so a short list.
    running: Vec<(Attempt, u32)>,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Self {
            failures: 0,
            until: None,
            last: now,
            running: Vec::new(),
        }
    }
}

/// Names one attempt (a keyed MAC of name and password), so identical
/// checks in flight count once.
pub(super) type Attempt = [u8; 16];

/// A check admitted by [`Throttle::begin`]; give its outcome to
/// [`Running::finish`]. Dropped unfinished (the request went away), it
/// counts as neither.
#[must_use]
pub struct Running<'t> {
    throttle: &'t Throttle,
    key: Option<Key>,
    attempt: Attempt,
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
    /// Admits a check of `key`, or None when it is locked out or when the
    /// failures so far plus the distinct checks already running would reach
    /// the allowance. `allowed == 0`: no throttling.
    pub fn begin(
        &self,
        key: Key,
        attempt: Attempt,
        allowed: u32,
        s: &ThrottleSettings,
        now: Instant,
    ) -> Option<Running<'_>> {
        if allowed == 0 {
            return Some(Running {
                throttle: self,
                key: None,
                attempt,
            });
        }
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
            map.retain(|_, e| e.until.is_some_and(|u| u > now) || !e.running.is_empty());
            if map.len() >= MAX_ENTRIES {
                // Full of live lockouts: admit untracked rather than refuse.
                return Some(Running {
                    throttle: self,
                    key: None,
                    attempt,
                });
            }
        }
        let e = map.entry(key.clone()).or_insert_with(|| Entry::new(now));
        if e.until.is_some_and(|u| u > now) {
            return None;
        }
        if e.running.is_empty() && now.duration_since(e.last) > s.max {
            e.failures = 0;
            e.until = None;
        }
        if let Some(r) = e.running.iter_mut().find(|(a, _)| *a == attempt) {
            r.1 += 1;
        } else if e.failures.saturating_add(e.running.len() as u32) >= allowed {
            return None;
        } else {
            e.running.push((attempt, 1));
        }
        Some(Running {
            throttle: self,
            key: Some(key),
            attempt,
        })
    }

    fn end(&self, key: &Key, attempt: &Attempt) {
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(e) = map.get_mut(key) else { return };
        if let Some(i) = e.running.iter().position(|(a, _)| a == attempt) {
            e.running[i].1 -= 1;
            if e.running[i].1 == 0 {
                e.running.swap_remove(i);
            }
        }
        if e.running.is_empty() && e.failures == 0 && e.until.is_none() {
            map.remove(key);
        }
    }

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
            map.retain(|_, e| e.until.is_some_and(|u| u > now) || !e.running.is_empty());
            if map.len() >= MAX_ENTRIES {
                return;
            }
        }
        let e = map.entry(key).or_insert_with(|| Entry::new(now));
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

    /// A right password: the name starts afresh (checks still running
    /// keep their places).
    pub fn succeeded(&self, key: &Key) {
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = map.get_mut(key) {
            e.failures = 0;
            e.until = None;
            if e.running.is_empty() {
                map.remove(key);
            }
        }
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

impl Running<'_> {
    /// The check's outcome: a failure counts toward the lockout, a success
    /// starts the name afresh.
    pub fn finish(mut self, ok: bool, allowed: u32, s: &ThrottleSettings, now: Instant) {
        let Some(key) = self.key.take() else { return };
        self.throttle.end(&key, &self.attempt);
        if ok {
            self.throttle.succeeded(&key);
        } else {
            self.throttle.failed(key, allowed, s, now);
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.throttle.end(&key, &self.attempt);
        }
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
    fn checks_running_at_once_count_against_the_allowance() {
        let t = Throttle::default();
        let s = ThrottleSettings::default();
        let bob = Key::User("bob".into());
        let t0 = Instant::now();
        let guesses: Vec<_> = (0..5u8)
            .map(|i| {
                t.begin(bob.clone(), [i; 16], 5, &s, t0)
                    .expect("within the allowance")
            })
            .collect();
        // A sixth distinct guess while five run: refused at once...
        assert!(t.begin(bob.clone(), [9; 16], 5, &s, t0).is_none());
        // ...but the same credential again shares its running check.
        let same = t.begin(bob.clone(), [0; 16], 5, &s, t0).expect("shared");
        drop(same);
        for g in guesses {
            g.finish(false, 5, &s, t0);
        }
        assert!(t.locked(&bob, t0 + Duration::from_secs(1)));
        // A check given up unfinished gives its place back.
        let alice = Key::User("alice".into());
        for _ in 0..10 {
            drop(t.begin(alice.clone(), [1; 16], 1, &s, t0).unwrap());
        }
        let ok = t.begin(alice.clone(), [2; 16], 1, &s, t0).unwrap();
        ok.finish(true, 1, &s, t0);
        assert!(t.lockouts(t0).iter().all(|l| l.key != alice));
        // Off: nothing is tracked or refused.
        let carol = Key::User("carol".into());
        let held: Vec<_> = (0..50u8)
            .map(|i| t.begin(carol.clone(), [i; 16], 0, &s, t0).unwrap())
            .collect();
        drop(held);
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

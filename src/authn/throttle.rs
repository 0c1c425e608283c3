//! Failed-login throttling: after `failures` wrong passwords for one user
//! name (and, on the web, from one source address), further checks of that
//! name are refused without running argon2 for a lockout that doubles with
//! each failure, up to a bound. A right password resets the name. The
//! verified-credential cache still answers for a credential it holds, so a
//! guesser cannot lock the real person out of a login the server knows.
//! Checks still running count against the allowance too (distinct
//! passwords only), so guesses sent all at once cannot outrun it.
//!
//! With a shared store the decision stays here, in memory, so no login
//! waits on a database: changes are also queued for the other nodes
//! ([`Throttle::take_changes`]) and their counts folded back in
//! ([`Throttle::fold`]) by the store's sync task.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Entries kept at most; past it, ones not locked are forgotten first.
const MAX_ENTRIES: usize = 100_000;
/// Keys whose changes wait for the other nodes at most; past it, changes
/// of new keys are dropped (and counted) until the store takes some.
const MAX_OUTBOX: usize = 10_000;

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
    /// Taken after `entries` when both are held.
    outbox: Mutex<Outbox>,
}

/// What happened to one key since it was last handed to the other nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Change {
    /// The key started afresh (a right password, a clear): the shared count
    /// goes to zero before `failures` are added.
    pub reset: bool,
    /// Failures since (the reset, if any).
    pub failures: u32,
}

impl Change {
    /// This change followed by `later`.
    fn then(self, later: Self) -> Self {
        if later.reset {
            later
        } else {
            Self {
                reset: self.reset,
                failures: self.failures.saturating_add(later.failures),
            }
        }
    }
}

#[derive(Debug, Default)]
struct Outbox {
    /// Off (nothing queued) unless a shared store asked for changes.
    on: bool,
    changes: HashMap<Key, Change>,
    dropped: u64,
}

impl Outbox {
    fn add(&mut self, key: &Key, change: Change) {
        if !self.on {
            return;
        }
        if let Some(c) = self.changes.get_mut(key) {
            *c = c.then(change);
        } else if self.changes.len() >= MAX_OUTBOX {
            self.dropped += 1;
        } else {
            self.changes.insert(key.clone(), change);
        }
    }
}

const FAILED: Change = Change {
    reset: false,
    failures: 1,
};
const RESET: Change = Change {
    reset: true,
    failures: 0,
};

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
        self.outbox().add(&key, FAILED);
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
        {
            // Only a name with failures to forget is published: a success
            // of every login would be a write of every login.
            let mut out = self.outbox();
            let had = map
                .get(key)
                .is_some_and(|e| e.failures > 0 || e.until.is_some());
            if out.on && (had || out.changes.contains_key(key)) {
                out.add(key, RESET);
            }
        }
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
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        self.outbox().add(key, RESET);
        map.remove(key).is_some()
    }

    fn outbox(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// From now on, queues every change for [`take_changes`](Self::take_changes).
    pub fn share_changes(&self) {
        self.outbox().on = true;
    }

    /// Up to `max` queued changes, and how many were dropped (outbox full)
    /// since the last call.
    pub fn take_changes(&self, max: usize) -> (Vec<(Key, Change)>, u64) {
        let mut out = self.outbox();
        let keys: Vec<Key> = out.changes.keys().take(max).cloned().collect();
        let taken = keys
            .into_iter()
            .filter_map(|k| out.changes.remove_entry(&k))
            .collect();
        (taken, std::mem::take(&mut out.dropped))
    }

    /// Puts back changes that could not be published, before whatever was
    /// queued for their keys meanwhile.
    pub fn restore_changes(&self, changes: Vec<(Key, Change)>) {
        let mut out = self.outbox();
        for (k, older) in changes {
            let room = out.changes.len() < MAX_OUTBOX;
            match out.changes.get_mut(&k) {
                Some(newer) => *newer = older.then(*newer),
                None if room => {
                    out.changes.insert(k, older);
                }
                None => out.dropped += 1,
            }
        }
    }

    /// Takes the cluster's counts: for each key, the failures every node
    /// published since its last reset, and how long ago the last one was.
    /// What this node has not published yet is added on top; a key with a
    /// reset not yet published keeps its local state. Returns the keys that
    /// changed here.
    pub fn fold(
        &self,
        shared: &[(Key, u32, Duration)],
        s: &ThrottleSettings,
        now: Instant,
    ) -> usize {
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let out = self.outbox();
        let mut changed = 0;
        for (key, count, age) in shared {
            let allowed = match key {
                Key::User(_) => s.failures,
                Key::Source(_) => s.source_failures,
            };
            if allowed == 0 {
                continue;
            }
            let unpublished = out.changes.get(key).copied().unwrap_or_default();
            if unpublished.reset {
                continue;
            }
            let failures = count.saturating_add(unpublished.failures);
            let last = now.checked_sub(*age).unwrap_or(now);
            let until = (failures >= allowed)
                .then(|| {
                    let doublings = (failures - allowed).min(30);
                    last + s.base.saturating_mul(1 << doublings).min(s.max)
                })
                .filter(|u| *u > now);
            let room = map.len() < MAX_ENTRIES;
            match map.get_mut(key) {
                Some(e) => {
                    // Fewer failures than here: a reset elsewhere, so the
                    // cluster's lockout replaces ours; else the longer holds.
                    let until = if failures < e.failures {
                        until
                    } else {
                        until.max(e.until.filter(|u| *u > now))
                    };
                    if (e.failures, e.until) == (failures, until) {
                        continue;
                    }
                    e.failures = failures;
                    e.until = until;
                    e.last = e.last.max(last);
                    if failures == 0 && e.running.is_empty() {
                        map.remove(key);
                    }
                }
                None if failures == 0 || !room => continue,
                None => {
                    let mut e = Entry::new(last);
                    e.failures = failures;
                    e.until = until;
                    map.insert(key.clone(), e);
                }
            }
            changed += 1;
        }
        changed
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

    #[test]
    fn changes_are_queued_only_when_shared_and_merge_in_order() {
        let t = Throttle::default();
        let s = ThrottleSettings::default();
        let bob = Key::User("bob".into());
        let t0 = Instant::now();
        t.failed(bob.clone(), 5, &s, t0);
        assert!(
            t.take_changes(10).0.is_empty(),
            "not shared: nothing queued"
        );
        t.share_changes();
        t.failed(bob.clone(), 5, &s, t0);
        t.failed(bob.clone(), 5, &s, t0);
        let (taken, dropped) = t.take_changes(10);
        assert_eq!(dropped, 0);
        assert_eq!(
            taken,
            vec![(
                bob.clone(),
                Change {
                    reset: false,
                    failures: 2
                }
            )]
        );
        // A success after failures: a reset; failures after it add to it.
        t.succeeded(&bob);
        t.failed(bob.clone(), 5, &s, t0);
        let (taken, _) = t.take_changes(10);
        assert_eq!(
            taken,
            vec![(
                bob.clone(),
                Change {
                    reset: true,
                    failures: 1
                }
            )]
        );
        // Not published: put back before what came meanwhile.
        t.failed(bob.clone(), 5, &s, t0);
        t.restore_changes(taken);
        assert_eq!(
            t.take_changes(10).0,
            vec![(
                bob.clone(),
                Change {
                    reset: true,
                    failures: 2
                }
            )]
        );
        // A success of a name without failures publishes nothing.
        t.succeeded(&Key::User("carol".into()));
        assert!(t.take_changes(10).0.is_empty());
        // An administrator's clear always does.
        t.clear(&Key::User("dave".into()));
        assert_eq!(t.take_changes(10).0[0].1, RESET);
    }

    #[test]
    fn the_clusters_counts_lock_out_and_a_reset_elsewhere_unlocks() {
        let t = Throttle::default();
        t.share_changes();
        let s = ThrottleSettings {
            base: Duration::from_secs(60),
            ..ThrottleSettings::default()
        };
        let bob = Key::User("bob".into());
        let t0 = Instant::now();
        // Two failures here, published; the cluster has five in all.
        t.failed(bob.clone(), 5, &s, t0);
        t.failed(bob.clone(), 5, &s, t0);
        let _ = t.take_changes(10);
        assert!(!t.locked(&bob, t0));
        let age = Duration::from_millis(500);
        assert_eq!(t.fold(&[(bob.clone(), 5, age)], &s, t0), 1);
        assert!(t.locked(&bob, t0 + Duration::from_secs(30)));
        assert!(!t.locked(&bob, t0 + Duration::from_secs(60)));
        assert_eq!(t.lockouts(t0)[0].failures, 5);
        // A name this node never saw is locked too.
        let carol = Key::User("carol".into());
        t.fold(&[(carol.clone(), 7, age)], &s, t0);
        assert!(t.locked(&carol, t0));
        // Another node cleared bob: the count went to zero.
        t.fold(&[(bob.clone(), 0, Duration::ZERO)], &s, t0);
        assert!(!t.locked(&bob, t0));
        assert!(t.lockouts(t0).iter().all(|l| l.key != bob));
        // Failures here not yet published count on top of the cluster's.
        t.failed(bob.clone(), 5, &s, t0);
        t.fold(&[(bob.clone(), 4, age)], &s, t0);
        assert!(t.locked(&bob, t0));
        // A reset here not yet published wins over an older count.
        let dave = Key::User("dave".into());
        t.clear(&dave);
        t.fold(&[(dave.clone(), 9, age)], &s, t0);
        assert!(!t.locked(&dave, t0));
        // Off for sources: nothing folded.
        let off = ThrottleSettings {
            source_failures: 0,
            ..s
        };
        let src = Key::Source(IpAddr::from([192, 0, 2, 9]));
        assert_eq!(t.fold(&[(src.clone(), 50, age)], &off, t0), 0);
        assert!(!t.locked(&src, t0));
    }
}

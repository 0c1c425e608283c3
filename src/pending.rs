//! Started logins waiting for the browser to come back: short-lived entries
//! under a random id, bounded per source address and in all, so a flood of
//! unauthenticated starts from one address displaces only its own entries.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Entries one address may hold; a browser needs one per login in flight.
pub const PER_SOURCE: usize = 32;
/// Entries in all.
pub const MAX: usize = 10_000;

struct Entry<V> {
    value: V,
    source: IpAddr,
    at: Instant,
}

struct Inner<V> {
    map: HashMap<String, Entry<V>>,
    by_source: HashMap<IpAddr, usize>,
}

pub struct Pending<V> {
    inner: Mutex<Inner<V>>,
    per_source: usize,
    max: usize,
}

impl<V> Default for Pending<V> {
    fn default() -> Self {
        Self::new(PER_SOURCE, MAX)
    }
}

impl<V> Pending<V> {
    pub fn new(per_source: usize, max: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                by_source: HashMap::new(),
            }),
            per_source: per_source.max(1),
            max: max.max(1),
        }
    }

    /// Adds an entry. At its address's bound the address's oldest entry
    /// gives way; at the global bound, expired ones (older than `ttl`) go,
    /// then the oldest of all.
    pub fn insert(&self, id: String, source: IpAddr, value: V, ttl: Duration) {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if g.by_source.get(&source).copied().unwrap_or(0) >= self.per_source {
            let oldest = g
                .map
                .iter()
                .filter(|(_, e)| e.source == source)
                .min_by_key(|(_, e)| e.at)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                g.remove(&k);
            }
        } else if g.map.len() >= self.max {
            let expired: Vec<String> = g
                .map
                .iter()
                .filter(|(_, e)| now.duration_since(e.at) >= ttl)
                .map(|(k, _)| k.clone())
                .collect();
            for k in expired {
                g.remove(&k);
            }
            if g.map.len() >= self.max {
                let oldest = g
                    .map
                    .iter()
                    .min_by_key(|(_, e)| e.at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    g.remove(&k);
                }
            }
        }
        if let Some(old) = g.map.insert(
            id,
            Entry {
                value,
                source,
                at: now,
            },
        ) {
            // Ids are random; a repeat replaces its own entry.
            g.forget(old.source);
        }
        *g.by_source.entry(source).or_insert(0) += 1;
    }

    /// Takes the entry out (so it cannot be used twice), with when it was
    /// added.
    pub fn take(&self, id: &str) -> Option<(V, Instant)> {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.remove(id).map(|e| (e.value, e.at))
    }

    /// Looks at the entry without taking it: `f` of its value and when it
    /// was added.
    pub fn get<R>(&self, id: &str, f: impl FnOnce(&V, Instant) -> R) -> Option<R> {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.map.get(id).map(|e| f(&e.value, e.at))
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<V> Inner<V> {
    fn remove(&mut self, id: &str) -> Option<Entry<V>> {
        let e = self.map.remove(id)?;
        self.forget(e.source);
        Some(e)
    }

    fn forget(&mut self, source: IpAddr) {
        if let Some(n) = self.by_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.by_source.remove(&source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(600);

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn a_flood_from_one_address_displaces_only_its_own_entries() {
        let p = Pending::new(4, 100);
        p.insert("victim".into(), ip(1), 1, TTL);
        for i in 0..10_000 {
            p.insert(format!("flood{i}"), ip(66), 0, TTL);
        }
        assert_eq!(p.len(), 5);
        assert_eq!(p.take("victim").map(|(v, _)| v), Some(1));
        // The flooder keeps its newest four.
        assert!(p.take("flood9999").is_some());
        assert!(p.take("flood9996").is_some());
        assert!(p.take("flood9995").is_none());
    }

    #[test]
    fn at_the_global_bound_the_oldest_goes() {
        let p = Pending::new(4, 3);
        p.insert("a".into(), ip(1), 1, TTL);
        p.insert("b".into(), ip(2), 2, TTL);
        p.insert("c".into(), ip(3), 3, TTL);
        p.insert("d".into(), ip(4), 4, TTL);
        assert_eq!(p.len(), 3);
        assert!(p.take("a").is_none());
        assert!(p.take("d").is_some());
    }

    #[test]
    fn an_entry_is_taken_once_and_its_slot_given_back() {
        let p = Pending::new(1, 10);
        p.insert("a".into(), ip(1), 1, TTL);
        assert!(p.take("a").is_some());
        assert!(p.take("a").is_none());
        p.insert("b".into(), ip(1), 2, TTL);
        p.insert("c".into(), ip(2), 3, TTL);
        assert_eq!(p.len(), 2);
        assert!(!p.is_empty());
    }
}

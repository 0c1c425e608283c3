//! Who holds a TACACS+ connection slot, for the global, per-client and
//! per-address limits. At a limit the connection idle longest (between
//! packets, no authentication conversation open) in the scope of that limit
//! is closed to admit the new one: a flood of idle connections cannot lock
//! real logins out. A connection in the middle of a packet or a login is
//! never taken; the per-packet deadline bounds how long it can hold on.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

/// The limits in force when a connection arrives.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub total: usize,
    pub per_client: usize,
    pub per_address: usize,
}

/// Which limit refused a connection (no idle connection to give way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Total,
    Client,
    Address,
}

/// What a connection's task shares with the registry.
#[derive(Debug)]
pub struct Slot {
    id: u64,
    /// Nanoseconds since the registry's epoch at which the connection went
    /// idle, plus one; 0 while a packet or a login is in progress.
    idle_since: AtomicU64,
    /// Cancelled when the slot is taken for a newer connection.
    evicted: CancellationToken,
    epoch: Instant,
}

impl Slot {
    /// Between packets with no login open: may be closed for a newcomer.
    pub fn idle(&self) {
        self.idle_at(Instant::now());
    }

    fn idle_at(&self, now: Instant) {
        let ns = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        self.idle_since.store(ns + 1, Ordering::Relaxed);
    }

    /// A packet or a login is in progress.
    pub fn busy(&self) {
        self.idle_since.store(0, Ordering::Relaxed);
    }

    pub fn evicted(&self) -> &CancellationToken {
        &self.evicted
    }
}

struct Live {
    slot: Arc<Slot>,
    client: Arc<str>,
    addr: IpAddr,
}

#[derive(Default)]
struct Inner {
    next: u64,
    live: HashMap<u64, Live>,
    per_client: HashMap<Arc<str>, usize>,
    per_addr: HashMap<IpAddr, usize>,
}

impl Inner {
    fn remove(&mut self, id: u64) -> Option<Live> {
        let l = self.live.remove(&id)?;
        if let Some(n) = self.per_client.get_mut(&l.client) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&l.client);
            }
        }
        if let Some(n) = self.per_addr.get_mut(&l.addr) {
            *n -= 1;
            if *n == 0 {
                self.per_addr.remove(&l.addr);
            }
        }
        Some(l)
    }
}

/// Every open connection; a lock taken when one opens or closes, and at a
/// limit, never per packet.
pub struct Slots {
    inner: Mutex<Inner>,
    epoch: Instant,
}

impl Default for Slots {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            epoch: Instant::now(),
        }
    }
}

impl Slots {
    /// A slot for a connection from `addr` of `client`, closing idle ones
    /// where a limit is reached; the count of connections closed for it
    /// comes back with the slot.
    pub fn admit(
        &self,
        client: &Arc<str>,
        addr: IpAddr,
        limits: Limits,
    ) -> Result<(Arc<Slot>, usize), Full> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut evicted = 0;
        loop {
            let full = if inner.per_addr.get(&addr).copied().unwrap_or(0) >= limits.per_address {
                Full::Address
            } else if inner.per_client.get(client).copied().unwrap_or(0) >= limits.per_client {
                Full::Client
            } else if inner.live.len() >= limits.total {
                Full::Total
            } else {
                break;
            };
            let in_scope = |l: &Live| match full {
                Full::Address => l.addr == addr,
                Full::Client => l.client == *client,
                Full::Total => true,
            };
            let oldest = inner
                .live
                .iter()
                .filter(|(_, l)| in_scope(l))
                .filter_map(|(id, l)| match l.slot.idle_since.load(Ordering::Relaxed) {
                    0 => None,
                    t => Some((t, *id)),
                })
                .min();
            let Some((_, id)) = oldest else {
                return Err(full);
            };
            if let Some(l) = inner.remove(id) {
                l.slot.evicted.cancel();
                evicted += 1;
            }
        }
        inner.next += 1;
        let id = inner.next;
        // Idle from the start: a connection that never sends is as much an
        // idle one as one that has gone quiet.
        let slot = Arc::new(Slot {
            id,
            idle_since: AtomicU64::new(self.epoch.elapsed().as_nanos() as u64 + 1),
            evicted: CancellationToken::new(),
            epoch: self.epoch,
        });
        inner.live.insert(
            id,
            Live {
                slot: slot.clone(),
                client: client.clone(),
                addr,
            },
        );
        *inner.per_client.entry(client.clone()).or_insert(0) += 1;
        *inner.per_addr.entry(addr).or_insert(0) += 1;
        Ok((slot, evicted))
    }

    /// Gives the slot back (nothing to do if it was taken by an eviction).
    pub fn release(&self, slot: &Slot) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.remove(slot.id);
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .live
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        total: 6,
        per_client: 4,
        per_address: 2,
    };

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    #[test]
    fn at_a_limit_the_longest_idle_in_its_scope_gives_way() {
        let s = Slots::default();
        let a: Arc<str> = "a".into();
        let (first, _) = s.admit(&a, ip(1), LIMITS).unwrap();
        let (second, _) = s.admit(&a, ip(1), LIMITS).unwrap();
        first.busy();
        second.busy();
        // Both busy (in a packet or a login): the third is refused.
        assert_eq!(s.admit(&a, ip(1), LIMITS).unwrap_err(), Full::Address);
        let now = Instant::now();
        second.idle_at(now);
        first.idle_at(now + std::time::Duration::from_millis(1));
        // second went idle first: it is the one closed.
        let (third, n) = s.admit(&a, ip(1), LIMITS).unwrap();
        assert_eq!(n, 1);
        assert!(second.evicted().is_cancelled());
        assert!(!first.evicted().is_cancelled());
        // Its task giving the slot back later changes nothing.
        s.release(&second);
        assert_eq!(s.len(), 2);
        // Another address of the same client has room until the client's limit.
        let (x, _) = s.admit(&a, ip(2), LIMITS).unwrap();
        let (y, _) = s.admit(&a, ip(2), LIMITS).unwrap();
        for c in [&first, &third, &x, &y] {
            c.busy();
        }
        assert_eq!(s.admit(&a, ip(3), LIMITS).unwrap_err(), Full::Client);
        x.idle();
        let (_z, n) = s.admit(&a, ip(3), LIMITS).unwrap();
        assert_eq!(n, 1);
        assert!(x.evicted().is_cancelled());
        assert!(!y.evicted().is_cancelled() && !third.evicted().is_cancelled());
        assert!(!first.evicted().is_cancelled());
    }

    #[test]
    fn the_total_limit_takes_from_any_client_and_release_frees() {
        let s = Slots::default();
        let mut held = Vec::new();
        for c in 0..3u8 {
            let name: Arc<str> = format!("c{c}").into();
            for n in 0..2 {
                held.push(s.admit(&name, ip(c * 10 + n), LIMITS).unwrap().0);
            }
        }
        for h in &held {
            h.busy();
        }
        let late: Arc<str> = "late".into();
        assert_eq!(s.admit(&late, ip(99), LIMITS).unwrap_err(), Full::Total);
        held[4].idle();
        let (_l, n) = s.admit(&late, ip(99), LIMITS).unwrap();
        assert_eq!(n, 1);
        assert!(held[4].evicted().is_cancelled());
        s.release(&held[0]);
        assert_eq!(s.len(), 5);
        assert!(s.admit(&late, ip(98), LIMITS).is_ok());
    }
}

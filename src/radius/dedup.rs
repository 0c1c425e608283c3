//! RFC 5080 §2.2.2 duplicate detection: a retransmission (same source
//! address and port, Identifier and Request Authenticator) inside the window
//! gets the reply already sent and is not processed again. One table per
//! worker, fixed size, replies stored inline: no locks, no allocation.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Replies up to this size are cached; larger ones (many Proxy-State
/// attributes) are rare and simply recomputed.
const MAX_CACHED_REPLY: usize = 1024;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DedupKey {
    pub src: SocketAddr,
    pub id: u8,
    pub authenticator: [u8; 16],
}

impl DedupKey {
    fn hash(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        // A fixed hash is fine: a collision only evicts an entry, it never
        // answers the wrong request (the whole key is compared).
        let mut h = FixedHasher::default();
        self.src.hash(&mut h);
        h.write_u8(self.id);
        h.write(&self.authenticator);
        h.finish()
    }
}

/// FNV-1a: tiny, deterministic, good enough to spread slots.
#[derive(Default)]
struct FixedHasher(u64);

impl std::hash::Hasher for FixedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Empty,
    /// Being worked on (argon2 in flight): a retransmission is dropped.
    InProgress,
    Done,
}

struct Slot {
    key: DedupKey,
    at: Instant,
    state: State,
    len: u16,
    reply: [u8; MAX_CACHED_REPLY],
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen<'a> {
    /// First time (or the window passed): process it.
    New,
    /// A retransmission of a request still being processed: drop it.
    InProgress,
    /// A retransmission: send these bytes again.
    Replay(&'a [u8]),
}

pub struct DedupTable {
    slots: Box<[Slot]>,
    mask: usize,
    window: Duration,
}

impl DedupTable {
    /// `capacity` is rounded up to a power of two.
    pub fn new(capacity: usize, window: Duration) -> Self {
        let n = capacity.next_power_of_two().max(2);
        let now = Instant::now();
        let empty_key = DedupKey {
            src: SocketAddr::from(([0, 0, 0, 0], 0)),
            id: 0,
            authenticator: [0; 16],
        };
        let slots = (0..n)
            .map(|_| Slot {
                key: empty_key,
                at: now,
                state: State::Empty,
                len: 0,
                reply: [0; MAX_CACHED_REPLY],
            })
            .collect();
        Self {
            slots,
            mask: n - 1,
            window,
        }
    }

    fn slot(&self, key: &DedupKey) -> usize {
        (key.hash() as usize) & self.mask
    }

    /// Looks a request up and, when new, marks it in progress.
    pub fn check(&mut self, key: &DedupKey, now: Instant) -> Seen<'_> {
        if self.window.is_zero() {
            return Seen::New;
        }
        let i = self.slot(key);
        let window = self.window;
        let s = &mut self.slots[i];
        let live = s.state != State::Empty && now.saturating_duration_since(s.at) < window;
        if live && s.key == *key {
            return match s.state {
                State::Done => Seen::Replay(&s.reply[..usize::from(s.len)]),
                _ => Seen::InProgress,
            };
        }
        s.key = *key;
        s.at = now;
        s.state = State::InProgress;
        s.len = 0;
        Seen::New
    }

    /// Records the reply sent for `key` at `now`. The window restarts
    /// there: a retransmission is a reply to the *reply* (or its loss), so a
    /// request that took longer than the window (argon2 on a busy machine)
    /// still has its reply replayed, not the request processed twice.
    pub fn complete(&mut self, key: &DedupKey, reply: &[u8], now: Instant) {
        if self.window.is_zero() {
            return;
        }
        let i = self.slot(key);
        let s = &mut self.slots[i];
        if s.key != *key {
            return; // evicted meanwhile
        }
        if reply.len() > MAX_CACHED_REPLY {
            s.state = State::Empty;
            return;
        }
        s.reply[..reply.len()].copy_from_slice(reply);
        s.len = reply.len() as u16;
        s.state = State::Done;
        s.at = now;
    }

    /// Forgets `key` (the request was dropped, so a retransmission should
    /// be processed afresh).
    pub fn forget(&mut self, key: &DedupKey) {
        let i = self.slot(key);
        if self.slots[i].key == *key {
            self.slots[i].state = State::Empty;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u8) -> DedupKey {
        DedupKey {
            src: "127.0.0.1:5000".parse().unwrap(),
            id,
            authenticator: [id; 16],
        }
    }

    #[test]
    fn retransmission_gets_the_same_reply_within_the_window() {
        let mut t = DedupTable::new(64, Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(t.check(&key(1), t0), Seen::New);
        assert_eq!(t.check(&key(1), t0), Seen::InProgress);
        t.complete(&key(1), b"reply", t0);
        assert_eq!(
            t.check(&key(1), t0 + Duration::from_secs(4)),
            Seen::Replay(b"reply")
        );
        assert_eq!(t.check(&key(1), t0 + Duration::from_secs(6)), Seen::New);
    }

    #[test]
    fn the_window_runs_from_the_reply_not_the_request() {
        let mut t = DedupTable::new(64, Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(t.check(&key(3), t0), Seen::New);
        // The answer took longer than the whole window.
        t.complete(&key(3), b"late", t0 + Duration::from_secs(6));
        assert_eq!(
            t.check(&key(3), t0 + Duration::from_secs(7)),
            Seen::Replay(b"late")
        );
        assert_eq!(t.check(&key(3), t0 + Duration::from_secs(12)), Seen::New);
    }

    #[test]
    fn a_different_authenticator_is_a_new_request() {
        let mut t = DedupTable::new(64, Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(t.check(&key(1), t0), Seen::New);
        t.complete(&key(1), b"r", t0);
        let mut k = key(1);
        k.authenticator[0] ^= 1;
        assert_eq!(t.check(&k, t0), Seen::New);
    }

    #[test]
    fn forgotten_requests_are_processed_again() {
        let mut t = DedupTable::new(64, Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(t.check(&key(2), t0), Seen::New);
        t.forget(&key(2));
        assert_eq!(t.check(&key(2), t0), Seen::New);
    }
}

//! Time and randomness as the services draw on them, passed in rather than
//! read from the system, so a service test can fix both (as quinn-proto
//! takes `now` from its caller).

use std::fmt::Debug;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock (record times).
pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> SystemTime;
}

/// Random numbers where the protocol wants them (MPPE key salts).
pub trait Random: Send + Sync + Debug {
    fn u16(&self) -> u16;
}

/// The system's clock and random source: what the server runs on.
#[derive(Debug, Default, Clone, Copy)]
pub struct System;

impl Clock for System {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

impl Random for System {
    fn u16(&self) -> u16 {
        rand::random()
    }
}

/// A stopped clock and a counting "random" source, for tests.
#[derive(Debug)]
pub struct Fixed {
    pub now: SystemTime,
    next: AtomicU16,
}

impl Fixed {
    /// Time stands at `now`; draws count up from `first`.
    pub fn new(now: SystemTime, first: u16) -> Self {
        Self {
            now,
            next: AtomicU16::new(first),
        }
    }
}

impl Clock for Fixed {
    fn now(&self) -> SystemTime {
        self.now
    }
}

impl Random for Fixed {
    fn u16(&self) -> u16 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

/// Microseconds since the Unix epoch; negative before it. How stored
/// times are written (accounting records, the web login state).
pub fn unix_micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |m| -m),
    }
}

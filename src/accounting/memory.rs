//! An accounting sink in memory: records are "durable" the moment they are
//! submitted. For service tests, and for anything that wants the records
//! back without a database.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use super::{AccountingSink, DedupKey, Durable, Pending, Record, StoreError};

#[derive(Debug, Default)]
pub struct MemorySink {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    records: Vec<Record>,
    keys: HashSet<DedupKey>,
    /// While set, submissions fail as a full queue would.
    full: bool,
}

impl MemorySink {
    /// Every record stored so far, oldest first (duplicates are not stored).
    pub fn records(&self) -> Vec<Record> {
        self.lock().records.clone()
    }

    /// Makes the sink refuse (`true`) or accept (`false`) what comes next,
    /// as a store whose queue is full.
    pub fn set_full(&self, full: bool) {
        self.lock().full = full;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AccountingSink for MemorySink {
    fn submit(&self, rec: Record) -> Result<Pending, StoreError> {
        let mut inner = self.lock();
        if inner.full {
            return Err(StoreError::QueueFull { capacity: 0 });
        }
        let duplicate = !inner.keys.insert(rec.dedup_key);
        if !duplicate {
            inner.records.push(rec);
        }
        let (tx, pending) = Pending::channel();
        let _ = tx.send(Ok(Durable { duplicate }));
        Ok(pending)
    }
}

//! The configuration in force, as services hold it: an atomic pointer that a
//! reload swaps. Each configuration carries its own generation number, set
//! before it is published, so whatever is keyed on the generation reads it
//! from the very configuration it belongs to.

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::{ArcSwap, Guard};

use super::Config;

/// Shared, cheap to clone; every clone sees the same swaps.
#[derive(Debug, Clone)]
pub struct ConfigHandle {
    current: Arc<ArcSwap<Config>>,
    /// Serialises writers, so two replacements cannot draw one generation.
    writer: Arc<Mutex<()>>,
}

impl ConfigHandle {
    /// The first configuration: generation 1.
    pub fn new(mut config: Config) -> Self {
        config.generation = 1;
        Self {
            current: Arc::new(ArcSwap::from_pointee(config)),
            writer: Arc::new(Mutex::new(())),
        }
    }

    /// The configuration for one request; hold it for the request's whole
    /// life so a reload cannot change the rules half-way.
    pub fn load(&self) -> Guard<Arc<Config>> {
        self.current.load()
    }

    /// As [`Self::load`], for holding across an `.await` or a task.
    pub fn load_full(&self) -> Arc<Config> {
        self.current.load_full()
    }

    /// Publishes `next` as the following generation and returns that
    /// generation. Requests in flight keep the configuration they hold.
    pub fn replace(&self, mut next: Config) -> u64 {
        let _w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        next.generation = self.current.load().generation + 1;
        let generation = next.generation;
        self.current.store(Arc::new(next));
        generation
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config() -> Config {
        super::super::from_str(Path::new("t.toml"), "")
            .unwrap()
            .config
    }

    #[test]
    fn each_replacement_is_the_next_generation_and_readers_keep_theirs() {
        let h = ConfigHandle::new(config());
        let held = h.load_full();
        assert_eq!(held.generation, 1);
        assert_eq!(h.replace(config()), 2);
        assert_eq!(h.load().generation, 2);
        assert!(!Arc::ptr_eq(&h.load_full(), &held));
        assert_eq!(held.generation, 1);
        let clone = h.clone();
        assert_eq!(clone.replace(config()), 3);
        assert_eq!(h.load().generation, 3);
    }
}

//! What service tests build services from: the demo configuration, a
//! credential checker, an in-memory accounting sink and a stopped clock. No
//! sockets, no files written.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::accounting::MemorySink;
use crate::authn::{Argon2Pool, Credentials, PoolMetrics};
use crate::clock::Fixed;
use crate::config::{self, Config};

/// The demo configuration, `examples/portcullis.toml`, as the server loads it.
pub(crate) fn demo_config() -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/portcullis.toml");
    config::load(&path)
        .expect("the demo configuration loads")
        .config
}

/// A configuration from TOML text (relative paths against the crate root).
pub(crate) fn config_from(text: &str) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("test.toml");
    match config::from_str(&path, text) {
        Ok(l) => l.config,
        Err(e) => panic!("test configuration: {e}"),
    }
}

/// A checker with its own small argon2 pool and metrics.
pub(crate) fn credentials() -> Credentials {
    Credentials::new(Arc::new(Argon2Pool::new(2, 16, PoolMetrics::default())))
}

/// 2026-12-06T00:00:00Z, and draws counting up from 0x1234.
pub(crate) fn clock() -> Arc<Fixed> {
    Arc::new(Fixed::new(
        UNIX_EPOCH + Duration::from_secs(1_796_515_200),
        0x1234,
    ))
}

pub(crate) fn sink() -> Arc<MemorySink> {
    Arc::new(MemorySink::default())
}

/// The clock's time, for comparing with stored records.
pub(crate) fn now() -> SystemTime {
    clock().now
}

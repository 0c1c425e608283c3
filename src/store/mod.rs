//! Shared state for several nodes: `[store]` picks SQLite files in the data
//! directory (one machine, the default) or one PostgreSQL database that every
//! node of a cluster uses. This module holds the settings, the PostgreSQL
//! pool with its versioned schema, the health and config-digest monitor,
//! and the login throttle's sync between nodes.

pub mod ephemeral;
mod error;
mod migrations;
mod monitor;
mod pg;
mod sessions;
mod settings;
mod throttle;

pub use self::error::DbError;
pub use self::migrations::{MIGRATIONS, SCHEMA_VERSION, SchemaStatus};
pub use self::monitor::{StoreHealth, StoreMetrics, config_digest, spawn_monitor};
pub use self::pg::PgStore;
#[cfg(test)]
pub(crate) use self::pg::unreachable_settings;
pub use self::sessions::PgSessions;
pub use self::settings::{PgSettings, StoreSettings};
pub use self::throttle::{SYNC_EVERY, ThrottleSyncMetrics, spawn_throttle_sync};

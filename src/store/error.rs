//! Errors of the shared store, each with what was being done and where.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    #[error(
        "PostgreSQL at {target} refused the password of user `{user}`: check `{key}` in {}",
        file.display()
    )]
    BadPassword {
        target: String,
        user: String,
        key: &'static str,
        file: PathBuf,
    },
    #[error("PostgreSQL at {target} refused user `{user}`: {cause}")]
    Refused {
        target: String,
        user: String,
        cause: String,
    },
    #[error("cannot connect to PostgreSQL at {target}: {cause}")]
    Connect { target: String, cause: String },
    #[error(
        "the database's schema is at version {found}, newer than this build knows ({known}): \
         upgrade portcullis on this node before it uses that database"
    )]
    SchemaTooNew { found: i32, known: i32 },
    #[error(
        "the database's schema is at version {found}, this build needs {known}: \
         run `portcullis store migrate` (store.auto_migrate is off)"
    )]
    SchemaBehind { found: i32, known: i32 },
    #[error("PostgreSQL {what} failed: {cause}")]
    Query {
        what: &'static str,
        cause: Arc<tokio_postgres::Error>,
    },
    #[error("PostgreSQL {what} took longer than {after:?}")]
    Timeout { what: &'static str, after: Duration },
    #[error("store.ca_file: {0}")]
    Tls(String),
    #[error("shared store holds unreadable data: {0}")]
    Corrupt(String),
    /// The node started without its store (an outage at start) and has not
    /// checked the schema yet: nothing may read or write before it has.
    #[error("the shared store is not open yet (last attempt: {reason})")]
    NotOpen { reason: &'static str },
}

impl DbError {
    /// What went wrong in a few words from a closed set, without the
    /// database's address or user: what an unauthenticated `/healthz` shows
    /// (the log has the whole error).
    pub fn summary(&self) -> &'static str {
        match self {
            Self::BadPassword { .. } | Self::Refused { .. } => "the database refused our login",
            Self::Connect { .. } => "cannot connect to the database",
            Self::Timeout { .. } => "a database call timed out",
            Self::SchemaTooNew { .. } | Self::SchemaBehind { .. } => "schema version mismatch",
            Self::Query { .. } => "a database call failed",
            Self::Tls(_) => "TLS to the database failed",
            Self::Corrupt(_) => "the database holds unreadable data",
            Self::NotOpen { reason } => reason,
        }
    }

    /// Whether the database could not be reached or used at all (as opposed
    /// to a query it refused), i.e. the store is down.
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::NotOpen { .. } => true,
            Self::Query { cause, .. } => cause.is_closed() || cause.code().is_none(),
            _ => false,
        }
    }
}

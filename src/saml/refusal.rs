//! Why a SAML response was refused: a fixed label per check (logged and
//! used as a metric label, so cardinality stays bounded) and a detail for
//! the log.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Malformed,
    Dtd,
    DuplicateId,
    AssertionCount,
    Unsigned,
    Signature,
    Digest,
    Reference,
    Algorithm,
    Comment,
    Issuer,
    Status,
    Destination,
    Recipient,
    Audience,
    Expired,
    NotYetValid,
    InResponseTo,
    Unsolicited,
    Replay,
    Encrypted,
    Subject,
    /// The IdP's metadata could not be fetched, so nothing can be checked.
    Unavailable,
    /// The shared store did not answer, so the login cannot be checked.
    Store,
}

impl Reason {
    pub const fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Dtd => "dtd",
            Self::DuplicateId => "duplicate_id",
            Self::AssertionCount => "assertion_count",
            Self::Unsigned => "unsigned",
            Self::Signature => "signature",
            Self::Digest => "digest",
            Self::Reference => "reference",
            Self::Algorithm => "algorithm",
            Self::Comment => "comment",
            Self::Issuer => "issuer",
            Self::Status => "status",
            Self::Destination => "destination",
            Self::Recipient => "recipient",
            Self::Audience => "audience",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::InResponseTo => "in_response_to",
            Self::Unsolicited => "unsolicited",
            Self::Replay => "replay",
            Self::Encrypted => "encrypted",
            Self::Subject => "subject",
            Self::Unavailable => "idp_unavailable",
            Self::Store => "store_unavailable",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

const MAX_DETAIL: usize = 240;

/// A refused response. The detail never holds key material; it may hold
/// attacker-chosen text, so it is logged as a field, never interpreted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Refusal {
    pub reason: Reason,
    pub detail: String,
}

impl Refusal {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        let mut detail = detail.into();
        // Details quote document text; a megabyte Issuer must not become a
        // megabyte log line.
        if detail.len() > MAX_DETAIL {
            let mut cut = MAX_DETAIL;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
            detail.push('…');
        }
        Self { reason, detail }
    }
}

pub(crate) fn refuse<T>(reason: Reason, detail: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal::new(reason, detail))
}

//! Codec errors: small `Copy` values so the hot path never allocates, each
//! with a stable label for the protocol-error counter.

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("fewer than 12 bytes of header")]
    ShortHeader,
    #[error("major version is not 0xC")]
    BadVersion,
    #[error("unknown packet type {0}")]
    BadType(u8),
    #[error("body length {0} exceeds the limit")]
    TooLong(u32),
    #[error("body shorter than its fixed fields")]
    ShortBody,
    #[error("field lengths do not add up to the body length")]
    LengthMismatch,
    #[error("server packets carry an even sequence number")]
    BadSequence,
}

impl DecodeError {
    pub fn label(self) -> &'static str {
        match self {
            Self::ShortHeader => "short_header",
            Self::BadVersion => "bad_version",
            Self::BadType(_) => "bad_type",
            Self::TooLong(_) => "too_long",
            Self::ShortBody => "short_body",
            Self::LengthMismatch => "length_mismatch",
            Self::BadSequence => "bad_sequence",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("a field is longer than its length field can express")]
    FieldTooLong,
    #[error("too many arguments (at most 255)")]
    TooManyArgs,
}

//! Typed failures of the codec. Every variant maps to a short, stable snake_case
//! `label()` so the server can count dropped packets per reason in Prometheus
//! without formatting strings on the hot path.

use thiserror::Error;

/// Why a datagram could not be framed as a RADIUS packet (RFC 2865 §3, §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Fewer bytes than the fixed 20-byte header.
    #[error("datagram of {0} bytes is shorter than the RADIUS header")]
    TooShort(usize),
    /// Length field outside 20..=4096 (RFC 2865 §3).
    #[error("length field {0} is outside 20..=4096")]
    BadLength(u16),
    /// Length field promises more bytes than the datagram carries.
    #[error("length field {length} exceeds the {received} bytes received")]
    Truncated { length: u16, received: usize },
    /// An attribute's length octet is 0 or 1, or only its type octet fits.
    #[error("attribute at offset {offset} has a length below 2")]
    AttrTooShort { offset: u16 },
    /// An attribute extends past the end given by the length field.
    #[error("attribute at offset {offset} runs past the end of the packet")]
    AttrOverrun { offset: u16 },
    /// Message-Authenticator whose length is not 18 (RFC 3579 §3.2).
    #[error("Message-Authenticator at offset {offset} is not 18 bytes long")]
    BadMessageAuthenticatorLength { offset: u16 },
    /// More than one Message-Authenticator (RFC 3579 §3.2 allows 0-1).
    #[error("more than one Message-Authenticator")]
    DuplicateMessageAuthenticator,
}

impl DecodeError {
    /// Short reason for a drop counter label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::TooShort(_) => "too_short",
            Self::BadLength(_) => "bad_length",
            Self::Truncated { .. } => "truncated",
            Self::AttrTooShort { .. } => "attr_too_short",
            Self::AttrOverrun { .. } => "attr_overrun",
            Self::BadMessageAuthenticatorLength { .. } => "bad_message_authenticator_length",
            Self::DuplicateMessageAuthenticator => "duplicate_message_authenticator",
        }
    }
}

/// Why an authenticator, MAC or protected attribute did not check out, or
/// could not be processed. A wrong password is not an error (functions return
/// `false`); these are reasons to drop or reject the packet as malformed/forged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CryptoError {
    /// Message-Authenticator absent where policy or RFC requires it.
    #[error("Message-Authenticator missing")]
    MissingMessageAuthenticator,
    /// Message-Authenticator present but its HMAC does not match.
    #[error("Message-Authenticator does not verify")]
    BadMessageAuthenticator,
    /// Accounting/CoA/Disconnect Request Authenticator does not verify.
    #[error("Request Authenticator does not verify")]
    BadRequestAuthenticator,
    /// Reply's Response Authenticator does not verify.
    #[error("Response Authenticator does not verify")]
    BadResponseAuthenticator,
    /// The packet code has no request-authentication rule (e.g. a reply sent to a server).
    #[error("packet code {0} is not a request this codec can authenticate")]
    UnexpectedCode(u8),
    /// Hidden User-Password not a non-zero multiple of 16 up to 128 bytes.
    #[error("hidden password length {0} is not a multiple of 16 in 16..=128")]
    BadPasswordLength(usize),
    /// Cleartext password longer than 128 bytes cannot be hidden.
    #[error("password of {0} bytes is longer than 128")]
    PasswordTooLong(usize),
    /// A required attribute (by RADIUS type) is absent.
    #[error("required attribute {0} missing")]
    MissingAttribute(u8),
    /// CHAP-Password not exactly 17 bytes (RFC 2865 §5.3).
    #[error("CHAP-Password length {0} is not 17")]
    BadChapPasswordLength(usize),
    /// Salt-encrypted attribute (RFC 2548 §2.4.2) malformed or inconsistent.
    #[error("salt-encrypted attribute is malformed")]
    BadSaltEncrypted,
    /// Key too long to fit a salt-encrypted VSA value.
    #[error("key of {0} bytes too long to encrypt into one attribute")]
    KeyTooLong(usize),
}

impl CryptoError {
    /// Short reason for a drop counter label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::MissingMessageAuthenticator => "missing_message_authenticator",
            Self::BadMessageAuthenticator => "bad_message_authenticator",
            Self::BadRequestAuthenticator => "bad_request_authenticator",
            Self::BadResponseAuthenticator => "bad_response_authenticator",
            Self::UnexpectedCode(_) => "unexpected_code",
            Self::BadPasswordLength(_) => "bad_password_length",
            Self::PasswordTooLong(_) => "password_too_long",
            Self::MissingAttribute(_) => "missing_attribute",
            Self::BadChapPasswordLength(_) => "bad_chap_password_length",
            Self::BadSaltEncrypted => "bad_salt_encrypted",
            Self::KeyTooLong(_) => "key_too_long",
        }
    }
}

/// Why a packet could not be written into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The buffer (or the 4096-byte RADIUS limit) has no room left.
    #[error("packet would exceed the buffer or the 4096-byte limit")]
    BufferFull,
    /// Attribute value over 253 bytes (VSA value over 247).
    #[error("attribute value of {0} bytes is too long")]
    ValueTooLong(usize),
    /// Pre-encoded attribute bytes are not well-framed attributes.
    #[error("pre-encoded attributes are malformed")]
    BadRawAttributes,
    /// A second Message-Authenticator, or one whose value is not 16 bytes.
    #[error("Message-Authenticator duplicated or not 16 bytes")]
    MessageAuthenticator,
    /// Password hiding failed (e.g. longer than 128 bytes).
    #[error("cannot hide password: {0}")]
    Crypto(CryptoError),
}

impl EncodeError {
    /// Short reason for an error counter label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::BufferFull => "buffer_full",
            Self::ValueTooLong(_) => "value_too_long",
            Self::BadRawAttributes => "bad_raw_attributes",
            Self::MessageAuthenticator => "bad_message_authenticator",
            Self::Crypto(e) => e.label(),
        }
    }
}

impl From<CryptoError> for EncodeError {
    fn from(e: CryptoError) -> Self {
        Self::Crypto(e)
    }
}

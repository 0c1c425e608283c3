//! Sans-I/O RADIUS codec: zero-copy decoding (RFC 2865 §3, §5), heap-free
//! encoding into caller buffers, and the shared-secret cryptography of
//! RFC 2865/2866/3579/5080 and RFC 2548's salt encryption. Finding CHAP and
//! MS-CHAP values is wire work and lives here; checking them is `authn`'s.
//! No sockets, clocks or globals; decoding never panics or allocates.

pub mod attr;
pub mod crypto;
pub mod encode;
pub mod error;
mod fuzz;
pub mod reader;

#[cfg(test)]
mod tests;

pub use self::crypto::{
    ChapPassword, HmacMd5, MAX_PASSWORD_LEN, MAX_SALT_ENCRYPTED_LEN, Secret,
    accounting_request_authenticator, chap_password, hide_password, message_authenticator,
    response_authenticator, salt_decrypt, salt_encrypt, unhide_password,
    verify_accounting_request_authenticator, verify_message_authenticator, verify_reply,
    verify_request, verify_response_authenticator,
};
pub use self::encode::{MAX_VSA_VALUE_LEN, ReplyWriter, RequestWriter, encode_access_request};
pub use self::error::{CryptoError, DecodeError, EncodeError};
pub use self::fuzz::fuzz_decode;
pub use self::reader::{
    Attributes, Code, HEADER_LEN, MAX_ATTR_VALUE_LEN, MAX_PACKET_LEN, Packet, Vsa, Vsas, decode,
};

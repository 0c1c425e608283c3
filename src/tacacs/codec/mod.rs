//! Sans-I/O TACACS+ codec (RFC 8907): the 12-byte header (§4.1), body
//! obfuscation (§4.5), and the authentication (§5), authorization (§6) and
//! accounting (§7) bodies in both directions. Pure functions over bytes;
//! decoding never panics, never allocates, and rejects inconsistent lengths.

mod body;
mod error;
mod fuzz;
mod header;
mod obfuscate;

pub use body::*;
pub use error::{DecodeError, EncodeError};
pub use fuzz::fuzz_decode;
pub use header::{FLAG_SINGLE_CONNECT, FLAG_UNENCRYPTED, HEADER_LEN, Header, PacketType};
pub use obfuscate::obfuscate;

#[cfg(test)]
mod tests;

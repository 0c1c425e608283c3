//! CHAP (RFC 1994 §4.1): the response is MD5(Identifier || secret ||
//! challenge). Shared by RADIUS (RFC 2865 §5.3) and TACACS+ (RFC 8907
//! §5.4.2.3); each codec only finds the identifier, challenge and response.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// MD5(Identifier || password || challenge).
pub fn response(ident: u8, password: &[u8], challenge: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    Digest::update(&mut h, [ident]);
    Digest::update(&mut h, password);
    Digest::update(&mut h, challenge);
    h.finalize().into()
}

/// Whether `response` answers `challenge` for `password`, in constant time.
pub fn verify(ident: u8, response: &[u8; 16], challenge: &[u8], password: &[u8]) -> bool {
    self::response(ident, password, challenge)
        .ct_eq(response)
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_verifies_for_its_password_only() {
        let challenge = [7u8; 16];
        let r = response(0x42, b"secret-chap", &challenge);
        assert!(verify(0x42, &r, &challenge, b"secret-chap"));
        assert!(!verify(0x42, &r, &challenge, b"wrong"));
        assert!(!verify(0x43, &r, &challenge, b"secret-chap"));
        assert!(!verify(0x42, &r, &[8u8; 16], b"secret-chap"));
    }
}

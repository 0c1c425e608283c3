//! RADIUS shared-secret cryptography: User-Password hiding (RFC 2865 §5.2),
//! Request/Response Authenticators (RFC 2865 §3, RFC 2866 §3, RFC 5176 §2.3),
//! Message-Authenticator (RFC 3579 §3.2, RFC 5997 §3), finding the CHAP values
//! (RFC 2865 §5.3) and RFC 2548 §2.4.2 salt encryption for MS-MPPE keys.

use core::fmt;

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use super::attr;
use super::error::CryptoError;
use super::reader::{HEADER_LEN, Packet};

/// HMAC-MD5 as used by Message-Authenticator.
pub type HmacMd5 = Hmac<Md5>;

/// Longest User-Password RFC 2865 §5.2 allows.
pub const MAX_PASSWORD_LEN: usize = 128;

const ZERO16: [u8; 16] = [0; 16];

/// A client's shared secret with its derived per-secret state computed once
/// (at config load) so packets only pay for a clone: keying HMAC-MD5 costs
/// two extra MD5 compressions per call otherwise.
#[derive(Clone)]
pub struct Secret {
    bytes: Box<[u8]>,
    hmac: HmacMd5,
    md5: Md5,
}

impl Secret {
    pub fn new(secret: &[u8]) -> Self {
        let hmac = <HmacMd5 as KeyInit>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        let mut md5 = Md5::new();
        Digest::update(&mut md5, secret);
        Self {
            bytes: secret.into(),
            hmac,
            md5,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The pre-keyed HMAC-MD5 state; clone it per message.
    pub fn hmac(&self) -> &HmacMd5 {
        &self.hmac
    }

    /// MD5(secret || tail), the keystream block of RFC 2865 §5.2 and RFC 2548 §2.4.2.
    fn md5_secret_then(&self, a: &[u8], b: &[u8]) -> [u8; 16] {
        let mut h = self.md5.clone();
        Digest::update(&mut h, a);
        Digest::update(&mut h, b);
        h.finalize().into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn xor16(dst: &mut [u8], key: &[u8; 16]) {
    for (d, k) in dst.iter_mut().zip(key) {
        *d ^= k;
    }
}

// ---------------------------------------------------------------------------
// User-Password (RFC 2865 §5.2)

/// Hides `password` for a User-Password attribute into `out`; returns the
/// hidden value (16..=128 bytes, NUL-padded to a multiple of 16).
pub fn hide_password<'o>(
    password: &[u8],
    secret: &Secret,
    authenticator: &[u8; 16],
    out: &'o mut [u8; MAX_PASSWORD_LEN],
) -> Result<&'o [u8], CryptoError> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(CryptoError::PasswordTooLong(password.len()));
    }
    let padded = password.len().div_ceil(16).max(1) * 16;
    out[..password.len()].copy_from_slice(password);
    out[password.len()..padded].fill(0);
    let mut i = 0;
    while i < padded {
        let b = if i == 0 {
            secret.md5_secret_then(authenticator, &[])
        } else {
            secret.md5_secret_then(&out[i - 16..i], &[])
        };
        xor16(&mut out[i..i + 16], &b);
        i += 16;
    }
    Ok(&out[..padded])
}

/// Recovers a User-Password into `out` and returns it without the trailing
/// NUL padding. Rejects hidden lengths that are not 16, 32, .., 128.
pub fn unhide_password<'o>(
    hidden: &[u8],
    secret: &Secret,
    authenticator: &[u8; 16],
    out: &'o mut [u8; MAX_PASSWORD_LEN],
) -> Result<&'o [u8], CryptoError> {
    let n = hidden.len();
    if n == 0 || !n.is_multiple_of(16) || n > MAX_PASSWORD_LEN {
        return Err(CryptoError::BadPasswordLength(n));
    }
    out[..n].copy_from_slice(hidden);
    let mut prev: &[u8] = authenticator;
    for (chunk, cipher) in out[..n].chunks_exact_mut(16).zip(hidden.chunks_exact(16)) {
        let b = secret.md5_secret_then(prev, &[]);
        xor16(chunk, &b);
        prev = cipher;
    }
    let end = out[..n].iter().rposition(|&c| c != 0).map_or(0, |p| p + 1);
    Ok(&out[..end])
}

// ---------------------------------------------------------------------------
// Authenticators (RFC 2865 §3, RFC 2866 §3)

/// MD5(Code+Identifier+Length + `authenticator` + Attributes + Secret) over a
/// packet whose Length field is already final; the packet's own authenticator
/// field is not read.
fn packet_md5(packet: &[u8], authenticator: &[u8; 16], secret: &Secret) -> [u8; 16] {
    let mut h = Md5::new();
    Digest::update(&mut h, &packet[..4]);
    Digest::update(&mut h, authenticator);
    Digest::update(&mut h, &packet[HEADER_LEN..]);
    Digest::update(&mut h, secret.as_bytes());
    h.finalize().into()
}

/// Response Authenticator of a reply (`packet` fully encoded, Length set, any
/// Message-Authenticator already signed) for the given request.
///
/// # Panics
/// If `packet` is shorter than the 20-byte header.
pub fn response_authenticator(
    packet: &[u8],
    request_authenticator: &[u8; 16],
    secret: &Secret,
) -> [u8; 16] {
    packet_md5(packet, request_authenticator, secret)
}

/// Request Authenticator of an Accounting-Request, CoA-Request or
/// Disconnect-Request: the MD5 is taken with the field zeroed (RFC 2866 §3).
///
/// # Panics
/// If `packet` is shorter than the 20-byte header.
pub fn accounting_request_authenticator(packet: &[u8], secret: &Secret) -> [u8; 16] {
    packet_md5(packet, &ZERO16, secret)
}

/// Checks the Request Authenticator of an Accounting-Request, CoA-Request or
/// Disconnect-Request in constant time.
pub fn verify_accounting_request_authenticator(
    packet: &Packet<'_>,
    secret: &Secret,
) -> Result<(), CryptoError> {
    let expected = accounting_request_authenticator(packet.as_bytes(), secret);
    if ct_eq(&expected, packet.authenticator()) {
        Ok(())
    } else {
        Err(CryptoError::BadRequestAuthenticator)
    }
}

/// Checks a reply's Response Authenticator against the request's authenticator.
pub fn verify_response_authenticator(
    reply: &Packet<'_>,
    request_authenticator: &[u8; 16],
    secret: &Secret,
) -> Result<(), CryptoError> {
    let expected = response_authenticator(reply.as_bytes(), request_authenticator, secret);
    if ct_eq(&expected, reply.authenticator()) {
        Ok(())
    } else {
        Err(CryptoError::BadResponseAuthenticator)
    }
}

// ---------------------------------------------------------------------------
// Message-Authenticator (RFC 3579 §3.2)

/// HMAC-MD5 over `packet` as if its authenticator field held `authenticator`
/// and the 16 bytes at `ma_offset` were zero. Slices are fed piecewise so the
/// received packet never has to be copied or mutated.
///
/// # Panics
/// If `ma_offset + 16 > packet.len()` or `ma_offset < 20`.
pub fn message_authenticator(
    packet: &[u8],
    ma_offset: usize,
    authenticator: &[u8; 16],
    key: &HmacMd5,
) -> [u8; 16] {
    let mut mac = key.clone();
    Mac::update(&mut mac, &packet[..4]);
    Mac::update(&mut mac, authenticator);
    Mac::update(&mut mac, &packet[HEADER_LEN..ma_offset]);
    Mac::update(&mut mac, &ZERO16);
    Mac::update(&mut mac, &packet[ma_offset + 16..]);
    mac.finalize().into_bytes().into()
}

/// Verifies the packet's Message-Authenticator, computed with `authenticator`
/// in the header field: the packet's own one for Access-Request/Status-Server,
/// zeros for Accounting/CoA/Disconnect requests, the request's one for replies.
pub fn verify_message_authenticator(
    packet: &Packet<'_>,
    authenticator: &[u8; 16],
    secret: &Secret,
) -> Result<(), CryptoError> {
    let (Some(offset), Some(received)) = (
        packet.message_authenticator_offset(),
        packet.message_authenticator(),
    ) else {
        return Err(CryptoError::MissingMessageAuthenticator);
    };
    let expected = message_authenticator(packet.as_bytes(), offset, authenticator, secret.hmac());
    if ct_eq(&expected, received) {
        Ok(())
    } else {
        Err(CryptoError::BadMessageAuthenticator)
    }
}

/// Authenticates a request received by a server, by code:
/// - Access-Request: Message-Authenticator verified if present; required when
///   `require_message_authenticator` or when EAP-Message is present (RFC 3579).
/// - Status-Server: Message-Authenticator required (RFC 5997 §3).
/// - Accounting-Request, CoA-Request, Disconnect-Request: Request
///   Authenticator verified (RFC 2866 §3, RFC 5176 §2.3), then the
///   Message-Authenticator over a zeroed authenticator if present or required.
///
/// Other codes yield `UnexpectedCode`.
pub fn verify_request(
    packet: &Packet<'_>,
    secret: &Secret,
    require_message_authenticator: bool,
) -> Result<(), CryptoError> {
    let code = packet.code();
    let has_ma = packet.message_authenticator_offset().is_some();
    if code.has_computed_request_authenticator() {
        verify_accounting_request_authenticator(packet, secret)?;
        if has_ma || require_message_authenticator {
            verify_message_authenticator(packet, &ZERO16, secret)?;
        }
        return Ok(());
    }
    let must = match code.0 {
        1 => require_message_authenticator || packet.attr(attr::EAP_MESSAGE).is_some(),
        12 => true,
        other => return Err(CryptoError::UnexpectedCode(other)),
    };
    if has_ma || must {
        verify_message_authenticator(packet, packet.authenticator(), secret)?;
    }
    Ok(())
}

/// Authenticates a reply received by a client: Response Authenticator, then
/// Message-Authenticator (if present or required). Matching the Identifier to
/// the outstanding request is the caller's job.
pub fn verify_reply(
    reply: &Packet<'_>,
    request_authenticator: &[u8; 16],
    secret: &Secret,
    require_message_authenticator: bool,
) -> Result<(), CryptoError> {
    verify_response_authenticator(reply, request_authenticator, secret)?;
    if require_message_authenticator || reply.message_authenticator_offset().is_some() {
        verify_message_authenticator(reply, request_authenticator, secret)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// CHAP (RFC 1994 §4.1, RFC 2865 §5.3 and §5.40)

/// The CHAP values of an Access-Request; checking them is a credential
/// check (`authn::chap`).
#[derive(Debug, Clone, Copy)]
pub struct ChapPassword<'p> {
    pub ident: u8,
    pub response: &'p [u8; 16],
    /// CHAP-Challenge, else the Request Authenticator (RFC 2865 §5.40).
    pub challenge: &'p [u8],
}

/// Finds the CHAP-Password (ident + 16-byte response) and its challenge.
pub fn chap_password<'p>(packet: &Packet<'p>) -> Result<ChapPassword<'p>, CryptoError> {
    let chap = packet
        .attr(attr::CHAP_PASSWORD)
        .ok_or(CryptoError::MissingAttribute(attr::CHAP_PASSWORD))?;
    let (&ident, response) = chap
        .split_first()
        .ok_or(CryptoError::BadChapPasswordLength(0))?;
    let response = response
        .try_into()
        .map_err(|_| CryptoError::BadChapPasswordLength(chap.len()))?;
    let challenge = packet
        .attr(attr::CHAP_CHALLENGE)
        .unwrap_or_else(|| packet.authenticator());
    Ok(ChapPassword {
        ident,
        response,
        challenge,
    })
}

// ---------------------------------------------------------------------------
// Salt encryption for MS-MPPE-Send-Key / MS-MPPE-Recv-Key (RFC 2548 §2.4.2)

/// Largest salt-encrypted VSA value: a VSA sub-attribute holds 247 bytes, of
/// which 2 are salt, leaving 15 blocks of 16.
pub const MAX_SALT_ENCRYPTED_LEN: usize = 2 + 15 * 16;

/// Encrypts `key` (length-prefixed, zero-padded to 16) under the secret, the
/// request authenticator and `salt` (its high bit is forced on, as required).
/// Returns the attribute value: salt || ciphertext. Salts must be unique per
/// request authenticator; the caller supplies them (e.g. a counter) because
/// this module has no randomness.
pub fn salt_encrypt<'o>(
    key: &[u8],
    salt: u16,
    secret: &Secret,
    request_authenticator: &[u8; 16],
    out: &'o mut [u8; MAX_SALT_ENCRYPTED_LEN],
) -> Result<&'o [u8], CryptoError> {
    let plain_len = 1 + key.len();
    let padded = plain_len.div_ceil(16) * 16;
    if padded + 2 > MAX_SALT_ENCRYPTED_LEN {
        return Err(CryptoError::KeyTooLong(key.len()));
    }
    let salt = (salt | 0x8000).to_be_bytes();
    out[..2].copy_from_slice(&salt);
    out[2] = key.len() as u8;
    out[3..2 + plain_len].copy_from_slice(key);
    out[2 + plain_len..2 + padded].fill(0);
    let mut i = 2;
    while i < 2 + padded {
        let b = if i == 2 {
            secret.md5_secret_then(request_authenticator, &salt)
        } else {
            secret.md5_secret_then(&out[i - 16..i], &[])
        };
        xor16(&mut out[i..i + 16], &b);
        i += 16;
    }
    Ok(&out[..2 + padded])
}

/// Reverses `salt_encrypt`, returning the key without its length prefix.
pub fn salt_decrypt<'o>(
    value: &[u8],
    secret: &Secret,
    request_authenticator: &[u8; 16],
    out: &'o mut [u8; MAX_SALT_ENCRYPTED_LEN],
) -> Result<&'o [u8], CryptoError> {
    let Some((salt, cipher)) = value.split_first_chunk::<2>() else {
        return Err(CryptoError::BadSaltEncrypted);
    };
    let n = cipher.len();
    if salt[0] & 0x80 == 0 || n == 0 || !n.is_multiple_of(16) || n + 2 > MAX_SALT_ENCRYPTED_LEN {
        return Err(CryptoError::BadSaltEncrypted);
    }
    out[..n].copy_from_slice(cipher);
    // The first keystream block mixes in the salt; later ones chain on ciphertext.
    for (i, chunk) in out[..n].chunks_exact_mut(16).enumerate() {
        let b = match i {
            0 => secret.md5_secret_then(request_authenticator, salt),
            _ => secret.md5_secret_then(&cipher[(i - 1) * 16..i * 16], &[]),
        };
        xor16(chunk, &b);
    }
    let key_len = usize::from(out[0]);
    if key_len + 1 > n {
        return Err(CryptoError::BadSaltEncrypted);
    }
    Ok(&out[1..1 + key_len])
}

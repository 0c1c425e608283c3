//! MS-CHAPv1 (RFC 2433 §A) and MS-CHAPv2 (RFC 2759 §8) response checking,
//! the v2 authenticator response, and MPPE key derivation (RFC 3079 §3.3-3.4)
//! for the RADIUS attributes of RFC 2548 §2.1.3, §2.3 and §2.4 and for
//! TACACS+ (RFC 8907 §5.4.2.4-5). A credential check: each protocol's codec
//! only finds the values; encrypting the derived keys for RADIUS is the
//! codec's `salt_encrypt`.

use des::Des;
use des::cipher::{BlockCipherEncrypt, KeyInit};
use md4::Md4;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// An MS-CHAP value of the wrong shape: not a wrong password (that is
/// `Ok(false)` / `Ok(None)`), a malformed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MsChapError {
    /// MS-CHAP-Challenge of the wrong length (8 for v1, 16 for v2).
    #[error("MS-CHAP-Challenge length {0} is wrong")]
    BadChallengeLength(usize),
    /// MS-CHAP-Response / MS-CHAP2-Response not 50 bytes (RFC 2548 §2.1.3, §2.3.2).
    #[error("MS-CHAP response length {0} is not 50")]
    BadResponseLength(usize),
    /// MS-CHAPv1 response carries only the LAN Manager response, which we refuse.
    #[error("MS-CHAPv1 response without an NT-Response")]
    LmResponseOnly,
}

impl MsChapError {
    /// Short reason for a drop counter label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::BadChallengeLength(_) => "bad_mschap_challenge_length",
            Self::BadResponseLength(_) => "bad_mschap_response_length",
            Self::LmResponseOnly => "mschap_lm_only",
        }
    }
}

/// Length of MS-CHAP-Response and MS-CHAP2-Response values (RFC 2548).
pub const RESPONSE_LEN: usize = 50;
/// Length of the MS-CHAP2-Success value: ident + "S=" + 40 hex digits.
pub const SUCCESS_LEN: usize = 43;

// RFC 2759 §8.7 magic constants.
const AUTH_MAGIC1: &[u8; 39] = b"Magic server to client signing constant";
const AUTH_MAGIC2: &[u8; 41] = b"Pad to make it do more than one iteration";
// RFC 3079 §3.4 magic constants and pads.
const MASTER_MAGIC: &[u8; 27] = b"This is the MPPE Master Key";
const KEY_MAGIC2: &[u8; 84] =
    b"On the client side, this is the send key; on the server side, it is the receive key.";
const KEY_MAGIC3: &[u8; 84] =
    b"On the client side, this is the receive key; on the server side, it is the send key.";
const SHS_PAD1: [u8; 40] = [0x00; 40];
const SHS_PAD2: [u8; 40] = [0xf2; 40];

/// NtPasswordHash (RFC 2759 §8.3): MD4 of the UTF-16LE password. The
/// password is taken as UTF-8; bytes that are not valid UTF-8 are read as
/// Latin-1 so that every input still yields a hash.
pub fn nt_password_hash(password: &[u8]) -> [u8; 16] {
    let mut w = Utf16LeMd4 {
        h: Md4::new(),
        buf: [0; 128],
        n: 0,
    };
    match core::str::from_utf8(password) {
        Ok(s) => s.encode_utf16().for_each(|u| w.push(u)),
        Err(_) => password.iter().for_each(|&b| w.push(u16::from(b))),
    }
    w.h.update(&w.buf[..w.n]);
    w.h.finalize().into()
}

/// Feeds MD4 through a stack buffer rather than two bytes per call.
struct Utf16LeMd4 {
    h: Md4,
    buf: [u8; 128],
    n: usize,
}

impl Utf16LeMd4 {
    fn push(&mut self, unit: u16) {
        if self.n == self.buf.len() {
            self.h.update(self.buf);
            self.n = 0;
        }
        self.buf[self.n..self.n + 2].copy_from_slice(&unit.to_le_bytes());
        self.n += 2;
    }
}

/// HashNtPasswordHash (RFC 2759 §8.4).
pub fn hash_nt_password_hash(nt_hash: &[u8; 16]) -> [u8; 16] {
    Md4::digest(nt_hash).into()
}

/// Drops a "DOMAIN\" prefix: RFC 2759 §8.2 hashes the bare user name.
pub fn strip_domain(user_name: &[u8]) -> &[u8] {
    match user_name.iter().rposition(|&c| c == b'\\') {
        Some(p) => &user_name[p + 1..],
        None => user_name,
    }
}

/// ChallengeHash (RFC 2759 §8.2); any "DOMAIN\" prefix is stripped first.
pub fn challenge_hash(
    peer_challenge: &[u8; 16],
    authenticator_challenge: &[u8; 16],
    user_name: &[u8],
) -> [u8; 8] {
    let mut h = Sha1::new();
    h.update(peer_challenge);
    h.update(authenticator_challenge);
    h.update(strip_domain(user_name));
    let d = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// Spreads 56 key bits over 8 bytes, leaving DES's ignored parity bit low.
fn des_key(k: &[u8]) -> [u8; 8] {
    [
        k[0],
        (k[0] << 7) | (k[1] >> 1),
        (k[1] << 6) | (k[2] >> 2),
        (k[2] << 5) | (k[3] >> 3),
        (k[3] << 4) | (k[4] >> 4),
        (k[4] << 3) | (k[5] >> 5),
        (k[5] << 2) | (k[6] >> 6),
        k[6] << 1,
    ]
}

/// ChallengeResponse (RFC 2759 §8.5, identical to RFC 2433's): three DES
/// encryptions of the 8-byte challenge under the zero-padded 21-byte hash.
pub fn challenge_response(challenge: &[u8; 8], nt_hash: &[u8; 16]) -> [u8; 24] {
    let mut z = [0u8; 21];
    z[..16].copy_from_slice(nt_hash);
    let mut out = [0u8; 24];
    for (key7, block) in z.chunks_exact(7).zip(out.chunks_exact_mut(8)) {
        let cipher = Des::new(&des_key(key7).into());
        let mut b = (*challenge).into();
        cipher.encrypt_block(&mut b);
        block.copy_from_slice(&b);
    }
    out
}

/// GenerateNTResponse (RFC 2759 §8.1), for clients and tests.
pub fn generate_nt_response(
    authenticator_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    user_name: &[u8],
    nt_hash: &[u8; 16],
) -> [u8; 24] {
    let ch = challenge_hash(peer_challenge, authenticator_challenge, user_name);
    challenge_response(&ch, nt_hash)
}

fn hex_upper(bytes: &[u8], out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for (b, o) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        o[0] = HEX[usize::from(b >> 4)];
        o[1] = HEX[usize::from(b & 0xf)];
    }
}

/// GenerateAuthenticatorResponse (RFC 2759 §8.7): "S=" + 40 uppercase hex.
/// Takes the hash-of-hash so the verifier computes it only once.
pub fn authenticator_response(
    nt_hash_hash: &[u8; 16],
    nt_response: &[u8; 24],
    peer_challenge: &[u8; 16],
    authenticator_challenge: &[u8; 16],
    user_name: &[u8],
) -> [u8; 42] {
    let mut h = Sha1::new();
    h.update(nt_hash_hash);
    h.update(nt_response);
    h.update(AUTH_MAGIC1);
    let digest = h.finalize();
    let ch = challenge_hash(peer_challenge, authenticator_challenge, user_name);
    let mut h = Sha1::new();
    h.update(digest);
    h.update(ch);
    h.update(AUTH_MAGIC2);
    let digest = h.finalize();
    let mut out = [0u8; 42];
    out[0] = b'S';
    out[1] = b'=';
    hex_upper(&digest, &mut out[2..]);
    out
}

/// GetMasterKey (RFC 3079 §3.4).
pub fn master_key(nt_hash_hash: &[u8; 16], nt_response: &[u8; 24]) -> [u8; 16] {
    let mut h = Sha1::new();
    h.update(nt_hash_hash);
    h.update(nt_response);
    h.update(MASTER_MAGIC);
    let d = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

fn asymmetric_start_key(master: &[u8; 16], magic: &[u8; 84]) -> [u8; 16] {
    let mut h = Sha1::new();
    h.update(master);
    h.update(SHS_PAD1);
    h.update(magic);
    h.update(SHS_PAD2);
    let d = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// 128-bit MPPE start keys from the authenticator's (NAS/server's) point of
/// view, i.e. the values for MS-MPPE-Send-Key and MS-MPPE-Recv-Key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MppeKeys {
    pub send: [u8; 16],
    pub recv: [u8; 16],
}

impl core::fmt::Debug for MppeKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MppeKeys(<redacted>)")
    }
}

/// GetAsymmetricStartKey (RFC 3079 §3.4) with IsServer = TRUE for both
/// directions: the server's send key uses Magic3, its receive key Magic2.
pub fn mppe_keys(nt_hash_hash: &[u8; 16], nt_response: &[u8; 24]) -> MppeKeys {
    let master = master_key(nt_hash_hash, nt_response);
    MppeKeys {
        send: asymmetric_start_key(&master, KEY_MAGIC3),
        recv: asymmetric_start_key(&master, KEY_MAGIC2),
    }
}

/// MS-CHAP2-Response value (RFC 2548 §2.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsChap2Response {
    pub ident: u8,
    pub flags: u8,
    pub peer_challenge: [u8; 16],
    pub nt_response: [u8; 24],
}

impl MsChap2Response {
    /// Splits the 50-byte value: ident, flags, peer challenge, 8 reserved, NT-Response.
    pub fn parse(value: &[u8]) -> Result<Self, MsChapError> {
        let v: &[u8; RESPONSE_LEN] = value
            .try_into()
            .map_err(|_| MsChapError::BadResponseLength(value.len()))?;
        let mut peer_challenge = [0u8; 16];
        peer_challenge.copy_from_slice(&v[2..18]);
        let mut nt_response = [0u8; 24];
        nt_response.copy_from_slice(&v[26..50]);
        Ok(Self {
            ident: v[0],
            flags: v[1],
            peer_challenge,
            nt_response,
        })
    }
}

/// What a successful MS-CHAPv2 check yields for building the Access-Accept.
#[derive(Clone, Copy)]
pub struct MsChapV2Success {
    pub ident: u8,
    /// "S=" + 40 uppercase hex digits.
    pub authenticator_response: [u8; 42],
    nt_hash_hash: [u8; 16],
    nt_response: [u8; 24],
}

impl core::fmt::Debug for MsChapV2Success {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MsChapV2Success")
            .field("ident", &self.ident)
            .finish_non_exhaustive()
    }
}

impl MsChapV2Success {
    /// Value for the MS-CHAP2-Success VSA (311/26): ident + "S=...".
    pub fn success_value(&self) -> [u8; SUCCESS_LEN] {
        let mut out = [0u8; SUCCESS_LEN];
        out[0] = self.ident;
        out[1..].copy_from_slice(&self.authenticator_response);
        out
    }

    /// MPPE start keys; encrypt each with `crypto::salt_encrypt` for
    /// MS-MPPE-Send-Key (311/16) and MS-MPPE-Recv-Key (311/17).
    pub fn mppe_keys(&self) -> MppeKeys {
        mppe_keys(&self.nt_hash_hash, &self.nt_response)
    }
}

/// Verifies MS-CHAPv2 given the cleartext password. `challenge` is the
/// MS-CHAP-Challenge value (16 bytes), `response` the MS-CHAP2-Response value.
/// Ok(None) means wrong password.
pub fn mschapv2_verify(
    user_name: &[u8],
    password: &[u8],
    challenge: &[u8],
    response: &[u8],
) -> Result<Option<MsChapV2Success>, MsChapError> {
    mschapv2_verify_nt_hash(user_name, &nt_password_hash(password), challenge, response)
}

/// Whether an MS-CHAPv2 challenge and response are well formed, checked
/// before anything about the user is looked at, so that a malformed request
/// is treated the same (dropped) whoever it names.
pub fn mschapv2_check_form(challenge: &[u8], response: &[u8]) -> Result<(), MsChapError> {
    if challenge.len() != 16 {
        return Err(MsChapError::BadChallengeLength(challenge.len()));
    }
    MsChap2Response::parse(response).map(|_| ())
}

/// As [`mschapv2_check_form`], for MS-CHAPv1 over RADIUS.
pub fn mschapv1_check_form(challenge: &[u8], response: &[u8]) -> Result<(), MsChapError> {
    if challenge.len() != 8 {
        return Err(MsChapError::BadChallengeLength(challenge.len()));
    }
    let v: &[u8; RESPONSE_LEN] = response
        .try_into()
        .map_err(|_| MsChapError::BadResponseLength(response.len()))?;
    if v[1] & 1 == 0 {
        return Err(MsChapError::LmResponseOnly);
    }
    Ok(())
}

/// As `mschapv2_verify`, for a stored NT hash (NT-Password) instead of cleartext.
pub fn mschapv2_verify_nt_hash(
    user_name: &[u8],
    nt_hash: &[u8; 16],
    challenge: &[u8],
    response: &[u8],
) -> Result<Option<MsChapV2Success>, MsChapError> {
    let challenge: &[u8; 16] = challenge
        .try_into()
        .map_err(|_| MsChapError::BadChallengeLength(challenge.len()))?;
    let r = MsChap2Response::parse(response)?;
    let expected = generate_nt_response(challenge, &r.peer_challenge, user_name, nt_hash);
    if !bool::from(expected.ct_eq(&r.nt_response)) {
        return Ok(None);
    }
    let nt_hash_hash = hash_nt_password_hash(nt_hash);
    Ok(Some(MsChapV2Success {
        ident: r.ident,
        authenticator_response: authenticator_response(
            &nt_hash_hash,
            &r.nt_response,
            &r.peer_challenge,
            challenge,
            user_name,
        ),
        nt_hash_hash,
        nt_response: r.nt_response,
    }))
}

/// MS-CHAPv1 NT-Response check (RFC 2433 §A.5) against an NT hash; usable
/// outside RADIUS (e.g. TACACS+ MS-CHAP).
pub fn mschapv1_verify_nt_response(
    challenge: &[u8; 8],
    nt_hash: &[u8; 16],
    nt_response: &[u8; 24],
) -> bool {
    challenge_response(challenge, nt_hash)
        .ct_eq(nt_response)
        .into()
}

/// MS-CHAPv1 over RADIUS attributes: MS-CHAP-Challenge (8 bytes) and
/// MS-CHAP-Response (50 bytes: ident, flags, LM-Response, NT-Response).
/// Responses flagged as LM-only are refused rather than checked.
pub fn mschapv1_verify(
    password: &[u8],
    challenge: &[u8],
    response: &[u8],
) -> Result<bool, MsChapError> {
    mschapv1_check_form(challenge, response)?;
    let challenge: &[u8; 8] = challenge.try_into().expect("form checked");
    let nt: &[u8; 24] = response[26..].try_into().expect("form checked");
    Ok(mschapv1_verify_nt_response(
        challenge,
        &nt_password_hash(password),
        nt,
    ))
}

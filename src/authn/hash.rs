//! argon2 hashes decoded once, at load. A PHC string is about 100 bytes of
//! text per user, most of it a `$argon2id$v=19$m=19456,t=2,p=1$` prefix that
//! every user shares; what a check needs is the salt and the expected output
//! (typically 16 + 32 bytes) plus one shared set of parameters. Keeping the
//! text would also mean parsing it again on every check.

use std::collections::HashMap;

use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;

use super::AuthnError;

/// Largest salt a PHC string can carry (`phc::Salt::MAX_LENGTH`).
const MAX_SALT: usize = 48;
/// Largest output a PHC string can carry (`phc::Output::MAX_LENGTH`).
const MAX_OUTPUT: usize = 64;

/// One stored hash with everything needed to check a password against it,
/// owned so that it can move to a blocking thread.
#[derive(Clone)]
pub struct PasswordCheck {
    argon2: Argon2<'static>,
    salt: [u8; MAX_SALT],
    salt_len: u8,
    expected: [u8; MAX_OUTPUT],
    expected_len: u8,
}

impl std::fmt::Debug for PasswordCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordCheck")
            .field("params", self.argon2.params())
            .finish_non_exhaustive()
    }
}

impl PasswordCheck {
    fn new(argon2: Argon2<'static>, salt: &[u8], expected: &[u8]) -> Self {
        let mut c = Self {
            argon2,
            salt: [0; MAX_SALT],
            salt_len: salt.len() as u8,
            expected: [0; MAX_OUTPUT],
            expected_len: expected.len() as u8,
        };
        c.salt[..salt.len()].copy_from_slice(salt);
        c.expected[..expected.len()].copy_from_slice(expected);
        c
    }

    pub(crate) fn salt(&self) -> &[u8] {
        &self.salt[..usize::from(self.salt_len)]
    }

    pub(crate) fn expected(&self) -> &[u8] {
        &self.expected[..usize::from(self.expected_len)]
    }

    /// Runs argon2: blocking, tens of milliseconds by design. What
    /// `argon2`'s own PHC verifier does, minus parsing the text again.
    pub fn verify(&self, password: &[u8]) -> Result<bool, AuthnError> {
        self.verify_in(password, &mut Vec::new())
    }

    /// As [`Self::verify`], in caller-owned working memory (grown as
    /// needed): a pool thread keeps one buffer rather than allocating (and
    /// leaving glibc to keep) megabytes per check.
    pub fn verify_in(&self, password: &[u8], memory: &mut Vec<Block>) -> Result<bool, AuthnError> {
        let need = self.argon2.params().block_count();
        if memory.len() < need {
            memory.resize(need, Block::new());
        }
        let mut out = [0u8; MAX_OUTPUT];
        let out = &mut out[..usize::from(self.expected_len)];
        self.argon2
            .hash_password_into_with_memory(password, self.salt(), out, &mut memory[..need])
            .map_err(|_| AuthnError::BadHash)?;
        Ok(bool::from(out.ct_eq(self.expected())))
    }
}

/// A PHC string taken apart.
struct Decoded {
    algorithm: Algorithm,
    version: Version,
    check: PasswordCheck,
}

/// Why a stored password hash cannot be used, or kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("not a PHC string: {0}")]
    NotPhc(String),
    #[error("algorithm `{0}` is not argon2")]
    NotArgon2(String),
    #[error("unknown argon2 version {0}")]
    UnknownVersion(u32),
    #[error("bad argon2 parameters: {0}")]
    BadParams(String),
    #[error("the PHC string has no hash part")]
    NoHash,
    #[error("too many password hashes for one configuration")]
    TooMany,
}

/// Parses and checks a PHC string: argon2, usable parameters, a version
/// this crate implements, and a salt and hash present.
fn decode(phc: &str) -> Result<Decoded, HashError> {
    let parsed = argon2::PasswordHash::new(phc).map_err(|e| HashError::NotPhc(e.to_string()))?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str())
        .map_err(|_| HashError::NotArgon2(parsed.algorithm.to_string()))?;
    // argon2's verifier reads an absent version as its default, 0x13; so
    // does this, so that such hashes keep verifying as they did.
    let version = match parsed.version {
        None => Version::default(),
        Some(v) => Version::try_from(v).map_err(|_| HashError::UnknownVersion(v))?,
    };
    // Also sets the output length from the hash part, as checking needs.
    let params = Params::try_from(&parsed).map_err(|e| HashError::BadParams(e.to_string()))?;
    let (Some(salt), Some(hash)) = (&parsed.salt, &parsed.hash) else {
        return Err(HashError::NoHash);
    };
    Ok(Decoded {
        algorithm,
        version,
        check: PasswordCheck::new(
            Argon2::new(algorithm, version, params),
            salt,
            hash.as_bytes(),
        ),
    })
}

/// Whether `s` is an argon2 PHC string that verification can use.
pub fn check_hash(s: &str) -> Result<(), HashError> {
    decode(s).map(|_| ())
}

/// The argon2 check on a PHC string; blocking, tens of milliseconds by
/// design.
pub fn verify_blocking(phc: &str, password: &[u8]) -> Result<bool, AuthnError> {
    decode(phc)
        .map_err(|_| AuthnError::BadHash)?
        .check
        .verify(password)
}

/// Where one user's hash lives in a [`HashStore`]: 12 bytes instead of a
/// PHC string.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoredHash {
    /// Index of the shared algorithm, version and parameters.
    kdf: u32,
    /// Offset of the salt, then the expected output, in the store's bytes.
    at: u32,
    salt_len: u8,
    expected_len: u8,
}

/// What tells one argon2 configuration from another; `Params` has no
/// `Hash`, so this stands in for it while interning.
#[derive(PartialEq, Eq, Hash)]
struct KdfKey {
    algorithm: &'static str,
    version: u32,
    m: u32,
    t: u32,
    p: u32,
    output_len: Option<usize>,
    keyid: Box<[u8]>,
    data: Box<[u8]>,
}

impl KdfKey {
    fn of(d: &Decoded) -> Self {
        let p = d.check.argon2.params();
        Self {
            algorithm: d.algorithm.as_str(),
            version: d.version.into(),
            m: p.m_cost(),
            t: p.t_cost(),
            p: p.p_cost(),
            output_len: p.output_len(),
            keyid: p.keyid().into(),
            data: p.data().into(),
        }
    }
}

/// Every user's salt and expected output in one allocation, and each
/// distinct argon2 configuration once.
#[derive(Default)]
pub(crate) struct HashStore {
    kdfs: Box<[Argon2<'static>]>,
    bytes: Box<[u8]>,
}

impl std::fmt::Debug for HashStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashStore")
            .field("kdfs", &self.kdfs.len())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl HashStore {
    /// A check no password passes, costing what checking a user's password
    /// costs (the first configuration's parameters, the crate's defaults
    /// without users): run for unknown and disabled users, so the time of
    /// a refusal does not tell which names exist.
    pub(crate) fn decoy(&self) -> PasswordCheck {
        let argon2 = self.kdfs.first().cloned().unwrap_or_default();
        let salt: [u8; 16] = rand::random();
        let expected: [u8; 32] = rand::random();
        let len = argon2
            .params()
            .output_len()
            .unwrap_or(expected.len())
            .min(MAX_OUTPUT);
        let mut out = [0u8; MAX_OUTPUT];
        for (i, b) in out.iter_mut().enumerate().take(len) {
            *b = expected[i % expected.len()];
        }
        PasswordCheck::new(argon2, &salt, &out[..len])
    }

    /// Eight bytes of the stored hash's expected output: tells one stored
    /// credential from another (argon2 output is uniformly random).
    pub(crate) fn tag(&self, h: StoredHash) -> u64 {
        let at = h.at as usize + usize::from(h.salt_len);
        let out = &self.bytes[at..at + usize::from(h.expected_len)];
        let mut tag = [0u8; 8];
        for (t, b) in tag.iter_mut().zip(out) {
            *t = *b;
        }
        u64::from_le_bytes(tag)
    }

    pub(crate) fn check(&self, h: StoredHash) -> PasswordCheck {
        let at = h.at as usize;
        let mid = at + usize::from(h.salt_len);
        let end = mid + usize::from(h.expected_len);
        PasswordCheck::new(
            self.kdfs[h.kdf as usize].clone(),
            &self.bytes[at..mid],
            &self.bytes[mid..end],
        )
    }
}

/// Builds a [`HashStore`]; the interning map lives only while loading.
pub(crate) struct HashStoreBuilder {
    kdfs: Vec<Argon2<'static>>,
    bytes: Vec<u8>,
    kdf_ids: HashMap<KdfKey, u32>,
}

impl HashStoreBuilder {
    /// Room for `users` hashes of the recommended 16-byte salt and 32-byte
    /// output, so the bytes are not copied while growing.
    pub(crate) fn with_capacity(users: usize) -> Self {
        Self {
            kdfs: Vec::new(),
            bytes: Vec::with_capacity(users.saturating_mul(48)),
            kdf_ids: HashMap::new(),
        }
    }

    /// Decodes and keeps a PHC string, or says why it cannot be used.
    pub(crate) fn add(&mut self, phc: &str) -> Result<StoredHash, HashError> {
        let d = decode(phc)?;
        let at = u32::try_from(self.bytes.len()).map_err(|_| HashError::TooMany)?;
        let next = self.kdfs.len() as u32;
        let kdf = *self.kdf_ids.entry(KdfKey::of(&d)).or_insert_with(|| {
            self.kdfs.push(d.check.argon2.clone());
            next
        });
        self.bytes.extend_from_slice(d.check.salt());
        self.bytes.extend_from_slice(d.check.expected());
        Ok(StoredHash {
            kdf,
            at,
            salt_len: d.check.salt_len,
            expected_len: d.check.expected_len,
        })
    }

    pub(crate) fn finish(self) -> HashStore {
        HashStore {
            kdfs: self.kdfs.into(),
            bytes: self.bytes.into(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const ALICE: &str = "$argon2id$v=19$m=19456,t=2,p=1$fPdvAIzHsCzp5f5c7ZOqiA$R1cvJZ3/iOuCLjoAlNti9heuVIRGhMPbjWq2ACM/48E";

    use argon2::PasswordHasher;

    /// The check of a cheap hash of `password`; each `n` its own salt.
    pub(crate) fn check_of(password: &[u8], n: u8) -> PasswordCheck {
        let params = Params::new(8, 1, 1, Some(32)).unwrap();
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_with_salt(password, &[b'a' + n % 26; 16])
            .unwrap()
            .to_string();
        decode(&phc).unwrap().check
    }

    #[test]
    fn one_buffer_serves_checks_of_any_size() {
        let mut memory = Vec::new();
        let small = check_of(b"pw", 1);
        assert!(small.verify_in(b"pw", &mut memory).unwrap());
        assert_eq!(memory.len(), 8);
        let mut b = HashStoreBuilder::with_capacity(1);
        let h = b.add(ALICE).unwrap();
        let big = b.finish().check(h);
        assert!(big.verify_in(b"alice-pass-1", &mut memory).unwrap());
        assert_eq!(memory.len(), 19456);
        // Reused after a bigger check: left-over blocks do not matter.
        assert!(small.verify_in(b"pw", &mut memory).unwrap());
        assert!(!small.verify_in(b"pw2", &mut memory).unwrap());
        assert_eq!(memory.len(), 19456);
    }

    /// A PHC string made with parameters cheap enough for a unit test.
    pub(crate) fn cheap(password: &[u8], alg: Algorithm, out_len: usize) -> String {
        let params = Params::new(8, 1, 1, Some(out_len)).unwrap();
        Argon2::new(alg, Version::V0x13, params)
            .hash_password_with_salt(password, b"0123456789abcdef")
            .unwrap()
            .to_string()
    }

    #[test]
    fn decoded_hash_verifies_like_the_phc_string() {
        // The demo's real hash (OWASP parameters), so two checks only.
        assert!(verify_blocking(ALICE, b"alice-pass-1").unwrap());
        let mut b = HashStoreBuilder::with_capacity(1);
        let h = b.add(ALICE).unwrap();
        assert!(!b.finish().check(h).verify(b"alice-pass-2").unwrap());
    }

    #[test]
    fn configurations_are_shared_and_kept_apart() {
        let mut b = HashStoreBuilder::with_capacity(4);
        let phcs = [
            cheap(b"a", Algorithm::Argon2id, 32),
            cheap(b"b", Algorithm::Argon2id, 32),
            cheap(b"c", Algorithm::Argon2i, 32),
            cheap(b"d", Algorithm::Argon2id, 20),
        ];
        let hashes: Vec<_> = phcs.iter().map(|p| b.add(p).unwrap()).collect();
        let store = b.finish();
        assert_eq!(store.kdfs.len(), 3);
        for (h, pw) in hashes.iter().zip([b"a", b"b", b"c", b"d"]) {
            assert!(store.check(*h).verify(pw).unwrap());
            assert!(!store.check(*h).verify(b"x").unwrap());
        }
    }

    #[test]
    fn unusable_strings_are_refused_with_a_reason() {
        for (phc, words) in [
            ("bob-pass-2", "not a PHC string"),
            (
                "$pbkdf2$v=19$m=19456,t=2,p=1$2YgpYRvuTA2NnA3NrMCrWg$SULz5OqDiwSk27Ry6kLrHAZg4ybngNxJ4169s75Vfp8",
                "not argon2",
            ),
            (
                "$argon2id$v=18$m=19456,t=2,p=1$2YgpYRvuTA2NnA3NrMCrWg$SULz5OqDiwSk27Ry6kLrHAZg4ybngNxJ4169s75Vfp8",
                "version",
            ),
            (
                "$argon2id$v=19$m=19456,t=2,p=1$2YgpYRvuTA2NnA3NrMCrWg",
                "no hash part",
            ),
        ] {
            let e = check_hash(phc).unwrap_err().to_string();
            assert!(e.contains(words), "{phc}: {e}");
        }
    }
}

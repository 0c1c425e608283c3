//! The IdP's signing key and certificate: RSA 2048 with a self-signed
//! X.509 certificate made at first start in the provider's store (SQLite,
//! or the shared PostgreSQL so every node signs alike), or a configured
//! pair; and the next pair, published in metadata before it signs, so
//! consoles can be given the new certificate ahead of a rollover.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::idp::IdpStore;
use crate::saml::IdpCert;
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum SamlKeyError {
    #[error("key generation failed")]
    Generate,
    #[error("{0}: not an unencrypted PKCS#8 RSA private key")]
    PrivateKey(String),
    #[error("{0}: {1}")]
    Certificate(String, crate::saml::KeyError),
    #[error("{0}: the certificate is not for this key")]
    Mismatch(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error(transparent)]
    Store(#[from] crate::idp::StoreError),
    #[error("no next SAML key to rotate to (another rotation ran at the same time?)")]
    NoNext,
    #[error("no console provider store")]
    NoStore,
}

/// The key that signs, with its certificate.
pub struct SigningKey {
    pair: RsaKeyPair,
    pub cert: IdpCert,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new RSA 2048 key and a self-signed certificate for it, valid from
    /// a day before `now` for ten years. Returns the PKCS#8 DER too, for
    /// storing.
    pub fn generate(cn: &str, now: SystemTime) -> Result<(Self, Vec<u8>), SamlKeyError> {
        let k = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| SamlKeyError::Generate)?;
        let pkcs8 = k
            .as_der()
            .map_err(|_| SamlKeyError::Generate)?
            .as_ref()
            .to_vec();
        let pair = RsaKeyPair::from_pkcs8(&pkcs8).map_err(|_| SamlKeyError::Generate)?;
        let der = self_signed(&pair, cn, now)?;
        let cert = IdpCert::from_der(&der)
            .map_err(|e| SamlKeyError::Certificate("generated certificate".into(), e))?;
        Ok((Self { pair, cert }, pkcs8))
    }

    /// From PEM text: a PKCS#8 private key and its certificate. `what`
    /// names the source in errors.
    pub fn from_pem(key: &str, cert: &str, what: &str) -> Result<Self, SamlKeyError> {
        let der = pem_block(key, "PRIVATE KEY")
            .ok_or_else(|| SamlKeyError::PrivateKey(what.to_string()))?;
        let pair =
            RsaKeyPair::from_pkcs8(&der).map_err(|_| SamlKeyError::PrivateKey(what.to_string()))?;
        let cert = IdpCert::from_pem(cert)
            .map_err(|e| SamlKeyError::Certificate(what.to_string(), e))?
            .remove(0);
        if cert.public_key != pair.public_key().as_ref() {
            return Err(SamlKeyError::Mismatch(what.to_string()));
        }
        Ok(Self { pair, cert })
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `msg`.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let mut sig = vec![0; self.pair.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.pair
            .sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
            .expect("RSA signing with a valid key");
        sig
    }
}

/// The keys in force: the one that signs, and the next certificate,
/// published in metadata before it signs.
#[derive(Debug)]
pub struct SamlKeys {
    pub active: SigningKey,
    pub next: Option<IdpCert>,
}

impl SamlKeys {
    /// The certificates metadata publishes: the signing one, then the next.
    pub fn published(&self) -> impl Iterator<Item = &IdpCert> {
        std::iter::once(&self.active.cert).chain(self.next.iter())
    }
}

/// The subject CN of generated certificates.
pub const GENERATED_CN: &str = "portcullis SAML IdP";

/// A SAML signing key as the store keeps it: the private key with its
/// certificate, and its place in the rollover.
#[derive(Debug, Clone)]
pub struct StoredSamlKey {
    /// A short fingerprint of the certificate, so the same imported pair
    /// is the same row on every node.
    pub id: String,
    /// PKCS#8 DER. Never logged.
    pub pkcs8: Secret,
    /// The X.509 certificate, DER.
    pub cert: Vec<u8>,
    pub created: i64,
    /// When it started signing; `None`: published as the next key.
    pub activated: Option<i64>,
    /// When it stopped signing (it is then no longer published).
    pub retired: Option<i64>,
}

impl StoredSamlKey {
    /// A new pair (see [`SigningKey::generate`]), published as next.
    pub fn generate(cn: &str, now: SystemTime) -> Result<Self, SamlKeyError> {
        let (key, pkcs8) = SigningKey::generate(cn, now)?;
        Ok(Self::new(pkcs8, key.cert.der, epoch(now)))
    }

    fn new(pkcs8: Vec<u8>, cert: Vec<u8>, now: i64) -> Self {
        use sha2::{Digest as _, Sha256};
        let fp = Sha256::digest(&cert);
        Self {
            id: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&fp[..12]),
            pkcs8: Secret::new(pkcs8),
            cert,
            created: now,
            activated: None,
            retired: None,
        }
    }

    /// The signing key, checked against its certificate.
    pub fn load(&self) -> Result<SigningKey, SamlKeyError> {
        let what = || format!("stored SAML key {}", self.id);
        let pair = RsaKeyPair::from_pkcs8(self.pkcs8.expose())
            .map_err(|_| SamlKeyError::PrivateKey(what()))?;
        let cert =
            IdpCert::from_der(&self.cert).map_err(|e| SamlKeyError::Certificate(what(), e))?;
        if cert.public_key != pair.public_key().as_ref() {
            return Err(SamlKeyError::Mismatch(what()));
        }
        Ok(SigningKey { pair, cert })
    }

    fn signing(&self) -> bool {
        self.activated.is_some() && self.retired.is_none()
    }

    fn next(&self) -> bool {
        self.activated.is_none() && self.retired.is_none()
    }
}

fn epoch(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The keys in force among the stored ones: the newest signing key, and
/// the oldest next one. `None` when nothing signs.
pub fn from_stored(keys: &[StoredSamlKey]) -> Result<Option<SamlKeys>, SamlKeyError> {
    let Some(active) = keys
        .iter()
        .filter(|k| k.signing())
        .max_by_key(|k| (k.activated, k.created))
    else {
        return Ok(None);
    };
    let next = keys
        .iter()
        .filter(|k| k.next())
        .min_by_key(|k| (k.created, k.id.clone()))
        .map(|k| {
            IdpCert::from_der(&k.cert)
                .map_err(|e| SamlKeyError::Certificate(format!("stored SAML key {}", k.id), e))
        })
        .transpose()?;
    Ok(Some(SamlKeys {
        active: active.load()?,
        next,
    }))
}

// The files of earlier versions, one set per node in `<data_dir>/saml-idp/`.
const KEY: &str = "signing-key.pem";
const CERT: &str = "signing-cert.pem";
const NEXT_KEY: &str = "next-key.pem";
const NEXT_CERT: &str = "next-cert.pem";

/// The pairs an earlier version kept in `dir`, for importing into the
/// store: the signing pair (activated at `now`) and the next one, each
/// when both of its files are there.
pub fn read_legacy(dir: &Path, now: i64) -> Result<Vec<StoredSamlKey>, SamlKeyError> {
    let mut out = Vec::new();
    for (k, c, signing) in [(KEY, CERT, true), (NEXT_KEY, NEXT_CERT, false)] {
        let (kp, cp) = (dir.join(k), dir.join(c));
        if !kp.exists() || !cp.exists() {
            continue;
        }
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| SamlKeyError::Io(p.display().to_string(), e))
        };
        let (what, key_pem) = (kp.display().to_string(), read(&kp)?);
        let key = SigningKey::from_pem(&key_pem, &read(&cp)?, &what)?;
        let pkcs8 =
            pem_block(&key_pem, "PRIVATE KEY").ok_or_else(|| SamlKeyError::PrivateKey(what))?;
        let mut s = StoredSamlKey::new(pkcs8, key.cert.der, now);
        s.activated = signing.then_some(now);
        out.push(s);
    }
    Ok(out)
}

/// What [`ensure`] did, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ensured {
    /// Pairs imported from an earlier version's files.
    pub imported: usize,
    /// Pairs generated.
    pub generated: usize,
    /// Files found whose pairs the store does not have, because another
    /// node had filled it first.
    pub legacy_unused: bool,
}

/// Loads the keys from the store, filling what is missing: when the store
/// has no SAML key at all, the pairs of `legacy` (an earlier version's
/// directory) are imported, so an upgraded node keeps its certificate;
/// then a signing pair and a next pair are generated if still missing.
/// Nodes doing this together on an empty store keep the first one's keys:
/// the store drops a key whose role is already filled, and every node reads
/// the store's keys back.
pub fn ensure(
    store: &dyn IdpStore,
    legacy: Option<&Path>,
    cn: &str,
    now: SystemTime,
) -> Result<(SamlKeys, Ensured), SamlKeyError> {
    let mut did = Ensured::default();
    let keys = store.saml_keys()?;
    if let Some(k) = from_stored(&keys)?
        && keys.iter().any(StoredSamlKey::next)
    {
        // Files of this node that the store does not have: another node
        // filled it first. Unreadable files are not an error then, as they
        // are not used.
        if let Some(dir) = legacy
            && let Ok(files) = read_legacy(dir, epoch(now))
        {
            did.legacy_unused = files.iter().any(|f| keys.iter().all(|k| k.cert != f.cert));
        }
        return Ok((k, did));
    }
    let mut add = Vec::new();
    if keys.is_empty()
        && let Some(dir) = legacy
    {
        add = read_legacy(dir, epoch(now))?;
        did.imported = add.len();
    }
    let has = |f: fn(&StoredSamlKey) -> bool| keys.iter().chain(&add).any(f);
    let (signing, next) = (has(StoredSamlKey::signing), has(StoredSamlKey::next));
    if !signing {
        let mut k = StoredSamlKey::generate(cn, now)?;
        k.activated = Some(epoch(now));
        add.push(k);
        did.generated += 1;
    }
    if !next {
        add.push(StoredSamlKey::generate(cn, now)?);
        did.generated += 1;
    }
    store.add_saml_keys(&add)?;
    let keys = store.saml_keys()?;
    if did.imported > 0 {
        let kept = |a: &StoredSamlKey| keys.iter().any(|k| k.id == a.id);
        did.legacy_unused = !add.iter().take(did.imported).all(kept);
    }
    let k = from_stored(&keys)?.ok_or(SamlKeyError::Generate)?;
    Ok((k, did))
}

/// The rollover: the published next pair starts signing (the signing one
/// is retired and no longer published; keys retired before it are
/// deleted) and a new next pair is made and published. Consoles should
/// have been given the next certificate (it is in metadata) before this
/// runs. Returns the new signing certificate.
pub fn rotate(
    store: &dyn IdpStore,
    legacy: Option<&Path>,
    cn: &str,
    now: SystemTime,
) -> Result<IdpCert, SamlKeyError> {
    // The next pair must exist, and have been published, before it signs.
    ensure(store, legacy, cn, now)?;
    let fresh = StoredSamlKey::generate(cn, now)?;
    store
        .rotate_saml(epoch(now), &fresh)?
        .ok_or(SamlKeyError::NoNext)?;
    let (k, _) = ensure(store, None, cn, now)?;
    Ok(k.active.cert)
}

pub fn pem(label: &str, der: &[u8]) -> String {
    let b = STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

fn pem_block(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    crate::saml::xml::b64(&text[start..stop])
}

// DER, just enough for one self-signed certificate.

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

const OID_SHA256_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B];
const OID_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const NULL: &[u8] = &[0x05, 0x00];

/// UTCTime before 2050, GeneralizedTime from then on (RFC 5280 4.1.2.5).
fn der_time(t: SystemTime) -> Vec<u8> {
    let s = crate::saml::time::format(t); // 2026-01-01T00:00:00Z
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    let year: u32 = digits[..4].parse().unwrap_or(2000);
    if year < 2050 {
        tlv(0x17, format!("{}Z", &digits[2..]).as_bytes())
    } else {
        tlv(0x18, format!("{digits}Z").as_bytes())
    }
}

fn self_signed(pair: &RsaKeyPair, cn: &str, now: SystemTime) -> Result<Vec<u8>, SamlKeyError> {
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| SamlKeyError::Generate)?;
    serial[0] &= 0x7F;
    serial[0] |= 0x40;
    let alg = seq(&[&tlv(0x06, OID_SHA256_RSA), NULL]);
    let name = seq(&[&tlv(
        0x31,
        &seq(&[&tlv(0x06, OID_CN), &tlv(0x0C, cn.as_bytes())]),
    )]);
    let day = Duration::from_secs(86_400);
    let validity = seq(&[
        &der_time(now.checked_sub(day).unwrap_or(UNIX_EPOCH)),
        &der_time(now + day * 3650),
    ]);
    let mut bits = vec![0u8];
    bits.extend_from_slice(pair.public_key().as_ref());
    let spki = seq(&[&seq(&[&tlv(0x06, OID_RSA), NULL]), &tlv(0x03, &bits)]);
    let tbs = seq(&[
        &tlv(0xA0, &tlv(0x02, &[2])),
        &tlv(0x02, &serial),
        &alg,
        &name,
        &validity,
        &name,
        &spki,
    ]);
    let mut sig = vec![0u8; pair.public_modulus_len()];
    pair.sign(
        &signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        &tbs,
        &mut sig,
    )
    .map_err(|_| SamlKeyError::Generate)?;
    let mut sig_bits = vec![0u8];
    sig_bits.extend_from_slice(&sig);
    Ok(seq(&[&tbs, &alg, &tlv(0x03, &sig_bits)]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saml::keys::SigAlg;

    #[test]
    fn a_generated_certificate_parses_and_verifies_its_own_key() {
        let now = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let (k, pkcs8) = SigningKey::generate("portcullis test", now).unwrap();
        assert!(
            k.cert.subject.contains("portcullis test"),
            "{}",
            k.cert.subject
        );
        assert!(k.cert.not_after > now + Duration::from_secs(86_400 * 3000));
        let sig = k.sign(b"hello");
        assert!(k.cert.verify(SigAlg::RsaSha256, b"hello", &sig));
        assert!(!k.cert.verify(SigAlg::RsaSha256, b"hellO", &sig));
        let again = SigningKey::from_pem(
            &pem("PRIVATE KEY", &pkcs8),
            &pem("CERTIFICATE", &k.cert.der),
            "t",
        )
        .unwrap();
        assert_eq!(again.cert, k.cert);
        let (other, _) = SigningKey::generate("x", now).unwrap();
        assert!(matches!(
            SigningKey::from_pem(
                &pem("PRIVATE KEY", &pkcs8),
                &pem("CERTIFICATE", &other.cert.der),
                "t"
            ),
            Err(SamlKeyError::Mismatch(_))
        ));
    }

    use crate::idp::SqliteIdpStore;

    fn store() -> (tempfile::TempDir, SqliteIdpStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteIdpStore::open(dir.path()).unwrap();
        (dir, s)
    }

    #[test]
    fn first_start_publishes_a_next_certificate_that_rotation_makes_the_signer() {
        let (dir, s) = store();
        let now = SystemTime::now();
        let (first, did) = ensure(&s, None, "p", now).unwrap();
        assert_eq!((did.generated, did.imported), (2, 0));
        let next = first.next.clone().unwrap();
        assert_ne!(next, first.active.cert);
        assert_eq!(first.published().count(), 2);
        // A restart (the store reopened) keeps both and makes nothing.
        drop(s);
        let s = SqliteIdpStore::open(dir.path()).unwrap();
        let (again, did) = ensure(&s, None, "p", now).unwrap();
        assert_eq!(did, Ensured::default());
        assert_eq!(again.active.cert, first.active.cert);
        assert_eq!(again.next.as_ref(), Some(&next));
        let signer = rotate(&s, None, "p", now).unwrap();
        assert_eq!(signer, next, "the published next certificate signs now");
        let (after, _) = ensure(&s, None, "p", now).unwrap();
        assert_eq!(after.active.cert, next);
        assert!(after.next.is_some() && after.next.as_ref() != Some(&next));
        let sig = after.active.sign(b"m");
        assert!(next.verify(SigAlg::RsaSha256, b"m", &sig));
        // A second rotation: the first key's row (retired twice over) is gone.
        rotate(&s, None, "p", now).unwrap();
        let rows = s.saml_keys().unwrap();
        assert_eq!(rows.len(), 3, "signing, next, and the one just retired");
        assert!(rows.iter().all(|k| k.cert != first.active.cert.der));
    }

    #[test]
    fn a_filled_role_drops_a_second_key_so_racing_nodes_keep_the_first() {
        let (dir, a) = store();
        let b = SqliteIdpStore::open(dir.path()).unwrap();
        let now = SystemTime::now();
        let (ka, _) = ensure(&a, None, "p", now).unwrap();
        // B, which read an empty store before A wrote, adds its own pair.
        let mut mine = StoredSamlKey::generate("p", now).unwrap();
        mine.activated = Some(epoch(now));
        b.add_saml_keys(&[mine, StoredSamlKey::generate("p", now).unwrap()])
            .unwrap();
        let (kb, _) = ensure(&b, None, "p", now).unwrap();
        assert_eq!(kb.active.cert, ka.active.cert);
        assert_eq!(kb.next, ka.next);
        assert_eq!(b.saml_keys().unwrap().len(), 2);
    }

    fn write_legacy(dir: &Path, now: SystemTime) -> (IdpCert, IdpCert) {
        std::fs::create_dir_all(dir).unwrap();
        let mut certs = Vec::new();
        for (k, c) in [(KEY, CERT), (NEXT_KEY, NEXT_CERT)] {
            let (key, pkcs8) = SigningKey::generate(GENERATED_CN, now).unwrap();
            std::fs::write(dir.join(k), pem("PRIVATE KEY", &pkcs8)).unwrap();
            std::fs::write(dir.join(c), pem("CERTIFICATE", &key.cert.der)).unwrap();
            certs.push(key.cert);
        }
        let next = certs.pop().unwrap();
        (certs.pop().unwrap(), next)
    }

    #[test]
    fn an_upgraded_node_imports_its_key_files_and_keeps_its_certificates() {
        let (dir, s) = store();
        let legacy = dir.path().join("saml-idp");
        let now = SystemTime::now();
        let (signing, next) = write_legacy(&legacy, now);
        let (k, did) = ensure(&s, Some(&legacy), "p", now).unwrap();
        assert_eq!((did.imported, did.generated), (2, 0));
        assert!(!did.legacy_unused);
        assert_eq!(k.active.cert, signing, "the consoles' certificate signs on");
        assert_eq!(k.next.as_ref(), Some(&next));
        let sig = k.active.sign(b"m");
        assert!(signing.verify(SigAlg::RsaSha256, b"m", &sig));
        // Once the store has keys the files are not read again.
        std::fs::write(legacy.join(KEY), "garbage").unwrap();
        let (again, did) = ensure(&s, Some(&legacy), "p", now).unwrap();
        assert_eq!(did, Ensured::default());
        assert_eq!(again.active.cert, signing);
        assert_eq!(rotate(&s, Some(&legacy), "p", now).unwrap(), next);
    }

    #[test]
    fn files_only_a_signing_pair_are_imported_with_a_new_next_pair() {
        let (dir, s) = store();
        let legacy = dir.path().join("saml-idp");
        let now = SystemTime::now();
        let (signing, _) = write_legacy(&legacy, now);
        std::fs::remove_file(legacy.join(NEXT_KEY)).unwrap();
        let (k, did) = ensure(&s, Some(&legacy), "p", now).unwrap();
        assert_eq!((did.imported, did.generated), (1, 1));
        assert_eq!(k.active.cert, signing);
        assert!(k.next.is_some());
    }

    #[test]
    fn files_found_after_another_node_filled_the_store_are_reported_unused() {
        let (dir, s) = store();
        let (theirs, _) = ensure(&s, None, "p", SystemTime::now()).unwrap();
        // The store has keys: nothing is imported, and the files are
        // reported unused.
        let legacy = dir.path().join("saml-idp");
        write_legacy(&legacy, SystemTime::now());
        let (k, did) = ensure(&s, Some(&legacy), "p", SystemTime::now()).unwrap();
        assert_eq!((did.imported, did.generated), (0, 0));
        assert!(did.legacy_unused);
        assert_eq!(k.active.cert, theirs.active.cert);
        // On an empty store filled by another node between our read and our
        // write, the import is dropped and reported.
        let (dir2, s2) = store();
        let other = SqliteIdpStore::open(dir2.path()).unwrap();
        let legacy2 = dir2.path().join("saml-idp");
        write_legacy(&legacy2, SystemTime::now());
        let racing = Racing {
            inner: s2,
            first: other,
            raced: std::sync::atomic::AtomicBool::new(false),
        };
        let (k, did) = ensure(&racing, Some(&legacy2), "p", SystemTime::now()).unwrap();
        assert!(did.legacy_unused);
        let (winner, _) = ensure(&racing.first, None, "p", SystemTime::now()).unwrap();
        assert_eq!(k.active.cert, winner.active.cert);
    }

    #[test]
    fn unreadable_key_files_are_an_error_naming_the_file_not_a_new_key() {
        let (dir, s) = store();
        let legacy = dir.path().join("saml-idp");
        write_legacy(&legacy, SystemTime::now());
        std::fs::write(legacy.join(KEY), "not a key").unwrap();
        let e = ensure(&s, Some(&legacy), "p", SystemTime::now()).unwrap_err();
        assert!(e.to_string().contains("signing-key.pem"), "{e}");
        assert!(s.saml_keys().unwrap().is_empty());
    }

    #[test]
    fn a_stored_key_never_shows_its_private_half() {
        let k = StoredSamlKey::generate("p", SystemTime::now()).unwrap();
        let shown = format!("{k:?}");
        assert!(shown.contains("redacted"), "{shown}");
        assert!(!shown.contains(&format!("{:?}", &k.pkcs8.expose()[..16])));
    }

    /// A store whose first read of SAML keys is followed by another node
    /// filling it.
    #[derive(Debug)]
    struct Racing {
        inner: SqliteIdpStore,
        first: SqliteIdpStore,
        raced: std::sync::atomic::AtomicBool,
    }

    impl Racing {
        fn race(&self) {
            if !self.raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
                ensure(&self.first, None, "p", SystemTime::now()).unwrap();
            }
        }
    }

    use crate::idp::store::{
        AccessRecord, CodeRecord, CodeTake, Family, IdpStore, RefreshTake, StoreError,
    };
    use crate::idp::{KeyAlg, StoredKey};

    impl IdpStore for Racing {
        fn saml_keys(&self) -> Result<Vec<StoredSamlKey>, StoreError> {
            let k = self.inner.saml_keys();
            self.race();
            k
        }
        fn add_saml_keys(&self, keys: &[StoredSamlKey]) -> Result<(), StoreError> {
            self.inner.add_saml_keys(keys)
        }
        fn rotate_saml(&self, now: i64, f: &StoredSamlKey) -> Result<Option<String>, StoreError> {
            self.inner.rotate_saml(now, f)
        }
        fn keys(&self) -> Result<Vec<StoredKey>, StoreError> {
            self.inner.keys()
        }
        fn add_key(&self, k: &StoredKey) -> Result<(), StoreError> {
            self.inner.add_key(k)
        }
        fn rotate(&self, a: KeyAlg, n: i64, f: &StoredKey) -> Result<Option<String>, StoreError> {
            self.inner.rotate(a, n, f)
        }
        fn put_code(&self, c: &CodeRecord) -> Result<(), StoreError> {
            self.inner.put_code(c)
        }
        fn take_code(&self, h: &[u8; 32]) -> Result<CodeTake, StoreError> {
            self.inner.take_code(h)
        }
        fn new_family(
            &self,
            f: &Family,
            c: &[u8; 32],
            t: &[u8; 32],
            e: i64,
        ) -> Result<(), StoreError> {
            self.inner.new_family(f, c, t, e)
        }
        fn rotate_refresh(
            &self,
            o: &[u8; 32],
            n: &[u8; 32],
            now: i64,
            e: i64,
        ) -> Result<RefreshTake, StoreError> {
            self.inner.rotate_refresh(o, n, now, e)
        }
        fn revoke_refresh(&self, t: &[u8; 32], c: &str) -> Result<bool, StoreError> {
            self.inner.revoke_refresh(t, c)
        }
        fn revoke_family(&self, id: &str) -> Result<(), StoreError> {
            self.inner.revoke_family(id)
        }
        fn family_live(&self, id: &str) -> Result<bool, StoreError> {
            self.inner.family_live(id)
        }
        fn put_access(&self, h: &[u8; 32], t: &AccessRecord) -> Result<(), StoreError> {
            self.inner.put_access(h, t)
        }
        fn get_access(&self, h: &[u8; 32], n: i64) -> Result<Option<AccessRecord>, StoreError> {
            self.inner.get_access(h, n)
        }
        fn revoke_access(&self, h: &[u8; 32], c: &str) -> Result<bool, StoreError> {
            self.inner.revoke_access(h, c)
        }
        fn prune(&self, now: i64) -> Result<(), StoreError> {
            self.inner.prune(now)
        }
    }
}

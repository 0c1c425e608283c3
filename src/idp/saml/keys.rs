//! The IdP's signing key and certificate: RSA 2048 with a self-signed
//! X.509 certificate made at first start in the data directory (or a
//! configured pair), and the next pair published in metadata before it
//! signs, so consoles can be given the new certificate ahead of a rollover.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::saml::IdpCert;

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

const KEY: &str = "signing-key.pem";
const CERT: &str = "signing-cert.pem";
const NEXT_KEY: &str = "next-key.pem";
const NEXT_CERT: &str = "next-cert.pem";

/// The generated pair in `dir` (made 0700), generating what is missing: the
/// signing pair at first start, and always a next pair.
pub fn load_or_generate(dir: &Path, cn: &str, now: SystemTime) -> Result<SamlKeys, SamlKeyError> {
    // Two first requests at once must not both write a pair.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let io = |what: &Path| {
        let w = what.display().to_string();
        move |e| SamlKeyError::Io(w, e)
    };
    crate::datadir::private_dir(dir).map_err(io(dir))?;
    for (k, c) in [(KEY, CERT), (NEXT_KEY, NEXT_CERT)] {
        if !dir.join(k).exists() || !dir.join(c).exists() {
            let (key, pkcs8) = SigningKey::generate(cn, now)?;
            write_private(&dir.join(k), &pem("PRIVATE KEY", &pkcs8)).map_err(io(&dir.join(k)))?;
            write_private(&dir.join(c), &pem("CERTIFICATE", &key.cert.der))
                .map_err(io(&dir.join(c)))?;
        }
    }
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).map_err(io(&dir.join(f)));
    let active = SigningKey::from_pem(
        &read(KEY)?,
        &read(CERT)?,
        &dir.join(KEY).display().to_string(),
    )?;
    let next = IdpCert::from_pem(&read(NEXT_CERT)?)
        .map_err(|e| SamlKeyError::Certificate(NEXT_CERT.into(), e))?
        .into_iter()
        .next();
    Ok(SamlKeys { active, next })
}

/// The rollover: the published next pair starts signing and a new next
/// pair is made. Consoles should have been given the next certificate
/// (it is in metadata) before this runs. Returns the new signing
/// certificate's subject.
pub fn rotate(dir: &Path, cn: &str, now: SystemTime) -> Result<IdpCert, SamlKeyError> {
    load_or_generate(dir, cn, now)?;
    let io = |what: &Path| {
        let w = what.display().to_string();
        move |e| SamlKeyError::Io(w, e)
    };
    for (from, to) in [(NEXT_KEY, KEY), (NEXT_CERT, CERT)] {
        std::fs::rename(dir.join(from), dir.join(to)).map_err(io(&dir.join(to)))?;
    }
    Ok(load_or_generate(dir, cn, now)?.active.cert)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    // Written beside and renamed, so a crash never leaves half a key.
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
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

    #[test]
    fn first_start_publishes_a_next_certificate_that_rotation_makes_the_signer() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("saml-idp");
        let now = SystemTime::now();
        let first = load_or_generate(&d, "p", now).unwrap();
        let next = first.next.clone().unwrap();
        assert_ne!(next, first.active.cert);
        assert_eq!(first.published().count(), 2);
        // A restart keeps both.
        let again = load_or_generate(&d, "p", now).unwrap();
        assert_eq!(again.active.cert, first.active.cert);
        assert_eq!(again.next.as_ref(), Some(&next));
        let signer = rotate(&d, "p", now).unwrap();
        assert_eq!(signer, next, "the published next certificate signs now");
        let after = load_or_generate(&d, "p", now).unwrap();
        assert_eq!(after.active.cert, next);
        assert!(after.next.is_some() && after.next.as_ref() != Some(&next));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(d.join(KEY)).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "private key readable by others: {mode:o}");
    }
}

//! Key material for SAML: the IdP's signing certificates (from PEM files or
//! metadata) reduced to what verification needs, and the SP's own private
//! key for signing AuthnRequests and decrypting assertions.

use std::fmt;
use std::time::SystemTime;

use aws_lc_rs::rsa::{OaepAlgorithm, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use aws_lc_rs::signature::{self, KeyPair as _, RsaKeyPair};
use x509_cert::der::Decode as _;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("no PEM block `{0}` found")]
    NoPem(&'static str),
    #[error("bad base64 in the certificate")]
    Base64,
    #[error("not an X.509 certificate: {0}")]
    Certificate(String),
    #[error("unsupported public key (RSA, ECDSA P-256 and P-384 are supported)")]
    KeyType,
    #[error(
        "not an unencrypted PKCS#8 RSA private key (convert with `openssl pkcs8 -topk8 -nocrypt`)"
    )]
    PrivateKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    P256,
    P384,
}

/// A certificate the IdP signs with. Only its public key is used; chain and
/// validity are not checked at login (SAML trusts the configured key, and
/// IdPs routinely sign with self-signed, even expired, certificates), but
/// `idp test` warns about expiry.
#[derive(Clone, PartialEq, Eq)]
pub struct IdpCert {
    pub kind: KeyKind,
    /// subjectPublicKey: RSAPublicKey DER, or the uncompressed EC point.
    pub public_key: Vec<u8>,
    pub not_after: SystemTime,
    pub subject: String,
    pub der: Vec<u8>,
}

impl fmt::Debug for IdpCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdpCert")
            .field("kind", &self.kind)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const CURVE_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const CURVE_P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];

impl IdpCert {
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| KeyError::Certificate(e.to_string()))?;
        let tbs = cert.tbs_certificate();
        let spki = tbs.subject_public_key_info();
        let oid = spki.algorithm.oid.to_string();
        let kind = if oid == OID_RSA {
            KeyKind::Rsa
        } else if oid == OID_EC {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .map(|p| p.value())
                .unwrap_or_default();
            match curve {
                CURVE_P256 => KeyKind::P256,
                CURVE_P384 => KeyKind::P384,
                _ => return Err(KeyError::KeyType),
            }
        } else {
            return Err(KeyError::KeyType);
        };
        Ok(Self {
            kind,
            public_key: spki.subject_public_key.raw_bytes().to_vec(),
            not_after: std::time::UNIX_EPOCH + tbs.validity().not_after.to_unix_duration(),
            subject: tbs.subject().to_string(),
            der: der.to_vec(),
        })
    }

    /// From metadata's `ds:X509Certificate` text.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        Self::from_der(&super::xml::b64(text).ok_or(KeyError::Base64)?)
    }

    /// Every certificate in a PEM file (several allow a key rollover).
    pub fn from_pem(text: &str) -> Result<Vec<Self>, KeyError> {
        let blocks = pem_blocks(text, "CERTIFICATE")?;
        blocks.iter().map(|d| Self::from_der(d)).collect()
    }

    /// Base64 DER, as metadata carries it.
    pub fn to_base64(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&self.der)
    }

    /// True when `signature` over `msg` verifies with this key under `alg`.
    pub fn verify(&self, alg: SigAlg, msg: &[u8], sig: &[u8]) -> bool {
        let params: &dyn signature::VerificationAlgorithm = match (self.kind, alg) {
            (KeyKind::Rsa, SigAlg::RsaSha1) => {
                &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
            }
            (KeyKind::Rsa, SigAlg::RsaSha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
            (KeyKind::Rsa, SigAlg::RsaSha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
            (KeyKind::Rsa, SigAlg::RsaSha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
            (KeyKind::P256, SigAlg::EcdsaSha256) => &signature::ECDSA_P256_SHA256_FIXED,
            (KeyKind::P384, SigAlg::EcdsaSha384) => &signature::ECDSA_P384_SHA384_FIXED,
            _ => return false,
        };
        signature::UnparsedPublicKey::new(params, &self.public_key)
            .verify(msg, sig)
            .is_ok()
    }
}

/// Signature algorithms by their XML-DSig URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigAlg {
    RsaSha1,
    RsaSha256,
    RsaSha384,
    RsaSha512,
    EcdsaSha256,
    EcdsaSha384,
}

impl SigAlg {
    pub fn from_uri(uri: &str) -> Option<Self> {
        Some(match uri {
            "http://www.w3.org/2000/09/xmldsig#rsa-sha1" => Self::RsaSha1,
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => Self::RsaSha256,
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => Self::RsaSha384,
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => Self::RsaSha512,
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256" => Self::EcdsaSha256,
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384" => Self::EcdsaSha384,
            _ => return None,
        })
    }

    pub const fn is_sha1(self) -> bool {
        matches!(self, Self::RsaSha1)
    }
}

pub const RSA_SHA256_URI: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

/// The SP's key pair: signs AuthnRequests (RSA-SHA256) and decrypts the
/// key of encrypted assertions (RSA-OAEP).
pub struct SpKey {
    signing: RsaKeyPair,
    decrypting: OaepPrivateDecryptingKey,
}

impl fmt::Debug for SpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SpKey(..)")
    }
}

impl SpKey {
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let der = pem_blocks(text, "PRIVATE KEY")
            .map_err(|_| KeyError::PrivateKey)?
            .into_iter()
            .next()
            .ok_or(KeyError::PrivateKey)?;
        let signing = RsaKeyPair::from_pkcs8(&der).map_err(|_| KeyError::PrivateKey)?;
        let decrypting = PrivateDecryptingKey::from_pkcs8(&der)
            .ok()
            .and_then(|k| OaepPrivateDecryptingKey::new(k).ok())
            .ok_or(KeyError::PrivateKey)?;
        Ok(Self {
            signing,
            decrypting,
        })
    }

    pub fn sign_rsa_sha256(&self, msg: &[u8]) -> Vec<u8> {
        let mut sig = vec![0; self.signing.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.signing
            .sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
            .expect("RSA signing with a valid key");
        sig
    }

    /// RSA-OAEP decryption of a wrapped content key.
    pub fn decrypt(&self, alg: &'static OaepAlgorithm, ct: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0; self.decrypting.min_output_size()];
        let n = self.decrypting.decrypt(alg, ct, &mut out, None).ok()?.len();
        out.truncate(n);
        Some(out)
    }

    /// The public key, for checking that a configured certificate matches.
    pub fn public_key(&self) -> &[u8] {
        self.signing.public_key().as_ref()
    }
}

/// The DER bodies of every `-----BEGIN {label}-----` block.
fn pem_blocks(text: &str, label: &'static str) -> Result<Vec<Vec<u8>>, KeyError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&begin) {
        let after = &rest[i + begin.len()..];
        let j = after.find(&end).ok_or(KeyError::NoPem(label))?;
        out.push(super::xml::b64(&after[..j]).ok_or(KeyError::Base64)?);
        rest = &after[j + end.len()..];
    }
    if out.is_empty() {
        return Err(KeyError::NoPem(label));
    }
    Ok(out)
}

//! XML Encryption for `saml:EncryptedAssertion`: the content key is
//! unwrapped with the SP's RSA key (RSA-OAEP only: PKCS#1 v1.5 key transport
//! is a padding oracle and is refused), then the assertion is decrypted with
//! AES-GCM or AES-CBC.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{self, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey};
use aws_lc_rs::rsa::{OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm};
use roxmltree::Node;

use super::keys::SpKey;
use super::refusal::{Reason, Refusal, refuse};
use super::xml::{NS_DS, NS_XENC, NS_XENC11, b64, child, text};

const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";

/// The decrypted assertion's XML text, wrapped in an element that declares
/// the namespaces in scope at the EncryptedAssertion, so a fragment that
/// relies on the envelope's prefixes still parses.
pub fn decrypt(enc: Node<'_, '_>, key: &SpKey) -> Result<String, Refusal> {
    let Some(data) = child(enc, NS_XENC, "EncryptedData") else {
        return refuse(Reason::Encrypted, "no EncryptedData");
    };
    let method = child(data, NS_XENC, "EncryptionMethod")
        .and_then(|m| m.attribute("Algorithm"))
        .unwrap_or("");
    // The wrapped key sits in the data's KeyInfo or, for some IdPs, beside it.
    let ek = child(data, NS_DS, "KeyInfo")
        .and_then(|k| child(k, NS_XENC, "EncryptedKey"))
        .or_else(|| child(enc, NS_XENC, "EncryptedKey"));
    let Some(ek) = ek else {
        return refuse(Reason::Encrypted, "no EncryptedKey");
    };
    let cek = unwrap_key(ek, key)?;
    let Some(ct) = child(data, NS_XENC, "CipherData")
        .and_then(|c| child(c, NS_XENC, "CipherValue"))
        .and_then(|v| b64(&text(v)))
    else {
        return refuse(Reason::Encrypted, "no CipherValue");
    };
    let plain = match method {
        "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => cbc(&cipher::AES_128, 16, &cek, ct)?,
        "http://www.w3.org/2001/04/xmlenc#aes192-cbc" => cbc(&cipher::AES_192, 24, &cek, ct)?,
        "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => cbc(&cipher::AES_256, 32, &cek, ct)?,
        "http://www.w3.org/2009/xmlenc11#aes128-gcm" => gcm(&aead::AES_128_GCM, 16, &cek, ct)?,
        "http://www.w3.org/2009/xmlenc11#aes256-gcm" => gcm(&aead::AES_256_GCM, 32, &cek, ct)?,
        other => return refuse(Reason::Encrypted, format!("data encryption {other:?}")),
    };
    let Ok(plain) = String::from_utf8(plain) else {
        return refuse(Reason::Encrypted, "decrypted assertion is not UTF-8");
    };
    let mut wrapped = String::with_capacity(plain.len() + 512);
    wrapped.push_str("<w");
    for ns in enc.namespaces() {
        let (Some(p), uri) = (ns.name(), ns.uri()) else {
            continue;
        };
        if p == "xml" || uri.contains('"') || uri.contains('<') || uri.contains('&') {
            continue;
        }
        wrapped.push_str(&format!(" xmlns:{p}=\"{uri}\""));
    }
    wrapped.push('>');
    // A decrypted fragment may start with its own XML declaration.
    let body = plain.trim_start();
    let body = if body.starts_with("<?xml") {
        body.find("?>").map_or(body, |i| &body[i + 2..])
    } else {
        body
    };
    wrapped.push_str(body);
    wrapped.push_str("</w>");
    Ok(wrapped)
}

fn unwrap_key(ek: Node<'_, '_>, key: &SpKey) -> Result<Vec<u8>, Refusal> {
    let Some(m) = child(ek, NS_XENC, "EncryptionMethod") else {
        return refuse(Reason::Encrypted, "EncryptedKey has no EncryptionMethod");
    };
    let alg = m.attribute("Algorithm").unwrap_or("");
    let digest = child(m, NS_DS, "DigestMethod")
        .and_then(|d| d.attribute("Algorithm"))
        .unwrap_or(SHA1);
    let oaep: &'static OaepAlgorithm = match alg {
        // mgf1p: MGF1 with SHA-1 always; the digest may be named.
        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p" if digest == SHA1 => &OAEP_SHA1_MGF1SHA1,
        "http://www.w3.org/2009/xmlenc11#rsa-oaep" => {
            let mgf = child(m, NS_XENC11, "MGF")
                .and_then(|g| g.attribute("Algorithm"))
                .unwrap_or("http://www.w3.org/2009/xmlenc11#mgf1sha1");
            match (digest, mgf) {
                (SHA1, "http://www.w3.org/2009/xmlenc11#mgf1sha1") => &OAEP_SHA1_MGF1SHA1,
                (SHA256, "http://www.w3.org/2009/xmlenc11#mgf1sha256") => &OAEP_SHA256_MGF1SHA256,
                _ => {
                    return refuse(
                        Reason::Encrypted,
                        format!("RSA-OAEP with digest {digest:?} and MGF {mgf:?}"),
                    );
                }
            }
        }
        _ => {
            return refuse(
                Reason::Encrypted,
                format!("key transport {alg:?} with digest {digest:?}"),
            );
        }
    };
    let Some(ct) = child(ek, NS_XENC, "CipherData")
        .and_then(|c| child(c, NS_XENC, "CipherValue"))
        .and_then(|v| b64(&text(v)))
    else {
        return refuse(Reason::Encrypted, "EncryptedKey has no CipherValue");
    };
    key.decrypt(oaep, &ct).ok_or_else(|| {
        Refusal::new(
            Reason::Encrypted,
            "content key does not decrypt with our key",
        )
    })
}

fn cbc(
    alg: &'static cipher::Algorithm,
    len: usize,
    cek: &[u8],
    mut ct: Vec<u8>,
) -> Result<Vec<u8>, Refusal> {
    if cek.len() != len || ct.len() < 32 || !ct.len().is_multiple_of(16) {
        return refuse(Reason::Encrypted, "AES-CBC key or ciphertext length");
    }
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&ct[..16]);
    let mut body = ct.split_off(16);
    let key = UnboundCipherKey::new(alg, cek)
        .and_then(PaddedBlockDecryptingKey::cbc_iso10126)
        .map_err(|_| Refusal::new(Reason::Encrypted, "AES-CBC key"))?;
    let n = key
        .decrypt(&mut body, DecryptionContext::Iv128(iv.into()))
        .map_err(|_| Refusal::new(Reason::Encrypted, "AES-CBC decryption failed"))?
        .len();
    body.truncate(n);
    Ok(body)
}

fn gcm(
    alg: &'static aead::Algorithm,
    len: usize,
    cek: &[u8],
    mut ct: Vec<u8>,
) -> Result<Vec<u8>, Refusal> {
    if cek.len() != len || ct.len() < 12 + 16 {
        return refuse(Reason::Encrypted, "AES-GCM key or ciphertext length");
    }
    let mut body = ct.split_off(12);
    let nonce = Nonce::try_assume_unique_for_key(&ct)
        .map_err(|_| Refusal::new(Reason::Encrypted, "AES-GCM nonce"))?;
    let key = UnboundKey::new(alg, cek)
        .map(LessSafeKey::new)
        .map_err(|_| Refusal::new(Reason::Encrypted, "AES-GCM key"))?;
    let n = key
        .open_in_place(nonce, Aad::empty(), &mut body)
        .map_err(|_| Refusal::new(Reason::Encrypted, "AES-GCM authentication failed"))?
        .len();
    body.truncate(n);
    Ok(body)
}

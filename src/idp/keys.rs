//! Signing keys and the JWS compact form. Keys are generated here (RSA
//! 2048 for RS256, P-256 for ES256) and kept as PKCS#8 by the store; a
//! [`KeyRing`] is the set in force: the one that signs, the next one
//! (published before it signs), and retired ones kept until their tokens
//! expire.

use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

use super::settings::KeyAlg;
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key generation failed")]
    Generate,
    #[error("stored key {kid} is unreadable ({alg})")]
    Stored { kid: String, alg: String },
    #[error("signing failed")]
    Sign,
}

/// A key as the store keeps it.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub kid: String,
    pub alg: KeyAlg,
    /// PKCS#8 DER. Never logged.
    pub pkcs8: Secret,
    pub created: i64,
    /// When it started signing; `None`: published as the next key.
    pub activated: Option<i64>,
    /// When it stopped signing; kept in the JWKS a while after.
    pub retired: Option<i64>,
}

impl StoredKey {
    pub fn generate(alg: KeyAlg, now: i64) -> Result<Self, KeyError> {
        let pkcs8 = match alg {
            KeyAlg::Rs256 => {
                let k = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
                k.as_der()
                    .map_err(|_| KeyError::Generate)?
                    .as_ref()
                    .to_vec()
            }
            KeyAlg::Es256 => {
                let k = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| KeyError::Generate)?;
                k.to_pkcs8v1()
                    .map_err(|_| KeyError::Generate)?
                    .as_ref()
                    .to_vec()
            }
        };
        let mut id = [0u8; 12];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| KeyError::Generate)?;
        Ok(Self {
            kid: B64.encode(id),
            alg,
            pkcs8: Secret::new(pkcs8),
            created: now,
            activated: None,
            retired: None,
        })
    }
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A loaded signing key with its public JWK.
pub struct SigningKey {
    pub kid: String,
    pub alg: KeyAlg,
    pair: Pair,
    pub jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({} {})", self.kid, self.alg.as_str())
    }
}

impl SigningKey {
    pub fn load(k: &StoredKey) -> Result<Self, KeyError> {
        let bad = || KeyError::Stored {
            kid: k.kid.clone(),
            alg: k.alg.as_str().into(),
        };
        let (pair, jwk) = match k.alg {
            KeyAlg::Rs256 => {
                let p = RsaKeyPair::from_pkcs8(k.pkcs8.expose()).map_err(|_| bad())?;
                let comps = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(p.public_key());
                let jwk = json!({
                    "kty": "RSA", "use": "sig", "alg": "RS256", "kid": k.kid,
                    "n": B64.encode(strip(&comps.n)), "e": B64.encode(strip(&comps.e)),
                });
                (Pair::Rsa(p), jwk)
            }
            KeyAlg::Es256 => {
                let p = EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    k.pkcs8.expose(),
                )
                .map_err(|_| bad())?;
                // Uncompressed point: 0x04 || x || y.
                let pt = p.public_key().as_ref();
                if pt.len() != 65 {
                    return Err(bad());
                }
                let jwk = json!({
                    "kty": "EC", "use": "sig", "alg": "ES256", "kid": k.kid, "crv": "P-256",
                    "x": B64.encode(&pt[1..33]), "y": B64.encode(&pt[33..]),
                });
                (Pair::Ec(p), jwk)
            }
        };
        Ok(Self {
            kid: k.kid.clone(),
            alg: k.alg,
            pair,
            jwk,
        })
    }

    fn sign_bytes(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Rsa(p) => {
                let mut sig = vec![0u8; p.public_modulus_len()];
                p.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
            Pair::Ec(p) => Ok(p
                .sign(&rng, msg)
                .map_err(|_| KeyError::Sign)?
                .as_ref()
                .to_vec()),
        }
    }

    fn verify_bytes(&self, msg: &[u8], sig: &[u8]) -> bool {
        match &self.pair {
            Pair::Rsa(p) => UnparsedPublicKey::new(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                p.public_key().as_ref(),
            )
            .verify(msg, sig)
            .is_ok(),
            Pair::Ec(p) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, p.public_key().as_ref())
                    .verify(msg, sig)
                    .is_ok()
            }
        }
    }

    /// A compact JWS of `claims`, `typ` in the header (`JWT`, `at+jwt`).
    pub fn sign(&self, typ: &str, claims: &Value) -> Result<String, KeyError> {
        let header = json!({"alg": self.alg.as_str(), "kid": self.kid, "typ": typ});
        let mut out = signing_input(&header, claims);
        let sig = self.sign_bytes(out.as_bytes())?;
        out.push('.');
        out.push_str(&B64.encode(sig));
        Ok(out)
    }
}

fn strip(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[i..]
}

fn signing_input(header: &Value, claims: &Value) -> String {
    let mut s = B64.encode(header.to_string());
    s.push('.');
    s.push_str(&B64.encode(claims.to_string()));
    s
}

/// A compact JWS signed with HMAC under `secret` (JWT mode's HS256/384/512).
pub fn sign_hmac(alg: super::JwtAlg, secret: &Secret, claims: &Value) -> String {
    use aws_lc_rs::hmac;
    let a = match alg {
        super::JwtAlg::Hs384 => hmac::HMAC_SHA384,
        super::JwtAlg::Hs512 => hmac::HMAC_SHA512,
        _ => hmac::HMAC_SHA256,
    };
    let header = json!({"alg": alg.as_str(), "typ": "JWT"});
    let mut out = signing_input(&header, claims);
    let tag = hmac::sign(&hmac::Key::new(a, secret.expose()), out.as_bytes());
    out.push('.');
    out.push_str(&B64.encode(tag.as_ref()));
    out
}

/// The keys in force: one signs, all are published.
#[derive(Debug)]
pub struct KeyRing {
    pub active: Arc<SigningKey>,
    pub published: Vec<Arc<SigningKey>>,
}

impl KeyRing {
    /// From the stored keys: the newest activated, unretired key of any
    /// algorithm signs; the next keys and retired keys younger than `keep`
    /// seconds are published beside it. `None` when no key is active.
    pub fn from_stored(keys: &[StoredKey], now: i64, keep: i64) -> Result<Option<Self>, KeyError> {
        let mut active: Option<(&StoredKey, Arc<SigningKey>)> = None;
        let mut published = Vec::new();
        for k in keys {
            let live = match k.retired {
                Some(r) => r + keep > now,
                None => true,
            };
            if !live {
                continue;
            }
            let s = Arc::new(SigningKey::load(k)?);
            if k.activated.is_some()
                && k.retired.is_none()
                && active
                    .as_ref()
                    .is_none_or(|(a, _)| a.activated < k.activated)
            {
                active = Some((k, s.clone()));
            }
            published.push(s);
        }
        Ok(active.map(|(_, a)| Self {
            active: a,
            published,
        }))
    }

    pub fn jwks(&self) -> Value {
        json!({"keys": self.published.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
    }

    /// The claims of a token we signed with a published key, if its
    /// signature holds (claims are checked by the caller).
    pub fn verify(&self, token: &str) -> Option<Value> {
        let mut parts = token.splitn(3, '.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        let header: Value = serde_json::from_slice(&B64.decode(h).ok()?).ok()?;
        let kid = header["kid"].as_str()?;
        let key = self.published.iter().find(|k| k.kid == kid)?;
        if header["alg"].as_str()? != key.alg.as_str() {
            return None;
        }
        let sig = B64.decode(s).ok()?;
        let msg_len = h.len() + 1 + p.len();
        if !key.verify_bytes(&token.as_bytes()[..msg_len], &sig) {
            return None;
        }
        serde_json::from_slice(&B64.decode(p).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(keys: &[StoredKey], now: i64) -> KeyRing {
        KeyRing::from_stored(keys, now, 3600).unwrap().unwrap()
    }

    #[test]
    fn both_algorithms_sign_what_they_verify_and_publish_a_jwk() {
        for alg in [KeyAlg::Rs256, KeyAlg::Es256] {
            let mut k = StoredKey::generate(alg, 100).unwrap();
            k.activated = Some(100);
            let r = ring(&[k.clone()], 100);
            let t = r.active.sign("JWT", &json!({"sub": "alice"})).unwrap();
            assert_eq!(r.verify(&t).unwrap()["sub"], "alice");
            let mut forged = t.clone();
            forged.replace_range(t.len() - 4.., "AAAA");
            assert!(r.verify(&forged).is_none());
            let jwk: jsonwebtoken::jwk::Jwk =
                serde_json::from_value(r.jwks()["keys"][0].clone()).unwrap();
            let dk = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
            let mut v = jsonwebtoken::Validation::new(match alg {
                KeyAlg::Rs256 => jsonwebtoken::Algorithm::RS256,
                KeyAlg::Es256 => jsonwebtoken::Algorithm::ES256,
            });
            v.required_spec_claims.clear();
            v.validate_exp = false;
            jsonwebtoken::decode::<Value>(&t, &dk, &v).expect("an independent verifier agrees");
        }
    }

    #[test]
    fn rotation_publishes_next_before_it_signs_and_keeps_the_retired_a_while() {
        let mut old = StoredKey::generate(KeyAlg::Es256, 0).unwrap();
        old.activated = Some(0);
        let next = StoredKey::generate(KeyAlg::Es256, 0).unwrap();
        let r = ring(&[old.clone(), next.clone()], 10);
        assert_eq!(r.active.kid, old.kid);
        assert_eq!(r.published.len(), 2, "next is published before it signs");
        // Rotated at 100: next signs, old stays published for `keep`.
        old.retired = Some(100);
        let mut next = next;
        next.activated = Some(100);
        let r = ring(&[old.clone(), next.clone()], 200);
        assert_eq!(r.active.kid, next.kid);
        assert_eq!(r.published.len(), 2);
        let r = ring(&[old, next], 100 + 3600);
        assert_eq!(r.published.len(), 1, "the retired key is gone after keep");
    }
}

//! ID-token verification: a pure function of (token, keys, expectations,
//! now), so every rule is testable with hand-built tokens and a fixed clock.
//!
//! jsonwebtoken is used for the signature primitive only
//! (`jsonwebtoken::crypto::verify`). The header and claims are parsed and
//! checked here because its `decode` reads the wall clock itself (no
//! injectable "now" for skew-edge tests), does not check `iat` or `nonce`,
//! and folds distinct failures into kinds we would have to re-map anyway.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Tokens larger than this are refused before any decoding. Okta ID tokens
/// with a few hundred groups stay well below it.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Why an ID token was refused. [`VerifyError::reason`] is the metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("signature algorithm `{0}` refused")]
    AlgRefused(String),
    #[error("no key in the provider's JWKS matches the token (kid {0:?})")]
    UnknownKid(Option<String>),
    #[error("bad signature")]
    BadSignature,
    #[error("issuer mismatch (got {0:?})")]
    Issuer(String),
    #[error("audience mismatch")]
    Audience,
    #[error("authorized party (azp) mismatch")]
    Azp,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid (nbf)")]
    NotYetValid,
    #[error("token issued in the future (iat)")]
    IssuedInFuture,
    #[error("nonce mismatch")]
    Nonce,
    #[error("required claim `{0}` missing")]
    MissingClaim(String),
    #[error("claim `{0}` has the wrong type")]
    ClaimType(String),
}

impl VerifyError {
    /// A short, fixed label for `portcullis_oidc_token_verification_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::AlgRefused(_) => "alg_refused",
            Self::UnknownKid(_) => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::Issuer(_) => "iss",
            Self::Audience => "aud",
            Self::Azp => "azp",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "iat",
            Self::Nonce => "nonce",
            Self::MissingClaim(_) => "missing_claim",
            Self::ClaimType(_) => "claim_type",
        }
    }
}

/// Who logged in, as the verified ID token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub sub: String,
    pub username: String,
    pub email: Option<String>,
    pub full_name: Option<String>,
    /// `None` when the token has no groups claim at all; sync must then leave
    /// memberships alone (an IdP that stopped sending groups must not strip
    /// everyone's groups). `Some(vec![])` means "in no groups".
    pub groups: Option<Vec<String>>,
}

struct VerifyKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// The usable signing keys of one provider's JWKS. Only RSA (RS256) and
/// P-256 (ES256) public keys are kept; `oct` keys in a JWKS are ignored on
/// purpose, since an HMAC key must never come from a fetched document.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<VerifyKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| (&k.kid, k.alg)))
            .finish()
    }
}

/// Why a JWKS document could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("JWKS: {0}")]
pub struct JwksError(#[source] serde_json::Error);

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<Value>,
}

impl KeySet {
    /// Parses a JWKS document. Keys we cannot use are skipped rather than
    /// failing the set, because IdPs publish encryption keys and algorithms
    /// we do not accept next to the ones we need.
    pub fn from_jwks_json(body: &[u8]) -> Result<Self, JwksError> {
        let raw: RawJwks = serde_json::from_slice(body).map_err(JwksError)?;
        let keys = raw.keys.iter().filter_map(parse_jwk).collect();
        Ok(Self { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Algorithms for which at least one key is present.
    pub fn algorithms(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self.keys.iter().map(|k| alg_name(k.alg)).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

fn alg_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        Algorithm::HS256 => "HS256",
        _ => "other",
    }
}

fn parse_jwk(v: &Value) -> Option<VerifyKey> {
    let o = v.as_object()?;
    let s = |k: &str| o.get(k).and_then(Value::as_str);
    if s("use").is_some_and(|u| u != "sig") {
        return None;
    }
    if let Some(ops) = o.get("key_ops").and_then(Value::as_array)
        && !ops.iter().any(|x| x.as_str() == Some("verify"))
    {
        return None;
    }
    let kid = s("kid").map(str::to_owned);
    let (alg, key) = match s("kty")? {
        "RSA" => {
            if s("alg").is_some_and(|a| a != "RS256") {
                return None;
            }
            (
                Algorithm::RS256,
                DecodingKey::from_rsa_components(s("n")?, s("e")?).ok()?,
            )
        }
        "EC" => {
            if s("crv")? != "P-256" || s("alg").is_some_and(|a| a != "ES256") {
                return None;
            }
            (
                Algorithm::ES256,
                DecodingKey::from_ec_components(s("x")?, s("y")?).ok()?,
            )
        }
        _ => return None,
    };
    Some(VerifyKey { kid, alg, key })
}

/// What the token must say, for one login attempt.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    pub clock_skew_secs: u64,
    /// HS256 is allowed only when this is `Some`, and then with this key only.
    pub hmac_secret: Option<&'a [u8]>,
    pub groups_claim: &'a str,
    pub username_claim: &'a str,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<Value>,
    kid: Option<Value>,
    crit: Option<Value>,
}

/// Verifies a compact-serialised ID token. `now` is Unix seconds.
pub fn verify_id_token(
    token: &str,
    keys: &KeySet,
    want: &Expectations<'_>,
    now: u64,
) -> Result<Login, VerifyError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(VerifyError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(h64), Some(p64), Some(sig64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed(
            "not three parts (JWE is not supported)",
        ));
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(h64)
        .map_err(|_| VerifyError::Malformed("header base64"))?;
    let header: RawHeader =
        serde_json::from_slice(&header_bytes).map_err(|_| VerifyError::Malformed("header json"))?;
    // We understand no JWS extensions, and RFC 7515 says to reject what we
    // do not understand (e.g. `b64: false` would change what is signed).
    if header.crit.is_some() {
        return Err(VerifyError::Malformed("crit header"));
    }
    let alg = match header.alg {
        Some(Value::String(a)) => a,
        Some(_) => return Err(VerifyError::Malformed("alg type")),
        None => return Err(VerifyError::AlgRefused("(missing)".into())),
    };
    let kid = match header.kid {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k),
        Some(_) => return Err(VerifyError::Malformed("kid type")),
    };
    let message = &token.as_bytes()[..h64.len() + 1 + p64.len()];

    match (alg.as_str(), want.hmac_secret) {
        ("HS256", Some(secret)) => {
            let key = DecodingKey::from_secret(secret);
            check_sig(sig64, message, &key, Algorithm::HS256)?;
        }
        ("RS256", _) | ("ES256", _) => {
            let a = if alg == "RS256" {
                Algorithm::RS256
            } else {
                Algorithm::ES256
            };
            // Keys are filtered by algorithm as well as kid, so a kid naming
            // an RSA key cannot be used to check an ES256 signature.
            let candidates: Vec<&VerifyKey> = keys
                .keys
                .iter()
                .filter(|k| k.alg == a && (kid.is_none() || k.kid == kid))
                .collect();
            if candidates.is_empty() {
                return Err(VerifyError::UnknownKid(kid));
            }
            // Without a kid any of the issuer's keys of that type may have
            // signed it (OIDC requires a kid only when it is ambiguous).
            if !candidates
                .iter()
                .any(|k| check_sig(sig64, message, &k.key, a).is_ok())
            {
                return Err(VerifyError::BadSignature);
            }
        }
        // `none`, HS256 without a configured shared secret (the classic
        // "HMAC keyed with the RSA public key" forgery), and everything else.
        _ => return Err(VerifyError::AlgRefused(truncate(&alg, 16))),
    }

    let payload = URL_SAFE_NO_PAD
        .decode(p64)
        .map_err(|_| VerifyError::Malformed("payload base64"))?;
    check_claims(&payload, want, now)
}

fn check_sig(
    sig64: &str,
    message: &[u8],
    key: &DecodingKey,
    alg: Algorithm,
) -> Result<(), VerifyError> {
    match jsonwebtoken::crypto::verify(sig64, message, key, alg) {
        Ok(true) => Ok(()),
        _ => Err(VerifyError::BadSignature),
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn get_str<'a>(c: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, VerifyError> {
    match c.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(VerifyError::ClaimType(name.to_string())),
    }
}

fn get_time(c: &Map<String, Value>, name: &str) -> Result<Option<f64>, VerifyError> {
    match c.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() => Ok(Some(f)),
            _ => Err(VerifyError::ClaimType(name.to_string())),
        },
        Some(_) => Err(VerifyError::ClaimType(name.to_string())),
    }
}

fn required<T>(v: Option<T>, name: &str) -> Result<T, VerifyError> {
    v.ok_or_else(|| VerifyError::MissingClaim(name.to_string()))
}

/// The claim checks of OIDC Core 3.1.3.7 (steps 2-4, 9, 10, 11), on the
/// already signature-checked payload.
pub fn check_claims(
    payload: &[u8],
    want: &Expectations<'_>,
    now: u64,
) -> Result<Login, VerifyError> {
    let c: Map<String, Value> =
        serde_json::from_slice(payload).map_err(|_| VerifyError::Malformed("claims json"))?;

    let iss = required(get_str(&c, "iss")?, "iss")?;
    if iss != want.issuer {
        return Err(VerifyError::Issuer(truncate(iss, 200)));
    }

    let auds: Vec<&str> = match c.get("aud") {
        None | Some(Value::Null) => return Err(VerifyError::MissingClaim("aud".into())),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| VerifyError::ClaimType("aud".into()))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(VerifyError::ClaimType("aud".into())),
    };
    if !auds.contains(&want.audience) {
        return Err(VerifyError::Audience);
    }
    let azp = get_str(&c, "azp")?;
    // Several audiences mean the token was also meant for someone else; only
    // accept it if it names us as the party it was issued to.
    if auds.len() > 1 && azp.is_none() {
        return Err(VerifyError::Azp);
    }
    if azp.is_some_and(|a| a != want.client_id) {
        return Err(VerifyError::Azp);
    }

    let now = now as f64;
    let skew = want.clock_skew_secs as f64;
    let exp = required(get_time(&c, "exp")?, "exp")?;
    if now >= exp + skew {
        return Err(VerifyError::Expired);
    }
    if let Some(nbf) = get_time(&c, "nbf")?
        && nbf > now + skew
    {
        return Err(VerifyError::NotYetValid);
    }
    let iat = required(get_time(&c, "iat")?, "iat")?;
    if iat > now + skew {
        return Err(VerifyError::IssuedInFuture);
    }

    let nonce = required(get_str(&c, "nonce")?, "nonce")?;
    if nonce != want.nonce {
        return Err(VerifyError::Nonce);
    }

    let sub = required(get_str(&c, "sub")?, "sub")?;
    if sub.is_empty() {
        return Err(VerifyError::MissingClaim("sub".into()));
    }
    // The account is keyed by (provider, sub); the username is what people
    // see and type, so fall back to sub rather than refusing the login.
    let username = get_str(&c, want.username_claim)?
        .filter(|u| !u.is_empty())
        .unwrap_or(sub);
    let email = get_str(&c, "email")?.map(str::to_owned);
    let full_name = match get_str(&c, "name")? {
        Some(n) => Some(n.to_owned()),
        None => {
            let given = get_str(&c, "given_name")?;
            let family = get_str(&c, "family_name")?;
            match (given, family) {
                (Some(g), Some(f)) => Some(format!("{g} {f}")),
                (Some(x), None) | (None, Some(x)) => Some(x.to_owned()),
                (None, None) => None,
            }
        }
    };
    let groups = match c.get(want.groups_claim) {
        None | Some(Value::Null) => None,
        // Some IdPs send a lone group as a string rather than a list.
        Some(Value::String(s)) => Some(vec![s.clone()]),
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| VerifyError::ClaimType(want.groups_claim.to_string()))
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err(VerifyError::ClaimType(want.groups_claim.to_string())),
    };

    Ok(Login {
        sub: sub.to_owned(),
        username: username.to_owned(),
        email,
        full_name,
        groups,
    })
}

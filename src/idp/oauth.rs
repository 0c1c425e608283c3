//! The OAuth 2.0 / OpenID Connect rules, without I/O: authorize and token
//! request parameters (hostile input: parsed here, fuzzed), client
//! authentication, PKCE, and the claims a console receives.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::settings::{ConsoleSettings, Mode, UsernameFrom};

/// Why a request was refused: a closed set, so it can label a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    UnknownClient,
    WrongSecret,
    BadRedirectUri,
    CodeReused,
    CodeOtherClient,
    WrongPkce,
    PkceRequired,
    CodeExpired,
    UnsupportedResponseType,
    UnsupportedGrantType,
    InvalidScope,
    AccessDenied,
    /// At the token endpoint: the table refuses the person now (disabled,
    /// no role, gone upstream).
    UserRefused,
    LoginMethod,
    RefreshReplayed,
    InvalidGrant,
    InvalidRequest,
    InvalidToken,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Self::UnknownClient => "unknown_client",
            Self::WrongSecret => "wrong_secret",
            Self::BadRedirectUri => "unregistered_redirect_uri",
            Self::CodeReused => "code_reused",
            Self::CodeOtherClient => "code_other_client",
            Self::WrongPkce => "wrong_pkce_verifier",
            Self::PkceRequired => "pkce_required",
            Self::CodeExpired => "code_expired",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "scope_not_allowed",
            Self::AccessDenied => "access_denied",
            Self::UserRefused => "user_refused",
            Self::LoginMethod => "login_method_not_allowed",
            Self::RefreshReplayed => "refresh_replayed",
            Self::InvalidGrant => "invalid_grant",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidToken => "invalid_token",
        }
    }

    /// The RFC 6749 `error` code a client sees.
    pub fn error(self) -> &'static str {
        match self {
            Self::UnknownClient | Self::WrongSecret => "invalid_client",
            Self::CodeReused
            | Self::CodeOtherClient
            | Self::WrongPkce
            | Self::CodeExpired
            | Self::RefreshReplayed
            | Self::UserRefused
            | Self::InvalidGrant => "invalid_grant",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied | Self::LoginMethod => "access_denied",
            Self::InvalidToken => "invalid_token",
            Self::BadRedirectUri | Self::PkceRequired | Self::InvalidRequest => "invalid_request",
        }
    }
}

/// Request parameters, each at most once (RFC 6749 3.1, 3.2).
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

/// Bounds what one request may make us hold.
const MAX_PARAMS: usize = 32;
const MAX_VALUE: usize = 4096;

impl Params {
    /// Parses `application/x-www-form-urlencoded` bytes (a query string or
    /// a form body). `None`: a parameter repeated, too many, or too long.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        let mut m = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(raw) {
            if m.len() >= MAX_PARAMS || v.len() > MAX_VALUE || k.len() > 64 {
                return None;
            }
            // An empty value counts as absent (RFC 6749 3.1).
            if v.is_empty() {
                continue;
            }
            if m.insert(k.into_owned(), v.into_owned()).is_some() {
                return None;
            }
        }
        Some(Self(m))
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
}

/// A validated authorization request.
#[derive(Debug, Clone)]
pub struct Authorize {
    pub console: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub challenge: Option<String>,
}

/// A refused authorization request.
#[derive(Debug, Clone)]
pub enum AuthorizeError {
    /// Shown at portcullis; nothing is sent to any URI from the request.
    Page {
        console: Option<String>,
        reason: Reason,
    },
    /// Sent back to the (registered) redirect URI.
    Redirect {
        console: String,
        reason: Reason,
        redirect_uri: String,
        state: Option<String>,
    },
}

impl AuthorizeError {
    pub fn reason(&self) -> Reason {
        match self {
            Self::Page { reason, .. } | Self::Redirect { reason, .. } => *reason,
        }
    }
}

/// Checks an authorization request against the registry. Until the client
/// and the redirect URI are known good, errors are pages, never redirects.
pub fn authorize(
    consoles: &[ConsoleSettings],
    p: Option<&Params>,
) -> Result<Authorize, AuthorizeError> {
    let page = |console: Option<&ConsoleSettings>, reason| AuthorizeError::Page {
        console: console.map(|c| c.name.clone()),
        reason,
    };
    let Some(p) = p else {
        return Err(page(None, Reason::InvalidRequest));
    };
    let Some(c) = p.get("client_id").and_then(|id| {
        consoles
            .iter()
            .find(|c| c.client_id == id && c.mode == Mode::OAuth)
    }) else {
        return Err(page(None, Reason::UnknownClient));
    };
    let redirect_uri = match p.get("redirect_uri") {
        Some(r) if c.redirect_uris.iter().any(|u| u == r) => r.to_string(),
        Some(_) => return Err(page(Some(c), Reason::BadRedirectUri)),
        // OpenID Connect requires it; so do we, so that the URI a code is
        // bound to is always the one the client named.
        None => return Err(page(Some(c), Reason::BadRedirectUri)),
    };
    let state = p.get("state").map(str::to_string);
    let back = |reason| AuthorizeError::Redirect {
        console: c.name.clone(),
        reason,
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
    };
    if p.get("response_type") != Some("code") {
        return Err(back(Reason::UnsupportedResponseType));
    }
    let scope: Vec<String> = p
        .get("scope")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if !scope.iter().any(|s| s == "openid") || scope.iter().any(|s| !c.scopes.contains(s)) {
        return Err(back(Reason::InvalidScope));
    }
    let challenge = match (p.get("code_challenge"), p.get("code_challenge_method")) {
        (None, None) => None,
        (Some(ch), Some("S256")) if pkce_shape(ch) => Some(ch.to_string()),
        _ => return Err(back(Reason::InvalidRequest)),
    };
    if challenge.is_none() && c.is_public() {
        return Err(back(Reason::PkceRequired));
    }
    Ok(Authorize {
        console: c.name.clone(),
        client_id: c.client_id.clone(),
        redirect_uri,
        scope,
        state,
        nonce: p.get("nonce").map(str::to_string),
        challenge,
    })
}

/// RFC 7636 4.1/4.2: 43 to 128 characters of `[A-Za-z0-9-._~]`.
fn pkce_shape(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `verifier` answers the S256 `challenge` (compared in constant time).
pub fn pkce_ok(challenge: &str, verifier: Option<&str>) -> bool {
    let Some(v) = verifier.filter(|v| pkce_shape(v)) else {
        return false;
    };
    let got = B64.encode(Sha256::digest(v.as_bytes()));
    got.len() == challenge.len()
        && bool::from(subtle::ConstantTimeEq::ct_eq(
            got.as_bytes(),
            challenge.as_bytes(),
        ))
}

/// The client a token request authenticates as: `client_secret_basic`
/// (the Authorization header) or `client_secret_post` (the form), not both.
/// Errors carry the console's name when the client id is one of ours.
pub fn authenticate<'c>(
    consoles: &'c [ConsoleSettings],
    authorization: Option<&str>,
    p: &Params,
) -> Result<&'c ConsoleSettings, (Option<&'c ConsoleSettings>, Reason)> {
    let (id, secret) = match (authorization, p.get("client_secret")) {
        (Some(h), None) => basic(h).ok_or((None, Reason::InvalidRequest))?,
        (Some(_), Some(_)) => return Err((None, Reason::InvalidRequest)),
        (None, s) => (
            p.get("client_id")
                .ok_or((None, Reason::UnknownClient))?
                .to_string(),
            s.map(str::to_string),
        ),
    };
    if authorization.is_some() && p.get("client_id").is_some_and(|f| f != id) {
        return Err((None, Reason::InvalidRequest));
    }
    let c = consoles
        .iter()
        .find(|c| c.client_id == id && c.mode == Mode::OAuth)
        .ok_or((None, Reason::UnknownClient))?;
    match (&c.client_secret, secret) {
        (Some(want), Some(got)) if want.ct_eq(got.as_bytes()) => Ok(c),
        (Some(_), _) => Err((Some(c), Reason::WrongSecret)),
        // A public client authenticates by its PKCE verifier alone.
        (None, None) => Ok(c),
        (None, Some(_)) => Err((Some(c), Reason::WrongSecret)),
    }
}

/// `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 2.3.1).
fn basic(h: &str) -> Option<(String, Option<String>)> {
    let (scheme, b) = h.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = STANDARD.decode(b.trim()).ok()?;
    let s = std::str::from_utf8(&raw).ok()?;
    let (id, secret) = s.split_once(':')?;
    let dec = |x: &str| {
        url::form_urlencoded::parse(format!("v={x}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((dec(id)?, Some(dec(secret)?)))
}

/// The SHA-256 of a code or refresh token: all the store ever sees.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh random token (256 bits, base64url).
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).expect("system CSPRNG");
    B64.encode(b)
}

/// What the table and the user record say about the person.
#[derive(Debug, Clone)]
pub struct Person {
    pub sub: String,
    pub name: String,
    pub email: Option<String>,
    pub full_name: Option<String>,
    pub rbac_roles: String,
    pub rbac_aag: String,
}

/// The console's own claims: username, roles and access group under the
/// keys it was configured with. Empty values are left out, so the console
/// falls back to its own configuration rather than taking an empty role.
pub fn console_claims(c: &ConsoleSettings, p: &Person, out: &mut serde_json::Map<String, Value>) {
    let username = match c.username_from {
        UsernameFrom::Email => p.email.clone().unwrap_or_else(|| p.name.clone()),
        UsernameFrom::Name => p.name.clone(),
    };
    out.insert(c.username_claim.clone(), username.into());
    if !p.rbac_roles.is_empty() {
        out.insert(c.roles_claim.clone(), p.rbac_roles.clone().into());
    }
    if !p.rbac_aag.is_empty() {
        out.insert(c.aag_claim.clone(), p.rbac_aag.clone().into());
    }
}

/// The claims of an ID token for `c`.
pub struct IdTokenInput<'a> {
    pub issuer: &'a str,
    pub person: &'a Person,
    pub scope: &'a [String],
    pub nonce: Option<&'a str>,
    pub auth_time: i64,
    pub now: i64,
}

pub fn id_token_claims(c: &ConsoleSettings, i: &IdTokenInput<'_>) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("iss".into(), i.issuer.into());
    m.insert("sub".into(), i.person.sub.clone().into());
    m.insert("aud".into(), c.audience.clone().into());
    if c.audience != c.client_id {
        m.insert("azp".into(), c.client_id.clone().into());
    }
    m.insert("iat".into(), i.now.into());
    m.insert("nbf".into(), i.now.into());
    m.insert(
        "exp".into(),
        (i.now + c.id_token_ttl.as_secs() as i64).into(),
    );
    m.insert("auth_time".into(), i.auth_time.into());
    if let Some(n) = i.nonce {
        m.insert("nonce".into(), n.into());
    }
    profile_claims(i.person, i.scope, &mut m);
    console_claims(c, i.person, &mut m);
    Value::Object(m)
}

/// Standard claims by scope (OIDC Core 5.4), for the ID token and userinfo.
pub fn profile_claims(p: &Person, scope: &[String], m: &mut serde_json::Map<String, Value>) {
    if scope.iter().any(|s| s == "email")
        && let Some(e) = &p.email
    {
        m.insert("email".into(), e.clone().into());
        m.insert("email_verified".into(), true.into());
    }
    if scope.iter().any(|s| s == "profile") {
        m.insert("preferred_username".into(), p.name.clone().into());
        if let Some(f) = &p.full_name {
            m.insert("name".into(), f.clone().into());
        }
    }
}

/// The discovery document (OIDC Discovery 1.0 section 3).
pub fn discovery(issuer: &str, scopes: &[String]) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth2/authorize"),
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "userinfo_endpoint": format!("{issuer}/oauth2/userinfo"),
        "jwks_uri": format!("{issuer}/oauth2/jwks"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "end_session_endpoint": format!("{issuer}/oauth2/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": scopes,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
    })
}

/// Fuzz entry: hostile authorize and token requests never panic.
pub fn fuzz_requests(data: &[u8]) {
    let consoles = [fuzz_console()];
    let p = Params::parse(data);
    let _ = authorize(&consoles, p.as_ref());
    if let Some(p) = &p {
        let auth = p.get("authorization");
        let _ = authenticate(&consoles, auth, p);
        if let Some(ch) = p.get("code_challenge") {
            let _ = pkce_ok(ch, p.get("code_verifier"));
        }
    }
}

fn fuzz_console() -> ConsoleSettings {
    use std::time::Duration;
    ConsoleSettings {
        name: "c".into(),
        mode: Mode::OAuth,
        client_id: "c".into(),
        client_secret: Some(crate::secret::Secret::new(b"s".to_vec())),
        redirect_uris: vec!["http://127.0.0.1/cb".into()],
        consume_url: None,
        audience: "c".into(),
        scopes: vec!["openid".into(), "email".into()],
        username_claim: "email".into(),
        username_from: UsernameFrom::Email,
        roles_claim: "ec-roles".into(),
        aag_claim: "ec-aag".into(),
        id_token_ttl: Duration::from_secs(60),
        access_token_ttl: Duration::from_secs(60),
        refresh_token_ttl: Duration::from_secs(600),
        code_ttl: Duration::from_secs(60),
        jwt_alg: super::JwtAlg::Hs256,
        login_methods: None,
        saml: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn consoles() -> Vec<ConsoleSettings> {
        let mut public = fuzz_console();
        public.name = "pub".into();
        public.client_id = "pub".into();
        public.client_secret = None;
        vec![fuzz_console(), public]
    }

    fn q(s: &str) -> Params {
        Params::parse(s.as_bytes()).unwrap()
    }

    const OK: &str = "client_id=c&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&response_type=code&scope=openid+email&state=s1&nonce=n1";

    #[test]
    fn a_good_request_passes_with_state_and_nonce() {
        let a = authorize(&consoles(), Some(&q(OK))).unwrap();
        assert_eq!(a.redirect_uri, "http://127.0.0.1/cb");
        assert_eq!(a.scope, ["openid", "email"]);
        assert_eq!(
            (a.state.as_deref(), a.nonce.as_deref()),
            (Some("s1"), Some("n1"))
        );
    }

    #[test]
    fn client_and_redirect_errors_never_redirect() {
        let c = consoles();
        for (req, reason) in [
            (
                OK.replace("client_id=c", "client_id=x"),
                Reason::UnknownClient,
            ),
            (OK.replace("%2Fcb", "%2Fcb2"), Reason::BadRedirectUri),
            (OK.replace("%2Fcb", "%2Fcb%2F"), Reason::BadRedirectUri),
            (
                OK.replace("127.0.0.1", "127.0.0.1.evil"),
                Reason::BadRedirectUri,
            ),
            (OK.replace("redirect_uri=", "x="), Reason::BadRedirectUri),
        ] {
            match authorize(&c, Some(&q(&req))) {
                Err(AuthorizeError::Page { reason: r, .. }) => assert_eq!(r, reason, "{req}"),
                other => panic!("{req}: {other:?}"),
            }
        }
        // A repeated parameter is not a request at all.
        assert!(Params::parse(format!("{OK}&client_id=c").as_bytes()).is_none());
    }

    #[test]
    fn later_errors_go_back_to_the_registered_uri() {
        let c = consoles();
        for (req, reason) in [
            (
                OK.replace("response_type=code", "response_type=token"),
                Reason::UnsupportedResponseType,
            ),
            (
                OK.replace("openid+email", "openid+admin"),
                Reason::InvalidScope,
            ),
            (OK.replace("openid+email", "email"), Reason::InvalidScope),
            (
                format!("{OK}&code_challenge=abc&code_challenge_method=plain"),
                Reason::InvalidRequest,
            ),
            (
                OK.replace("client_id=c", "client_id=pub"),
                Reason::PkceRequired,
            ),
        ] {
            match authorize(&c, Some(&q(&req))) {
                Err(AuthorizeError::Redirect {
                    reason: r,
                    redirect_uri,
                    state,
                    ..
                }) => {
                    assert_eq!(r, reason, "{req}");
                    assert_eq!(redirect_uri, "http://127.0.0.1/cb");
                    assert_eq!(state.as_deref(), Some("s1"));
                }
                other => panic!("{req}: {other:?}"),
            }
        }
    }

    #[test]
    fn pkce_s256_matches_the_rfc_example() {
        // RFC 7636 appendix B.
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let ch = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_ok(ch, Some(v)));
        assert!(!pkce_ok(
            ch,
            Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK")
        ));
        assert!(!pkce_ok(ch, None));
    }

    #[test]
    fn client_authentication_basic_or_post_never_both() {
        let c = consoles();
        let basic = format!("Basic {}", STANDARD.encode("c:s"));
        assert_eq!(
            authenticate(&c, Some(&basic), &q("grant_type=x"))
                .unwrap()
                .name,
            "c"
        );
        assert_eq!(
            authenticate(&c, None, &q("client_id=c&client_secret=s"))
                .unwrap()
                .name,
            "c"
        );
        let wrong = authenticate(&c, None, &q("client_id=c&client_secret=t")).unwrap_err();
        assert_eq!(wrong.1, Reason::WrongSecret);
        assert_eq!(wrong.0.unwrap().name, "c");
        assert_eq!(
            authenticate(&c, None, &q("client_id=zz&client_secret=s"))
                .unwrap_err()
                .1,
            Reason::UnknownClient
        );
        assert_eq!(
            authenticate(&c, Some(&basic), &q("client_secret=s"))
                .unwrap_err()
                .1,
            Reason::InvalidRequest
        );
        let _ = Secret::new(b"x".to_vec());
    }

    #[test]
    fn console_claims_use_the_configured_keys_and_omit_empty_values() {
        let mut c = fuzz_console();
        c.roles_claim = "roles".into();
        let p = Person {
            sub: "alice".into(),
            name: "alice".into(),
            email: Some("alice@example.net".into()),
            full_name: None,
            rbac_roles: "OverlayAdmin".into(),
            rbac_aag: String::new(),
        };
        let mut m = serde_json::Map::new();
        console_claims(&c, &p, &mut m);
        assert_eq!(
            Value::Object(m),
            json!({"email": "alice@example.net", "roles": "OverlayAdmin"})
        );
    }

    #[test]
    fn hostile_requests_do_not_panic() {
        for raw in [
            &b""[..],
            b"&&&==&=",
            b"client_id=c&client_id=c",
            b"authorization=Basic%20%FF%FE&client_id=c",
            b"authorization=Basic%20Og%3D%3D",
            b"authorization=basic&code_challenge=%00&code_verifier=%00",
            b"client_id=c&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&response_type=code&scope=%20%20openid%20&code_challenge=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa&code_challenge_method=S256",
            b"\xff\xfe%ZZ%",
        ] {
            fuzz_requests(raw);
        }
        let long = format!("state={}", "a".repeat(MAX_VALUE + 1));
        assert!(Params::parse(long.as_bytes()).is_none());
        let many: String = (0..=MAX_PARAMS).map(|i| format!("k{i}=v&")).collect();
        assert!(Params::parse(many.as_bytes()).is_none());
    }
}

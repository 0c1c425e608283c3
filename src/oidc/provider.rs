//! One configured OpenID Provider: discovery, the JWKS cache, and the
//! authorization code flow with PKCE, state and nonce.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::Url;
use serde::Deserialize;

use super::metrics::OidcMetrics;
use super::settings::{ClientAuth, ProviderSettings};
use super::verify::{Expectations, JwksError, KeySet, Login, VerifyError, verify_id_token};

/// Discovery documents and JWKS larger than this are refused: they come
/// from the network and are parsed in memory.
const MAX_DOC_LEN: usize = 1024 * 1024;
/// Discovery is re-read after this long so endpoint moves are picked up
/// without a restart.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// Why a login (or a step of it) failed. [`LoginError::reason`] is the
/// metric label.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("discovery: {0}")]
    Discovery(#[from] DiscoveryError),
    #[error("JWKS: {0}")]
    Jwks(#[from] JwksLoadError),
    #[error("state does not match the pending login")]
    State,
    #[error("the login took too long; start again")]
    LoginTimeout,
    #[error("token endpoint: {0}")]
    TokenEndpoint(#[from] TokenEndpointError),
    #[error("ID token refused: {0}")]
    Token(#[from] VerifyError),
    #[error("HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

impl LoginError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Discovery(_) => "discovery",
            Self::Jwks(_) => "jwks",
            Self::State => "state",
            Self::LoginTimeout => "login_timeout",
            Self::TokenEndpoint(_) => "token_endpoint",
            Self::Token(e) => e.reason(),
            Self::Client(_) => "client",
        }
    }
}

/// Why a document could not be fetched from the provider, or a response
/// body not read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request could not be sent or got no answer. The text is the
    /// whole cause chain (see [`describe`]).
    #[error("{}", describe(.0))]
    Request(#[source] reqwest::Error),
    #[error("GET {url}: HTTP {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    /// The body is larger than `MAX_DOC_LEN`.
    #[error("response too large")]
    TooLarge,
    /// The body broke off while being read.
    #[error("{0}")]
    Body(#[source] reqwest::Error),
}

/// Why the discovery document could not be had.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("discovery document: {0}")]
    Parse(#[source] serde_json::Error),
}

/// Why an endpoint named in the discovery document cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("`{field}` missing")]
    Missing { field: &'static str },
    #[error("`{field}` is not a URL: {source}")]
    NotUrl {
        field: &'static str,
        #[source]
        source: url::ParseError,
    },
    /// Not https, and not http to loopback either.
    #[error("`{field}` must be https: {url}")]
    NotHttps { field: &'static str, url: String },
}

/// Why discovery failed: the document, or what it says.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// OIDC Discovery 4.3: the document is for another issuer.
    #[error("issuer in discovery document is {found:?}, configured {configured:?}")]
    Issuer { found: String, configured: String },
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("token endpoint supports neither client_secret_basic nor _post")]
    ClientAuth,
}

/// Why the provider's signing keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum JwksLoadError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Parse(#[from] JwksError),
}

/// Why the token endpoint gave us no ID token.
#[derive(Debug, thiserror::Error)]
pub enum TokenEndpointError {
    /// Sending the request or reading the answer failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// An error answer; `detail` is the OAuth `error` and (the start of) its
    /// `error_description`, when the body has them.
    #[error("HTTP {status} {detail}")]
    Status {
        status: reqwest::StatusCode,
        detail: String,
    },
    #[error("token response: {0}")]
    Parse(#[source] serde_json::Error),
    #[error("no id_token in the token response (is `openid` in scopes?)")]
    NoIdToken,
}

/// What the provider's discovery document says (the fields we use or check).
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub jwks_uri: Option<String>,
    pub response_types_supported: Option<Vec<String>>,
    pub id_token_signing_alg_values_supported: Option<Vec<String>>,
    pub code_challenge_methods_supported: Option<Vec<String>>,
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    pub scopes_supported: Option<Vec<String>>,
    pub claims_supported: Option<Vec<String>>,
}

impl Metadata {
    /// client_secret_basic unless the provider advertises only _post. An
    /// absent list means basic (OIDC Discovery's default).
    pub fn client_auth(&self) -> Option<ClientAuth> {
        match &self.token_endpoint_auth_methods_supported {
            None => Some(ClientAuth::Basic),
            Some(m) if m.iter().any(|x| x == "client_secret_basic") => Some(ClientAuth::Basic),
            Some(m) if m.iter().any(|x| x == "client_secret_post") => Some(ClientAuth::Post),
            Some(_) => None,
        }
    }
}

/// The validated endpoints.
#[derive(Debug)]
struct Endpoints {
    authorization: Url,
    token: Url,
    jwks: Url,
    client_auth: ClientAuth,
}

/// http is allowed only to loopback (tests, a local IdP); anything else must
/// be https so codes, secrets and keys are not exposed on the wire.
pub(crate) fn endpoint_url(field: &'static str, v: Option<&str>) -> Result<Url, EndpointError> {
    let v = v.ok_or(EndpointError::Missing { field })?;
    let u = Url::parse(v).map_err(|source| EndpointError::NotUrl { field, source })?;
    let loopback = match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match u.scheme() {
        "https" => Ok(u),
        "http" if loopback => Ok(u),
        _ => Err(EndpointError::NotHttps {
            field,
            url: v.to_string(),
        }),
    }
}

pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, LoginError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        // The IdP's documents and token endpoint answer directly; following a
        // redirect could send the client secret somewhere else.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(LoginError::Client)
}

/// Adds the client credentials to a token request.
pub(crate) fn authenticate<'a>(
    req: reqwest::RequestBuilder,
    form: &mut Vec<(&'a str, &'a str)>,
    s: &'a ProviderSettings,
    auth: ClientAuth,
) -> reqwest::RequestBuilder {
    match auth {
        ClientAuth::Basic => {
            // RFC 6749 2.3.1: id and secret are form-urlencoded before being
            // joined; reqwest's basic_auth does not do that.
            let enc =
                |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
            let cred = STANDARD.encode(format!(
                "{}:{}",
                enc(&s.client_id),
                enc(s.client_secret.expose())
            ));
            req.header("authorization", format!("Basic {cred}"))
        }
        ClientAuth::Post => {
            form.push(("client_id", &s.client_id));
            form.push(("client_secret", s.client_secret.expose()));
            req
        }
    }
}

pub(crate) fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Reads a body of at most `MAX_DOC_LEN` bytes.
pub(crate) async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, FetchError> {
    if resp
        .content_length()
        .is_some_and(|l| l > MAX_DOC_LEN as u64)
    {
        return Err(FetchError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(FetchError::Body)? {
        if body.len() + chunk.len() > MAX_DOC_LEN {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub(crate) async fn get_doc(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, FetchError> {
    let resp = http.get(url).send().await.map_err(FetchError::Request)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(FetchError::Status {
            url: url.to_string(),
            status,
        });
    }
    read_limited(resp).await
}

/// reqwest's Display stops at "error sending request"; the cause (refused,
/// timed out) is what an operator needs.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

pub(crate) async fn fetch_metadata(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<Metadata, MetadataError> {
    let body = get_doc(http, &discovery_url(issuer)).await?;
    serde_json::from_slice(&body).map_err(MetadataError::Parse)
}

/// A PKCE code verifier; secret until the token request, so not in Debug.
#[derive(Clone, PartialEq, Eq)]
pub struct PkceVerifier(String);

impl PkceVerifier {
    /// A verifier kept in the shared store while its login is pending.
    pub fn from_stored(v: String) -> Self {
        Self(v)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PkceVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PkceVerifier(<redacted>)")
    }
}

/// A started login, kept server-side (keyed by `state`) until the browser
/// comes back to the redirect URI.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: PkceVerifier,
    pub created: Instant,
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    // The system CSPRNG failing is unrecoverable and means no login could
    // ever be safe; aws-lc aborts in that case rather than returning Err.
    aws_lc_rs::rand::fill(&mut b).expect("system CSPRNG");
    URL_SAFE_NO_PAD.encode(b)
}

pub(crate) fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ))
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenErrorResponse {
    error: Option<String>,
    error_description: Option<String>,
}

pub struct Provider {
    settings: ProviderSettings,
    http: reqwest::Client,
    endpoints: tokio::sync::Mutex<Option<(Arc<Endpoints>, Instant)>>,
    keys: RwLock<Arc<KeySet>>,
    /// Held while fetching the JWKS, so concurrent logins with an unknown
    /// kid cause one fetch; holds the time of the last fetch.
    jwks_fetch: tokio::sync::Mutex<Option<Instant>>,
    metrics: Option<OidcMetrics>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// No network I/O happens here; discovery and the JWKS are fetched on
    /// first use, so a provider that is down does not stop the server.
    pub fn new(
        settings: ProviderSettings,
        metrics: Option<OidcMetrics>,
    ) -> Result<Self, LoginError> {
        let http = http_client(settings.http_timeout)?;
        Ok(Self {
            settings,
            http,
            endpoints: tokio::sync::Mutex::new(None),
            keys: RwLock::new(Arc::new(KeySet::default())),
            jwks_fetch: tokio::sync::Mutex::new(None),
            metrics,
        })
    }

    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    async fn endpoints(&self) -> Result<Arc<Endpoints>, LoginError> {
        let mut slot = self.endpoints.lock().await;
        if let Some((e, at)) = slot.as_ref()
            && at.elapsed() < METADATA_TTL
        {
            return Ok(e.clone());
        }
        let md = match fetch_metadata(&self.http, &self.settings.issuer).await {
            Ok(md) => md,
            // A periodic refresh that fails must not break logins while the
            // endpoints we already know still work.
            Err(e) => match slot.as_ref() {
                Some((stale, _)) => {
                    tracing::warn!(provider = %self.settings.name, error = %e, "discovery refresh failed; using the cached endpoints");
                    return Ok(stale.clone());
                }
                None => return Err(DiscoveryError::Metadata(e).into()),
            },
        };
        // OIDC Discovery 4.3: the document must be for the issuer we asked
        // about, or tokens from a different issuer could be accepted.
        if md.issuer != self.settings.issuer {
            return Err(DiscoveryError::Issuer {
                found: md.issuer,
                configured: self.settings.issuer.clone(),
            }
            .into());
        }
        let endpoint = |field, v: &Option<String>| {
            endpoint_url(field, v.as_deref()).map_err(DiscoveryError::Endpoint)
        };
        let e = Arc::new(Endpoints {
            authorization: endpoint("authorization_endpoint", &md.authorization_endpoint)?,
            token: endpoint("token_endpoint", &md.token_endpoint)?,
            jwks: endpoint("jwks_uri", &md.jwks_uri)?,
            client_auth: self
                .settings
                .client_auth
                .or_else(|| md.client_auth())
                .ok_or(DiscoveryError::ClientAuth)?,
        });
        *slot = Some((e.clone(), Instant::now()));
        Ok(e)
    }

    /// Starts a login: the URL to send the browser to, and what to keep
    /// until it comes back.
    pub async fn begin(&self) -> Result<(Url, PendingLogin), LoginError> {
        let ep = self.endpoints().await?;
        let pending = PendingLogin {
            state: random_token(),
            nonce: random_token(),
            pkce_verifier: PkceVerifier(random_token()),
            created: Instant::now(),
        };
        let mut url = ep.authorization.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", &self.settings.redirect_uri)
            .append_pair("scope", &self.settings.scopes.join(" "))
            .append_pair("state", &pending.state)
            .append_pair("nonce", &pending.nonce)
            .append_pair(
                "code_challenge",
                &pkce_challenge(pending.pkce_verifier.expose()),
            )
            .append_pair("code_challenge_method", "S256");
        Ok((url, pending))
    }

    /// Finishes a login from the redirect's `code` and `state`, and counts
    /// the outcome.
    pub async fn complete(
        &self,
        code: &str,
        state: &str,
        pending: &PendingLogin,
    ) -> Result<Login, LoginError> {
        let r = self.complete_inner(code, state, pending).await;
        if let Some(m) = &self.metrics {
            match &r {
                Ok(_) => m.login(&self.settings.name, "success"),
                Err(e) => {
                    // The result label is the fixed reason, so an operator can
                    // tell a broken IdP (discovery) from bad tokens.
                    m.login(&self.settings.name, e.reason());
                    if let LoginError::Token(v) = e {
                        m.verify_failure(&self.settings.name, v.reason());
                    }
                }
            }
        }
        match &r {
            Ok(l) => tracing::info!(provider = %self.settings.name, sub = %l.sub, "oidc login"),
            Err(e) => {
                tracing::warn!(provider = %self.settings.name, reason = e.reason(), error = %e, "oidc login failed")
            }
        }
        r
    }

    async fn complete_inner(
        &self,
        code: &str,
        state: &str,
        pending: &PendingLogin,
    ) -> Result<Login, LoginError> {
        if !ct_eq(state, &pending.state) {
            return Err(LoginError::State);
        }
        if pending.created.elapsed() > self.settings.login_timeout {
            return Err(LoginError::LoginTimeout);
        }
        let ep = self.endpoints().await?;
        let id_token = self.exchange_code(&ep, code, pending).await?;
        self.verify(&ep, &id_token, &pending.nonce).await
    }

    async fn exchange_code(
        &self,
        ep: &Endpoints,
        code: &str,
        pending: &PendingLogin,
    ) -> Result<String, LoginError> {
        let s = &self.settings;
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &s.redirect_uri),
            ("code_verifier", pending.pkce_verifier.expose()),
        ];
        let req = self
            .http
            .post(ep.token.clone())
            .header("accept", "application/json");
        let req = authenticate(req, &mut form, s, ep.client_auth);
        let resp = req
            .form(&form)
            .send()
            .await
            .map_err(|e| TokenEndpointError::Fetch(FetchError::Request(e)))?;
        let status = resp.status();
        let body = read_limited(resp)
            .await
            .map_err(TokenEndpointError::Fetch)?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<TokenErrorResponse>(&body)
                .ok()
                .map(|e| {
                    let mut d = e.error.unwrap_or_default();
                    if let Some(x) = e.error_description {
                        d.push_str(": ");
                        d.extend(x.chars().take(200));
                    }
                    d
                })
                .unwrap_or_default();
            return Err(TokenEndpointError::Status { status, detail }.into());
        }
        let tr: TokenResponse = serde_json::from_slice(&body).map_err(TokenEndpointError::Parse)?;
        Ok(tr.id_token.ok_or(TokenEndpointError::NoIdToken)?)
    }

    fn expectations<'a>(&'a self, nonce: &'a str) -> Expectations<'a> {
        let s = &self.settings;
        Expectations {
            issuer: &s.issuer,
            audience: s.expected_audience(),
            client_id: &s.client_id,
            nonce,
            clock_skew_secs: s.clock_skew.as_secs(),
            hmac_secret: s.hmac_secret.as_ref().map(|h| h.expose().as_bytes()),
            groups_claim: &s.groups_claim,
            username_claim: &s.username_claim,
        }
    }

    async fn verify(
        &self,
        ep: &Endpoints,
        id_token: &str,
        nonce: &str,
    ) -> Result<Login, LoginError> {
        let want = self.expectations(nonce);
        let keys = self.current_keys();
        match verify_id_token(id_token, &keys, &want, unix_now()) {
            Err(VerifyError::UnknownKid(kid)) => match self.refetch_keys(ep, &keys).await? {
                Some(fresh) => Ok(verify_id_token(id_token, &fresh, &want, unix_now())?),
                None => Err(VerifyError::UnknownKid(kid).into()),
            },
            r => Ok(r?),
        }
    }

    fn current_keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Fetches the JWKS again because a token named a key we do not have
    /// (key rotation). Returns `None` when the last fetch is too recent, so
    /// forged kids cannot turn us into a load generator against the IdP.
    async fn refetch_keys(
        &self,
        ep: &Endpoints,
        seen: &Arc<KeySet>,
    ) -> Result<Option<Arc<KeySet>>, LoginError> {
        let mut last = self.jwks_fetch.lock().await;
        let cur = self.current_keys();
        if !Arc::ptr_eq(&cur, seen) {
            // Another login refreshed the set while we waited for the lock.
            return Ok(Some(cur));
        }
        if last.is_some_and(|t| t.elapsed() < self.settings.jwks_min_refetch) {
            return Ok(None);
        }
        *last = Some(Instant::now());
        let body = get_doc(&self.http, ep.jwks.as_str())
            .await
            .map_err(JwksLoadError::Fetch)?;
        let set = Arc::new(KeySet::from_jwks_json(&body).map_err(JwksLoadError::Parse)?);
        tracing::debug!(provider = %self.settings.name, keys = ?set, "JWKS fetched");
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = set.clone();
        Ok(Some(set))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn endpoint_scheme_rules() {
        assert!(endpoint_url("x", Some("https://idp.example.com/t")).is_ok());
        assert!(endpoint_url("x", Some("http://127.0.0.1:8080/t")).is_ok());
        assert!(endpoint_url("x", Some("http://[::1]:8080/t")).is_ok());
        assert!(endpoint_url("x", Some("http://idp.example.com/t")).is_err());
        assert!(endpoint_url("x", None).is_err());
    }

    #[test]
    fn error_texts() {
        let err = |v| endpoint_url("jwks_uri", v).unwrap_err().to_string();
        assert_eq!(err(None), "`jwks_uri` missing");
        assert_eq!(
            err(Some("not a url")),
            "`jwks_uri` is not a URL: relative URL without a base"
        );
        assert_eq!(
            err(Some("http://idp.example.com/k")),
            "`jwks_uri` must be https: http://idp.example.com/k"
        );
        let e = LoginError::from(DiscoveryError::Issuer {
            found: "https://a".into(),
            configured: "https://b".into(),
        });
        assert_eq!(
            e.to_string(),
            r#"discovery: issuer in discovery document is "https://a", configured "https://b""#
        );
        assert_eq!(e.reason(), "discovery");
        let e = LoginError::from(JwksLoadError::from(
            KeySet::from_jwks_json(b"{}").unwrap_err(),
        ));
        assert_eq!(
            e.to_string(),
            "JWKS: JWKS: missing field `keys` at line 1 column 2"
        );
        assert_eq!(e.reason(), "jwks");
        let e = LoginError::from(JwksLoadError::from(FetchError::Status {
            url: "https://i/k".into(),
            status: reqwest::StatusCode::NOT_FOUND,
        }));
        assert_eq!(e.to_string(), "JWKS: GET https://i/k: HTTP 404 Not Found");
        let e = LoginError::from(TokenEndpointError::Status {
            status: reqwest::StatusCode::BAD_REQUEST,
            detail: "invalid_grant: nope".into(),
        });
        assert_eq!(
            e.to_string(),
            "token endpoint: HTTP 400 Bad Request invalid_grant: nope"
        );
        assert_eq!(e.reason(), "token_endpoint");
    }

    #[test]
    fn client_auth_choice() {
        let mut md: Metadata = serde_json::from_str(r#"{"issuer":"https://i"}"#).unwrap();
        assert_eq!(md.client_auth(), Some(ClientAuth::Basic));
        md.token_endpoint_auth_methods_supported = Some(vec!["client_secret_post".into()]);
        assert_eq!(md.client_auth(), Some(ClientAuth::Post));
        md.token_endpoint_auth_methods_supported = Some(vec!["private_key_jwt".into()]);
        assert_eq!(md.client_auth(), None);
    }

    #[test]
    fn pending_debug_hides_verifier() {
        let p = PendingLogin {
            state: "s".into(),
            nonce: "n".into(),
            pkce_verifier: PkceVerifier("very-secret-verifier".into()),
            created: Instant::now(),
        };
        assert!(!format!("{p:?}").contains("very-secret-verifier"));
    }
}

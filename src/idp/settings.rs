//! The console registry as the config layer hands it over (validated):
//! one entry per appliance web console, in the mode the console is set to.
//! A `saml` mode (issue 17) adds a variant to [`Mode`] and its own fields.

use std::time::Duration;

use crate::secret::Secret;

/// How a console takes its logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// OAuth 2.0 / OpenID Connect: authorization code grant, ID token.
    OAuth,
    /// The JWT provider: tokens delivered to the console's consuming URL.
    Jwt,
    /// SAML 2.0: portcullis is the console's IdP (`idp::saml`).
    Saml,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OAuth => "oauth",
            Self::Jwt => "jwt",
            Self::Saml => "saml",
        }
    }
}

/// How a JWT-mode console's tokens are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlg {
    /// HMAC with the console's secret.
    Hs256,
    Hs384,
    Hs512,
    /// Our signing key, published at the JWKS URL.
    Rs256,
}

impl JwtAlg {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "HS256" => Some(Self::Hs256),
            "HS384" => Some(Self::Hs384),
            "HS512" => Some(Self::Hs512),
            "RS256" => Some(Self::Rs256),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Hs384 => "HS384",
            Self::Hs512 => "HS512",
            Self::Rs256 => "RS256",
        }
    }
}

/// Which signing key the provider generates and signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    Rs256,
    Es256,
}

impl KeyAlg {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }
}

/// A way a person may log in before a console gets a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginMethod {
    /// The local username/password form.
    Local,
    /// The named `[[oidc]]` provider.
    Oidc(String),
    /// The named `[[saml]]` provider.
    Saml(String),
}

impl LoginMethod {
    pub fn parse(s: &str) -> Option<Self> {
        match s.split_once(':') {
            None if s == "local" => Some(Self::Local),
            Some(("oidc", n)) if !n.is_empty() => Some(Self::Oidc(n.to_string())),
            Some(("saml", n)) if !n.is_empty() => Some(Self::Saml(n.to_string())),
            _ => None,
        }
    }
}

/// Where the person's username claim value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsernameFrom {
    /// The email address (the name when there is none).
    Email,
    /// The user name.
    Name,
}

pub const DEFAULT_ROLES_CLAIM: &str = "ec-roles";
pub const DEFAULT_AAG_CLAIM: &str = "ec-aag";
pub const DEFAULT_USERNAME_CLAIM: &str = "email";
pub const DEFAULT_SCOPES: &[&str] = &["openid", "offline_access", "email", "profile"];

/// One `[[console]]` entry, validated.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    pub name: String,
    pub mode: Mode,
    /// OAuth client id (JWT mode: the name, unless set).
    pub client_id: String,
    /// `None`: a public client, which must use PKCE (OAuth mode only).
    pub client_secret: Option<Secret>,
    /// OAuth mode: the exact redirect URIs (no prefix or pattern match).
    pub redirect_uris: Vec<String>,
    /// JWT mode: the console's "JWT token consuming URL".
    pub consume_url: Option<String>,
    /// The tokens' `aud` (default: the client id).
    pub audience: String,
    /// Scopes the console may ask for.
    pub scopes: Vec<String>,
    pub username_claim: String,
    pub username_from: UsernameFrom,
    pub roles_claim: String,
    pub aag_claim: String,
    pub id_token_ttl: Duration,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub code_ttl: Duration,
    /// JWT mode only.
    pub jwt_alg: JwtAlg,
    /// `None`: every login method the server offers.
    pub login_methods: Option<Vec<LoginMethod>>,
    /// SAML mode only.
    pub saml: Option<std::sync::Arc<super::saml::SamlConsole>>,
}

impl ConsoleSettings {
    /// Whether a login through `method` may lead to a token for this console.
    pub fn allows(&self, method: &LoginMethod) -> bool {
        self.login_methods
            .as_ref()
            .is_none_or(|m| m.contains(method))
    }

    pub fn is_public(&self) -> bool {
        self.client_secret.is_none()
    }
}

/// `[idp]`: the provider side as a whole.
#[derive(Debug, Clone)]
pub struct IdpSettings {
    /// The `iss` of every token; `None`: `web.public_url`, else the URL the
    /// request came to (development only: set one in production).
    pub issuer: Option<String>,
    pub signing_alg: KeyAlg,
    /// The SAML IdP side.
    pub saml: super::saml::settings::SamlIdpSettings,
}

impl Default for IdpSettings {
    fn default() -> Self {
        Self {
            issuer: None,
            signing_alg: KeyAlg::Rs256,
            saml: Default::default(),
        }
    }
}

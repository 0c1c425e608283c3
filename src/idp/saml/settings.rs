//! A `saml`-mode console's settings as the config layer hands them over
//! (validated): where its Responses go, what it is sent and how it is
//! checked. The attribute names are the console's `username_claim`,
//! `roles_claim` and `aag_claim` (defaults `ec-name`, `ec-roles`, `ec-aag`).

use std::time::Duration;

use crate::saml::IdpCert;

pub const NAMEID_UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";
pub const NAMEID_EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
pub const NAMEID_PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
pub const NAMEID_TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";

/// The username attribute's default name in `saml` mode.
pub const DEFAULT_NAME_ATTRIBUTE: &str = "ec-name";

/// Which parts of a successful Response carry a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed {
    Response,
    Assertion,
    Both,
}

impl Signed {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "response" => Some(Self::Response),
            "assertion" => Some(Self::Assertion),
            "both" => Some(Self::Both),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Response => "response",
            Self::Assertion => "assertion",
            Self::Both => "both",
        }
    }

    pub fn response(self) -> bool {
        matches!(self, Self::Response | Self::Both)
    }

    pub fn assertion(self) -> bool {
        matches!(self, Self::Assertion | Self::Both)
    }
}

/// What the NameID carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameIdFrom {
    /// The email address (the user name when there is none).
    Email,
    /// The user name.
    Name,
    /// The stable subject (`alice`, or `provider:subject` for an upstream
    /// login), as the OAuth `sub`.
    Subject,
    /// A fresh random value per assertion (the transient format).
    Random,
}

impl NameIdFrom {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(Self::Email),
            "name" => Some(Self::Name),
            "subject" => Some(Self::Subject),
            _ => None,
        }
    }
}

/// A NameID format by its short name or its URN.
pub fn name_id_format(s: &str) -> Option<&'static str> {
    Some(match s {
        "unspecified" | NAMEID_UNSPECIFIED => NAMEID_UNSPECIFIED,
        "emailAddress" | "email" | NAMEID_EMAIL => NAMEID_EMAIL,
        "persistent" | NAMEID_PERSISTENT => NAMEID_PERSISTENT,
        "transient" | NAMEID_TRANSIENT => NAMEID_TRANSIENT,
        _ => return None,
    })
}

/// One `saml`-mode console.
#[derive(Debug, Clone)]
pub struct SamlConsole {
    /// The SP entity ID: the `Audience` and the `Issuer` its requests carry.
    pub entity_id: String,
    /// The one place Responses are posted to; a request naming another
    /// AssertionConsumerServiceURL is refused.
    pub acs_url: String,
    /// The console's SLO endpoint (where portcullis starts a logout).
    pub slo_url: Option<String>,
    /// The console's signing certificates: its requests' signatures are
    /// checked with these.
    pub certs: Vec<IdpCert>,
    /// Refuse AuthnRequests and LogoutRequests without a valid signature.
    pub require_signed_requests: bool,
    pub name_id_format: &'static str,
    pub name_id_from: NameIdFrom,
    pub signed: Signed,
    /// IdP-initiated login (an unsolicited Response) at
    /// `/saml/idp/init/{name}`.
    pub idp_initiated: bool,
    /// How long an assertion may be presented (`NotOnOrAfter`).
    pub assertion_ttl: Duration,
    /// Where the console's SP metadata came from, when it is a URL.
    pub metadata: Option<MetadataSource>,
}

/// A console's SP metadata URL, as the periodic check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataSource {
    pub url: String,
    /// `sp_metadata_ca_file`'s PEM text.
    pub ca_pem: Option<String>,
    /// How often it is checked for a change; `None`: only on reload.
    pub refresh: Option<Duration>,
    /// The last good copy the configuration was built from.
    pub cache: std::path::PathBuf,
}

/// `[idp]`'s SAML keys: our entity ID, and a configured signing pair (with
/// the next certificate to publish) instead of the generated one.
#[derive(Debug, Clone, Default)]
pub struct SamlIdpSettings {
    /// `None`: the metadata URL.
    pub entity_id: Option<String>,
    pub configured: Option<std::sync::Arc<super::keys::SamlKeys>>,
}

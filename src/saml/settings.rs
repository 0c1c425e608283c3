//! One SAML provider's validated settings.

use std::sync::Arc;
use std::time::Duration;

use super::keys::{IdpCert, SpKey};
use super::metadata::IdpInfo;
use super::response::AttributeNames;

/// Where the IdP's details come from.
#[derive(Debug, Clone)]
pub enum IdpSource {
    /// Fetched at first use and refreshed after `refresh`; the last good
    /// copy is kept when a refresh fails.
    MetadataUrl {
        url: String,
        entity_id: Option<String>,
        refresh: Duration,
    },
    /// From a metadata file, or Okta-style from SSO URL, issuer and
    /// certificate; read when the configuration is loaded.
    Static(Arc<IdpInfo>),
}

#[derive(Debug, Clone)]
pub struct SamlSettings {
    pub name: String,
    pub idp: IdpSource,
    pub sp_entity_id: String,
    pub acs_url: String,
    pub slo_url: String,
    pub sp_key: Option<Arc<SpKey>>,
    pub sp_cert: Option<IdpCert>,
    pub sign_requests: bool,
    pub name_id_format: String,
    pub attributes: AttributeNames,
    pub clock_skew: Duration,
    pub allow_idp_initiated: bool,
    pub allow_sha1: bool,
    /// How long a started login may take at the IdP.
    pub login_timeout: Duration,
    pub http_timeout: Duration,
}

pub const NAMEID_UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";

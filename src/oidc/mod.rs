//! OpenID Connect relying party: portcullis logs web-console users in
//! through the organisation's IdP (Okta and others).
//!
//! - [`settings`]: one provider's validated settings; Okta issuer resolution.
//! - [`provider`]: discovery, JWKS cache, the code flow (PKCE, state, nonce).
//! - [`verify`]: ID-token verification, pure and clock-injected.
//! - [`sync`]: group membership sync for external users.
//! - [`test_idp`]: `portcullis idp test` checks against the live IdP.
//! - [`metrics`]: login and verification-failure counters.

pub mod metrics;
pub mod provider;
pub mod settings;
pub mod sync;
pub mod test_idp;
pub mod verify;

mod fuzz;
#[cfg(test)]
mod verify_tests;

pub use fuzz::fuzz_token;
pub use metrics::OidcMetrics;
pub use provider::{
    DiscoveryError, EndpointError, FetchError, JwksLoadError, LoginError, MetadataError,
    PendingLogin, PkceVerifier, Provider, TokenEndpointError,
};
pub use settings::{ClientAuth, ClientSecret, IssuerSource, ProviderSettings, okta_issuer};
pub use sync::sync_groups;
pub use test_idp::{Check, all_ok, idp_test};
pub use verify::{JwksError, KeySet, Login, VerifyError};

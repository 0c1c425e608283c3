//! SAML 2.0 service provider: portcullis logs web-console users in through
//! the organisation's SAML IdP (Okta, Entra ID, ADFS, Shibboleth) with the
//! same external users, group sync and role table as OIDC.
//!
//! - [`xml`], [`c14n`], [`dsig`]: one DTD-free parser, exclusive c14n,
//!   enveloped-signature verification.
//! - [`response`]: the pure verification of a posted Response.
//! - [`decrypt`]: encrypted assertions (RSA-OAEP, AES-GCM/CBC).
//! - [`keys`], [`time`]: certificates and keys; `xs:dateTime`.

pub mod c14n;
pub mod decrypt;
pub mod dsig;
mod fuzz;
pub mod keys;
pub mod metadata;
pub mod provider;
pub mod refusal;
pub mod request;
pub mod response;
pub mod settings;
pub mod test_idp;
pub mod time;
pub mod xml;

#[cfg(test)]
mod corpus_tests;

pub use fuzz::fuzz_response;
pub use keys::{IdpCert, KeyError, SpKey};
pub use provider::{IdpError, LoginState, MetadataFetchError, SamlProvider};
pub use refusal::{Reason, Refusal};
pub use response::{AttributeNames, Expect, Verified, verify};
pub use settings::SamlSettings;

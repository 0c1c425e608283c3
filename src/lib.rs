//! portcullis: an AAA server. Network appliances ask it over RADIUS and
//! TACACS+; web consoles send their users to its HTTP side. Whichever door a
//! person comes through, one role-mapping table decides what they may do.
//!
//! ```text
//! bytes ─▶ codec ─▶ service ─▶ authn ─▶ policy::decide ─▶ Grant ─▶ profile ─▶ codec ─▶ bytes
//! ```
//!
//! # Layout
//! - [`accounting`]: the durable accounting store (SQLite, group commit).
//! - [`config`]: the TOML schema, one validation pass with file:line:key errors.
//! - [`policy`]: the role-mapping table and `Grant`; no I/O.
//! - [`authn`]: credential checks (argon2 off the runtime, verified-credential cache).
//! - [`profile`]: renders a grant for a kind of appliance.
//! - [`client`]: appliances by source network, with their secrets.
//! - [`server`]: shared state, reload, and the listeners' lifecycle.
//! - [`http`]: `/metrics`, `/healthz`, browser logins, `/api/me`, the admin API.
//! - [`identity`]: external users (IdP logins) and their synced groups.
//! - [`metrics`]: the one Prometheus registry.
//! - [`oidc`]: the OpenID Connect relying party (web login through the IdP).
//! - [`stamp`]: kernel receive timestamps, so latency includes socket queueing.

pub mod accounting;
#[cfg(test)]
mod architecture;
pub mod authn;
pub mod client;
pub mod clock;
pub mod config;
pub mod dict;
pub mod explain;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod oidc;
pub mod policy;
pub mod profile;
pub mod radius;
pub mod saml;
pub mod secret;
pub mod server;
pub mod stamp;
pub mod tacacs;

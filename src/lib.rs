//! portcullis: an AAA server. Network appliances ask it over RADIUS and
//! TACACS+; web consoles send their users to its HTTP side. Whichever door a
//! person comes through, one role-mapping table decides what they may do.
//!
//! ```text
//! bytes ─▶ codec ─▶ service ─▶ authn ─▶ policy::decide ─▶ Grant ─▶ profile ─▶ codec ─▶ bytes
//! ```
//!
//! # Layout
//! The one module map; README's Layout mirrors it.
//! - [`config`]: the TOML schema, one validation pass with file:line:key
//!   errors, and [`config::ConfigHandle`], the configuration in force.
//! - [`dict`]: RADIUS dictionaries (FreeRADIUS format), used by config and
//!   the RADIUS codec.
//! - [`policy`]: the role-mapping table and `Grant`; no I/O.
//! - [`authn`]: credential checks: local users, argon2 off the runtime, the
//!   verified-credential cache, login throttling, CHAP and MS-CHAP, and
//!   LDAP / AD directories in `server.auth_order`.
//! - [`profile`]: renders a grant for a kind of appliance.
//! - [`client`]: appliances by source network, with their secrets.
//! - [`datadir`]: the data directory and databases, private to the server.
//! - [`secret`]: secrets from the file, the environment or a file of their
//!   own; redacted in `Debug`, compared in constant time.
//! - [`radius`]: codec (sans-I/O), service, engine (UDP), duplicate cache,
//!   accounting records.
//! - [`tacacs`]: codec (sans-I/O), service (the authentication
//!   conversation, authorization, accounting), engine (TCP).
//! - [`accounting`]: the durable accounting store (SQLite, group commit)
//!   behind the `AccountingSink` trait; an in-memory sink.
//! - [`identity`]: external users (IdP logins) and their synced groups.
//! - [`idp`]: toward appliance web consoles: the OAuth/OIDC provider, JWT
//!   issuer and SAML 2.0 IdP (keys, codes, refresh families: SQLite, or the
//!   shared PostgreSQL of `[store]`; signed assertions), claims and
//!   attributes from the table.
//! - [`oidc`]: the OpenID Connect relying party (web login through the IdP).
//! - [`saml`]: the SAML 2.0 service provider (web login through the IdP).
//! - [`pending`]: started logins awaiting the browser, bounded per source.
//! - [`http`]: the listener and its limits, `/metrics`, `/healthz`,
//!   browser logins and sessions (CSRF-checked forms), `/api/me`, the admin
//!   API, and the console provider's routes.
//! - [`explain`]: what the table grants a user and why (`portcullis explain`).
//! - [`metrics`]: shared metric pieces (buckets, label types, exposition).
//! - [`clock`]: time and randomness, passed into services.
//! - [`stamp`]: kernel receive timestamps, so latency includes socket queueing.
//! - [`store`]: shared state: `[store]` settings, the PostgreSQL pool and
//!   its versioned schema, store health and the config digest of peers,
//!   and the login throttle's counts shared between nodes.
//! - [`server`]: the one composition root: builds the services, binds,
//!   reloads, stops; only `main.rs` imports it.

pub mod accounting;
#[cfg(test)]
mod architecture;
pub mod authn;
pub mod client;
pub mod clock;
pub mod config;
pub mod datadir;
pub mod dict;
pub mod explain;
pub mod http;
pub mod identity;
pub mod idp;
pub mod metrics;
pub mod oidc;
pub mod pending;
pub mod policy;
pub mod profile;
pub mod radius;
pub mod saml;
pub mod secret;
pub mod server;
pub mod stamp;
pub mod store;
pub mod tacacs;
#[cfg(test)]
pub(crate) mod testkit;

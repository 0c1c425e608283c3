//! End-to-end tests: the real binary over real sockets on loopback, ports 0.
#![allow(unreachable_pub)]
mod accounting;
mod cli;
mod config;
mod console;
mod console_saml;
mod console_slo;
mod directory;
mod harness;
mod oidc;
mod privilege;
mod radius;
mod reload;
mod saml;
mod slapd;
mod store_pg;
mod store_pg_faults;
mod store_pg_keys;
mod store_pg_web;
mod tacacs;
mod web_limits;

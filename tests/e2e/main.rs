//! End-to-end tests: the real binary over real sockets on loopback, ports 0.
#![allow(unreachable_pub)]
mod accounting;
mod cli;
mod config;
mod harness;
mod oidc;
mod radius;
mod reload;
mod saml;
mod store_pg;
mod tacacs;

//! RADIUS (RFC 2865 authentication, RFC 2866 accounting, RFC 3579
//! Message-Authenticator, RFC 5080 duplicate detection, RFC 5997
//! Status-Server). `codec` is pure; `service` decides; `engine`
//! moves datagrams.

pub mod acct;
pub mod codec;
pub mod dedup;
pub mod engine;
pub mod metrics;
pub mod service;
pub mod udp;

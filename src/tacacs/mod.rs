//! TACACS+ (RFC 8907): `codec` is pure; `session` runs the authentication
//! conversation; `service` answers authorization and accounting from the
//! policy table; `engine` owns the TCP connections.

pub mod codec;
pub mod engine;
pub mod metrics;
pub mod service;
pub mod slots;

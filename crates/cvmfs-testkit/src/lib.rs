//! Test support shared by the crates' tests and the workspace integration tests.
//!
//! What it does: unpacks the upstream fixture repositories into temporary directories
//! ([`fixtures`]), starts a real nginx (Stratum-1) and a real squid (proxy) on
//! 127.0.0.1 ([`servers`]), and offers our own fault-injecting HTTP server for what real
//! servers cannot be made to do ([`faulty`]). What it is not for: production code never
//! depends on it.

pub mod faulty;
pub mod fixtures;
pub mod servers;

//! Test support shared by the crates' tests and the workspace integration tests.
//!
//! What it does: unpacks the upstream fixture repositories into temporary directories
//! (more to come: launchers for a real nginx and squid on 127.0.0.1, and a
//! fault-injecting HTTP server). What it is not for: production code never depends on it.

pub mod fixtures;

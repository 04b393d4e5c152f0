//! `cvmfs2`: the CernVM-FS FUSE mount as upstream users know it.
//!
//! What it does: parses upstream's command line ([`options`]), mounts a repository
//! through the client library and serves it over FUSE ([`adapter`], a thin layer:
//! every decision is `cvmfs_client`'s), runs revision checks with kernel cache
//! invalidation, daemonizes and exits with upstream's codes ([`daemon`]).
//!
//! What it is not for: anything about repositories, networks or caches; that is the
//! client library's, so other front ends (boot init, docker runtime) behave the same.

pub mod adapter;
pub mod config_tool;
pub mod daemon;
pub mod helper;
pub mod logging;
pub mod options;
mod pool;

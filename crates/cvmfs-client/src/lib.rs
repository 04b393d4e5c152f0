//! The CernVM-FS client library: one embeddable API that the FUSE mount, `cvmfs-inspect`,
//! the µCernVM boot init and the docker runtime all link.
//!
//! What it does (built up over issue 7): configuration as upstream reads it, the mount
//! lifecycle (root catalog choice, trust chain, rollback protection, offline mode),
//! revision checks and reload, and the file-system API. Today: the configuration.
//!
//! What it is not for: FUSE plumbing (that is `cvmfs-fuse`, a thin adapter), and the
//! formats, network and disk details, which live in `cvmfs-core`, `cvmfs-proxy` and
//! `cvmfs-cache`.

pub mod config;

//! The logic behind `cvmfs-inspect`, a read-only repository inspector: open a repository
//! from a storage directory or an `http://` URL, verify its trust chain, and list, read
//! or fully verify a revision.
//!
//! What it is not for: mounting (that is `cvmfs2`) or caching; every run starts cold.

pub mod cli;
pub mod inspect;
pub mod listing;
pub mod source;

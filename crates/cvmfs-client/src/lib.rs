//! The CernVM-FS client library: one embeddable API that the FUSE mount, `cvmfs-inspect`,
//! the µCernVM boot init and the docker runtime all link.
//!
//! What it does: configuration as upstream reads it ([`config`]), the mount lifecycle —
//! root catalog choice (HEAD, tag, date, root hash), the trust chain, rollback
//! protection with the cache breadcrumb, offline mounts from the cache, revision checks
//! and switches ([`mount`]) — and the file-system API over it ([`fs::Mount`]: lookup,
//! getattr, readdir, readlink, open/read/release, xattrs, statfs) with stable inode
//! numbers ([`inode`]) and one errno mapping ([`error::ClientError::errno`]).
//!
//! What it is not for: FUSE plumbing (that is `cvmfs-fuse`, a thin adapter), and the
//! formats, network and disk details, which live in `cvmfs-core`, `cvmfs-proxy` and
//! `cvmfs-cache`. No global state: several mounts can live in one process.

pub mod config;
pub mod error;
pub mod fetch;
pub mod fs;
pub mod inode;
pub mod mount;
mod network;
pub mod objects;
pub mod talk;
pub mod xattr;

pub use error::ClientError;
pub use fs::{Attr, DirEntry, FileKind, Mount, MountOptions, StatFs};
pub use mount::{CheckOutcome, MountError};

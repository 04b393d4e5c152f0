//! The CernVM-FS repository formats, byte-compatible with the upstream C++ implementation.
//!
//! What it does: content hashes and object names, zlib objects with one-pass
//! inflate-and-verify, the signed manifest, the whitelist, certificates and blacklists,
//! catalogs (SQLite) with nested-catalog path resolution, the history (tags) database,
//! extended-attribute blobs and variant symlinks.
//!
//! What it is not for: it performs no network I/O, keeps no cache and knows nothing of
//! FUSE. Callers hand it bytes (or files) and get typed values or typed errors back;
//! `cvmfs-proxy`, `cvmfs-cache` and `cvmfs-client` build the client on top of it.
//! Every parser here takes hostile input: it returns an error, never panics or loops.

pub mod blacklist;
pub mod breadcrumb;
pub mod catalog;
pub mod certificate;
pub mod compression;
pub mod hash;
pub mod history;
pub mod letter;
pub mod manifest;
pub mod object;
pub mod path;
pub mod repository;
pub mod signature;
pub mod trust;
pub mod variant;
pub mod verify;
pub mod whitelist;
pub mod xattr;

pub use compression::Compression;
pub use hash::{Algorithm, ContentHash, PathKey};
pub use object::{ObjectId, ObjectKind};

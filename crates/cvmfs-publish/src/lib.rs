//! The repository writer: publishes a directory tree as a signed CernVM-FS repository
//! in exactly the on-disk format of the upstream server tools
//! (`repository-format.md`), readable by upstream clients and by `cvmfs-core`.
//!
//! What it does:
//! * [`keys`]: creates a repository's key pairs and self-signed certificate and loads
//!   them for signing;
//! * [`publish()`]: stores file content as objects (zlib or none; SHA-1, RIPEMD-160 or
//!   SHAKE-128), cuts large files with upstream's xor32 [`chunker`], builds catalogs
//!   (schema 2.5 revision 7) with nested catalogs at `.cvmfscatalog` markers, writes the
//!   certificate, meta-info and history objects, and signs the whitelist and the
//!   manifest, which is replaced last and atomically;
//! * incremental publishing: existing objects and unchanged nested catalogs are kept, so
//!   a new revision writes only what changed, and every tagged revision stays readable.
//!
//! What it is not for: reading repositories (that is `cvmfs-core`), serving them, garbage
//! collection, or the server-side transaction machinery (overlay file systems, gateway,
//! reflog). The rules followed and the conscious differences from upstream are in
//! `docs/WRITER.md`.

pub mod build;
pub mod catalog;
pub mod chunker;
pub mod error;
pub mod history;
pub mod ingest;
pub mod keys;
pub mod previous;
pub mod publish;
pub mod source;
pub mod store;

pub use chunker::ChunkSizes;
pub use error::PublishError;
pub use keys::{generate_keys, load_keys, KeyPaths, RepositoryKeys};
pub use publish::{publish, PublishOptions, PublishReport};

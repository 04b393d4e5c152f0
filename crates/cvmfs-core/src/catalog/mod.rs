//! File catalogs (SQLite, spec 6): the schema, reading entries from one catalog, and
//! path resolution across nested catalogs and bind mountpoints.
//!
//! * [`schema`]: DDL, flag bits and hardlink packing shared with writers.
//! * [`Catalog`]: one opened catalog database (read-only): properties, lookups,
//!   listings, xattrs, chunks, nested references and counters, validated as read.
//! * [`tree::CatalogTree`]: resolves repository paths across nested catalogs through a
//!   caller-supplied [`tree::CatalogLoader`].
//!
//! What it is not for: fetching, verifying or inflating catalog objects (the loader's
//! job: callers hand in the path of an already verified, inflated SQLite file), inode
//! numbering, ownership mapping and expanding variant symlinks (see [`crate::variant`]),
//! which are client policy.

mod counters;
mod entry;
mod error;
pub mod schema;
mod sql;
pub mod tree;

pub use counters::{CounterSet, Counters, COUNTER_NAMES};
pub use entry::{Chunk, DirectoryEntry, EntryKind};
pub use error::CatalogError;
pub use sql::{Catalog, NestedKind, NestedRef, Properties, SchemaVersion, DEFAULT_TTL_SECONDS};
pub use tree::{CatalogLoader, CatalogTree, MountedCatalog, TreeEntry, TreeError};

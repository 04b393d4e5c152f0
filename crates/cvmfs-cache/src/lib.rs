//! The persistent local disk cache of the CernVM-FS client (issue 6).
//!
//! What it does:
//! * lays out a cache directory as upstream does (`00`..`ff` with decompressed objects
//!   named by content hash, `txn/`, `cachedb`, `cvmfschecksum.<fqrn>` breadcrumbs);
//! * writes objects through transactions ([`Txn`], a `std::io::Write` the download
//!   manager wraps in `cvmfs_core::verify::VerifyingWriter`) that become visible only by
//!   an atomic rename on [`Txn::commit`];
//! * accounts objects in an SQLite quota database with LRU order, evicts down to half of
//!   `CVMFS_QUOTA_LIMIT` once it is exceeded, never evicts pinned objects (catalogs in
//!   use), and offers cleanup on demand, listing and eviction of one object;
//! * lets several processes share one directory (SQLite write locks, `flock` pins and
//!   liveness markers) and repairs the database after a crash;
//! * reads hits cheaply ([`CachedObject`]: kept-open descriptors, `pread`, `mmap`, the
//!   raw descriptor for FUSE passthrough), with no network type anywhere, so a cached
//!   repository can be used offline;
//! * provides [`MemCache`], the sized LRU for the client's in-memory metadata caches.
//!
//! What it is not for: it downloads nothing and verifies no signatures (that is
//! `cvmfs-proxy` and `cvmfs-core`), knows nothing of FUSE, and reads no configuration
//! files (the client maps `CVMFS_*` parameters onto [`CacheConfig`]; see [`config`]).
//! Its on-disk locking differs from upstream's cache-manager protocol, so a directory
//! must not be shared with running C++ clients.

pub mod breadcrumb;
mod cache;
pub mod config;
mod db;
mod error;
mod layout;
mod memcache;
mod object;
mod pin;
mod txn;

pub use cache::{Cache, CacheEntry, CleanupReport, Evicted, RepairReport};
pub use config::{CacheConfig, QuotaLimit, MIB};
pub use error::{CacheError, Result};
pub use memcache::{memcache_bytes, MemCache, MemCacheStats};
pub use object::CachedObject;
pub use txn::Txn;

/// Locks a mutex, ignoring poisoning: every critical section here leaves its data
/// consistent at each step, so a panic elsewhere is no reason to stop the cache.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

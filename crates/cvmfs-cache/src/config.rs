//! Typed cache settings. This crate reads no configuration files: the client library
//! maps the `CVMFS_*` parameters onto [`CacheConfig`] as follows.
//!
//! | parameter | field |
//! |---|---|
//! | `CVMFS_CACHE_BASE` + `CVMFS_SHARED_CACHE` + fqrn | [`CacheConfig::from_base`] picks `<base>/shared` or `<base>/<fqrn>` |
//! | `CVMFS_CACHE_DIR` | [`CacheConfig::new`] with that directory |
//! | `CVMFS_QUOTA_LIMIT` (MB, `<= 0` unlimited) | [`CacheConfig::quota`] via [`QuotaLimit::from_mb`] |
//! | `CVMFS_MEMCACHE_SIZE` (MB) | not here: [`crate::MemCache::new`] takes [`crate::memcache_bytes`] of it |
//!
//! Everything else (`fsync`, `lock_timeout`, `open_files`) has no upstream parameter.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// One mebibyte; `CVMFS_QUOTA_LIMIT` counts in these.
pub const MIB: u64 = 1 << 20;

/// `CVMFS_QUOTA_LIMIT`: a soft limit on the bytes the cache holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaLimit {
    /// No automatic eviction (upstream's unmanaged cache). The database still
    /// accounts objects so that listing and `cleanup N` keep working.
    Unlimited,
    /// At most this many bytes; once exceeded, the cache is cleaned down to half.
    Bytes(u64),
}

impl QuotaLimit {
    /// Maps `CVMFS_QUOTA_LIMIT` (MB). Zero or negative means unlimited, as upstream.
    pub fn from_mb(mb: i64) -> QuotaLimit {
        if mb <= 0 {
            QuotaLimit::Unlimited
        } else {
            QuotaLimit::Bytes((mb as u64).saturating_mul(MIB))
        }
    }

    /// The limit in bytes, `None` when unlimited.
    pub fn bytes(self) -> Option<u64> {
        match self {
            QuotaLimit::Unlimited => None,
            QuotaLimit::Bytes(b) => Some(b),
        }
    }

    /// The cleanup target once the limit is exceeded (upstream's threshold: half the
    /// limit). Pinned data and the largest single object are capped by it as well.
    pub fn threshold(self) -> Option<u64> {
        self.bytes().map(|b| b / 2)
    }
}

/// Everything the cache needs to open a directory.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// The cache directory (objects, `txn/`, `cachedb`, breadcrumbs, locks).
    pub dir: PathBuf,
    pub quota: QuotaLimit,
    /// `fsync` each object before it is renamed into place. A killed process never
    /// leaves a partial object even without it (the page cache survives the process);
    /// this only adds protection against power loss, at a large cost in insert speed.
    pub fsync: bool,
    /// Longest wait for the quota database lock held by another process or thread
    /// before an operation fails with [`crate::CacheError::LockTimeout`].
    pub lock_timeout: Duration,
    /// How many descriptors of recently opened objects stay open so that hits skip
    /// `open(2)`. Zero disables the descriptor cache.
    pub open_files: usize,
}

impl CacheConfig {
    /// A cache in `dir` (`CVMFS_CACHE_DIR`), with upstream's client default quota of 1 GB.
    pub fn new(dir: impl Into<PathBuf>) -> CacheConfig {
        CacheConfig {
            dir: dir.into(),
            quota: QuotaLimit::from_mb(1000),
            fsync: false,
            lock_timeout: Duration::from_secs(60),
            open_files: 512,
        }
    }

    /// The directory upstream derives from `CVMFS_CACHE_BASE`: `<base>/shared` for a
    /// shared cache (`CVMFS_SHARED_CACHE=yes`), otherwise `<base>/<fqrn>`.
    pub fn from_base(base: &Path, fqrn: &str, shared: bool) -> CacheConfig {
        let leaf = if shared { "shared" } else { fqrn };
        CacheConfig::new(base.join(leaf))
    }

    pub fn with_quota(mut self, quota: QuotaLimit) -> CacheConfig {
        self.quota = quota;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_mapping_follows_upstream() {
        assert_eq!(QuotaLimit::from_mb(-1), QuotaLimit::Unlimited);
        assert_eq!(QuotaLimit::from_mb(0), QuotaLimit::Unlimited);
        assert_eq!(QuotaLimit::from_mb(4000).bytes(), Some(4000 * MIB));
        assert_eq!(QuotaLimit::from_mb(10).threshold(), Some(5 * MIB));
        let base = Path::new("/var/lib/cvmfs");
        assert_eq!(CacheConfig::from_base(base, "a.cern.ch", true).dir, base.join("shared"));
        assert_eq!(CacheConfig::from_base(base, "a.cern.ch", false).dir, base.join("a.cern.ch"));
    }
}

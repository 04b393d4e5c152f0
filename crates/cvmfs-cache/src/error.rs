//! Typed errors. Each message names the file involved and tells an administrator what
//! to do about it, because these errors end up in syslog and `cvmfs_talk` output.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use cvmfs_core::ObjectId;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CacheError {
    #[error(
        "cache directory {path} cannot be created or is not writable ({source}); \
         check CVMFS_CACHE_BASE / CVMFS_CACHE_DIR and that the directory belongs to the user running cvmfs2"
    )]
    Directory { path: PathBuf, source: io::Error },

    #[error(
        "disk full while writing {path}; free space on that file system or lower CVMFS_QUOTA_LIMIT \
         below the free space"
    )]
    DiskFull { path: PathBuf },

    #[error("{action} {path} failed: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },

    #[error(
        "quota database {path} failed: {source}; if this persists, stop all mounts using this cache \
         and delete the file (it is rebuilt from the cache directory)"
    )]
    Database { path: PathBuf, source: rusqlite::Error },

    #[error(
        "object {id} has {size} bytes, more than the largest cacheable object ({max} bytes, half of \
         CVMFS_QUOTA_LIMIT); raise CVMFS_QUOTA_LIMIT"
    )]
    TooLarge { id: ObjectId, size: u64, max: u64 },

    #[error("object {id}: expected {expected} bytes but {actual} were written; the download was incomplete")]
    SizeMismatch { id: ObjectId, expected: u64, actual: u64 },

    #[error(
        "cannot pin {id} ({size} bytes): {pinned} bytes are pinned already and pinned data may not \
         exceed {budget} bytes (half of CVMFS_QUOTA_LIMIT); raise CVMFS_QUOTA_LIMIT or unpin objects"
    )]
    PinBudget { id: ObjectId, size: u64, pinned: u64, budget: u64 },

    #[error(
        "waited {waited:?} for the lock on {path}; another process holds it for too long \
         (is a cvmfs2 process using this cache hanging?)"
    )]
    LockTimeout { path: PathBuf, waited: Duration },

    #[error("'{0}' is not a valid repository name for a breadcrumb file")]
    BadRepositoryName(String),
}

impl CacheError {
    /// Maps an I/O error, turning "no space left" into [`CacheError::DiskFull`].
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> CacheError {
        let path = path.into();
        if is_disk_full(&source) {
            CacheError::DiskFull { path }
        } else {
            CacheError::Io { action, path, source }
        }
    }
}

pub(crate) fn is_disk_full(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::StorageFull
        || error.raw_os_error() == Some(libc::ENOSPC)
        || error.raw_os_error() == Some(libc::EDQUOT)
}

pub type Result<T, E = CacheError> = std::result::Result<T, E>;

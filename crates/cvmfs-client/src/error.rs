//! The errors of the file-system API and their one mapping to errno.

use cvmfs_core::catalog::{CatalogError, TreeError};
use thiserror::Error;

use crate::fetch::FetchError;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("no such file or directory")]
    NotFound,
    #[error("not a directory")]
    NotADirectory,
    #[error("is a directory")]
    IsADirectory,
    #[error("not a symbolic link")]
    NotASymlink,
    #[error("no such attribute")]
    NoAttribute,
    #[error("the buffer of {given} bytes is too small for {needed} bytes")]
    Range { given: usize, needed: usize },
    #[error("unknown inode {0}")]
    StaleInode(u64),
    #[error("unknown file handle {0}")]
    BadHandle(u64),
    #[error("read-only file system")]
    ReadOnly,
    #[error("exclusive create on a read-only repository")]
    Exists,
    #[error("too many open files")]
    TooManyOpenFiles,
    #[error("catalog: {0}")]
    Tree(#[from] TreeError),
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    #[error("{0}")]
    Fetch(#[from] FetchError),
    #[error("cache: {0}")]
    Cache(#[from] cvmfs_cache::CacheError),
    #[error("{path}: {problem}")]
    BadFile { path: String, problem: String },
    #[error("reading the cache: {0}")]
    Io(#[from] std::io::Error),
}

impl ClientError {
    /// The errno a file-system caller sees. Everything that is the repository's or the
    /// network's fault is `EIO`: the caller cannot fix it by retrying differently.
    pub fn errno(&self) -> i32 {
        match self {
            ClientError::NotFound => libc::ENOENT,
            ClientError::NotADirectory => libc::ENOTDIR,
            ClientError::IsADirectory => libc::EISDIR,
            ClientError::NotASymlink => libc::EINVAL,
            ClientError::NoAttribute => libc::ENODATA,
            ClientError::Range { .. } => libc::ERANGE,
            ClientError::StaleInode(_) => libc::ENOENT,
            ClientError::BadHandle(_) => libc::EBADF,
            ClientError::ReadOnly => libc::EROFS,
            ClientError::Exists => libc::EEXIST,
            ClientError::TooManyOpenFiles => libc::EMFILE,
            ClientError::Fetch(e) if e.is_no_space() => libc::ENOSPC,
            ClientError::Cache(
                cvmfs_cache::CacheError::DiskFull { .. }
                | cvmfs_cache::CacheError::TooLarge { .. }
                | cvmfs_cache::CacheError::PinBudget { .. },
            ) => libc::ENOSPC,
            ClientError::Tree(_)
            | ClientError::Catalog(_)
            | ClientError::Fetch(_)
            | ClientError::Cache(_)
            | ClientError::BadFile { .. }
            | ClientError::Io(_) => libc::EIO,
        }
    }

    /// Whether this error is worth a log line: the expected ones (`ENOENT` of a
    /// negative lookup, `ENODATA` of an absent attribute) are not.
    pub fn is_failure(&self) -> bool {
        self.errno() == libc::EIO || self.errno() == libc::ENOSPC
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

//! The error type of the writer.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why a key generation or a publish failed. A failed publish never replaced the
/// manifest: the previous revision is still the one served.
#[derive(Debug, Error)]
pub enum PublishError {
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("SQLite ({what}): {source}")]
    Sqlite { what: &'static str, source: rusqlite::Error },
    #[error("key file {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("key files for {fqrn} already exist in {}; remove them or choose another directory", dir.display())]
    KeysExist { fqrn: String, dir: PathBuf },
    #[error("generating keys: {0}")]
    KeyGeneration(String),
    #[error("building the certificate: {0}")]
    Certificate(String),
    #[error("signing: {0}")]
    Sign(String),
    #[error("'{0}' is not a valid repository name (letters, digits, '.', '-', '_')")]
    BadName(String),
    #[error("chunk sizes {0}")]
    ChunkSizes(String),
    #[error("the storage holds repository '{found}', not '{expected}'")]
    NameMismatch { expected: String, found: String },
    #[error("the previous revision in the storage cannot be read: {0}")]
    Previous(String),
    #[error("tag '{0}' already exists in the history (or is reserved: trunk, trunk-previous)")]
    TagExists(String),
    #[error("tag name '{0}' is not allowed (empty, or contains whitespace or control characters)")]
    BadTag(String),
    #[error("source tree: {}: {reason}", path.display())]
    Source { path: PathBuf, reason: String },
    #[error("another publish holds the storage lock {}", .0.display())]
    Busy(PathBuf),
    #[error("the source root {} is not a directory", .0.display())]
    SourceNotDirectory(PathBuf),
}

/// Attaches what was being done and to which file to an I/O error.
pub(crate) trait IoContext<T> {
    fn io(self, what: &'static str, path: &Path) -> Result<T, PublishError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io(self, what: &'static str, path: &Path) -> Result<T, PublishError> {
        self.map_err(|source| PublishError::Io { what, path: path.to_path_buf(), source })
    }
}

/// Attaches what was being done to an SQLite error.
pub(crate) trait SqlContext<T> {
    fn sql(self, what: &'static str) -> Result<T, PublishError>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn sql(self, what: &'static str) -> Result<T, PublishError> {
        self.map_err(|source| PublishError::Sqlite { what, source })
    }
}

//! Why a catalog could not be opened or a row could not be read.

use thiserror::Error;

use crate::hash::HashError;
use crate::path::PathError;
use crate::xattr::XattrError;

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("catalog database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("catalog schema {schema} revision {revision} is not supported (accepted: < 2.0, 2.4, 2.5 revisions 0..7)")]
    UnsupportedSchema { schema: f64, revision: i64 },
    #[error("catalog property {key} has an unreadable value {value:?}")]
    BadProperty { key: &'static str, value: String },
    #[error("catalog has no table {0} (or it is not a plain table)")]
    MissingTable(&'static str),
    #[error("catalog row {row}: column {column} has an unexpected type or value")]
    BadColumn { row: String, column: &'static str },
    #[error("catalog row {row}: bad name: {source}")]
    BadName { row: String, source: PathError },
    #[error("catalog row {row}: name {found:?} does not match the looked-up path")]
    NameMismatch { row: String, found: String },
    #[error("catalog row {row}: mode {mode:#o} has no known file type")]
    BadMode { row: String, mode: u32 },
    #[error("catalog row {row}: impossible size {size}")]
    ImpossibleSize { row: String, size: i64 },
    #[error("catalog row {row}: {column} {value} does not fit")]
    OutOfRange { row: String, column: &'static str, value: i64 },
    #[error("catalog row {row}: hash: {source}")]
    BadHash { row: String, source: HashError },
    #[error("catalog row {row}: flags {flags:#x} name an unknown {what}")]
    BadFlags { row: String, flags: u32, what: &'static str },
    #[error("catalog row {row}: symlink target contains a NUL byte")]
    NulInSymlink { row: String },
    #[error("catalog row {row}: xattrs: {source}")]
    BadXattrs { row: String, source: XattrError },
    #[error("chunk list of {row}: {problem}")]
    BadChunks { row: String, problem: String },
    #[error("nested catalog reference {path:?}: {problem}")]
    BadNestedRef { path: String, problem: String },
    #[error("statistics counter {0} is missing")]
    MissingCounter(String),
}

//! The cache directory as upstream lays it out: `00`..`ff` holding decompressed objects
//! named by content hash (no kind suffix), `txn/` for objects being written,
//! `quarantaine/`, the `.cvmfscache` sentinel and `cachedb`. We add one file per live
//! process, `running.<token>`, to detect crashed owners (see [`crate::db`]).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use cvmfs_core::{ContentHash, ObjectId, ObjectKind};

use crate::error::{CacheError, Result};

pub(crate) const TXN_DIR: &str = "txn";
pub(crate) const QUARANTINE_DIR: &str = "quarantaine";
pub(crate) const SENTINEL: &str = ".cvmfscache";
pub(crate) const DATABASE: &str = "cachedb";
pub(crate) const MARKER_PREFIX: &str = "running.";

/// Paths inside one cache directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    /// Creates the skeleton (mode 0700 as upstream) and checks that it is writable.
    pub fn create(dir: &Path) -> Result<Layout> {
        let layout = Layout { dir: dir.to_path_buf() };
        let mut builder = DirBuilder::new();
        builder.recursive(true).mode(0o700);
        let directory_error =
            |path: &Path, source| CacheError::Directory { path: path.to_path_buf(), source };
        builder.create(dir).map_err(|e| directory_error(dir, e))?;
        for sub in (0..=255u8).map(|i| format!("{i:02x}")).chain([TXN_DIR.into(), QUARANTINE_DIR.into()]) {
            let path = dir.join(sub);
            builder.create(&path).map_err(|e| directory_error(&path, e))?;
        }
        let sentinel = dir.join(SENTINEL);
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&sentinel)
            .map_err(|e| directory_error(&sentinel, e))?;
        Ok(layout)
    }

    pub fn object(&self, hash: &ContentHash) -> PathBuf {
        self.dir.join(cache_name(hash))
    }

    pub fn txn_dir(&self) -> PathBuf {
        self.dir.join(TXN_DIR)
    }

    pub fn database(&self) -> PathBuf {
        self.dir.join(DATABASE)
    }

    pub fn marker(&self, token: &str) -> PathBuf {
        self.dir.join(format!("{MARKER_PREFIX}{token}"))
    }
}

/// `xx/rest[-algid]`: the name of an object in the cache, the same for every kind
/// (core's [`ObjectId::cache_path`] leaves the suffix out).
pub(crate) fn cache_name(hash: &ContentHash) -> String {
    ObjectId::new(*hash, ObjectKind::File).cache_path()
}

/// A random token naming this process's marker and temporary files.
pub(crate) fn new_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS; mixing in the time keeps two handles of one
    // process apart even if the seeds were to repeat.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
    );
    format!("{}-{:016x}", std::process::id(), hasher.finish())
}

/// Outcome of a non-blocking `flock`.
pub(crate) fn try_flock(file: &File, operation: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), operation | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(error),
        }
    }
}

/// Names of the `running.<token>` markers currently in the cache directory.
pub(crate) fn marker_tokens(dir: &Path) -> Result<Vec<String>> {
    let entries = fs::read_dir(dir).map_err(|e| CacheError::io("listing", dir, e))?;
    let mut tokens = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CacheError::io("listing", dir, e))?;
        if let Some(token) = entry.file_name().to_str().and_then(|n| n.strip_prefix(MARKER_PREFIX)) {
            tokens.push(token.to_string());
        }
    }
    Ok(tokens)
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_leave_out_the_kind_suffix() {
        let hash = ContentHash::parse("aa1deda59d5329553580d78fcd0b393157a5d28e-rmd160").unwrap();
        assert_eq!(cache_name(&hash), "aa/1deda59d5329553580d78fcd0b393157a5d28e-rmd160");
    }

    #[test]
    fn skeleton_has_256_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::create(&tmp.path().join("c")).unwrap();
        assert!(layout.dir.join("00").is_dir() && layout.dir.join("ff").is_dir());
        assert!(layout.txn_dir().is_dir() && layout.dir.join(SENTINEL).is_file());
    }
}

//! The breadcrumb file `cvmfschecksum.<fqrn>` in the cache directory: the last root
//! catalog this cache saw, for rollback protection and offline mounts. Here only its
//! raw bytes are stored and loaded (atomically, mode 0600);
//! `cvmfs_core::breadcrumb::Breadcrumb` parses and formats them
//! (`<hash>T<timestamp>R<revision>`).

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use cvmfs_core::breadcrumb::{Breadcrumb, MAX_BREADCRUMB_BYTES};

use crate::error::{CacheError, Result};
use crate::layout::{new_token, remove_if_present};

/// `<dir>/cvmfschecksum.<fqrn>` (no leading dot).
pub fn path(dir: &Path, fqrn: &str) -> Result<PathBuf> {
    let valid = !fqrn.is_empty() && fqrn != "." && fqrn != ".." && !fqrn.contains(['/', '\0']);
    if !valid {
        return Err(CacheError::BadRepositoryName(fqrn.to_string()));
    }
    Ok(dir.join(Breadcrumb::file_name(fqrn)))
}

/// Replaces the breadcrumb atomically: a temporary file, then `rename`.
pub fn write(dir: &Path, fqrn: &str, content: &[u8], sync: bool) -> Result<()> {
    let target = path(dir, fqrn)?;
    // Next to the target (not in txn/, whose orphans are reaped by other processes).
    let tmp = dir.join(format!(".cvmfschecksum.{}", new_token()));
    let result = write_file(&tmp, content, sync).and_then(|()| fs::rename(&tmp, &target));
    result.map_err(|e| {
        let _ = remove_if_present(&tmp);
        CacheError::io("writing breadcrumb", &target, e)
    })
}

fn write_file(path: &Path, content: &[u8], sync: bool) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(content)?;
    if sync {
        file.sync_data()?;
    }
    Ok(())
}

/// The raw breadcrumb (at most the bytes upstream reads), or `None` if there is none.
pub fn read(dir: &Path, fqrn: &str) -> Result<Option<Vec<u8>>> {
    let target = path(dir, fqrn)?;
    let file = match fs::File::open(&target) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CacheError::io("reading breadcrumb", &target, e)),
    };
    let mut content = Vec::new();
    file.take(MAX_BREADCRUMB_BYTES as u64)
        .read_to_end(&mut content)
        .map_err(|e| CacheError::io("reading breadcrumb", &target, e))?;
    Ok(Some(content))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn round_trip_replaces_atomically_with_mode_0600() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(read(tmp.path(), "a.cern.ch").unwrap(), None);
        write(tmp.path(), "a.cern.ch", b"6ed3T1445428515R2", false).unwrap();
        write(tmp.path(), "a.cern.ch", b"7ed3T1445428516R3", false).unwrap();
        assert_eq!(read(tmp.path(), "a.cern.ch").unwrap().as_deref(), Some(&b"7ed3T1445428516R3"[..]));
        let file = tmp.path().join("cvmfschecksum.a.cern.ch");
        assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1, "no temporary file left");
        assert!(matches!(write(tmp.path(), "../x", b"", false), Err(CacheError::BadRepositoryName(_))));
    }
}

//! Reading the source tree: directory listings in a stable order, `lstat` metadata,
//! symlink targets and extended attributes.

use std::ffi::{CString, OsStr};
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use cvmfs_core::xattr::XattrList;
use tracing::warn;

use crate::error::{IoContext, PublishError};

/// The file name that makes a directory the root of a nested catalog.
pub const CATALOG_MARKER: &[u8] = b".cvmfscatalog";

/// What kind of entry a source file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Directory,
    Regular,
    Symlink,
    /// FIFO, socket, character or block device.
    Special,
}

/// One entry of the source tree.
#[derive(Debug, Clone)]
pub struct SourceEntry {
    pub name: Vec<u8>,
    pub path: PathBuf,
    pub kind: SourceKind,
    pub meta: Metadata,
    /// Raw symlink target (empty for other kinds).
    pub symlink: Vec<u8>,
    pub xattrs: XattrList,
}

impl SourceEntry {
    /// Reads one entry (`lstat`, link target, xattrs if `with_xattrs`).
    pub fn read(path: &Path, name: &[u8], with_xattrs: bool) -> Result<SourceEntry, PublishError> {
        let meta = fs::symlink_metadata(path).io("lstat", path)?;
        let file_type = meta.file_type();
        let kind = if file_type.is_dir() {
            SourceKind::Directory
        } else if file_type.is_file() {
            SourceKind::Regular
        } else if file_type.is_symlink() {
            SourceKind::Symlink
        } else if file_type.is_fifo()
            || file_type.is_socket()
            || file_type.is_char_device()
            || file_type.is_block_device()
        {
            SourceKind::Special
        } else {
            return Err(PublishError::Source {
                path: path.to_path_buf(),
                reason: "unknown file type".into(),
            });
        };
        let symlink = match kind {
            SourceKind::Symlink => fs::read_link(path).io("readlink", path)?.as_os_str().as_bytes().to_vec(),
            _ => Vec::new(),
        };
        let xattrs = if with_xattrs { read_xattrs(path) } else { XattrList::new() };
        Ok(SourceEntry { name: name.to_vec(), path: path.to_path_buf(), kind, meta, symlink, xattrs })
    }

    pub fn is_dir(&self) -> bool {
        self.kind == SourceKind::Directory
    }

    /// The catalog `size`: content length, link target length, `rdev` for devices.
    pub fn catalog_size(&self) -> u64 {
        let file_type = self.meta.file_type();
        match self.kind {
            SourceKind::Symlink => self.symlink.len() as u64,
            SourceKind::Special if file_type.is_char_device() || file_type.is_block_device() => {
                self.meta.rdev()
            }
            SourceKind::Special => 0,
            _ => self.meta.size(),
        }
    }
}

/// The entries of directory `dir`, sorted by name bytes.
pub fn read_dir_sorted(dir: &Path, with_xattrs: bool) -> Result<Vec<SourceEntry>, PublishError> {
    let mut entries = Vec::new();
    for item in fs::read_dir(dir).io("listing", dir)? {
        let item = item.io("listing", dir)?;
        let name = item.file_name();
        entries.push(SourceEntry::read(&item.path(), name.as_bytes(), with_xattrs)?);
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// Whether a listing holds the nested-catalog marker (a regular file).
pub fn has_catalog_marker(entries: &[SourceEntry]) -> bool {
    entries.iter().any(|e| e.name == CATALOG_MARKER && e.kind == SourceKind::Regular)
}

/// The extended attributes of `path` (not following symlinks). Attributes the catalog
/// format cannot hold (names or values over 255 bytes, more than 255 attributes) are
/// left out with a warning; a file system without xattr support gives an empty list.
pub fn read_xattrs(path: &Path) -> XattrList {
    let mut list = XattrList::new();
    let Some(names) = list_xattr_names(path) else { return list };
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let Some(value) = get_xattr(path, name) else { continue };
        if let Err(e) = list.set(name, &value) {
            warn!(path = %path.display(), name = %String::from_utf8_lossy(name), "extended attribute left out: {e}");
        }
    }
    list
}

fn c_path(path: &Path) -> Option<CString> {
    CString::new(path.as_os_str().as_bytes()).ok()
}

fn list_xattr_names(path: &Path) -> Option<Vec<u8>> {
    let cpath = c_path(path)?;
    loop {
        // SAFETY: a NULL buffer of size 0 asks for the needed size.
        let needed = unsafe { libc::llistxattr(cpath.as_ptr(), std::ptr::null_mut(), 0) };
        if needed <= 0 {
            return None;
        }
        let mut buffer = vec![0u8; needed as usize];
        // SAFETY: the buffer is valid for `buffer.len()` bytes.
        let got = unsafe { libc::llistxattr(cpath.as_ptr(), buffer.as_mut_ptr().cast(), buffer.len()) };
        if got >= 0 {
            buffer.truncate(got as usize);
            return Some(buffer);
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) {
            return None;
        }
    }
}

fn get_xattr(path: &Path, name: &[u8]) -> Option<Vec<u8>> {
    let cpath = c_path(path)?;
    let cname = CString::new(name).ok()?;
    loop {
        // SAFETY: a NULL buffer of size 0 asks for the needed size.
        let needed = unsafe { libc::lgetxattr(cpath.as_ptr(), cname.as_ptr(), std::ptr::null_mut(), 0) };
        if needed < 0 {
            return None;
        }
        let mut buffer = vec![0u8; needed as usize];
        // SAFETY: the buffer is valid for `buffer.len()` bytes.
        let got = unsafe {
            libc::lgetxattr(cpath.as_ptr(), cname.as_ptr(), buffer.as_mut_ptr().cast(), buffer.len())
        };
        if got >= 0 {
            buffer.truncate(got as usize);
            return Some(buffer);
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) {
            return None;
        }
    }
}

/// The path of `name` inside `dir`.
pub fn child_path(dir: &Path, name: &[u8]) -> PathBuf {
    dir.join(OsStr::from_bytes(name))
}

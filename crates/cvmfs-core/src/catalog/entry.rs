//! A directory entry as one catalog row describes it, decoded and validated.
//!
//! Decoding follows `SqlLookup::GetDirent`: the file type comes from `mode`, the
//! cvmfs-specific properties from `flags`. Every value is checked as it is read (types,
//! ranges, hash length against the algorithm, names), so a hostile row yields a
//! [`CatalogError`], never a panic or a nonsensical entry.

use std::borrow::Cow;

use rusqlite::types::ValueRef;
use rusqlite::Row;

use super::error::CatalogError;
use super::schema::{compression_from_flags, flags, hash_algorithm_from_flags, Hardlinks};
use crate::compression::Compression;
use crate::hash::{Algorithm, ContentHash, PathKey};
use crate::object::{ObjectId, ObjectKind};
use crate::variant;

/// File type, taken from the `S_IFMT` bits of `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    Directory,
    Regular,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl EntryKind {
    /// The kind named by the type bits of `mode`; `None` for an unknown type.
    pub fn from_mode(mode: u32) -> Option<EntryKind> {
        match mode & 0o170000 {
            0o040000 => Some(EntryKind::Directory),
            0o100000 => Some(EntryKind::Regular),
            0o120000 => Some(EntryKind::Symlink),
            0o020000 => Some(EntryKind::CharDevice),
            0o060000 => Some(EntryKind::BlockDevice),
            0o010000 => Some(EntryKind::Fifo),
            0o140000 => Some(EntryKind::Socket),
            _ => None,
        }
    }
}

/// One entry of a catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// Last path component; empty only for the root entry of a root catalog.
    pub name: Vec<u8>,
    pub kind: EntryKind,
    /// Full `st_mode` including the type bits.
    pub mode: u32,
    /// Uncompressed size for regular files, raw target length for symlinks, 0 for
    /// devices (their `size` column holds `rdev`, see [`DirectoryEntry::rdev`]).
    pub size: u64,
    pub mtime: i64,
    /// Nanosecond part of the mtime (revision >= 7); `None` = unknown.
    pub mtime_ns: Option<u32>,
    /// Catalog values; schema < 2.1 stores none (then 0, see `Catalog::stores_ownership`).
    pub uid: u32,
    pub gid: u32,
    /// Raw symlink target (not expanded); empty for non-links.
    pub symlink: Vec<u8>,
    pub hardlinks: Hardlinks,
    /// Whether the `xattr` column is non-NULL; the blob is read lazily.
    pub has_xattrs: bool,
    /// Content hash of a non-chunked regular file (or a chunked file's bulk hash).
    pub content_hash: Option<ContentHash>,
    pub hash_algorithm: Algorithm,
    pub compression: Compression,
    /// Device number of character and block devices.
    pub rdev: Option<u64>,
    /// The raw `flags` column.
    pub flags: u32,
    pub key: PathKey,
    pub parent_key: PathKey,
    /// SQLite rowid (upstream derives inode numbers from it).
    pub rowid: i64,
}

impl DirectoryEntry {
    pub fn is_directory(&self) -> bool {
        self.kind == EntryKind::Directory
    }
    pub fn is_regular(&self) -> bool {
        self.kind == EntryKind::Regular
    }
    pub fn is_symlink(&self) -> bool {
        self.kind == EntryKind::Symlink
    }
    pub fn is_chunked(&self) -> bool {
        self.flags & flags::FILE_CHUNK != 0
    }
    pub fn is_external(&self) -> bool {
        self.flags & flags::FILE_EXTERNAL != 0
    }
    pub fn is_hidden(&self) -> bool {
        self.flags & flags::HIDDEN != 0
    }
    pub fn is_direct_io(&self) -> bool {
        self.flags & flags::DIRECT_IO != 0
    }
    /// The copy of a nested-catalog root in the parent catalog (flags 3).
    pub fn is_nested_mountpoint(&self) -> bool {
        self.flags & flags::DIR_NESTED_MOUNTPOINT != 0
    }
    /// The root entry of a nested catalog (flags 33).
    pub fn is_nested_root(&self) -> bool {
        self.flags & flags::DIR_NESTED_ROOT != 0
    }
    pub fn is_bind_mountpoint(&self) -> bool {
        self.flags & flags::DIR_BIND_MOUNTPOINT != 0
    }
    pub fn linkcount(&self) -> u32 {
        self.hardlinks.linkcount
    }
    /// 0 = no hardlinks.
    pub fn hardlink_group(&self) -> u32 {
        self.hardlinks.group
    }
    /// The object holding a non-chunked file's content.
    pub fn object_id(&self) -> Option<ObjectId> {
        self.content_hash.map(|hash| ObjectId::new(hash, ObjectKind::File))
    }
    /// The symlink target with variant references expanded (spec 8).
    pub fn expanded_symlink<F, V>(&self, lookup: F) -> Cow<'_, [u8]>
    where
        F: FnMut(&[u8]) -> Option<V>,
        V: AsRef<[u8]>,
    {
        variant::expand(&self.symlink, lookup)
    }
}

/// One chunk of a chunked file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Uncompressed offset within the file.
    pub offset: u64,
    /// Uncompressed size.
    pub size: u64,
    /// Hash of the stored chunk object (suffix `P`).
    pub hash: ContentHash,
}

impl Chunk {
    pub fn object_id(&self) -> ObjectId {
        ObjectId::new(self.hash, ObjectKind::Partial)
    }
}

/// How the rows of this catalog are to be read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowDialect {
    /// Schema < 2.1: no hardlinks, no ownership.
    pub legacy_owner: bool,
    /// Revision >= 3: the compression bits are meaningful.
    pub has_compression_flags: bool,
}

/// Column positions of the uniform select list built in `sql.rs`.
mod col {
    pub const HASH: usize = 0;
    pub const HARDLINKS: usize = 1;
    pub const SIZE: usize = 2;
    pub const MODE: usize = 3;
    pub const MTIME: usize = 4;
    pub const FLAGS: usize = 5;
    pub const NAME: usize = 6;
    pub const SYMLINK: usize = 7;
    pub const MD5_1: usize = 8;
    pub const MD5_2: usize = 9;
    pub const PARENT_1: usize = 10;
    pub const PARENT_2: usize = 11;
    pub const ROWID: usize = 12;
    pub const UID: usize = 13;
    pub const GID: usize = 14;
    pub const HAS_XATTR: usize = 15;
    pub const MTIMENS: usize = 16;
}

/// Decodes one row of the uniform select list. `name` validation is the caller's, as
/// the rule differs for lookups and listings.
pub(crate) fn decode_row(row: &Row<'_>, dialect: RowDialect) -> Result<DirectoryEntry, CatalogError> {
    let key =
        PathKey { p1: int(row, col::MD5_1, "md5path_1", "?")?, p2: int(row, col::MD5_2, "md5path_2", "?")? };
    let label = format!("{}/{}", key.p1, key.p2);
    let r = RowReader { row, label: &label };
    let flags_value = r.u32_col(col::FLAGS, "flags")?;
    let mode = r.u32_col(col::MODE, "mode")?;
    let kind = EntryKind::from_mode(mode).ok_or(CatalogError::BadMode { row: label.clone(), mode })?;
    let raw_size = r.int(col::SIZE, "size")?;
    let size = u64::try_from(raw_size)
        .map_err(|_| CatalogError::ImpossibleSize { row: label.clone(), size: raw_size })?;
    let is_device = matches!(kind, EntryKind::CharDevice | EntryKind::BlockDevice);
    let hardlinks = if dialect.legacy_owner {
        Hardlinks { group: 0, linkcount: 1 }
    } else {
        Hardlinks::from_column(r.int(col::HARDLINKS, "hardlinks")?)
    };
    let is_chunked = flags_value & flags::FILE_CHUNK != 0;
    let hash_blob = r.blob_or_null(col::HASH, "hash")?;
    let needs_algorithm = !hash_blob.is_empty() || is_chunked;
    let hash_algorithm = r.algorithm(flags_value, needs_algorithm)?;
    let content_hash = r.content_hash(hash_blob, hash_algorithm)?;
    let compression = if dialect.has_compression_flags {
        r.compression(flags_value, kind == EntryKind::Regular)?
    } else {
        Compression::Zlib
    };
    let symlink = r.text_or_empty(col::SYMLINK, "symlink")?;
    if symlink.contains(&0) {
        return Err(CatalogError::NulInSymlink { row: label });
    }
    Ok(DirectoryEntry {
        name: r.text_required(col::NAME, "name")?,
        kind,
        mode,
        size: if is_device { 0 } else { size },
        mtime: r.int(col::MTIME, "mtime")?,
        mtime_ns: r.mtime_ns()?,
        uid: r.u32_col(col::UID, "uid")?,
        gid: r.u32_col(col::GID, "gid")?,
        symlink,
        hardlinks,
        has_xattrs: r.int(col::HAS_XATTR, "xattr")? != 0,
        content_hash,
        hash_algorithm,
        compression,
        rdev: is_device.then_some(size),
        flags: flags_value,
        key,
        parent_key: PathKey { p1: r.int(col::PARENT_1, "parent_1")?, p2: r.int(col::PARENT_2, "parent_2")? },
        rowid: r.int(col::ROWID, "rowid")?,
    })
}

fn int(row: &Row<'_>, idx: usize, column: &'static str, label: &str) -> Result<i64, CatalogError> {
    match row.get_ref(idx)? {
        ValueRef::Integer(v) => Ok(v),
        _ => Err(CatalogError::BadColumn { row: label.to_string(), column }),
    }
}

/// Typed column access that names the row in every error.
struct RowReader<'r, 's> {
    row: &'r Row<'s>,
    label: &'r str,
}

impl RowReader<'_, '_> {
    fn bad(&self, column: &'static str) -> CatalogError {
        CatalogError::BadColumn { row: self.label.to_string(), column }
    }

    fn int(&self, idx: usize, column: &'static str) -> Result<i64, CatalogError> {
        int(self.row, idx, column, self.label)
    }

    fn u32_col(&self, idx: usize, column: &'static str) -> Result<u32, CatalogError> {
        let value = self.int(idx, column)?;
        u32::try_from(value).map_err(|_| CatalogError::OutOfRange {
            row: self.label.to_string(),
            column,
            value,
        })
    }

    fn bytes(&self, idx: usize, column: &'static str) -> Result<Option<Vec<u8>>, CatalogError> {
        match self.row.get_ref(idx)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(b) | ValueRef::Blob(b) => Ok(Some(b.to_vec())),
            _ => Err(self.bad(column)),
        }
    }

    fn text_required(&self, idx: usize, column: &'static str) -> Result<Vec<u8>, CatalogError> {
        self.bytes(idx, column)?.ok_or_else(|| self.bad(column))
    }

    /// Upstream writes `""` for non-links; a NULL is read the same way.
    fn text_or_empty(&self, idx: usize, column: &'static str) -> Result<Vec<u8>, CatalogError> {
        Ok(self.bytes(idx, column)?.unwrap_or_default())
    }

    fn blob_or_null<'v>(&'v self, idx: usize, column: &'static str) -> Result<&'v [u8], CatalogError> {
        match self.row.get_ref(idx)? {
            ValueRef::Null => Ok(&[]),
            ValueRef::Blob(b) => Ok(b),
            _ => Err(self.bad(column)),
        }
    }

    fn algorithm(&self, flags_value: u32, needed: bool) -> Result<Algorithm, CatalogError> {
        match hash_algorithm_from_flags(flags_value) {
            Some(algorithm) => Ok(algorithm),
            // Only an entry that has a hash needs a valid algorithm field.
            None if !needed => Ok(Algorithm::Sha1),
            None => Err(CatalogError::BadFlags {
                row: self.label.to_string(),
                flags: flags_value,
                what: "hash algorithm",
            }),
        }
    }

    fn content_hash(&self, blob: &[u8], algorithm: Algorithm) -> Result<Option<ContentHash>, CatalogError> {
        if blob.is_empty() {
            return Ok(None);
        }
        ContentHash::from_digest(algorithm, blob)
            .map(Some)
            .map_err(|source| CatalogError::BadHash { row: self.label.to_string(), source })
    }

    fn compression(&self, flags_value: u32, is_regular: bool) -> Result<Compression, CatalogError> {
        match compression_from_flags(flags_value) {
            Some(compression) => Ok(compression),
            // Upstream writes the field only for regular files; elsewhere it is noise.
            None if !is_regular => Ok(Compression::Zlib),
            None => Err(CatalogError::BadFlags {
                row: self.label.to_string(),
                flags: flags_value,
                what: "compression",
            }),
        }
    }

    fn mtime_ns(&self) -> Result<Option<u32>, CatalogError> {
        match self.row.get_ref(col::MTIMENS)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(v) if (0..1_000_000_000).contains(&v) => Ok(u32::try_from(v).ok()),
            ValueRef::Integer(value) => {
                Err(CatalogError::OutOfRange { row: self.label.to_string(), column: "mtimens", value })
            }
            _ => Err(self.bad("mtimens")),
        }
    }
}

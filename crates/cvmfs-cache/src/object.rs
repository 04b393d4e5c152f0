//! A cached object opened for reading: a shared descriptor, read with `pread` or a
//! memory map, or handed to the kernel for FUSE passthrough.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;

use cvmfs_core::hash::Hasher;
use cvmfs_core::{Algorithm, ContentHash};

/// The decompressed content of one object. Cloning shares the descriptor; the bytes
/// stay readable even if the object is evicted meanwhile (the file is only unlinked).
#[derive(Debug, Clone)]
pub struct CachedObject {
    file: Arc<File>,
    size: u64,
    hash: ContentHash,
}

impl CachedObject {
    pub(crate) fn new(file: Arc<File>, size: u64, hash: ContentHash) -> CachedObject {
        CachedObject { file, size, hash }
    }

    /// Decompressed size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The content hash the object is stored under.
    pub fn hash(&self) -> ContentHash {
        self.hash
    }

    /// `pread`: reads up to `buf.len()` bytes at `offset`; 0 at the end.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    /// Fills `buf` from `offset` or fails with `UnexpectedEof`.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    /// The whole object.
    pub fn read_to_vec(&self) -> io::Result<Vec<u8>> {
        let len = usize::try_from(self.size).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let mut bytes = vec![0u8; len];
        self.read_exact_at(&mut bytes, 0)?;
        Ok(bytes)
    }

    /// Maps the object read-only. Objects are never written after they were renamed
    /// into place (new content always arrives as a new file), so the mapping cannot
    /// change under the reader; only an outside party truncating the file could make
    /// access fault. Empty objects cannot be mapped: read them with `read_at`.
    pub fn mmap(&self) -> io::Result<memmap2::Mmap> {
        // SAFETY: see above; the cache itself never modifies a committed file.
        unsafe { memmap2::Mmap::map(&*self.file) }
    }

    /// The open descriptor, e.g. for FUSE passthrough (`fuse_backing_open`).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// An independent duplicate of the descriptor, for callers that must own one.
    pub fn try_clone_fd(&self) -> io::Result<OwnedFd> {
        self.file.as_fd().try_clone_to_owned()
    }

    /// Hashes the stored bytes. This equals the object's name only for objects stored
    /// uncompressed on the server: the name of a zlib object is the hash of its
    /// compressed form, which the cache does not keep.
    pub fn content_hash(&self, algorithm: Algorithm) -> io::Result<ContentHash> {
        let mut hasher = Hasher::new(algorithm);
        let mut buf = vec![0u8; 256 * 1024];
        let mut offset = 0u64;
        loop {
            let n = self.read_at(&mut buf, offset)?;
            if n == 0 {
                return Ok(hasher.finish());
            }
            hasher.update(&buf[..n]);
            offset += n as u64;
        }
    }
}

impl AsRawFd for CachedObject {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl AsFd for CachedObject {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

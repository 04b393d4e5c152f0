//! Writing one object: a temporary file in `txn/`, renamed into place by
//! [`Txn::commit`] only when complete. Dropping a `Txn` without committing removes the
//! temporary file, so an interrupted download never becomes visible.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use cvmfs_core::ObjectId;

use crate::cache::Inner;
use crate::error::{CacheError, Result};
use crate::layout::remove_if_present;
use crate::object::CachedObject;

/// Bigger than the pieces an inflater emits, so each `write(2)` moves a useful amount.
const WRITE_BUFFER: usize = 64 * 1024;

/// An object being written. Implements [`Write`] for the decompressed content, so the
/// download manager can wrap it in `cvmfs_core::verify::VerifyingWriter` and commit
/// only when the verdict is good.
pub struct Txn {
    inner: Arc<Inner>,
    id: ObjectId,
    tmp_path: PathBuf,
    writer: Option<BufWriter<File>>,
    written: u64,
    expected: Option<u64>,
    /// Writing past this fails with `EFBIG` (expected size, or the largest object).
    cap: Option<u64>,
    description: Option<String>,
    volatile: bool,
}

/// What the commit needs from a finished transaction.
pub(crate) struct Finished {
    pub id: ObjectId,
    pub tmp_path: PathBuf,
    pub file: File,
    pub size: u64,
    pub description: String,
    pub volatile: bool,
    pub pin: bool,
}

impl Txn {
    pub(crate) fn create(
        inner: Arc<Inner>,
        id: ObjectId,
        tmp_path: PathBuf,
        expected: Option<u64>,
        cap: Option<u64>,
    ) -> Result<Txn> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp_path)
            .map_err(|e| CacheError::io("creating", &tmp_path, e))?;
        Ok(Txn {
            inner,
            id,
            tmp_path,
            writer: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            written: 0,
            expected,
            cap,
            description: None,
            volatile: false,
        })
    }

    pub fn id(&self) -> ObjectId {
        self.id
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The text `list()` shows for the object (upstream: the file's path, "file
    /// catalog at …", "certificate for <fqrn>", …). Defaults to the object kind.
    pub fn describe(&mut self, description: impl Into<String>) {
        self.description = Some(description.into());
    }

    /// Objects of volatile repositories are evicted before all others.
    pub fn set_volatile(&mut self, volatile: bool) {
        self.volatile = volatile;
    }

    /// Makes the object visible (atomic rename) and accounts it in the quota database,
    /// cleaning up first if the limit would be exceeded. Returns it opened for reading.
    pub fn commit(self) -> Result<CachedObject> {
        self.finish(false)
    }

    /// Like [`commit`](Self::commit), and pins the object before any cleanup can see
    /// it (for catalogs, which must stay while attached).
    pub fn commit_pinned(self) -> Result<CachedObject> {
        self.finish(true)
    }

    /// Discards the object (the same as dropping the transaction).
    pub fn abort(self) {}

    fn finish(mut self, pin: bool) -> Result<CachedObject> {
        let writer = self.writer.take().ok_or_else(|| already_finished(&self.tmp_path))?;
        let file =
            writer.into_inner().map_err(|e| CacheError::io("writing", &self.tmp_path, e.into_error()))?;
        if let Some(expected) = self.expected.filter(|&e| e != self.written) {
            return Err(CacheError::SizeMismatch { id: self.id, expected, actual: self.written });
        }
        let finished = Finished {
            id: self.id,
            tmp_path: self.tmp_path.clone(),
            file,
            size: self.written,
            description: self.description.take().unwrap_or_else(|| self.id.kind.describe().to_string()),
            volatile: self.volatile,
            pin,
        };
        // From here on the commit owns the temporary file (renames or removes it).
        self.tmp_path = PathBuf::new();
        self.inner.commit(finished)
    }
}

fn already_finished(path: &std::path::Path) -> CacheError {
    CacheError::Io {
        action: "committing",
        path: path.to_path_buf(),
        source: io::Error::other("transaction already finished"),
    }
}

impl Write for Txn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let writer = self.writer.as_mut().ok_or_else(|| io::Error::other("transaction already finished"))?;
        if self.cap.is_some_and(|cap| self.written + buf.len() as u64 > cap) {
            // Upstream's EFBIG: more bytes than announced, or than the cache may hold.
            return Err(io::Error::from_raw_os_error(libc::EFBIG));
        }
        let n = writer.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.writer.as_mut() {
            Some(writer) => writer.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        if !self.tmp_path.as_os_str().is_empty() {
            if let Err(e) = remove_if_present(&self.tmp_path) {
                tracing::warn!("cannot remove aborted cache transaction {}: {e}", self.tmp_path.display());
            }
        }
    }
}

//! The content-addressed object store of a storage directory (`data/xx/…`).
//!
//! Objects are compressed and hashed in one streaming pass (upstream's order: compress,
//! then hash the stored bytes), kept in memory while small and spilled to a temporary
//! file in `data/txn/` otherwise, and moved to their final name with a rename. An object
//! that already exists is not written again, which is what makes incremental publishing
//! cheap and an interrupted publish harmless: a half-written object never carries a
//! final name.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cvmfs_core::hash::Hasher;
use cvmfs_core::{Algorithm, Compression, ContentHash, ObjectId, ObjectKind};
use flate2::write::ZlibEncoder;
use tempfile::NamedTempFile;

use crate::error::{IoContext, PublishError};

/// Stored bytes kept in memory up to this size before spilling to a temporary file.
const SPILL_THRESHOLD: usize = 4 << 20;

/// Counts of what a publish wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Objects newly written.
    pub written: u64,
    /// Objects that already existed (same content published before).
    pub reused: u64,
    /// Stored (compressed) bytes newly written.
    pub bytes_written: u64,
}

/// The `data/` directory of a repository storage directory.
#[derive(Debug)]
pub struct ObjectStore {
    storage: PathBuf,
    txn: PathBuf,
    written: AtomicU64,
    reused: AtomicU64,
    bytes_written: AtomicU64,
    /// Holds an exclusive `flock` on `data/txn/.lock` while the store is open.
    _lock: File,
}

impl ObjectStore {
    /// Opens `storage`, creating `data/00`..`data/ff` and `data/txn` if missing. Only one
    /// writer may have a storage open (a second one gets [`PublishError::Busy`]); leftovers
    /// of an interrupted earlier publish in `data/txn` are removed.
    pub fn open(storage: &Path) -> Result<ObjectStore, PublishError> {
        let data = storage.join("data");
        for byte in 0..=255u8 {
            let dir = data.join(format!("{byte:02x}"));
            fs::create_dir_all(&dir).io("creating", &dir)?;
        }
        let txn = data.join("txn");
        fs::create_dir_all(&txn).io("creating", &txn)?;
        let lock = lock_exclusive(&txn.join(".lock"))?;
        remove_leftovers(&txn)?;
        Ok(ObjectStore {
            storage: storage.to_path_buf(),
            txn,
            written: AtomicU64::new(0),
            reused: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            _lock: lock,
        })
    }

    /// The storage directory.
    pub fn storage(&self) -> &Path {
        &self.storage
    }

    /// The scratch directory `data/txn` (same file system as the objects).
    pub fn txn_dir(&self) -> &Path {
        &self.txn
    }

    /// What was written so far (objects may be stored from several threads at once).
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            written: self.written.load(Ordering::Relaxed),
            reused: self.reused.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
        }
    }

    /// The file of an object.
    pub fn object_path(&self, id: &ObjectId) -> PathBuf {
        self.storage.join(id.data_path())
    }

    pub fn contains(&self, id: &ObjectId) -> bool {
        self.object_path(id).is_file()
    }

    /// A writer taking the uncompressed content of one object.
    pub fn writer(&self, algorithm: Algorithm, compression: Compression) -> ObjectWriter {
        let sink = HashingSink::new(algorithm, self.txn.clone());
        let encoder = match compression {
            Compression::Zlib => Encoder::Zlib(ZlibEncoder::new(sink, flate2::Compression::default())),
            Compression::None => Encoder::Plain(sink),
        };
        ObjectWriter { encoder, input_bytes: 0 }
    }

    /// Stores the content written to `writer` as an object of `kind`; returns its hash.
    pub fn commit(&self, writer: ObjectWriter, kind: ObjectKind) -> Result<ContentHash, PublishError> {
        let sink = writer.finish().io("compressing into", &self.txn)?;
        let hash = sink.hasher.finish();
        let id = ObjectId::new(hash, kind);
        let target = self.object_path(&id);
        if target.is_file() {
            self.reused.fetch_add(1, Ordering::Relaxed);
            return Ok(hash);
        }
        let file = match sink.spilled {
            Some(file) => file,
            None => {
                let mut file = readable_temp_file(&self.txn).io("creating a temporary file in", &self.txn)?;
                file.write_all(&sink.memory).io("writing", file.path())?;
                file
            }
        };
        file.persist(&target).map_err(|e| e.error).io("storing object", &target)?;
        self.written.fetch_add(1, Ordering::Relaxed);
        self.bytes_written.fetch_add(sink.stored_bytes, Ordering::Relaxed);
        Ok(hash)
    }

    /// Stores `content` (held in memory) as one object.
    pub fn put(
        &self,
        content: &[u8],
        kind: ObjectKind,
        algorithm: Algorithm,
        compression: Compression,
    ) -> Result<ContentHash, PublishError> {
        let mut writer = self.writer(algorithm, compression);
        writer.write_all(content).io("compressing into", &self.txn)?;
        self.commit(writer, kind)
    }

    /// Stores the content of `file` as one zlib object (catalogs, history databases).
    pub fn put_file(
        &self,
        file: &Path,
        kind: ObjectKind,
        algorithm: Algorithm,
    ) -> Result<ContentHash, PublishError> {
        let mut writer = self.writer(algorithm, Compression::Zlib);
        let mut input = File::open(file).io("opening", file)?;
        io::copy(&mut input, &mut writer).io("reading", file)?;
        self.commit(writer, kind)
    }
}

/// A temporary file created with mode 0644 (less the umask), so that the object it
/// becomes can be served by a web server running as another user.
pub(crate) fn readable_temp_file(dir: &Path) -> io::Result<NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new().permissions(fs::Permissions::from_mode(0o644)).tempfile_in(dir)
}

fn lock_exclusive(path: &Path) -> Result<File, PublishError> {
    let file =
        fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).io("opening", path)?;
    // SAFETY: flock on a descriptor we own; released when `file` is closed.
    let rc =
        unsafe { libc::flock(std::os::unix::io::AsRawFd::as_raw_fd(&file), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(PublishError::Busy(path.to_path_buf()));
    }
    Ok(file)
}

/// Temporary files and scratch directories of interrupted publishes (never an object:
/// objects live only under their final names).
fn remove_leftovers(txn: &Path) -> Result<(), PublishError> {
    for entry in fs::read_dir(txn).io("listing", txn)? {
        let entry = entry.io("listing", txn)?;
        if entry.file_name() == ".lock" {
            continue;
        }
        let path = entry.path();
        let removed = if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.io("removing the leftover", &path)?;
    }
    Ok(())
}

/// Compresses and hashes the content of one object as it is written.
pub struct ObjectWriter {
    encoder: Encoder,
    input_bytes: u64,
}

enum Encoder {
    Zlib(ZlibEncoder<HashingSink>),
    Plain(HashingSink),
}

impl ObjectWriter {
    /// Uncompressed bytes written so far.
    pub fn input_bytes(&self) -> u64 {
        self.input_bytes
    }

    fn finish(self) -> io::Result<HashingSink> {
        match self.encoder {
            Encoder::Zlib(encoder) => encoder.finish(),
            Encoder::Plain(sink) => Ok(sink),
        }
    }
}

impl Write for ObjectWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.encoder {
            Encoder::Zlib(encoder) => encoder.write(buf)?,
            Encoder::Plain(sink) => sink.write(buf)?,
        };
        self.input_bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Hashes the stored bytes and keeps them, in memory or in a temporary file.
struct HashingSink {
    hasher: Hasher,
    memory: Vec<u8>,
    spilled: Option<NamedTempFile>,
    txn: PathBuf,
    stored_bytes: u64,
}

impl HashingSink {
    fn new(algorithm: Algorithm, txn: PathBuf) -> HashingSink {
        HashingSink {
            hasher: Hasher::new(algorithm),
            memory: Vec::new(),
            spilled: None,
            txn,
            stored_bytes: 0,
        }
    }

    fn spill(&mut self) -> io::Result<()> {
        let mut file = readable_temp_file(&self.txn)?;
        file.write_all(&self.memory)?;
        self.memory = Vec::new();
        self.spilled = Some(file);
        Ok(())
    }
}

impl Write for HashingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.stored_bytes += buf.len() as u64;
        if self.spilled.is_none() && self.memory.len() + buf.len() > SPILL_THRESHOLD {
            self.spill()?;
        }
        match &mut self.spilled {
            Some(file) => file.write_all(buf)?,
            None => self.memory.extend_from_slice(buf),
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cvmfs_core::verify::read_verified_to_vec;

    #[test]
    fn objects_are_named_by_the_hash_of_their_stored_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        let hash = store.put(b"", ObjectKind::File, Algorithm::Sha1, Compression::Zlib).unwrap();
        assert_eq!(hash.to_string(), "e8ec3d88b62ebf526e4e5a4ff6162a3aa48a6b78", "spec 12.5");
        let again = store.put(b"", ObjectKind::File, Algorithm::Sha1, Compression::Zlib).unwrap();
        assert_eq!(again, hash);
        assert_eq!(store.stats(), StoreStats { written: 1, reused: 1, bytes_written: 8 });
        let plain = store.put(b"abc", ObjectKind::Partial, Algorithm::Rmd160, Compression::None).unwrap();
        assert_eq!(plain.to_string(), "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc-rmd160");
        let object = dir.path().join("data/8e/b208f7e05d987a9b044a8e98c6b087f15a0bfc-rmd160P");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(object).unwrap().permissions().mode() & 0o444, 0o444, "world-readable");
    }

    #[test]
    fn one_writer_at_a_time_and_leftovers_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        assert!(matches!(ObjectStore::open(dir.path()), Err(PublishError::Busy(_))));
        fs::create_dir(store.txn_dir().join("publish-old")).unwrap();
        fs::write(store.txn_dir().join(".tmpXYZ"), b"half").unwrap();
        drop(store);
        let store = ObjectStore::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(store.txn_dir()).unwrap().count(), 1);
    }

    #[test]
    fn large_objects_spill_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        let content: Vec<u8> = (0..(SPILL_THRESHOLD as u32 + 100_000)).map(|i| (i % 253) as u8).collect();
        for compression in [Compression::None, Compression::Zlib] {
            let hash = store.put(&content, ObjectKind::File, Algorithm::Shake128, compression).unwrap();
            let stored = fs::read(store.object_path(&ObjectId::new(hash, ObjectKind::File))).unwrap();
            assert_eq!(read_verified_to_vec(&stored, hash, compression, u64::MAX).unwrap(), content);
        }
        assert_eq!(fs::read_dir(store.txn_dir()).unwrap().count(), 1, "only the lock file is left");
    }
}

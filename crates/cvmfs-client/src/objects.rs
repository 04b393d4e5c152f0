//! Objects by content hash: from the disk cache when present, else downloaded, verified
//! and committed to the cache. Concurrent misses for one object wait for one download.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use cvmfs_cache::{Cache, CachedObject};
use cvmfs_core::hash::Hasher;
use cvmfs_core::{Compression, ContentHash, ObjectId};
use tracing::{debug, warn};

use crate::error::{ClientError, Result};
use crate::fetch::{Downloader, FetchError};

/// Objects of unknown size (catalogs, history) larger than this are refused.
pub const MAX_UNSIZED_OBJECT: u64 = 8 << 30;

/// Counters behind `user.ndownload`, `user.hitrate` and `cvmfs_talk`.
#[derive(Debug, Default)]
pub struct ObjectCounters {
    pub requests: AtomicU64,
    pub downloads: AtomicU64,
    pub downloaded_bytes: AtomicU64,
    pub corrupt_in_cache: AtomicU64,
}

pub struct ObjectStore {
    cache: Cache,
    downloader: Arc<dyn Downloader>,
    in_flight: Mutex<HashMap<ObjectId, Arc<Mutex<()>>>>,
    /// Background prefetches running now (bounded by [`MAX_PREFETCHES`]).
    prefetching: std::sync::atomic::AtomicUsize,
    /// Cached objects whose bytes this process has checked (or downloaded itself).
    verified: Mutex<std::collections::HashSet<ObjectId>>,
    pub counters: ObjectCounters,
}

/// Chunks fetched ahead of a sequential reader at most at once, per mount.
pub const MAX_PREFETCHES: usize = 4;

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore").field("cache", &self.cache.dir()).finish()
    }
}

impl ObjectStore {
    pub fn new(cache: Cache, downloader: Arc<dyn Downloader>) -> ObjectStore {
        ObjectStore {
            cache,
            downloader,
            in_flight: Mutex::new(HashMap::new()),
            prefetching: std::sync::atomic::AtomicUsize::new(0),
            verified: Mutex::new(std::collections::HashSet::new()),
            counters: ObjectCounters::default(),
        }
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub fn downloader(&self) -> &Arc<dyn Downloader> {
        &self.downloader
    }

    /// The decompressed object, fetched if needed. `size` is the size the catalog
    /// promises (checked); `None` for catalogs and other objects of unknown size.
    pub fn get(
        &self,
        id: &ObjectId,
        compression: Compression,
        size: Option<u64>,
        what: &str,
    ) -> Result<CachedObject> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(object) = self.cached(id, compression, size)? {
            return Ok(object);
        }
        let gate = self.gate(id);
        let _one_download = gate.lock().unwrap_or_else(PoisonError::into_inner);
        let result = match self.cached(id, compression, size)? {
            Some(object) => Ok(object),
            None => self.download(id, compression, size, what),
        };
        self.release_gate(id, &gate);
        result
    }

    /// Like [`ObjectStore::get`], and pins the object (catalogs while attached).
    pub fn get_pinned(&self, id: &ObjectId, compression: Compression, what: &str) -> Result<CachedObject> {
        for _ in 0..3 {
            self.get(id, compression, None, what)?;
            if let Some(object) = self.cache.open_pinned(id)? {
                return Ok(object);
            }
            // Evicted between download and pin by another process' cleanup: again.
        }
        Err(ClientError::BadFile {
            path: what.to_string(),
            problem: format!("object {id} keeps being evicted"),
        })
    }

    /// A cache hit whose size matches and whose bytes pass the first-use check, if any.
    /// A damaged hit is evicted (the caller then downloads it again).
    fn cached(
        &self,
        id: &ObjectId,
        compression: Compression,
        size: Option<u64>,
    ) -> Result<Option<CachedObject>> {
        let Some(object) = self.cache.open(id)? else { return Ok(None) };
        if let Some(expected) = size {
            if expected != object.size() {
                warn!(object = %id, expected, actual = object.size(), "cached object has the wrong size; evicting");
                self.report_corrupt(id);
                return Ok(None);
            }
        }
        if !self.is_verified(id) {
            if !intact(id, compression, &object) {
                warn!(object = %id, "cached object is damaged (content digest mismatch); evicting and fetching again");
                self.report_corrupt(id);
                return Ok(None);
            }
            self.mark_verified(id);
        }
        Ok(Some(object))
    }

    fn is_verified(&self, id: &ObjectId) -> bool {
        self.verified.lock().unwrap_or_else(PoisonError::into_inner).contains(id)
    }

    fn mark_verified(&self, id: &ObjectId) {
        self.verified.lock().unwrap_or_else(PoisonError::into_inner).insert(*id);
    }

    /// Fetches `id` into the cache in the background unless it is cached already or too
    /// many prefetches run (read-ahead for chunked files). Errors are left for the reader
    /// that will ask for the object.
    pub fn prefetch(self: &Arc<Self>, id: ObjectId, compression: Compression, size: u64, what: String) {
        if self.cache.contains(&id) {
            return;
        }
        if self.prefetching.fetch_add(1, Ordering::SeqCst) >= MAX_PREFETCHES {
            self.prefetching.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let store = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("cvmfs-prefetch".into()).spawn(move || {
            let _ = store.get(&id, compression, Some(size), &what);
            store.prefetching.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            self.prefetching.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Drops a cached object found corrupt so the next access downloads it again.
    pub fn report_corrupt(&self, id: &ObjectId) {
        self.counters.corrupt_in_cache.fetch_add(1, Ordering::Relaxed);
        self.verified.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
        if let Err(e) = self.cache.evict_corrupt(id) {
            warn!(object = %id, error = %e, "evicting a corrupt object failed");
        }
    }

    fn download(
        &self,
        id: &ObjectId,
        compression: Compression,
        size: Option<u64>,
        what: &str,
    ) -> Result<CachedObject> {
        debug!(object = %id, what, "downloading");
        let mut sink = TxnSink {
            cache: &self.cache,
            id: *id,
            size,
            what,
            txn: Some(new_txn(&self.cache, id, size, what)?),
            digest: Hasher::new(id.hash.algorithm()),
        };
        let limit = size.unwrap_or(MAX_UNSIZED_OBJECT);
        let bytes = self.downloader.fetch_object(id, compression, &mut sink, limit).map_err(|e| match e {
            FetchError::Verify { source: cvmfs_core::verify::VerifyError::Sink(io), .. } => {
                ClientError::Fetch(FetchError::NoSpace { what: what.to_string(), message: io.to_string() })
            }
            other => ClientError::Fetch(other),
        })?;
        if let Some(expected) = size {
            if bytes != expected {
                return Err(ClientError::BadFile {
                    path: what.to_string(),
                    problem: format!("object {id} has {bytes} bytes, the catalog says {expected}"),
                });
            }
        }
        let txn = sink.txn.take().ok_or_else(|| ClientError::BadFile {
            path: what.to_string(),
            problem: "the download left no cache transaction".into(),
        })?;
        let digest = std::mem::replace(&mut sink.digest, Hasher::new(id.hash.algorithm())).finish();
        let object = txn.commit()?;
        record_digest(&object, &digest);
        self.mark_verified(id);
        self.counters.downloads.fetch_add(1, Ordering::Relaxed);
        self.counters.downloaded_bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(object)
    }

    fn gate(&self, id: &ObjectId) -> Arc<Mutex<()>> {
        let mut map = self.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(*id).or_default())
    }

    fn release_gate(&self, id: &ObjectId, gate: &Arc<Mutex<()>>) {
        let mut map = self.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
        // Two references: the map's and ours. Waiters hold more; leave it for them.
        if Arc::strong_count(gate) <= 2 {
            map.remove(id);
        }
    }
}

/// The extended attribute holding the hash of a cached object's decompressed bytes.
const DIGEST_XATTR: &std::ffi::CStr = c"user.cvmfs.digest";

/// Records `digest` with the cached object (best effort: a file system without user
/// xattrs just means uncompressed objects are still checked, compressed ones are not).
fn record_digest(object: &CachedObject, digest: &ContentHash) {
    use std::os::fd::AsRawFd;
    let text = digest.to_string();
    // SAFETY: fsetxattr on an open descriptor with a NUL-terminated name and a buffer of
    // the given length.
    unsafe {
        libc::fsetxattr(object.as_raw_fd(), DIGEST_XATTR.as_ptr(), text.as_ptr().cast(), text.len(), 0);
    }
}

fn recorded_digest(object: &CachedObject) -> Option<ContentHash> {
    use std::os::fd::AsRawFd;
    let mut buffer = [0u8; 128];
    // SAFETY: fgetxattr writes at most `buffer.len()` bytes into `buffer`.
    let n = unsafe {
        libc::fgetxattr(object.as_raw_fd(), DIGEST_XATTR.as_ptr(), buffer.as_mut_ptr().cast(), buffer.len())
    };
    let text = std::str::from_utf8(buffer.get(..usize::try_from(n).ok()?)?).ok()?;
    ContentHash::parse(text).ok()
}

/// The first-use check of a cached object: its decompressed bytes against the digest
/// recorded at download, or, for uncompressed objects, against the content hash itself.
/// Objects that carry neither (another writer's cache) cannot be checked and pass.
fn intact(id: &ObjectId, compression: Compression, object: &CachedObject) -> bool {
    let expected = match (recorded_digest(object), compression) {
        (Some(digest), _) => digest,
        (None, Compression::None) => id.hash,
        (None, Compression::Zlib) => return true,
    };
    match object.content_hash(expected.algorithm()) {
        Ok(actual) => actual == expected,
        Err(_) => false,
    }
}

/// A cache transaction for `id`, described for `cvmfs_talk cache list`.
fn new_txn(cache: &Cache, id: &ObjectId, size: Option<u64>, what: &str) -> Result<cvmfs_cache::Txn> {
    let mut txn = cache.start_txn(*id, size)?;
    txn.describe(what.to_string());
    Ok(txn)
}

/// A cache transaction that a retried download can start over in: rewinding abandons
/// the transaction (its file is removed) and opens a fresh one.
struct TxnSink<'a> {
    cache: &'a Cache,
    id: ObjectId,
    size: Option<u64>,
    what: &'a str,
    txn: Option<cvmfs_cache::Txn>,
    /// Hash of the decompressed bytes, recorded with the object for later checks.
    digest: Hasher,
}

impl std::io::Write for TxnSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.txn.as_mut() {
            Some(txn) => {
                let n = txn.write(buf)?;
                self.digest.update(&buf[..n]);
                Ok(n)
            }
            None => Err(std::io::Error::other("cache transaction is closed")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.txn.as_mut().map_or(Ok(()), |txn| txn.flush())
    }
}

impl cvmfs_core::verify::RewindableSink for TxnSink<'_> {
    fn rewind(&mut self) -> std::io::Result<()> {
        if let Some(old) = self.txn.take() {
            old.abort();
        }
        self.digest = Hasher::new(self.id.hash.algorithm());
        self.txn = Some(new_txn(self.cache, &self.id, self.size, self.what).map_err(std::io::Error::other)?);
        Ok(())
    }
}

//! The cache handle: lookups, transactions, pins, cleanup, eviction, listing.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, TryLockError};

use cvmfs_core::{ContentHash, ObjectId, ObjectKind};
use lru::LruCache;
use rusqlite::Transaction;

use crate::config::{CacheConfig, QuotaLimit, MIB};
use crate::db::{self, DbOrCache, NewRow, QuotaDb};
use crate::error::{CacheError, Result};
use crate::layout::{self, remove_if_present, try_flock, Layout};
use crate::object::CachedObject;
use crate::pin::{self, PinRefusal, PinTable};
use crate::txn::{Finished, Txn};

/// Touches are written to the database in batches of this size (upstream buffers 32
/// commands); readers only ever *try* to take the database lock for that.
const TOUCH_BATCH: usize = 32;
/// Touches beyond this are dropped while the database is busy: they only refine LRU order.
const MAX_PENDING_TOUCHES: usize = 4096;
/// Cleanup unlinks at most this many objects per database transaction, then lets
/// waiting writers in. Bounds how long a commit can stall behind a cleanup.
const CLEANUP_BATCH: usize = 128;
/// Upstream cleans up before writing objects larger than this if they would not fit.
const BIG_OBJECT: u64 = 25 * MIB;
const REBUILD_DESCRIPTION: &str = "unknown (automatic rebuild)";

/// Descriptors of recently opened objects with their sizes, so that hits skip `open(2)`.
type OpenFiles = LruCache<ContentHash, (Arc<File>, u64)>;

/// A handle on one cache directory. Cheap to clone (an `Arc` inside), `Send + Sync`;
/// one per process and directory is the intended use.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: CacheConfig,
    layout: Layout,
    token: String,
    /// `running.<token>`: holding the descriptor holds the shared lock that tells
    /// other processes this owner is alive. Removed on drop.
    _marker: File,
    db: Mutex<QuotaDb>,
    touches: Mutex<Vec<ContentHash>>,
    fds: Option<Mutex<OpenFiles>>,
    pins: Mutex<PinTable>,
    txn_counter: AtomicU64,
    startup_repair: Option<RepairReport>,
}

/// One object as `list()` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub hash: ContentHash,
    pub size: u64,
    pub description: String,
    pub catalog: bool,
    /// Belongs to a volatile repository (evicted first).
    pub volatile: bool,
    /// Pinned by this handle.
    pub pinned: bool,
}

/// What a cleanup did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub evicted: u64,
    pub freed_bytes: u64,
    /// Objects kept because they are pinned (here or by another process).
    pub skipped_pinned: u64,
    /// Bytes accounted afterwards.
    pub remaining_bytes: u64,
    /// False when pinned objects kept the cache above the target (upstream answers
    /// "Not fully cleaned (there might be pinned chunks)").
    pub complete: bool,
}

/// What a directory scan found wrong with the quota database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Files found without a row (committed just before a crash, or a new database).
    pub added: u64,
    /// Rows without a file (evicted just before a crash, or deleted by someone else).
    pub removed: u64,
    pub resized: u64,
}

/// Outcome of [`Cache::evict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evicted {
    Removed {
        bytes: u64,
    },
    NotCached,
    /// Pinned by this handle or another process; left in place.
    Pinned,
}

impl Cache {
    /// Opens (creating if needed) the cache directory. Detects owners that died
    /// (their `running.*` marker is no longer locked), removes their temporary files and
    /// repairs the quota database against the directory; a missing or corrupt database
    /// is rebuilt. If the cache exceeds its limit it is cleaned down to half.
    pub fn new(config: CacheConfig) -> Result<Cache> {
        let layout = Layout::create(&config.dir)?;
        let (mut db, fresh) = QuotaDb::open(&layout.database(), config.lock_timeout)?;
        let token = layout::new_token();
        let (marker, repair) = db
            .write(true, |tx| {
                let crashed = reap_dead_owners(&layout, &token)?;
                let marker = create_marker(&layout, &token)?;
                let repair = if fresh || crashed { Some(reconcile(tx, &layout)?) } else { None };
                Ok((marker, repair))
            })?
            .ok_or_else(|| CacheError::LockTimeout {
                path: layout.database(),
                waited: config.lock_timeout,
            })?;
        if let Some(report) = repair {
            tracing::info!("cache {}: quota database repaired: {report:?}", layout.dir.display());
        }
        let fds = std::num::NonZeroUsize::new(config.open_files).map(|n| Mutex::new(LruCache::new(n)));
        let inner = Inner {
            config,
            layout,
            token,
            _marker: marker,
            db: Mutex::new(db),
            touches: Mutex::new(Vec::new()),
            fds,
            pins: Mutex::new(PinTable::default()),
            txn_counter: AtomicU64::new(0),
            startup_repair: repair,
        };
        let cache = Cache { inner: Arc::new(inner) };
        cache.clean_if_over_limit()?;
        Ok(cache)
    }

    fn clean_if_over_limit(&self) -> Result<()> {
        if let (Some(limit), Some(threshold)) = (self.limit().bytes(), self.limit().threshold()) {
            if self.size()? > limit {
                self.cleanup(threshold)?;
            }
        }
        Ok(())
    }

    /// What opening the cache repaired, if it found a crashed owner or had to
    /// (re)create the database; `None` after a clean shutdown.
    pub fn startup_repair(&self) -> Option<RepairReport> {
        self.inner.startup_repair
    }

    pub fn dir(&self) -> &Path {
        &self.inner.layout.dir
    }

    pub fn limit(&self) -> QuotaLimit {
        self.inner.config.quota
    }

    /// Bytes accounted in the quota database (all processes sharing the directory).
    pub fn size(&self) -> Result<u64> {
        crate::lock(&self.inner.db).read(db::gauge)
    }

    /// Opens a cached object, or `None` on a miss. Needs no network and no database
    /// lock: this is the hit path (and all of offline use).
    pub fn open(&self, id: &ObjectId) -> Result<Option<CachedObject>> {
        let object = self.inner.open_object(&id.hash)?;
        if object.is_some() {
            self.inner.record_touch(id.hash);
        }
        Ok(object)
    }

    /// Whether the object is cached (a `stat`, or a descriptor already open).
    pub fn contains(&self, id: &ObjectId) -> bool {
        self.inner.cached_fd(&id.hash).is_some() || self.inner.layout.object(&id.hash).is_file()
    }

    /// Opens and pins an object (catalogs while attached). `None` on a miss.
    pub fn open_pinned(&self, id: &ObjectId) -> Result<Option<CachedObject>> {
        if !self.pin(id)? {
            return Ok(None);
        }
        match self.open(id) {
            Ok(Some(object)) => Ok(Some(object)),
            other => {
                self.unpin(id);
                other
            }
        }
    }

    /// Pins a cached object so no cleanup (in any process) evicts it until [`unpin`]
    /// is called as often as `pin`. Returns false if the object is not cached. Fails
    /// when pinned data would exceed half the quota, as upstream.
    ///
    /// [`unpin`]: Cache::unpin
    pub fn pin(&self, id: &ObjectId) -> Result<bool> {
        if crate::lock(&self.inner.pins).add_reference(&id.hash) {
            return Ok(true);
        }
        let path = self.inner.layout.object(&id.hash);
        let Some((lock, size)) = pin::lock_shared(&path).map_err(|e| CacheError::io("pinning", &path, e))?
        else {
            return Ok(false);
        };
        self.inner.insert_pin(id, size, lock)?;
        Ok(true)
    }

    /// Releases one pin; false if the object was not pinned by this handle.
    pub fn unpin(&self, id: &ObjectId) -> bool {
        crate::lock(&self.inner.pins).release(&id.hash)
    }

    /// Bytes pinned by this handle.
    pub fn pinned_bytes(&self) -> u64 {
        crate::lock(&self.inner.pins).bytes()
    }

    /// Starts writing an object. `expected_size` (decompressed), when known, is
    /// enforced: more bytes fail the write, fewer fail the commit.
    pub fn start_txn(&self, id: ObjectId, expected_size: Option<u64>) -> Result<Txn> {
        let max = self.inner.max_object_size();
        if let (Some(size), Some(max)) = (expected_size, max) {
            if size > max {
                return Err(CacheError::TooLarge { id, size, max });
            }
        }
        if let (Some(size), Some(limit)) = (expected_size, self.limit().bytes()) {
            if size > BIG_OBJECT && self.size()? + size > limit {
                // Make room before a long download rather than after it.
                self.cleanup((limit / 2).min(limit - size))?;
            }
        }
        let counter = self.inner.txn_counter.fetch_add(1, Ordering::Relaxed);
        let tmp_path = self.inner.layout.txn_dir().join(format!("{}.{counter}", self.inner.token));
        let cap = match (expected_size, max) {
            (Some(e), Some(m)) => Some(e.min(m)),
            (e, m) => e.or(m),
        };
        Txn::create(self.inner.clone(), id, tmp_path, expected_size, cap)
    }

    /// Evicts least recently used objects until at most `target_bytes` are accounted
    /// (`cvmfs_talk cleanup N`; 0 empties everything not pinned). Works in short
    /// batches so that writers are never held up for long; readers are not held up
    /// at all.
    pub fn cleanup(&self, target_bytes: u64) -> Result<CleanupReport> {
        self.inner.cleanup(target_bytes)
    }

    /// All accounted objects, least recently used first.
    pub fn list(&self) -> Result<Vec<CacheEntry>> {
        let rows = {
            let mut db = crate::lock(&self.inner.db);
            db.write(true, |tx| self.inner.apply_touches(tx))?;
            db.read(db::all_rows)?
        };
        let pins = crate::lock(&self.inner.pins);
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let hash = ContentHash::parse_content(&row.key).ok()?;
                Some(CacheEntry {
                    hash,
                    size: row.size,
                    volatile: row.volatile(),
                    catalog: row.kind == db::TYPE_CATALOG,
                    pinned: pins.contains(&hash),
                    description: row.description,
                })
            })
            .collect())
    }

    /// Removes one object unless it is pinned (`cvmfs_talk evict`).
    pub fn evict(&self, id: &ObjectId) -> Result<Evicted> {
        self.inner.evict(&id.hash, false)
    }

    /// Removes an object found corrupt when read, pinned or not; the caller fetches
    /// it again. (Pins held elsewhere keep their open descriptor of the old file.)
    pub fn evict_corrupt(&self, id: &ObjectId) -> Result<()> {
        tracing::warn!("evicting corrupt object {id} from cache {}", self.dir().display());
        self.inner.evict(&id.hash, true).map(|_| ())
    }

    /// Scans the directory and makes the quota database match it, now (it is done
    /// automatically at open after a crash). Also removes temporary files of dead
    /// processes.
    pub fn repair(&self) -> Result<RepairReport> {
        let inner = &self.inner;
        let mut db = crate::lock(&inner.db);
        let report = db.write(true, |tx| {
            inner.apply_touches(tx)?;
            reap_dead_owners(&inner.layout, &inner.token)?;
            reconcile(tx, &inner.layout)
        })?;
        drop(db);
        if let Some(fds) = &inner.fds {
            crate::lock(fds).clear();
        }
        Ok(report.unwrap_or_default())
    }

    /// Writes pending LRU touches to the database.
    pub fn flush(&self) -> Result<()> {
        let mut db = crate::lock(&self.inner.db);
        db.write(true, |tx| self.inner.apply_touches(tx)).map(|_| ())
    }

    /// Stores the raw breadcrumb (`cvmfschecksum.<fqrn>`); see [`crate::breadcrumb`].
    pub fn write_breadcrumb(&self, fqrn: &str, content: &[u8]) -> Result<()> {
        crate::breadcrumb::write(self.dir(), fqrn, content, self.inner.config.fsync)
    }

    /// Loads the raw breadcrumb, `None` if there is none.
    pub fn read_breadcrumb(&self, fqrn: &str) -> Result<Option<Vec<u8>>> {
        crate::breadcrumb::read(self.dir(), fqrn)
    }
}

impl Inner {
    /// Largest single object: the limit minus the cleanup threshold (half), as upstream.
    fn max_object_size(&self) -> Option<u64> {
        let quota = self.config.quota;
        Some(quota.bytes()? - quota.threshold()?)
    }

    fn cached_fd(&self, hash: &ContentHash) -> Option<(Arc<File>, u64)> {
        let fds = self.fds.as_ref()?;
        crate::lock(fds).get(hash).cloned()
    }

    fn remember_fd(&self, hash: ContentHash, file: Arc<File>, size: u64) {
        if let Some(fds) = &self.fds {
            crate::lock(fds).put(hash, (file, size));
        }
    }

    fn forget_fd(&self, hash: &ContentHash) {
        if let Some(fds) = &self.fds {
            crate::lock(fds).pop(hash);
        }
    }

    fn open_object(&self, hash: &ContentHash) -> Result<Option<CachedObject>> {
        if let Some((file, size)) = self.cached_fd(hash) {
            return Ok(Some(CachedObject::new(file, size, *hash)));
        }
        let path = self.layout.object(hash);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CacheError::io("opening", &path, e)),
        };
        let size = file.metadata().map_err(|e| CacheError::io("inspecting", &path, e))?.len();
        let file = Arc::new(file);
        self.remember_fd(*hash, file.clone(), size);
        Ok(Some(CachedObject::new(file, size, *hash)))
    }

    fn insert_pin(&self, id: &ObjectId, size: u64, lock: File) -> Result<()> {
        let budget = self.config.quota.threshold();
        let mut pins = crate::lock(&self.pins);
        if pins.add_reference(&id.hash) {
            return Ok(()); // another thread pinned it meanwhile; `lock` is dropped
        }
        pins.insert(id.hash, size, lock, budget).map_err(|PinRefusal::Budget { pinned }| {
            CacheError::PinBudget { id: *id, size, pinned, budget: budget.unwrap_or(u64::MAX) }
        })
    }

    fn record_touch(&self, hash: ContentHash) {
        let pending = {
            let mut touches = crate::lock(&self.touches);
            if touches.len() >= MAX_PENDING_TOUCHES {
                touches.drain(..MAX_PENDING_TOUCHES / 2);
            }
            touches.push(hash);
            touches.len()
        };
        if pending >= TOUCH_BATCH {
            self.try_flush_touches();
        }
    }

    /// Never waits: if another thread or process holds the database, the touches stay
    /// pending until the next writer flushes them.
    fn try_flush_touches(&self) {
        let mut db = match self.db.try_lock() {
            Ok(db) => db,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        if let Err(e) = db.write(false, |tx| self.apply_touches(tx)) {
            tracing::warn!("cannot record cache accesses: {e}");
        }
    }

    fn apply_touches(&self, tx: &Transaction) -> Result<(), DbOrCache> {
        let hashes = std::mem::take(&mut *crate::lock(&self.touches));
        let mut keys: Vec<String> = hashes.iter().map(ContentHash::to_string).collect();
        // Keep the last touch of each object only.
        let mut seen = std::collections::HashSet::new();
        keys.reverse();
        keys.retain(|k| seen.insert(k.clone()));
        keys.reverse();
        db::touch(tx, &keys)?;
        Ok(())
    }

    /// Renames a finished transaction into place and accounts it, in one database
    /// transaction so that no cleanup anywhere sees the file without its row.
    pub(crate) fn commit(&self, finished: Finished) -> Result<CachedObject> {
        let result = self.commit_inner(&finished);
        if result.is_err() {
            if let Err(e) = remove_if_present(&finished.tmp_path) {
                tracing::warn!("cannot remove failed cache transaction {}: {e}", finished.tmp_path.display());
            }
        }
        result
    }

    fn commit_inner(&self, finished: &Finished) -> Result<CachedObject> {
        let id = finished.id;
        if let Some(max) = self.max_object_size().filter(|&max| finished.size > max) {
            return Err(CacheError::TooLarge { id, size: finished.size, max });
        }
        if self.config.fsync {
            finished.file.sync_data().map_err(|e| CacheError::io("syncing", &finished.tmp_path, e))?;
        }
        self.make_room(finished.size)?;
        let final_path = self.layout.object(&id.hash);
        let key = id.hash.to_string();
        let kind = if id.kind == ObjectKind::Catalog { db::TYPE_CATALOG } else { db::TYPE_REGULAR };
        let mut db = crate::lock(&self.db);
        let kept_existing = db
            .write(true, |tx| {
                self.apply_touches(tx)?;
                // Another handle or process may have committed the same content: keep
                // that file (others may hold pins on it) and drop ours.
                let existing = fs::metadata(&final_path).ok().filter(|m| m.is_file()).map(|m| m.len());
                match existing {
                    Some(_) => remove_if_present(&finished.tmp_path)
                        .map_err(|e| CacheError::io("removing", &finished.tmp_path, e))?,
                    None => fs::rename(&finished.tmp_path, &final_path)
                        .map_err(|e| CacheError::io("renaming into the cache", &final_path, e))?,
                }
                let size = existing.unwrap_or(finished.size);
                let row = NewRow {
                    key: &key,
                    size,
                    description: &finished.description,
                    kind,
                    volatile: finished.volatile,
                };
                db::upsert(tx, &row)?;
                if finished.pin {
                    self.pin_committed(&id, &final_path)?;
                }
                Ok(existing.is_some())
            })?
            .unwrap_or(false);
        drop(db);
        if kept_existing {
            if let Some(object) = self.open_object(&id.hash)? {
                return Ok(object);
            }
            // Another process's cleanup evicted the copy we deferred to right after our
            // database transaction: our own (already unlinked) file still holds the
            // verified bytes, so hand those out; the next access fetches again.
            let file =
                Arc::new(finished.file.try_clone().map_err(|e| CacheError::io("opening", &final_path, e))?);
            return Ok(CachedObject::new(file, finished.size, id.hash));
        }
        self.dir_sync_if_configured(&final_path)?;
        let file =
            Arc::new(finished.file.try_clone().map_err(|e| CacheError::io("opening", &final_path, e))?);
        self.remember_fd(id.hash, file.clone(), finished.size);
        Ok(CachedObject::new(file, finished.size, id.hash))
    }

    /// Pins an object just renamed into place while the database lock keeps every
    /// cleanup out.
    fn pin_committed(&self, id: &ObjectId, path: &Path) -> Result<()> {
        if crate::lock(&self.pins).add_reference(&id.hash) {
            return Ok(());
        }
        let (lock, size) = pin::lock_shared(path)
            .map_err(|e| CacheError::io("pinning", path, e))?
            .ok_or_else(|| CacheError::io("pinning", path, io::Error::from(io::ErrorKind::NotFound)))?;
        self.insert_pin(id, size, lock)
    }

    fn dir_sync_if_configured(&self, final_path: &Path) -> Result<()> {
        if !self.config.fsync {
            return Ok(());
        }
        let Some(parent) = final_path.parent() else { return Ok(()) };
        File::open(parent).and_then(|d| d.sync_all()).map_err(|e| CacheError::io("syncing", parent, e))
    }

    /// Before accounting `incoming` bytes: if the limit would be exceeded, clean up to
    /// half the limit (upstream's insert rule).
    fn make_room(&self, incoming: u64) -> Result<()> {
        let (Some(limit), Some(threshold)) = (self.config.quota.bytes(), self.config.quota.threshold())
        else {
            return Ok(());
        };
        let gauge = crate::lock(&self.db).read(db::gauge)?;
        if gauge + incoming > limit {
            let report = self.cleanup(threshold)?;
            if !report.complete {
                tracing::warn!(
                    "cache {}: cleanup left {} bytes (pinned objects); limit {} bytes",
                    self.layout.dir.display(),
                    report.remaining_bytes,
                    limit
                );
            }
        }
        Ok(())
    }

    fn cleanup(&self, target: u64) -> Result<CleanupReport> {
        let mut report = CleanupReport::default();
        let mut cursor = i64::MIN;
        loop {
            let mut db = crate::lock(&self.db);
            let more = db.write(true, |tx| self.cleanup_batch(tx, target, &mut cursor, &mut report))?;
            drop(db);
            if more != Some(true) {
                break;
            }
        }
        report.remaining_bytes = crate::lock(&self.db).read(db::gauge)?;
        report.complete = report.remaining_bytes <= target;
        Ok(report)
    }

    /// Evicts up to one batch; returns whether another batch is needed.
    fn cleanup_batch(
        &self,
        tx: &Transaction,
        target: u64,
        cursor: &mut i64,
        report: &mut CleanupReport,
    ) -> Result<bool, DbOrCache> {
        self.apply_touches(tx)?;
        let mut gauge = db::gauge(tx)?;
        if gauge <= target {
            return Ok(false);
        }
        let rows = db::lru_rows(tx, *cursor, CLEANUP_BATCH)?;
        if rows.is_empty() {
            return Ok(false);
        }
        let pins = crate::lock(&self.pins);
        for row in rows {
            if gauge <= target {
                return Ok(false);
            }
            *cursor = row.acseq;
            let hash = match ContentHash::parse_content(&row.key) {
                Ok(hash) => hash,
                Err(_) => {
                    // A row naming no object (written by something else): drop it.
                    gauge -= db::delete(tx, &row.key)?.unwrap_or(0).min(gauge);
                    continue;
                }
            };
            if pins.contains(&hash) || !self.unlink_unless_pinned(&hash)? {
                report.skipped_pinned += 1;
                continue;
            }
            let freed = db::delete(tx, &row.key)?.unwrap_or(0);
            gauge = gauge.saturating_sub(freed);
            report.evicted += 1;
            report.freed_bytes += freed;
        }
        Ok(true)
    }

    /// Unlinks an object file unless another handle or process pins it. True if the
    /// file is gone now.
    fn unlink_unless_pinned(&self, hash: &ContentHash) -> Result<bool> {
        let path = self.layout.object(hash);
        let outcome = pin::try_lock_for_eviction(&path).map_err(|e| CacheError::io("locking", &path, e))?;
        let gone = match outcome {
            pin::Eviction::Gone => true,
            pin::Eviction::PinnedElsewhere => false,
            pin::Eviction::Free(lock) => {
                remove_if_present(&path).map_err(|e| CacheError::io("removing", &path, e))?;
                drop(lock);
                true
            }
        };
        if gone {
            self.forget_fd(hash);
        }
        Ok(gone)
    }

    fn evict(&self, hash: &ContentHash, force: bool) -> Result<Evicted> {
        let key = hash.to_string();
        let path = self.layout.object(hash);
        let mut db = crate::lock(&self.db);
        let outcome = db.write(true, |tx| {
            let file_size = fs::metadata(&path).ok().map(|m| m.len());
            if force {
                remove_if_present(&path).map_err(|e| CacheError::io("removing", &path, e))?;
                self.forget_fd(hash);
            } else if crate::lock(&self.pins).contains(hash) || !self.unlink_unless_pinned(hash)? {
                return Ok(Evicted::Pinned);
            }
            let row_size = db::delete(tx, &key)?;
            Ok(match row_size.or(file_size) {
                Some(bytes) => Evicted::Removed { bytes },
                None => Evicted::NotCached,
            })
        })?;
        Ok(outcome.unwrap_or(Evicted::NotCached))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let mut db = crate::lock(&self.db);
        if let Err(e) = db.write(true, |tx| self.apply_touches(tx)) {
            tracing::warn!("cannot record cache accesses at shutdown: {e}");
        }
        // Unlink while still holding the lock: a process starting now sees either a
        // live marker or none, never a dead one.
        if let Err(e) = remove_if_present(&self.layout.marker(&self.token)) {
            tracing::warn!("cannot remove {}: {e}", self.layout.marker(&self.token).display());
        }
    }
}

/// Creates `running.<token>` and share-locks it for the life of the handle.
fn create_marker(layout: &Layout, token: &str) -> Result<File> {
    let path = layout.marker(token);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| CacheError::io("creating", &path, e))?;
    if !try_flock(&file, libc::LOCK_SH).map_err(|e| CacheError::io("locking", &path, e))? {
        return Err(CacheError::io("locking", &path, io::Error::from(io::ErrorKind::WouldBlock)));
    }
    Ok(file)
}

/// Finds markers of processes that died (their lock is gone), removes them and every
/// temporary file not belonging to a live owner. Returns whether any owner had died.
/// Runs under the database write lock, so no owner starts or commits meanwhile.
fn reap_dead_owners(layout: &Layout, own_token: &str) -> Result<bool, DbOrCache> {
    let mut live = vec![own_token.to_string()];
    let mut crashed = false;
    for token in layout::marker_tokens(&layout.dir)? {
        let path = layout.marker(&token);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(CacheError::io("opening", &path, e).into()),
        };
        if try_flock(&file, libc::LOCK_EX).map_err(|e| CacheError::io("locking", &path, e))? {
            tracing::warn!("cache {}: a previous user crashed, repairing", layout.dir.display());
            remove_if_present(&path).map_err(|e| CacheError::io("removing", &path, e))?;
            crashed = true;
        } else {
            live.push(token);
        }
    }
    remove_orphan_temporaries(layout, &live)?;
    Ok(crashed)
}

fn remove_orphan_temporaries(layout: &Layout, live: &[String]) -> Result<()> {
    let dir = layout.txn_dir();
    let entries = fs::read_dir(&dir).map_err(|e| CacheError::io("listing", &dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| CacheError::io("listing", &dir, e))?;
        let name = entry.file_name();
        let owner = name.to_str().and_then(|n| n.split('.').next()).unwrap_or("");
        if !live.iter().any(|t| t == owner) {
            remove_if_present(&entry.path()).map_err(|e| CacheError::io("removing", entry.path(), e))?;
        }
    }
    Ok(())
}

/// A file found in one of the 256 object directories.
struct FoundObject {
    key: String,
    size: u64,
    atime: i64,
}

/// Makes the rows match the object files: rows without files go, files without rows
/// are added (least recently accessed first, as upstream's rebuild), sizes are fixed.
fn reconcile(tx: &Transaction, layout: &Layout) -> Result<RepairReport, DbOrCache> {
    let mut rows: HashMap<String, u64> = db::all_rows(tx)?.into_iter().map(|r| (r.key, r.size)).collect();
    let mut report = RepairReport::default();
    let mut unaccounted = Vec::new();
    for found in scan_objects(layout)? {
        match rows.remove(&found.key) {
            Some(size) if size == found.size => {}
            Some(_) => {
                db::set_size(tx, &found.key, found.size)?;
                report.resized += 1;
            }
            None => unaccounted.push(found),
        }
    }
    for key in rows.keys() {
        db::delete(tx, key)?;
        report.removed += 1;
    }
    unaccounted.sort_by_key(|f| f.atime);
    for found in &unaccounted {
        let row = NewRow {
            key: &found.key,
            size: found.size,
            description: REBUILD_DESCRIPTION,
            kind: db::TYPE_REGULAR,
            volatile: false,
        };
        db::upsert(tx, &row)?;
        report.added += 1;
    }
    db::recompute_state(tx)?;
    Ok(report)
}

/// Every regular file in `00`..`ff` whose name is a content hash. Other files are
/// left alone (and unaccounted): we did not put them there.
fn scan_objects(layout: &Layout) -> Result<Vec<FoundObject>> {
    let mut found = Vec::new();
    for prefix in (0..=255u8).map(|i| format!("{i:02x}")) {
        let dir = layout.dir.join(&prefix);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(CacheError::io("listing", &dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| CacheError::io("listing", &dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
            let Ok(hash) = ContentHash::parse_content(&format!("{prefix}{name}")) else { continue };
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_file() {
                found.push(FoundObject { key: hash.to_string(), size: meta.len(), atime: meta.atime() });
            }
        }
    }
    Ok(found)
}

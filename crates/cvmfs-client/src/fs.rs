//! The file-system API of a mounted repository: what FUSE (and every other front end)
//! calls. Plain Rust, no FUSE types: tests call it directly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use cvmfs_core::catalog::{EntryKind, TreeEntry};
use cvmfs_core::path::RepoPath;
use cvmfs_core::repository::ContentPiece;
use cvmfs_core::Compression;
use tracing::{info, warn};

use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::fetch::{Downloader, FileDownloader};
use crate::inode::{InodeKey, InodeTable};
use crate::mount::{display, CheckOutcome, MountError, Parts, Revision, OFFLINE_RETRY};

/// Chunks fetched ahead of a reader of a chunked file.
const READ_AHEAD_CHUNKS: usize = 2;

/// The type of an entry, as `stat` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Directory,
    Regular,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl From<EntryKind> for FileKind {
    fn from(kind: EntryKind) -> FileKind {
        match kind {
            EntryKind::Directory => FileKind::Directory,
            EntryKind::Regular => FileKind::Regular,
            EntryKind::Symlink => FileKind::Symlink,
            EntryKind::CharDevice => FileKind::CharDevice,
            EntryKind::BlockDevice => FileKind::BlockDevice,
            EntryKind::Fifo => FileKind::Fifo,
            EntryKind::Socket => FileKind::Socket,
        }
    }
}

/// `struct stat` of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: FileKind,
    /// Full `st_mode` including the type bits.
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub rdev: u64,
    pub mtime: i64,
    pub mtime_ns: u32,
    pub blocks: u64,
}

/// One directory listing entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: u64,
    pub kind: FileKind,
    pub name: Vec<u8>,
}

/// `statfs` figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    pub block_size: u32,
    pub blocks: u64,
    pub blocks_free: u64,
    pub files: u64,
    pub files_free: u64,
}

/// Counters of file-system calls (for magic xattrs and `cvmfs_talk`).
#[derive(Debug, Default)]
pub struct FsCounters {
    pub lookups: AtomicU64,
    pub opens: AtomicU64,
    pub dir_opens: AtomicU64,
    pub io_errors: AtomicU64,
    pub last_io_error: AtomicU64,
    /// Opens answered with FUSE passthrough (the kernel reads the cache file itself).
    pub passthrough_opens: AtomicU64,
}

/// How a mount is set up beyond its configuration.
#[derive(Default)]
pub struct MountOptions {
    /// Fetches from the servers; `None` = choose from `CVMFS_SERVER_URL`.
    pub downloader: Option<Arc<dyn Downloader>>,
    /// Variables for variant symlinks (upstream: the process environment, which holds
    /// every configuration parameter).
    pub variables: HashMap<String, String>,
    /// Replaces the clock (unix seconds) for whitelist expiry, e.g. in tests.
    pub clock: Option<Box<dyn Fn() -> u64 + Send + Sync>>,
}

/// An open regular file: its content pieces are fixed at open, so it keeps reading
/// the bytes it opened even after a revision switch.
struct OpenFile {
    path: RepoPath,
    attr: Attr,
    compression: Compression,
    pieces: Vec<ContentPiece>,
    /// The piece read last, kept open (reads are mostly sequential).
    current: Mutex<Option<(usize, cvmfs_cache::CachedObject)>>,
}

/// A mounted repository.
pub struct Mount {
    parts: Parts,
    /// The revision served and its generation (bumped on every switch), read together.
    current: RwLock<(Arc<Revision>, u64)>,
    next_check: Mutex<Instant>,
    /// Recent lookups by (generation, path), negative ones included, sized by
    /// `CVMFS_MEMCACHE_SIZE`.
    entries: cvmfs_cache::MemCache<(u64, Vec<u8>), Option<TreeEntry>>,
    /// Serving a cached revision because the last manifest fetch or check failed.
    offline: AtomicBool,
    inodes: InodeTable,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_handle: AtomicU64,
    variables: HashMap<Vec<u8>, Vec<u8>>,
    pub counters: FsCounters,
    started: Instant,
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount").field("fqrn", &self.parts.config.fqrn).finish()
    }
}

impl Mount {
    /// Mounts the repository of `config`: keys, cache, trust chain, root catalog.
    pub fn new(config: ClientConfig, options: MountOptions) -> std::result::Result<Mount, MountError> {
        let downloader = match options.downloader {
            Some(d) => d,
            None => downloader_for(&config)?,
        };
        let mut parts = Parts::new(config, downloader)?;
        if let Some(clock) = options.clock {
            parts.clock = clock;
        }
        let revision = parts.initial_revision()?;
        let next_check = Instant::now() + revision.ttl(parts.config.max_ttl);
        let offline = revision.offline;
        let memcache_bytes = cvmfs_cache::memcache_bytes(parts.config.memcache_size_mb as i64);
        let variables =
            options.variables.into_iter().map(|(k, v)| (k.into_bytes(), v.into_bytes())).collect();
        Ok(Mount {
            parts,
            current: RwLock::new((Arc::new(revision), 0)),
            next_check: Mutex::new(next_check),
            entries: cvmfs_cache::MemCache::new(memcache_bytes, weigh_entry),
            offline: AtomicBool::new(offline),
            inodes: InodeTable::new(),
            files: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            variables,
            counters: FsCounters::default(),
            started: Instant::now(),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.parts.config
    }

    pub fn parts(&self) -> &Parts {
        &self.parts
    }

    /// The revision being served.
    pub fn revision(&self) -> Arc<Revision> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner).0)
    }

    /// Bumped on every revision switch (front ends invalidate kernel caches on it).
    pub fn generation(&self) -> u64 {
        self.current.read().unwrap_or_else(PoisonError::into_inner).1
    }

    fn revision_and_generation(&self) -> (Arc<Revision>, u64) {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        (Arc::clone(&current.0), current.1)
    }

    /// True while a cached revision is served because the network or manifest failed.
    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::SeqCst)
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn inodes(&self) -> &InodeTable {
        &self.inodes
    }

    pub fn open_files(&self) -> usize {
        self.files.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// When the next revision check is due.
    pub fn next_check(&self) -> Instant {
        *self.next_check.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks for a new revision now and switches to it if there is one.
    pub fn check_revision(&self) -> CheckOutcome {
        let current = self.revision();
        if current.fixed {
            return CheckOutcome::Fixed;
        }
        match self.parts.newer_revision(&current) {
            Ok(None) => {
                self.schedule(current.ttl(self.parts.config.max_ttl));
                self.offline.store(false, Ordering::SeqCst);
                CheckOutcome::UpToDate
            }
            Ok(Some(next)) => {
                let (from, to) = (current.revision(), next.revision());
                self.schedule(next.ttl(self.parts.config.max_ttl));
                self.switch_to(next);
                self.offline.store(false, Ordering::SeqCst);
                info!(from, to, "switched to catalog revision {to}");
                CheckOutcome::Applied { from, to }
            }
            Err(e) => {
                warn!(error = %e, "could not apply updated catalog revision, entering offline mode");
                self.count_io_error();
                self.schedule(OFFLINE_RETRY);
                self.offline.store(true, Ordering::SeqCst);
                CheckOutcome::Failed(e.to_string())
            }
        }
    }

    /// Runs [`Mount::check_revision`] if it is due.
    pub fn check_revision_if_due(&self) -> Option<CheckOutcome> {
        (Instant::now() >= self.next_check()).then(|| self.check_revision())
    }

    /// Switches to an arbitrary root catalog (`cvmfs_talk chroot`).
    pub fn chroot(&self, root: cvmfs_core::ContentHash) -> std::result::Result<(), MountError> {
        let tree = self.parts.tree(root)?;
        let current = self.revision();
        let next = Revision {
            tree,
            root_hash: root,
            timestamp: current.timestamp,
            manifest: None,
            tag: None,
            fixed: current.fixed,
            offline: false,
            loaded_at: Instant::now(),
        };
        self.switch_to(next);
        Ok(())
    }

    fn switch_to(&self, next: Revision) {
        {
            let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
            let generation = current.1 + 1;
            *current = (Arc::new(next), generation);
        }
        self.entries.clear();
    }

    fn schedule(&self, after: Duration) {
        *self.next_check.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now() + after;
    }

    fn count_io_error(&self) {
        self.counters.io_errors.fetch_add(1, Ordering::Relaxed);
        self.counters.last_io_error.store(crate::mount::unix_now(), Ordering::Relaxed);
    }

    /// Logs an EIO-class failure once and counts it.
    fn failed<T>(&self, what: &str, path: &RepoPath, error: ClientError) -> Result<T> {
        if error.is_failure() {
            warn!(path = %display(path), error = %error, "{what} failed");
            self.count_io_error();
        }
        Err(error)
    }

    // ----- metadata -----

    fn path_of(&self, ino: u64) -> Result<RepoPath> {
        self.inodes.path(ino).ok_or(ClientError::StaleInode(ino))
    }

    fn entry_at(&self, revision: &Revision, path: &RepoPath) -> Result<TreeEntry> {
        match revision.tree.lookup(path) {
            Ok(Some(entry)) => Ok(entry),
            Ok(None) => Err(ClientError::NotFound),
            Err(e) => self.failed("lookup", path, e.into()),
        }
    }

    /// The current entry at `path`, through the in-memory cache of recent lookups.
    fn current_entry(&self, path: &RepoPath) -> Result<(Arc<Revision>, TreeEntry)> {
        let (revision, generation) = self.revision_and_generation();
        let key = (generation, path.as_bytes().to_vec());
        if let Some(cached) = self.entries.get(&key) {
            return cached.map(|entry| (Arc::clone(&revision), entry)).ok_or(ClientError::NotFound);
        }
        match self.entry_at(&revision, path) {
            Ok(entry) => {
                self.entries.insert(key, Some(entry.clone()));
                Ok((revision, entry))
            }
            Err(ClientError::NotFound) => {
                self.entries.insert(key, None);
                Err(ClientError::NotFound)
            }
            Err(e) => Err(e),
        }
    }

    fn inode_key(entry: &TreeEntry) -> InodeKey {
        if entry.entry.hardlink_group() != 0 && !entry.entry.is_directory() {
            InodeKey::Hardlink {
                catalog_mountpoint: entry.catalog.mountpoint.as_bytes().to_vec(),
                group: entry.entry.hardlink_group(),
            }
        } else {
            InodeKey::Path(entry.path.as_bytes().to_vec())
        }
    }

    fn attr(&self, ino: u64, entry: &TreeEntry) -> Attr {
        let e = &entry.entry;
        let config = &self.parts.config;
        let mut mode = e.mode;
        if config.world_readable {
            mode |= 0o444 | if e.is_directory() { 0o111 } else { 0 };
        }
        let (uid, gid) = if config.claim_ownership {
            // SAFETY: getuid/getgid cannot fail and touch no memory.
            unsafe { (libc::getuid(), libc::getgid()) }
        } else {
            (e.uid, e.gid)
        };
        let size = if e.is_directory() { 4096 } else { e.size };
        Attr {
            ino,
            kind: e.kind.into(),
            mode,
            nlink: e.linkcount().max(1),
            uid,
            gid,
            size,
            rdev: e.rdev.unwrap_or(0),
            mtime: e.mtime,
            mtime_ns: e.mtime_ns.unwrap_or(0),
            blocks: 1 + size / 512,
        }
    }

    /// `lookup(parent, name)`: counts one kernel reference on success.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr> {
        self.counters.lookups.fetch_add(1, Ordering::Relaxed);
        let parent_path = self.path_of(parent)?;
        let path = match name {
            b"." => parent_path,
            b".." => parent_path.parent().unwrap_or_else(RepoPath::root),
            _ => parent_path.join(name).map_err(|_| ClientError::NotFound)?,
        };
        let (_, entry) = self.current_entry(&path)?;
        let ino = self.inodes.remember(Self::inode_key(&entry), &entry.path);
        Ok(self.attr(ino, &entry))
    }

    /// Drops `n` kernel references to `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        self.inodes.forget(ino, n);
    }

    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        let path = self.path_of(ino)?;
        match self.current_entry(&path) {
            Ok((_, entry)) => Ok(self.attr(ino, &entry)),
            Err(ClientError::NotFound) => self.open_file_attr(ino).ok_or(ClientError::NotFound),
            Err(e) => Err(e),
        }
    }

    /// An open file removed in a newer revision still answers `fstat` (as upstream).
    fn open_file_attr(&self, ino: u64) -> Option<Attr> {
        let files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        files.values().find(|f| f.attr.ino == ino).map(|f| f.attr)
    }

    /// The listing of directory `ino`: `.`, `..` (not at the root), then the visible
    /// entries.
    pub fn readdir(&self, ino: u64) -> Result<Vec<DirEntry>> {
        self.counters.dir_opens.fetch_add(1, Ordering::Relaxed);
        let path = self.path_of(ino)?;
        let revision = self.revision();
        let dir = self.entry_at(&revision, &path)?;
        if !dir.entry.is_directory() {
            return Err(ClientError::NotADirectory);
        }
        let children = match revision.tree.list(&path) {
            Ok(children) => children,
            Err(e) => return self.failed("listing", &path, e.into()),
        };
        let mut out = Vec::with_capacity(children.len() + 2);
        out.push(DirEntry { ino, kind: FileKind::Directory, name: b".".to_vec() });
        if !path.is_root() {
            let parent = path.parent().unwrap_or_else(RepoPath::root);
            let parent_ino = self.inodes.peek(&InodeKey::Path(parent.as_bytes().to_vec()));
            out.push(DirEntry { ino: parent_ino, kind: FileKind::Directory, name: b"..".to_vec() });
        }
        for child in children {
            let child_ino = self.inodes.peek(&Self::inode_key(&child));
            out.push(DirEntry {
                ino: child_ino,
                kind: child.entry.kind.into(),
                name: child.entry.name.clone(),
            });
        }
        Ok(out)
    }

    /// The symlink target with variant symlinks (`$(VAR)`, `$(VAR:-default)`) expanded.
    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        let entry = self.entry_of(ino)?;
        if !entry.entry.is_symlink() {
            return Err(ClientError::NotASymlink);
        }
        Ok(entry.entry.expanded_symlink(|name| self.variables.get(name)).into_owned())
    }

    /// The current catalog entry behind `ino`.
    pub fn entry_of(&self, ino: u64) -> Result<TreeEntry> {
        let path = self.path_of(ino)?;
        self.current_entry(&path).map(|(_, entry)| entry)
    }

    /// Whether an absent variable expands to its default: used by xattrs.
    pub fn variables(&self) -> &HashMap<Vec<u8>, Vec<u8>> {
        &self.variables
    }

    // ----- file content -----

    /// Opens a regular file and returns its handle. Unchunked files are fetched now
    /// (as upstream), chunked ones chunk by chunk as they are read.
    pub fn open(&self, ino: u64) -> Result<u64> {
        let path = self.path_of(ino)?;
        let revision = self.revision();
        let entry = self.entry_at(&revision, &path)?;
        if entry.entry.is_directory() {
            return Err(ClientError::IsADirectory);
        }
        let pieces = match content_pieces(&entry) {
            Ok(pieces) => pieces,
            Err(e) => return self.failed("open", &path, e),
        };
        let file = OpenFile {
            path: path.clone(),
            attr: self.attr(ino, &entry),
            compression: entry.entry.compression,
            pieces,
            current: Mutex::new(None),
        };
        if !entry.entry.is_chunked() && !file.pieces.is_empty() {
            let object = match self.fetch_piece(&file, 0) {
                Ok(object) => object,
                Err(e) => return self.failed("open", &path, e),
            };
            *file.current.lock().unwrap_or_else(PoisonError::into_inner) = Some((0, object));
        }
        self.counters.opens.fetch_add(1, Ordering::Relaxed);
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.files.lock().unwrap_or_else(PoisonError::into_inner).insert(handle, Arc::new(file));
        Ok(handle)
    }

    /// Up to `size` bytes at `offset`; fewer only at the end of the file.
    pub fn read(&self, handle: u64, offset: u64, size: usize) -> Result<Vec<u8>> {
        let file = self.file(handle)?;
        let end = file.attr.size.min(offset.saturating_add(size as u64));
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut position = offset;
        while position < end {
            let index = piece_index(&file.pieces, position).ok_or_else(|| ClientError::BadFile {
                path: display(&file.path),
                problem: "no chunk covers offset".into(),
            })?;
            let piece = file.pieces[index];
            let object = match self.piece_object(&file, index) {
                Ok(object) => object,
                Err(e) => return self.failed("read", &file.path, e),
            };
            let within = position - piece.offset;
            let want = (end.min(piece.offset + piece.size) - position) as usize;
            let start = out.len();
            out.resize(start + want, 0);
            if let Err(e) = object.read_exact_at(&mut out[start..], within) {
                // The cached copy is shorter than it should be: damaged on disk.
                self.parts.objects.report_corrupt(&piece.id);
                return self.failed("read", &file.path, ClientError::Io(e));
            }
            position += want as u64;
        }
        Ok(out)
    }

    /// The cached object behind an open unchunked file: the kernel may read it directly
    /// (FUSE passthrough). `None` for chunked or empty files.
    pub fn whole_file_object(&self, handle: u64) -> Option<cvmfs_cache::CachedObject> {
        let file = self.file(handle).ok()?;
        if file.pieces.len() != 1 || file.pieces[0].size != file.attr.size {
            return None;
        }
        let current = file.current.lock().unwrap_or_else(PoisonError::into_inner);
        current.as_ref().filter(|(index, _)| *index == 0).map(|(_, object)| object.clone())
    }

    pub fn release(&self, handle: u64) {
        self.files.lock().unwrap_or_else(PoisonError::into_inner).remove(&handle);
    }

    fn file(&self, handle: u64) -> Result<Arc<OpenFile>> {
        let files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        files.get(&handle).cloned().ok_or(ClientError::BadHandle(handle))
    }

    fn piece_object(&self, file: &OpenFile, index: usize) -> Result<cvmfs_cache::CachedObject> {
        let mut current = file.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((i, object)) = current.as_ref() {
            if *i == index {
                return Ok(object.clone());
            }
        }
        drop(current);
        let object = self.fetch_piece(file, index)?;
        self.read_ahead(file, index);
        current = file.current.lock().unwrap_or_else(PoisonError::into_inner);
        *current = Some((index, object.clone()));
        Ok(object)
    }

    /// A reader that moved on to chunk `index` will likely want the next ones: fetch
    /// them in parallel in the background.
    fn read_ahead(&self, file: &OpenFile, index: usize) {
        for next in file.pieces.iter().skip(index + 1).take(READ_AHEAD_CHUNKS) {
            let what = format!("part of {}", display(&file.path));
            self.parts.objects.prefetch(next.id, file.compression, next.size, what);
        }
    }

    fn fetch_piece(&self, file: &OpenFile, index: usize) -> Result<cvmfs_cache::CachedObject> {
        let piece = file.pieces[index];
        let what = if file.pieces.len() > 1 {
            format!("part of {}", display(&file.path))
        } else {
            display(&file.path)
        };
        self.parts.objects.get(&piece.id, file.compression, Some(piece.size), &what)
    }

    // ----- file system -----

    /// `statfs`: blocks are the cache (used/limit), files the repository's entries.
    pub fn statfs(&self) -> StatFs {
        let cache = self.parts.objects.cache();
        let used = cache.size().unwrap_or(0);
        let capacity = cache.limit().bytes().unwrap_or(used);
        let revision = self.revision();
        let files =
            revision.tree.root().catalog.counters().map(|c| c.all_inodes().max(0) as u64).unwrap_or(0);
        let loaded: u64 = revision
            .tree
            .loaded()
            .iter()
            .filter_map(|m| m.catalog.max_rowid().ok())
            .map(|rows| rows.max(0) as u64)
            .sum();
        StatFs {
            block_size: 512,
            blocks: capacity / 512,
            blocks_free: capacity.saturating_sub(used) / 512,
            files,
            files_free: files.saturating_sub(loaded),
        }
    }
}

/// The objects of a regular file, in order, checked to tile it exactly.
fn content_pieces(entry: &TreeEntry) -> Result<Vec<ContentPiece>> {
    cvmfs_core::repository::content_pieces(entry)
        .map_err(|e| ClientError::BadFile { path: display(&entry.path), problem: e.to_string() })
}

/// The piece containing `offset` (binary search over the sorted, tiling pieces).
fn piece_index(pieces: &[ContentPiece], offset: u64) -> Option<usize> {
    let index = pieces.partition_point(|p| p.offset + p.size <= offset);
    (index < pieces.len() && pieces[index].offset <= offset).then_some(index)
}

/// The downloader for the configured servers.
fn downloader_for(config: &ClientConfig) -> std::result::Result<Arc<dyn Downloader>, MountError> {
    let first = config.server_urls.first().ok_or(MountError::NoServer)?;
    let url = first.replace("@fqrn@", &config.fqrn).replace("@org@", org_of(&config.fqrn));
    if let Some(file) = FileDownloader::from_url(&url) {
        return Ok(Arc::new(file));
    }
    crate::network::downloader(config)
}

fn org_of(fqrn: &str) -> &str {
    fqrn.split('.').next().unwrap_or(fqrn)
}

/// Rough bytes of one cached lookup: the key, the entry and its names.
fn weigh_entry(key: &(u64, Vec<u8>), value: &Option<TreeEntry>) -> usize {
    let entry = value.as_ref().map_or(0, |e| {
        std::mem::size_of::<TreeEntry>()
            + e.entry.name.len()
            + e.entry.symlink.len()
            + e.path.as_bytes().len()
    });
    64 + key.1.len() + entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use cvmfs_core::{Algorithm, ContentHash, ObjectId, ObjectKind};

    fn piece(offset: u64, size: u64) -> ContentPiece {
        let id = ObjectId::new(ContentHash::of(Algorithm::Sha1, &offset.to_le_bytes()), ObjectKind::Partial);
        ContentPiece { id, offset, size }
    }

    #[test]
    fn pieces_are_found_by_offset() {
        let pieces = [piece(0, 10), piece(10, 5), piece(15, 1)];
        assert_eq!(piece_index(&pieces, 0), Some(0));
        assert_eq!(piece_index(&pieces, 9), Some(0));
        assert_eq!(piece_index(&pieces, 10), Some(1));
        assert_eq!(piece_index(&pieces, 15), Some(2));
        assert_eq!(piece_index(&pieces, 16), None);
        assert_eq!(piece_index(&[], 0), None);
    }
}

//! Walking the source tree into catalogs: one catalog for the root and one more below
//! every directory holding a `.cvmfscatalog` marker, rows in name order, content stored
//! as objects on the way.
//!
//! Rules followed (upstream's sync, `catalog_sql.cc` `CreateDatabaseFlags`):
//! * a nested catalog's mountpoint directory is a row in the parent (flags `DIR |
//!   NESTED_MOUNTPOINT`) and the root row of the child (`DIR | NESTED_ROOT`), both with
//!   the same key and parent key; the child gets `root_prefix`;
//! * directories have link count 2 + subdirectories; other entries 1;
//! * hardlink groups are formed by regular files of one directory sharing an inode; each
//!   group gets a number unique in its catalog and the link count is the number of
//!   members (links into other directories become independent files, as upstream's
//!   sync treats them);
//! * regular files carry the hash algorithm and compression in their flags (also when
//!   chunked, with a NULL hash); symlinks and special files carry neither;
//! * a catalog whose content equals the previous revision's catalog at the same
//!   mountpoint is not written again: the parent keeps referencing the old object.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use cvmfs_core::catalog::schema::{compression_flag_bits, flags, hash_algorithm_flag_bits, pack_hardlinks};
use cvmfs_core::path::RepoPath;
use cvmfs_core::{ContentHash, ObjectKind, PathKey};
use tracing::debug;

use crate::catalog::{CatalogProperties, CatalogWriter, FinishedCatalog, Row};
use crate::error::PublishError;
use crate::ingest::{ingest_file, worker_count, FileContent, IngestSettings};
use crate::previous::Previous;
use crate::source::{has_catalog_marker, read_dir_sorted, SourceEntry, SourceKind};
use crate::store::ObjectStore;

/// What the walk did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuildStats {
    pub entries: u64,
    pub catalogs_written: u64,
    /// Catalogs unchanged since the previous revision (not written again).
    pub catalogs_reused: u64,
}

/// Everything the walk needs.
pub struct TreeBuilder<'a> {
    pub store: &'a ObjectStore,
    pub settings: IngestSettings,
    pub with_xattrs: bool,
    pub scratch: PathBuf,
    pub previous: Option<&'a Previous>,
    /// Revision of the new root catalog (the repository revision).
    pub revision: u64,
    pub now: u64,
    pub ttl: u64,
    pub stats: BuildStats,
    next_file: u64,
}

impl<'a> TreeBuilder<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: &'a ObjectStore,
        settings: IngestSettings,
        with_xattrs: bool,
        scratch: PathBuf,
        previous: Option<&'a Previous>,
        revision: u64,
        now: u64,
        ttl: u64,
    ) -> TreeBuilder<'a> {
        TreeBuilder {
            store,
            settings,
            with_xattrs,
            scratch,
            previous,
            revision,
            now,
            ttl,
            stats: BuildStats::default(),
            next_file: 0,
        }
    }

    /// Builds and stores every catalog of the tree at `source`; returns the root catalog.
    pub fn build(&mut self, source: &Path) -> Result<FinishedCatalog, PublishError> {
        let root = SourceEntry::read(source, b"", self.with_xattrs)?;
        if !root.is_dir() {
            return Err(PublishError::SourceNotDirectory(source.to_path_buf()));
        }
        let children = read_dir_sorted(source, self.with_xattrs)?;
        let mut catalog = self.new_catalog(RepoPath::root())?;
        let row = directory_row(&root, &RepoPath::root(), &children, flags::DIR);
        self.insert(&mut catalog, &row)?;
        self.add_children(&mut catalog, &RepoPath::root(), children)?;
        self.finish(catalog)
    }

    fn new_catalog(&mut self, mountpoint: RepoPath) -> Result<CatalogWriter, PublishError> {
        self.next_file += 1;
        let file = self.scratch.join(format!("catalog-{}.db", self.next_file));
        CatalogWriter::create(&file, mountpoint)
    }

    fn insert(&mut self, catalog: &mut CatalogWriter, row: &Row<'_>) -> Result<(), PublishError> {
        self.stats.entries += 1;
        catalog.insert(row)
    }

    fn add_children(
        &mut self,
        catalog: &mut CatalogWriter,
        dir: &RepoPath,
        entries: Vec<SourceEntry>,
    ) -> Result<(), PublishError> {
        let groups = hardlink_groups(&entries, catalog);
        let contents = self.ingest_all(&entries)?;
        for (index, entry) in entries.iter().enumerate() {
            let path = dir
                .join(&entry.name)
                .map_err(|e| PublishError::Source { path: entry.path.clone(), reason: e.to_string() })?;
            match entry.kind {
                SourceKind::Directory => self.add_directory(catalog, &path, entry)?,
                SourceKind::Regular => {
                    let content = &contents[&inode(entry)];
                    let hardlinks = groups.get(&index).copied().unwrap_or_else(|| pack_hardlinks(0, 1));
                    let row = self.file_row(entry, &path, content, hardlinks);
                    self.insert(catalog, &row)?;
                }
                SourceKind::Symlink => {
                    self.insert(catalog, &plain_row(entry, &path, flags::FILE | flags::LINK))?
                }
                SourceKind::Special => {
                    self.insert(catalog, &plain_row(entry, &path, flags::FILE | flags::FILE_SPECIAL))?
                }
            }
        }
        Ok(())
    }

    /// Stores the content of every regular file of a listing (once per inode), on
    /// [`worker_count`] threads when there are several files.
    fn ingest_all(&self, entries: &[SourceEntry]) -> Result<HashMap<(u64, u64), FileContent>, PublishError> {
        let mut seen = std::collections::HashSet::new();
        let jobs: Vec<&SourceEntry> =
            entries.iter().filter(|e| e.kind == SourceKind::Regular && seen.insert(inode(e))).collect();
        let ingest = |e: &SourceEntry| ingest_file(self.store, &self.settings, &e.path, e.meta.size());
        let workers = worker_count().min(jobs.len());
        if workers <= 1 {
            return jobs.iter().map(|e| Ok((inode(e), ingest(e)?))).collect();
        }
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let work = || {
            let mut done = Vec::new();
            while !failed.load(Ordering::Relaxed) {
                let Some(entry) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) else { break };
                let result = ingest(entry);
                failed.fetch_or(result.is_err(), Ordering::Relaxed);
                done.push((inode(entry), result));
            }
            done
        };
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers).map(|_| scope.spawn(work)).collect();
            handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
        });
        let contents =
            results.into_iter().map(|(key, r)| r.map(|c| (key, c))).collect::<Result<HashMap<_, _>, _>>()?;
        if contents.len() != jobs.len() {
            return Err(PublishError::Source {
                path: jobs[0].path.clone(),
                reason: "a compression thread panicked".into(),
            });
        }
        Ok(contents)
    }

    fn add_directory(
        &mut self,
        catalog: &mut CatalogWriter,
        path: &RepoPath,
        entry: &SourceEntry,
    ) -> Result<(), PublishError> {
        let children = read_dir_sorted(&entry.path, self.with_xattrs)?;
        if !has_catalog_marker(&children) {
            let row = directory_row(entry, path, &children, flags::DIR);
            self.insert(catalog, &row)?;
            return self.add_children(catalog, path, children);
        }
        let mountpoint_row = directory_row(entry, path, &children, flags::DIR | flags::DIR_NESTED_MOUNTPOINT);
        self.insert(catalog, &mountpoint_row)?;
        let mut nested = self.new_catalog(path.clone())?;
        let root_row = directory_row(entry, path, &children, flags::DIR | flags::DIR_NESTED_ROOT);
        self.insert(&mut nested, &root_row)?;
        self.add_children(&mut nested, path, children)?;
        let finished = self.finish(nested)?;
        catalog.add_nested(&finished)
    }

    fn file_row<'e>(
        &self,
        entry: &'e SourceEntry,
        path: &RepoPath,
        content: &'e FileContent,
        hardlinks: i64,
    ) -> Row<'e> {
        let mut flag = flags::FILE
            | compression_flag_bits(self.settings.compression)
            | hash_algorithm_flag_bits(self.settings.algorithm);
        let mut row = plain_row(entry, path, 0);
        row.hardlinks = hardlinks;
        row.size = content.size();
        match content {
            FileContent::Whole { hash, .. } => row.hash = Some(hash.digest()),
            FileContent::Chunked { chunks, .. } => {
                flag |= flags::FILE_CHUNK;
                row.chunks = chunks;
            }
        }
        row.flags = flag;
        row
    }

    /// Seals a catalog, keeps the previous object if nothing changed, else stores it.
    fn finish(&mut self, catalog: CatalogWriter) -> Result<FinishedCatalog, PublishError> {
        let sealed = catalog.seal()?;
        let is_root = sealed.mountpoint.is_root();
        let previous = match self.previous {
            Some(p) => p.catalog_with_digest(&sealed.mountpoint)?,
            None => None,
        };
        if let Some((old, digest)) = &previous {
            if !is_root && *digest == sealed.digest {
                debug!(mountpoint = %sealed.mountpoint.to_string_lossy(), "catalog unchanged");
                self.stats.catalogs_reused += 1;
                let size = std::fs::metadata(&old.file).map(|m| m.len()).unwrap_or(0);
                let _ = std::fs::remove_file(&sealed.file);
                let (mountpoint, counters) = (sealed.mountpoint.clone(), sealed.counters);
                return Ok(FinishedCatalog {
                    mountpoint,
                    hash: old.hash,
                    size,
                    counters,
                    revision: old.revision,
                });
            }
        }
        let revision = match (&previous, is_root) {
            (_, true) => self.revision,
            (Some((old, _)), false) => old.revision + 1,
            (None, false) => 1,
        };
        let properties = CatalogProperties {
            revision,
            last_modified: self.now,
            previous_revision: previous
                .map(|(old, _)| old.hash)
                .unwrap_or_else(|| ContentHash::null(self.settings.algorithm)),
            ttl: is_root.then_some(self.ttl),
        };
        let (mountpoint, counters) = (sealed.mountpoint.clone(), sealed.counters);
        let (file, size) = sealed.finish(&properties)?;
        let hash = self.store.put_file(&file, ObjectKind::Catalog, self.settings.algorithm)?;
        let _ = std::fs::remove_file(&file);
        self.stats.catalogs_written += 1;
        debug!(mountpoint = %mountpoint.to_string_lossy(), %hash, "catalog written");
        Ok(FinishedCatalog { mountpoint, hash, size, counters, revision })
    }
}

/// Hardlink groups of one directory: listing index -> packed `hardlinks` column.
fn hardlink_groups(entries: &[SourceEntry], catalog: &mut CatalogWriter) -> HashMap<usize, i64> {
    let mut by_inode: Vec<((u64, u64), Vec<usize>)> = Vec::new();
    let mut seen: HashMap<(u64, u64), usize> = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
        if entry.kind != SourceKind::Regular || entry.meta.nlink() < 2 {
            continue;
        }
        let inode = (entry.meta.dev(), entry.meta.ino());
        match seen.get(&inode) {
            Some(&slot) => by_inode[slot].1.push(index),
            None => {
                seen.insert(inode, by_inode.len());
                by_inode.push((inode, vec![index]));
            }
        }
    }
    let mut packed = HashMap::new();
    for (_, members) in by_inode.into_iter().filter(|(_, m)| m.len() > 1) {
        let group = catalog.new_hardlink_group();
        let count = u32::try_from(members.len()).unwrap_or(u32::MAX);
        for index in members {
            packed.insert(index, pack_hardlinks(group, count));
        }
    }
    packed
}

fn inode(entry: &SourceEntry) -> (u64, u64) {
    (entry.meta.dev(), entry.meta.ino())
}

fn parent_key(path: &RepoPath) -> PathKey {
    path.parent().map_or(PathKey::ROOT_PARENT, |p| p.key())
}

/// A row with the entry's metadata and no content.
fn plain_row<'e>(entry: &'e SourceEntry, path: &RepoPath, flag: u32) -> Row<'e> {
    let meta = &entry.meta;
    Row {
        key: path.key(),
        parent: parent_key(path),
        hardlinks: pack_hardlinks(0, 1),
        hash: None,
        size: entry.catalog_size(),
        mode: meta.mode(),
        mtime: meta.mtime(),
        mtime_ns: Some(meta.mtime_nsec()),
        flags: flag,
        name: &entry.name,
        symlink: &entry.symlink,
        uid: meta.uid(),
        gid: meta.gid(),
        xattr: entry.xattrs.to_column(),
        chunks: &[],
    }
}

fn directory_row<'e>(
    entry: &'e SourceEntry,
    path: &RepoPath,
    children: &[SourceEntry],
    flag: u32,
) -> Row<'e> {
    let subdirectories = children.iter().filter(|c| c.is_dir()).count();
    let linkcount = u32::try_from(2 + subdirectories).unwrap_or(u32::MAX);
    let mut row = plain_row(entry, path, flag);
    row.hardlinks = pack_hardlinks(0, linkcount);
    row
}

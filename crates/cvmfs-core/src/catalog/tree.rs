//! Path resolution across nested catalogs and bind mountpoints (spec 6.11,
//! `catalog_mgr_impl.h` `LookupPath`/`MountSubtree`/`FindCatalog`).
//!
//! A [`CatalogTree`] starts from a root catalog and loads nested catalogs on demand
//! through a caller-supplied [`CatalogLoader`] (the client fetches, verifies and
//! inflates; tests read a local storage directory). Loaded catalogs are kept for the
//! life of the tree, which is safe to share between threads; a new root revision means
//! a new tree.
//!
//! Rules:
//! * A lookup of a mountpoint itself is served by the parent's transition entry (so its
//!   answer does not depend on what happens to be loaded); a listing of it loads the
//!   child. If the parent lacks the transition entry, the child's root entry answers.
//! * A nested catalog's `root_prefix` must equal the path its parent lists it under; a
//!   bind-mounted catalog must be a root catalog (`root_prefix` empty).
//! * A catalog whose hash already occurs among its ancestors is a cycle; more than
//!   [`DEFAULT_MAX_DEPTH`] levels of nesting is refused as absurd.
//!
//! What it is not for: inode numbers, ownership mapping, variant-symlink expansion and
//! unloading catalogs (client policy).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use thiserror::Error;

use super::entry::{Chunk, DirectoryEntry};
use super::error::CatalogError;
use super::sql::{Catalog, NestedKind, NestedRef};
use crate::hash::ContentHash;
use crate::path::{PathError, RepoPath};
use crate::xattr::XattrList;

/// Deepest nesting of catalogs a tree accepts by default.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// What a loader may fail with (network, cache, verification, SQLite...).
pub type LoadError = Box<dyn std::error::Error + Send + Sync>;

/// Produces opened catalogs by hash: fetch (or find in a cache), verify against
/// `hash`, inflate, and [`Catalog::open`]. `mountpoint` is where the tree attaches it
/// (for messages and caching policy).
pub trait CatalogLoader: Send + Sync {
    fn load(&self, hash: &ContentHash, mountpoint: &RepoPath) -> Result<Arc<Catalog>, LoadError>;
}

impl<L: CatalogLoader + ?Sized> CatalogLoader for Arc<L> {
    fn load(&self, hash: &ContentHash, mountpoint: &RepoPath) -> Result<Arc<Catalog>, LoadError> {
        (**self).load(hash, mountpoint)
    }
}

/// How a catalog is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    Root,
    Nested,
    Bind,
}

/// A catalog attached at a mountpoint of the tree.
#[derive(Debug)]
pub struct MountedCatalog {
    pub catalog: Arc<Catalog>,
    pub mountpoint: RepoPath,
    pub hash: ContentHash,
    pub kind: MountKind,
    /// Hashes from the root catalog down to this one.
    lineage: Vec<ContentHash>,
}

impl MountedCatalog {
    /// 0 for the root catalog.
    pub fn depth(&self) -> usize {
        self.lineage.len().saturating_sub(1)
    }

    /// `path` (tree namespace) in the catalog's own namespace.
    pub fn normalize(&self, path: &RepoPath) -> Option<RepoPath> {
        self.catalog.normalize(&self.mountpoint, path)
    }
}

/// An entry together with where it lives.
#[derive(Debug, Clone)]
pub struct TreeEntry {
    /// Path in the tree namespace.
    pub path: RepoPath,
    pub entry: DirectoryEntry,
    /// The catalog that holds the row.
    pub catalog: Arc<MountedCatalog>,
}

impl TreeEntry {
    /// Lazily read extended attributes.
    pub fn xattrs(&self) -> Result<XattrList, CatalogError> {
        self.catalog.catalog.xattrs(&self.entry)
    }

    /// Validated chunk list of a chunked file (empty otherwise).
    pub fn chunks(&self) -> Result<Vec<Chunk>, CatalogError> {
        self.catalog.catalog.chunks(&self.entry)
    }
}

#[derive(Debug, Error)]
pub enum TreeError {
    #[error("catalog at {mountpoint}: {source}")]
    Catalog { mountpoint: RepoPath, source: CatalogError },
    #[error("loading catalog {hash} for {mountpoint}: {source}")]
    Load { mountpoint: RepoPath, hash: ContentHash, source: LoadError },
    #[error("nested catalog at {mountpoint} has no hash in its parent; it cannot be loaded")]
    MissingHash { mountpoint: RepoPath },
    #[error("catalog {hash} mounted at {mountpoint} has root_prefix {found}, expected {expected}")]
    RootPrefixMismatch { mountpoint: RepoPath, hash: ContentHash, expected: RepoPath, found: RepoPath },
    #[error("catalog {hash} at {mountpoint} is one of its own ancestors (nested-catalog cycle)")]
    Cycle { mountpoint: RepoPath, hash: ContentHash },
    #[error("catalog at {mountpoint} would be nested deeper than {limit} levels")]
    TooDeep { mountpoint: RepoPath, limit: usize },
    #[error("nested catalog {path} cannot be placed under mountpoint {mountpoint}")]
    BadMountpoint { mountpoint: RepoPath, path: RepoPath },
    #[error("entry name under {dir}: {source}")]
    BadName { dir: RepoPath, source: PathError },
}

/// The catalogs of one repository revision, loaded on demand.
pub struct CatalogTree<L> {
    loader: L,
    root: Arc<MountedCatalog>,
    mounted: RwLock<HashMap<Vec<u8>, Arc<MountedCatalog>>>,
    max_depth: usize,
}

impl<L: CatalogLoader> CatalogTree<L> {
    /// Loads the root catalog `root_hash` through `loader`.
    pub fn new(loader: L, root_hash: ContentHash) -> Result<CatalogTree<L>, TreeError> {
        let root = RepoPath::root();
        let catalog = loader.load(&root_hash, &root).map_err(|source| TreeError::Load {
            mountpoint: root.clone(),
            hash: root_hash,
            source,
        })?;
        CatalogTree::with_root(loader, root_hash, catalog)
    }

    /// Uses an already opened root catalog.
    pub fn with_root(
        loader: L,
        root_hash: ContentHash,
        catalog: Arc<Catalog>,
    ) -> Result<CatalogTree<L>, TreeError> {
        let mountpoint = RepoPath::root();
        check_root_prefix(&catalog, &mountpoint, root_hash, &mountpoint)?;
        let root = Arc::new(MountedCatalog {
            catalog,
            mountpoint,
            hash: root_hash,
            kind: MountKind::Root,
            lineage: vec![root_hash],
        });
        let mounted = RwLock::new(HashMap::from([(Vec::new(), Arc::clone(&root))]));
        Ok(CatalogTree { loader, root, mounted, max_depth: DEFAULT_MAX_DEPTH })
    }

    /// Changes the nesting limit.
    pub fn with_max_depth(mut self, max_depth: usize) -> CatalogTree<L> {
        self.max_depth = max_depth;
        self
    }

    pub fn root(&self) -> &Arc<MountedCatalog> {
        &self.root
    }

    pub fn loader(&self) -> &L {
        &self.loader
    }

    /// Every catalog loaded so far (root included).
    pub fn loaded(&self) -> Vec<Arc<MountedCatalog>> {
        let mounted = self.mounted.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        mounted.values().cloned().collect()
    }

    /// The entry at `path` (hidden entries included); `None` if there is none.
    pub fn lookup(&self, path: &RepoPath) -> Result<Option<TreeEntry>, TreeError> {
        // Strict ancestors only: a mountpoint itself is answered by its parent.
        let mut current = self.deepest_loaded(path, false);
        loop {
            let inner = self.inner_path(&current, path)?;
            if let Some(mut entry) = current.catalog.lookup(&inner).map_err(|e| catalog_error(&current, e))? {
                // A bind-mounted root's own entry is named "", its mountpoint is not.
                entry.name = path.file_name().unwrap_or_default().to_vec();
                return Ok(Some(TreeEntry { path: path.clone(), entry, catalog: current }));
            }
            match current.catalog.find_nested(&inner).cloned() {
                None => return Ok(None),
                Some(nested) => current = self.mount(&current, &nested)?,
            }
        }
    }

    /// The visible entries of directory `dir`, loading the catalog that holds them.
    pub fn list(&self, dir: &RepoPath) -> Result<Vec<TreeEntry>, TreeError> {
        let owner = self.catalog_for(dir)?;
        let inner = self.inner_path(&owner, dir)?;
        let entries = owner.catalog.list(&inner).map_err(|e| catalog_error(&owner, e))?;
        entries
            .into_iter()
            .map(|entry| {
                let path = dir
                    .join(&entry.name)
                    .map_err(|source| TreeError::BadName { dir: dir.clone(), source })?;
                Ok(TreeEntry { path, entry, catalog: Arc::clone(&owner) })
            })
            .collect()
    }

    /// The catalog that holds the contents of directory `dir` (loading it if needed).
    pub fn catalog_for(&self, dir: &RepoPath) -> Result<Arc<MountedCatalog>, TreeError> {
        let mut current = self.deepest_loaded(dir, true);
        loop {
            let inner = self.inner_path(&current, dir)?;
            match current.catalog.find_nested(&inner).cloned() {
                None => return Ok(current),
                Some(nested) => current = self.mount(&current, &nested)?,
            }
        }
    }

    /// The deepest loaded catalog mounted at an ancestor of `path` (or at `path`
    /// itself when `inclusive`).
    fn deepest_loaded(&self, path: &RepoPath, inclusive: bool) -> Arc<MountedCatalog> {
        let mounted = self.mounted.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bytes = path.as_bytes();
        let found = prefixes_deepest_first(bytes)
            .filter(|prefix| inclusive || prefix.len() < bytes.len())
            .find_map(|prefix| mounted.get(prefix).cloned());
        found.unwrap_or_else(|| Arc::clone(&self.root))
    }

    fn inner_path(&self, current: &MountedCatalog, path: &RepoPath) -> Result<RepoPath, TreeError> {
        current.normalize(path).ok_or_else(|| TreeError::BadMountpoint {
            mountpoint: current.mountpoint.clone(),
            path: path.clone(),
        })
    }

    /// Attaches the catalog `nested` of `parent` (or returns the one already attached).
    fn mount(
        &self,
        parent: &Arc<MountedCatalog>,
        nested: &NestedRef,
    ) -> Result<Arc<MountedCatalog>, TreeError> {
        let mountpoint = parent.catalog.plant(&parent.mountpoint, &nested.path).ok_or_else(|| {
            TreeError::BadMountpoint { mountpoint: parent.mountpoint.clone(), path: nested.path.clone() }
        })?;
        if let Some(existing) = self.mounted_at(&mountpoint) {
            return Ok(existing);
        }
        let hash = nested.hash.ok_or_else(|| TreeError::MissingHash { mountpoint: mountpoint.clone() })?;
        if parent.depth() + 1 > self.max_depth {
            return Err(TreeError::TooDeep { mountpoint, limit: self.max_depth });
        }
        if parent.lineage.contains(&hash) {
            return Err(TreeError::Cycle { mountpoint, hash });
        }
        let catalog = self.loader.load(&hash, &mountpoint).map_err(|source| TreeError::Load {
            mountpoint: mountpoint.clone(),
            hash,
            source,
        })?;
        let (kind, expected_prefix) = match nested.kind {
            NestedKind::Nested => (MountKind::Nested, nested.path.clone()),
            NestedKind::Bind => (MountKind::Bind, RepoPath::root()),
        };
        check_root_prefix(&catalog, &mountpoint, hash, &expected_prefix)?;
        let mut lineage = parent.lineage.clone();
        lineage.push(hash);
        let child = Arc::new(MountedCatalog { catalog, mountpoint, hash, kind, lineage });
        let mut mounted = self.mounted.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Another thread may have attached it meanwhile; keep the first.
        let kept = mounted.entry(child.mountpoint.as_bytes().to_vec()).or_insert(child);
        Ok(Arc::clone(kept))
    }

    fn mounted_at(&self, mountpoint: &RepoPath) -> Option<Arc<MountedCatalog>> {
        let mounted = self.mounted.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        mounted.get(mountpoint.as_bytes()).cloned()
    }
}

fn catalog_error(mounted: &MountedCatalog, source: CatalogError) -> TreeError {
    TreeError::Catalog { mountpoint: mounted.mountpoint.clone(), source }
}

fn check_root_prefix(
    catalog: &Catalog,
    mountpoint: &RepoPath,
    hash: ContentHash,
    expected: &RepoPath,
) -> Result<(), TreeError> {
    if catalog.root_prefix() == expected {
        return Ok(());
    }
    Err(TreeError::RootPrefixMismatch {
        mountpoint: mountpoint.clone(),
        hash,
        expected: expected.clone(),
        found: catalog.root_prefix().clone(),
    })
}

/// `/a/b/c`, `/a/b`, `/a`, `` for `/a/b/c`.
fn prefixes_deepest_first(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let cuts = bytes.iter().enumerate().rev().filter(|(_, &b)| b == b'/').map(|(i, _)| i);
    std::iter::once(bytes.len()).chain(cuts).filter_map(|end| bytes.get(..end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_listed_deepest_first() {
        let all: Vec<&[u8]> = prefixes_deepest_first(b"/a/b").collect();
        assert_eq!(all, vec![&b"/a/b"[..], b"/a", b""]);
        let root: Vec<&[u8]> = prefixes_deepest_first(b"").collect();
        assert_eq!(root, vec![&b""[..]]);
    }
}

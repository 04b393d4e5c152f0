#![no_main]
//! Fuzzes the catalog reader: arbitrary bytes are written to a temporary file and opened
//! as an SQLite catalog; whatever opens is exercised through lookups, listings, xattrs,
//! chunks, counters and a `CatalogTree` whose loader serves the same file for every
//! hash (so nested references, cycles and bind mounts are reached too).
use std::path::PathBuf;
use std::sync::Arc;

use cvmfs_core::catalog::tree::LoadError;
use cvmfs_core::catalog::{Catalog, CatalogLoader, CatalogTree};
use cvmfs_core::path::RepoPath;
use cvmfs_core::{Algorithm, ContentHash};
use libfuzzer_sys::fuzz_target;

struct SameFile(PathBuf);

impl CatalogLoader for SameFile {
    fn load(&self, _hash: &ContentHash, _mountpoint: &RepoPath) -> Result<Arc<Catalog>, LoadError> {
        Ok(Arc::new(Catalog::open(&self.0)?))
    }
}

fn exercise(catalog: &Catalog) {
    let _ = catalog.counters();
    let _ = catalog.max_rowid();
    let root = catalog.root_prefix().clone();
    let mut dirs = vec![root.clone(), RepoPath::root()];
    dirs.extend(catalog.nested_refs().iter().map(|n| n.path.clone()));
    for dir in dirs.iter().take(8) {
        if let Ok(Some(entry)) = catalog.lookup(dir) {
            let _ = catalog.xattrs(&entry);
            let _ = catalog.chunks(&entry);
        }
        if let Ok(entries) = catalog.list_all(dir) {
            for entry in entries.iter().take(64) {
                let _ = catalog.xattrs(&entry);
                let _ = catalog.chunks(&entry);
                if let Ok(child) = dir.join(&entry.name) {
                    let _ = catalog.lookup(&child);
                }
            }
        }
    }
}

fn walk_tree(file: PathBuf) {
    let Ok(tree) = CatalogTree::new(SameFile(file), ContentHash::null(Algorithm::Sha1)) else { return };
    let mut pending = vec![RepoPath::root()];
    let mut budget = 64;
    while let Some(dir) = pending.pop() {
        budget -= 1;
        if budget == 0 {
            break;
        }
        let _ = tree.lookup(&dir);
        if let Ok(children) = tree.list(&dir) {
            for child in children.into_iter().take(16) {
                let _ = child.xattrs();
                let _ = child.chunks();
                if child.entry.is_directory() {
                    pending.push(child.path);
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut tmp) = tempfile::NamedTempFile::new() else { return };
    if std::io::Write::write_all(&mut tmp, data).is_err() {
        return;
    }
    let file = tmp.path().to_path_buf();
    if let Ok(catalog) = Catalog::open(&file) {
        exercise(&catalog);
        drop(catalog);
        walk_tree(file);
    }
});

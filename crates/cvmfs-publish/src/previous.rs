//! The revision currently in the storage directory, which a new publish builds on: its
//! manifest, its catalogs by mountpoint (to keep unchanged ones and to chain
//! `previous_revision`), and its history database (to extend it).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use cvmfs_core::catalog::Catalog;
use cvmfs_core::manifest::Manifest;
use cvmfs_core::path::RepoPath;
use cvmfs_core::verify::copy_verified;
use cvmfs_core::{Compression, ContentHash, ObjectId, ObjectKind};
use rusqlite::{Connection, OpenFlags};

use crate::catalog::content_digest;
use crate::error::{IoContext, PublishError, SqlContext};
use crate::store::ObjectStore;

/// Databases (catalogs, history) are inflated up to this size.
const MAX_DATABASE_BYTES: u64 = 16 << 30;

/// One catalog of the previous revision.
#[derive(Debug, Clone)]
pub struct PreviousCatalog {
    pub hash: ContentHash,
    pub revision: u64,
    /// The inflated database in the scratch directory.
    pub file: PathBuf,
}

/// The previous revision.
#[derive(Debug)]
pub struct Previous {
    pub manifest: Manifest,
    /// Catalogs by mountpoint (`""` for the root).
    pub catalogs: HashMap<RepoPath, PreviousCatalog>,
    /// The inflated history database, if the manifest names one.
    pub history: Option<PathBuf>,
}

impl Previous {
    /// Reads the revision in `store`, or `None` if the storage has no manifest yet.
    pub fn load(store: &ObjectStore, fqrn: &str, scratch: &Path) -> Result<Option<Previous>, PublishError> {
        let manifest_path = store.storage().join(".cvmfspublished");
        if !manifest_path.exists() {
            return Ok(None);
        }
        let raw = std::fs::read(&manifest_path).io("reading", &manifest_path)?;
        let manifest = Manifest::parse(&raw).map_err(|e| PublishError::Previous(e.to_string()))?;
        if manifest.repository_name != fqrn {
            return Err(PublishError::NameMismatch {
                expected: fqrn.to_string(),
                found: manifest.repository_name.clone(),
            });
        }
        let mut catalogs = HashMap::new();
        load_catalogs(store, scratch, RepoPath::root(), manifest.catalog_hash, &mut catalogs)?;
        let history = match manifest.history_object() {
            Some(id) => Some(inflate(store, &id, scratch)?),
            None => None,
        };
        Ok(Some(Previous { manifest, catalogs, history }))
    }

    /// The previous catalog at `mountpoint` and its content digest.
    pub fn catalog_with_digest(
        &self,
        mountpoint: &RepoPath,
    ) -> Result<Option<(&PreviousCatalog, ContentHash)>, PublishError> {
        let Some(previous) = self.catalogs.get(mountpoint) else { return Ok(None) };
        let conn = Connection::open_with_flags(&previous.file, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .sql("opening a previous catalog")?;
        Ok(Some((previous, content_digest(&conn)?)))
    }
}

fn load_catalogs(
    store: &ObjectStore,
    scratch: &Path,
    mountpoint: RepoPath,
    hash: ContentHash,
    out: &mut HashMap<RepoPath, PreviousCatalog>,
) -> Result<(), PublishError> {
    let file = inflate(store, &ObjectId::new(hash, ObjectKind::Catalog), scratch)?;
    let catalog = Catalog::open(&file).map_err(|e| PublishError::Previous(format!("catalog {hash}: {e}")))?;
    for nested in catalog.nested_refs() {
        if let Some(nested_hash) = nested.hash {
            load_catalogs(store, scratch, nested.path.clone(), nested_hash, out)?;
        }
    }
    out.insert(mountpoint, PreviousCatalog { hash, revision: catalog.revision(), file });
    Ok(())
}

/// Verifies and inflates a zlib database object into the scratch directory.
fn inflate(store: &ObjectStore, id: &ObjectId, scratch: &Path) -> Result<PathBuf, PublishError> {
    let source_path = store.object_path(id);
    let source = File::open(&source_path).io("opening", &source_path)?;
    let target = scratch.join(format!("previous-{id}.db"));
    let sink = File::create(&target).io("creating", &target)?;
    copy_verified(source, id.hash, Compression::Zlib, sink, MAX_DATABASE_BYTES)
        .map_err(|e| PublishError::Previous(format!("object {id}: {e}")))?;
    Ok(target)
}

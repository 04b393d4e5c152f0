//! Shared by the catalog tests: a [`CatalogLoader`] over a local storage directory and
//! helpers to build hostile catalogs with the real schema.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cvmfs_core::catalog::schema::{create_empty_schema, flags, pack_hardlinks};
use cvmfs_core::catalog::tree::LoadError;
use cvmfs_core::catalog::{Catalog, CatalogLoader};
use cvmfs_core::path::RepoPath;
use cvmfs_core::verify::read_verified_to_vec;
use cvmfs_core::{Compression, ContentHash, ObjectId, ObjectKind, PathKey};
use rusqlite::{params, Connection};
use tempfile::TempDir;

/// Loads catalogs from `<storage>/data/xx/...C`: verify, inflate into a temp file, open.
pub struct StorageLoader {
    pub storage: PathBuf,
    pub tmp: TempDir,
    pub loads: AtomicUsize,
}

impl StorageLoader {
    pub fn new(storage: &Path) -> StorageLoader {
        StorageLoader {
            storage: storage.to_path_buf(),
            tmp: tempfile::tempdir().unwrap(),
            loads: AtomicUsize::new(0),
        }
    }

    pub fn open(&self, hash: &ContentHash) -> Result<Catalog, LoadError> {
        let object = ObjectId::new(*hash, ObjectKind::Catalog);
        let stored = std::fs::read(self.storage.join(object.data_path()))?;
        let inflated = read_verified_to_vec(&stored, *hash, Compression::Zlib, 1 << 30)?;
        let file = self.tmp.path().join(format!("{}.sqlite", hash.hex()));
        // Threads may load one catalog at once: write privately, then rename, so no
        // reader ever opens a half-written file.
        let n = self.loads.load(Ordering::SeqCst);
        let partial =
            self.tmp.path().join(format!("{}.{n}.{:?}.partial", hash.hex(), std::thread::current().id()));
        std::fs::write(&partial, inflated)?;
        std::fs::rename(&partial, &file)?;
        Ok(Catalog::open(&file)?)
    }
}

impl CatalogLoader for StorageLoader {
    fn load(&self, hash: &ContentHash, _mountpoint: &RepoPath) -> Result<Arc<Catalog>, LoadError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        Ok(Arc::new(self.open(hash)?))
    }
}

/// Inflates a verified object of any kind into memory.
pub fn read_object(storage: &Path, hash: &ContentHash, kind: ObjectKind) -> Vec<u8> {
    let object = ObjectId::new(*hash, kind);
    let stored = std::fs::read(storage.join(object.data_path())).unwrap();
    read_verified_to_vec(&stored, *hash, Compression::Zlib, 1 << 30).unwrap()
}

pub fn hash(text: &str) -> ContentHash {
    ContentHash::parse(text).unwrap()
}

/// A schema-2.5-revision-7 catalog under construction (for hostile-input tests).
pub struct Builder {
    pub conn: Connection,
    pub file: PathBuf,
}

pub const DIR_MODE: i64 = 0o040755;
pub const FILE_MODE: i64 = 0o100644;

impl Builder {
    /// An empty catalog with the root entry of `root_prefix` ("" for a root catalog).
    pub fn new(dir: &Path, name: &str, root_prefix: &str) -> Builder {
        let file = dir.join(name);
        let _ = std::fs::remove_file(&file);
        let conn = Connection::open(&file).unwrap();
        create_empty_schema(&conn).unwrap();
        conn.execute("INSERT INTO properties VALUES ('revision', '1')", []).unwrap();
        let mut b = Builder { conn, file };
        if root_prefix.is_empty() {
            b.raw_row(PathKey::of(b""), PathKey::ROOT_PARENT, b"", DIR_MODE, 4096, flags::DIR, None);
        } else {
            b.conn.execute("INSERT INTO properties VALUES ('root_prefix', ?1)", [root_prefix]).unwrap();
            let path = RepoPath::parse(root_prefix.as_bytes()).unwrap();
            let parent = path.parent().unwrap();
            let name = path.file_name().unwrap().to_vec();
            b.raw_row(
                path.key(),
                parent.key(),
                &name,
                DIR_MODE,
                4096,
                flags::DIR | flags::DIR_NESTED_ROOT,
                None,
            );
        }
        for name in [
            "regular",
            "symlink",
            "special",
            "dir",
            "nested",
            "chunked",
            "chunks",
            "file_size",
            "chunked_size",
            "xattr",
            "external",
            "external_file_size",
        ] {
            for prefix in ["self_", "subtree_"] {
                b.conn.execute("INSERT INTO statistics VALUES (?1, 0)", [format!("{prefix}{name}")]).unwrap();
            }
        }
        b
    }

    /// A row with hand-chosen key, parent and name.
    #[allow(clippy::too_many_arguments)]
    pub fn raw_row(
        &mut self,
        key: PathKey,
        parent: PathKey,
        name: &[u8],
        mode: i64,
        size: i64,
        flag: u32,
        hash: Option<&[u8]>,
    ) {
        self.conn
            .execute(
                "INSERT INTO catalog (md5path_1, md5path_2, parent_1, parent_2, hardlinks, hash, size, mode, \
                 mtime, mtimens, flags, name, symlink, uid, gid, xattr) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1000, NULL, ?9, CAST(?10 AS TEXT), '', 0, 0, NULL)",
                params![key.p1, key.p2, parent.p1, parent.p2, pack_hardlinks(0, 1), hash, size, mode, flag, name],
            )
            .unwrap();
    }

    /// A directory at `path`.
    pub fn dir(&mut self, path: &str, flag: u32) {
        let p = RepoPath::parse(path.as_bytes()).unwrap();
        let name = p.file_name().unwrap().to_vec();
        self.raw_row(p.key(), p.parent().unwrap().key(), &name, DIR_MODE, 4096, flag, None);
    }

    /// A regular file at `path`.
    pub fn file(&mut self, path: &str, size: i64, flag: u32, hash: Option<&[u8]>) {
        let p = RepoPath::parse(path.as_bytes()).unwrap();
        let name = p.file_name().unwrap().to_vec();
        self.raw_row(p.key(), p.parent().unwrap().key(), &name, FILE_MODE, size, flag, hash);
    }

    pub fn nested(&mut self, table: &str, path: &str, hash: &str) {
        self.conn.execute(&format!("INSERT INTO {table} VALUES (?1, ?2, 0)"), [path, hash]).unwrap();
    }

    pub fn chunk(&mut self, path: &str, offset: i64, size: i64, hash: &[u8]) {
        let key = RepoPath::parse(path.as_bytes()).unwrap().key();
        self.conn
            .execute(
                "INSERT INTO chunks VALUES (?1, ?2, ?3, ?4, ?5)",
                params![key.p1, key.p2, offset, size, hash],
            )
            .unwrap();
    }

    pub fn finish(self) -> PathBuf {
        drop(self.conn);
        self.file
    }
}

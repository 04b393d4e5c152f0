//! Writing one catalog database (schema 2.5 revision 7, `cvmfs-core`'s DDL): rows,
//! chunks, nested-catalog references, statistics counters and properties.
//!
//! Counters follow upstream (`catalog_counters*`): every row of this catalog counts in
//! `self_*` (directories include the catalog's own root entry and the mountpoint entries
//! of nested catalogs, so a mountpoint counts in both catalogs), `self_nested` is the
//! number of direct nested catalogs, and `subtree_*` sums `self_* + subtree_*` of the
//! direct nested catalogs.

use std::path::{Path, PathBuf};

use cvmfs_core::catalog::schema::{create_empty_schema, flags};
use cvmfs_core::catalog::{CounterSet, Counters, COUNTER_NAMES};
use cvmfs_core::hash::Hasher;
use cvmfs_core::path::RepoPath;
use cvmfs_core::{Algorithm, ContentHash, PathKey};
use rusqlite::{params, Connection};

use crate::error::{PublishError, SqlContext};
use crate::ingest::ChunkRecord;

/// SQLite page size of the catalogs and history databases upstream writes.
pub const PAGE_SIZE: u32 = 1024;

/// Properties that change with every publish and do not describe the content.
const VOLATILE_PROPERTIES: [&str; 3] = ["revision", "last_modified", "previous_revision"];

/// Names and link targets are bound as bytes and cast to TEXT, so that names which are
/// not UTF-8 are stored byte for byte, as upstream's `sqlite3_bind_text` does.
const INSERT_ROW: &str = "INSERT INTO catalog (md5path_1, md5path_2, parent_1, parent_2, hardlinks, hash, \
    size, mode, mtime, mtimens, flags, name, symlink, uid, gid, xattr) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, CAST(?12 AS TEXT), CAST(?13 AS TEXT), ?14, ?15, ?16)";

/// One row of the `catalog` table.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    pub key: PathKey,
    pub parent: PathKey,
    pub hardlinks: i64,
    pub hash: Option<&'a [u8]>,
    pub size: u64,
    pub mode: u32,
    pub mtime: i64,
    pub mtime_ns: Option<i64>,
    pub flags: u32,
    pub name: &'a [u8],
    pub symlink: &'a [u8],
    pub uid: u32,
    pub gid: u32,
    pub xattr: Option<Vec<u8>>,
    /// For chunked files: the chunks.
    pub chunks: &'a [ChunkRecord],
}

/// The properties written when a catalog is closed.
#[derive(Debug, Clone)]
pub struct CatalogProperties {
    pub revision: u64,
    pub last_modified: u64,
    /// Hash of the previous version of this catalog (zeros for a new one).
    pub previous_revision: ContentHash,
    /// Root catalogs only.
    pub ttl: Option<u64>,
}

/// A catalog under construction in a scratch file.
pub struct CatalogWriter {
    conn: Connection,
    file: PathBuf,
    mountpoint: RepoPath,
    counters: Counters,
    next_hardlink_group: u32,
}

impl std::fmt::Debug for CatalogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogWriter")
            .field("file", &self.file)
            .field("mountpoint", &self.mountpoint)
            .finish()
    }
}

impl CatalogWriter {
    /// Creates an empty catalog for `mountpoint` (`""` for the root catalog) in `file`.
    pub fn create(file: &Path, mountpoint: RepoPath) -> Result<CatalogWriter, PublishError> {
        let _ = std::fs::remove_file(file);
        let conn = Connection::open(file).sql("creating a catalog")?;
        conn.execute_batch(&format!(
            "PRAGMA page_size={PAGE_SIZE}; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; \
             PRAGMA locking_mode=EXCLUSIVE;"
        ))
        .sql("setting up a catalog")?;
        create_empty_schema(&conn).sql("creating the catalog schema")?;
        if !mountpoint.is_root() {
            conn.execute(
                "INSERT INTO properties (key, value) VALUES ('root_prefix', CAST(?1 AS TEXT))",
                [mountpoint.as_bytes()],
            )
            .sql("writing root_prefix")?;
        }
        conn.execute_batch("BEGIN").sql("starting a catalog transaction")?;
        Ok(CatalogWriter {
            conn,
            file: file.to_path_buf(),
            mountpoint,
            counters: Counters::default(),
            next_hardlink_group: 1,
        })
    }

    pub fn mountpoint(&self) -> &RepoPath {
        &self.mountpoint
    }

    /// A fresh hardlink group number, unique within this catalog.
    pub fn new_hardlink_group(&mut self) -> u32 {
        let group = self.next_hardlink_group;
        self.next_hardlink_group += 1;
        group
    }

    /// Inserts one row (and its chunks) and counts it.
    pub fn insert(&mut self, row: &Row<'_>) -> Result<(), PublishError> {
        let mut statement = self.conn.prepare_cached(INSERT_ROW).sql("preparing a row insert")?;
        statement
            .execute(params![
                row.key.p1,
                row.key.p2,
                row.parent.p1,
                row.parent.p2,
                row.hardlinks,
                row.hash,
                i64::try_from(row.size).unwrap_or(i64::MAX),
                row.mode,
                row.mtime,
                row.mtime_ns,
                row.flags,
                row.name,
                row.symlink,
                row.uid,
                row.gid,
                row.xattr,
            ])
            .sql("inserting a catalog row")?;
        drop(statement);
        self.insert_chunks(row.key, row.chunks)?;
        count_row(&mut self.counters.self_, row);
        Ok(())
    }

    fn insert_chunks(&mut self, key: PathKey, chunks: &[ChunkRecord]) -> Result<(), PublishError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "INSERT INTO chunks (md5path_1, md5path_2, offset, size, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .sql("preparing a chunk insert")?;
        for chunk in chunks {
            let offset = i64::try_from(chunk.offset).unwrap_or(i64::MAX);
            let size = i64::try_from(chunk.size).unwrap_or(i64::MAX);
            statement
                .execute(params![key.p1, key.p2, offset, size, chunk.hash.digest()])
                .sql("inserting a chunk")?;
        }
        Ok(())
    }

    /// References a finished nested catalog and adds its counters to `subtree_*`.
    pub fn add_nested(&mut self, nested: &FinishedCatalog) -> Result<(), PublishError> {
        self.conn
            .execute(
                "INSERT INTO nested_catalogs (path, sha1, size) VALUES (CAST(?1 AS TEXT), ?2, ?3)",
                params![
                    nested.mountpoint.as_bytes(),
                    nested.hash.to_string(),
                    i64::try_from(nested.size).unwrap_or(i64::MAX)
                ],
            )
            .sql("inserting a nested catalog reference")?;
        self.counters.self_.nested += 1;
        add_into(&mut self.counters.subtree, &nested.counters.self_);
        add_into(&mut self.counters.subtree, &nested.counters.subtree);
        Ok(())
    }

    /// Writes the statistics, commits, and returns the content digest (everything but
    /// the per-publish properties) for comparison with the previous version.
    pub fn seal(self) -> Result<SealedCatalog, PublishError> {
        write_statistics(&self.conn, &self.counters)?;
        self.conn.execute_batch("COMMIT").sql("committing a catalog")?;
        let digest = content_digest(&self.conn)?;
        Ok(SealedCatalog {
            conn: self.conn,
            file: self.file,
            mountpoint: self.mountpoint,
            counters: self.counters,
            digest,
        })
    }
}

/// A catalog whose content is complete; only the per-publish properties are missing.
pub struct SealedCatalog {
    conn: Connection,
    pub file: PathBuf,
    pub mountpoint: RepoPath,
    pub counters: Counters,
    /// See [`content_digest`].
    pub digest: ContentHash,
}

impl SealedCatalog {
    /// Writes the properties and closes the database; returns the file and its size.
    pub fn finish(self, properties: &CatalogProperties) -> Result<(PathBuf, u64), PublishError> {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(ttl) = properties.ttl {
            pairs.push(("TTL", ttl.to_string()));
        }
        pairs.push(("last_modified", properties.last_modified.to_string()));
        pairs.push(("revision", properties.revision.to_string()));
        pairs.push(("previous_revision", properties.previous_revision.to_string()));
        for (key, value) in pairs {
            self.conn
                .execute(
                    "INSERT OR REPLACE INTO properties (key, value) VALUES (?1, ?2)",
                    params![key, value],
                )
                .sql("writing catalog properties")?;
        }
        self.conn
            .close()
            .map_err(|(_, source)| PublishError::Sqlite { what: "closing a catalog", source })?;
        let size = std::fs::metadata(&self.file).map(|m| m.len()).unwrap_or(0);
        Ok((self.file, size))
    }
}

/// A catalog stored as an object.
#[derive(Debug, Clone)]
pub struct FinishedCatalog {
    pub mountpoint: RepoPath,
    pub hash: ContentHash,
    /// Size of the uncompressed database.
    pub size: u64,
    pub counters: Counters,
    pub revision: u64,
}

fn count_row(set: &mut CounterSet, row: &Row<'_>) {
    let size = i64::try_from(row.size).unwrap_or(i64::MAX);
    if row.flags & flags::DIR != 0 {
        set.dir += 1;
    } else if row.flags & flags::LINK != 0 {
        set.symlink += 1;
    } else if row.flags & flags::FILE_SPECIAL != 0 {
        set.special += 1;
    } else {
        set.regular += 1;
        set.file_size += size;
        if row.flags & flags::FILE_CHUNK != 0 {
            set.chunked += 1;
            set.chunked_size += size;
            set.chunks += row.chunks.len() as i64;
        }
    }
    if row.xattr.is_some() {
        set.xattr += 1;
    }
}

fn add_into(total: &mut CounterSet, part: &CounterSet) {
    total.regular += part.regular;
    total.symlink += part.symlink;
    total.special += part.special;
    total.dir += part.dir;
    total.nested += part.nested;
    total.chunked += part.chunked;
    total.chunks += part.chunks;
    total.file_size += part.file_size;
    total.chunked_size += part.chunked_size;
    total.xattr += part.xattr;
    total.external += part.external;
    total.external_file_size += part.external_file_size;
}

fn write_statistics(conn: &Connection, counters: &Counters) -> Result<(), PublishError> {
    let mut statement = conn
        .prepare("INSERT INTO statistics (counter, value) VALUES (?1, ?2)")
        .sql("preparing statistics")?;
    for name in COUNTER_NAMES {
        for prefix in ["self_", "subtree_"] {
            let full = format!("{prefix}{name}");
            let value = counters.get(&full).unwrap_or(0);
            statement.execute(params![full, value]).sql("writing statistics")?;
        }
    }
    Ok(())
}

/// A SHA-1 over every table of a catalog in a canonical order, leaving out the
/// properties that change with each publish (`revision`, `last_modified`,
/// `previous_revision`). Two catalogs with the same digest describe the same content,
/// so an unchanged catalog keeps its previous object.
pub fn content_digest(conn: &Connection) -> Result<ContentHash, PublishError> {
    let mut hasher = Hasher::new(Algorithm::Sha1);
    let queries = [
        "SELECT md5path_1, md5path_2, parent_1, parent_2, hardlinks, hash, size, mode, mtime, mtimens, \
         flags, name, symlink, uid, gid, xattr FROM catalog ORDER BY md5path_1, md5path_2",
        "SELECT md5path_1, md5path_2, offset, size, hash FROM chunks ORDER BY md5path_1, md5path_2, offset",
        "SELECT path, sha1, size FROM nested_catalogs ORDER BY path",
        "SELECT path, sha1, size FROM bind_mountpoints ORDER BY path",
        "SELECT counter, value FROM statistics ORDER BY counter",
        "SELECT key, value FROM properties ORDER BY key",
    ];
    for sql in queries {
        hasher.update(sql.as_bytes());
        let mut statement = conn.prepare(sql).sql("reading a catalog for comparison")?;
        let columns = statement.column_count();
        let mut rows = statement.query([]).sql("reading a catalog for comparison")?;
        while let Some(row) = rows.next().sql("reading a catalog for comparison")? {
            let first = row.get_ref(0).sql("reading a catalog for comparison")?;
            if sql.contains("FROM properties")
                && VOLATILE_PROPERTIES.iter().any(|p| first.as_str().ok() == Some(*p))
            {
                continue;
            }
            for index in 0..columns {
                let value = row.get_ref(index).sql("reading a catalog for comparison")?;
                feed_value(&mut hasher, value);
            }
        }
    }
    Ok(hasher.finish())
}

fn feed_value(hasher: &mut Hasher, value: rusqlite::types::ValueRef<'_>) {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => hasher.update(b"N"),
        ValueRef::Integer(i) => {
            hasher.update(b"I");
            hasher.update(&i.to_le_bytes());
        }
        ValueRef::Real(r) => {
            hasher.update(b"R");
            hasher.update(&r.to_le_bytes());
        }
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            hasher.update(b"B");
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        }
    }
}

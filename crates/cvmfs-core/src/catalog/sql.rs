//! One catalog database opened read-only: schema detection, properties, and the
//! queries the client issues (`catalog_sql.cc`, spec 6.9), each a cached prepared
//! statement behind one mutex (SQLite connections are not shareable between threads).
//!
//! Paths given to a [`Catalog`] are in the catalog's own namespace, i.e. as its rows
//! were hashed (starting with its `root_prefix`). Moving between a mountpoint and that
//! namespace (bind mountpoints) is [`Catalog::normalize`]'s, and the tree's, business.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::counters::{optional_in_revision, Counters};
use super::entry::{decode_row, Chunk, DirectoryEntry, RowDialect};
use super::error::CatalogError;
use super::schema::SCHEMA_EPSILON;
use crate::hash::{ContentHash, PathKey};
use crate::path::{validate_name, RepoPath};
use crate::xattr::XattrList;

/// TTL of a root catalog without a `TTL` property (`Catalog::kDefaultTTL`).
pub const DEFAULT_TTL_SECONDS: u64 = 240;

/// Highest schema-2.5 revision this reader knows.
const MAX_REVISION: i64 = 7;

/// The `schema` and `schema_revision` properties.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SchemaVersion {
    pub schema: f64,
    pub revision: u32,
}

impl SchemaVersion {
    fn below(&self, version: f64) -> bool {
        self.schema < version - SCHEMA_EPSILON
    }
    fn equals(&self, version: f64) -> bool {
        (self.schema - version).abs() < SCHEMA_EPSILON
    }
    /// Schema 1.x (and 0.9): read-only legacy catalogs.
    pub fn is_legacy(&self) -> bool {
        self.below(2.0)
    }
    /// Schema < 2.1: no hardlinks/uid/gid columns.
    pub fn before_2_1(&self) -> bool {
        self.below(2.1)
    }
    /// Schema 2.5 (any revision).
    pub fn is_2_5(&self) -> bool {
        self.equals(2.5)
    }
}

/// The `properties` table, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Properties {
    /// Catalog revision (the repository revision for root catalogs); 0 if absent.
    pub revision: u64,
    /// Unix seconds (upstream reads it as a 32-bit int; we keep 64 bits).
    pub last_modified: Option<i64>,
    /// Root catalogs only; [`DEFAULT_TTL_SECONDS`] if absent.
    pub ttl_seconds: u64,
    /// Repository path of this catalog's root; `""` for root catalogs.
    pub root_prefix: RepoPath,
    /// Previous version of this catalog; `None` if absent, empty, or not a hash text
    /// (old writers stored 64 zeros).
    pub previous_revision: Option<ContentHash>,
    pub is_volatile: bool,
    pub voms_authz: Option<String>,
    /// Every property as text.
    pub all: BTreeMap<String, String>,
}

/// Whether a reference points at a nested catalog or (bind mountpoint) a root catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NestedKind {
    Nested,
    Bind,
}

/// A row of `nested_catalogs` or `bind_mountpoints`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NestedRef {
    /// Mountpoint in this catalog's namespace; always strictly below its root_prefix.
    pub path: RepoPath,
    /// `None` when the catalog does not know it (schema 0.9, empty column): such a
    /// catalog cannot be loaded.
    pub hash: Option<ContentHash>,
    /// Inflated size (revision >= 1).
    pub size: Option<u64>,
    pub kind: NestedKind,
}

/// One opened catalog. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Catalog {
    conn: Mutex<Connection>,
    file: PathBuf,
    schema: SchemaVersion,
    properties: Properties,
    dialect: RowDialect,
    has_xattr_column: bool,
    has_chunks: bool,
    has_statistics: bool,
    nested: Vec<NestedRef>,
    nested_index: HashMap<Vec<u8>, usize>,
    lookup_sql: String,
    listing_sql: String,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("file", &self.file)
            .field("schema", &self.schema)
            .field("root_prefix", &self.properties.root_prefix)
            .field("revision", &self.properties.revision)
            .finish()
    }
}

impl Catalog {
    /// Opens an (already verified and inflated) catalog file read-only.
    pub fn open(file: &Path) -> Result<Catalog, CatalogError> {
        let conn = Connection::open_with_flags(
            file,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Upstream's read-only settings; query_only and trusted_schema=OFF keep a
        // hostile file from running anything but our SELECTs.
        conn.execute_batch(
            "PRAGMA temp_store=2; PRAGMA locking_mode=EXCLUSIVE; \
             PRAGMA query_only=1; PRAGMA trusted_schema=OFF;",
        )?;
        conn.set_prepared_statement_cache_capacity(32);
        let tables = plain_tables(&conn)?;
        let raw_properties = read_properties(&conn, tables.contains_key("properties"))?;
        let schema = detect_schema(&raw_properties)?;
        let properties = decode_properties(raw_properties)?;
        let layout = Layout::check(&tables, schema)?;
        let select = select_list(schema);
        let mut catalog = Catalog {
            conn: Mutex::new(conn),
            file: file.to_path_buf(),
            schema,
            dialect: RowDialect {
                legacy_owner: schema.before_2_1(),
                has_compression_flags: schema.is_2_5() && schema.revision >= 3,
            },
            has_xattr_column: !schema.before_2_1() && schema.revision >= 2,
            has_chunks: layout.has_chunks,
            has_statistics: layout.has_statistics,
            nested: Vec::new(),
            nested_index: HashMap::new(),
            lookup_sql: format!("SELECT {select} FROM catalog WHERE md5path_1 = ?1 AND md5path_2 = ?2"),
            listing_sql: format!("SELECT {select} FROM catalog WHERE parent_1 = ?1 AND parent_2 = ?2"),
            properties,
        };
        // Preparing now turns a missing column into an error at open, not at first use.
        catalog.with_conn(|conn| {
            conn.prepare_cached(&catalog.lookup_sql)?;
            conn.prepare_cached(&catalog.listing_sql)?;
            Ok(())
        })?;
        catalog.load_nested(&layout)?;
        Ok(catalog)
    }

    pub fn file(&self) -> &Path {
        &self.file
    }
    pub fn schema(&self) -> SchemaVersion {
        self.schema
    }
    pub fn properties(&self) -> &Properties {
        &self.properties
    }
    pub fn root_prefix(&self) -> &RepoPath {
        &self.properties.root_prefix
    }
    pub fn revision(&self) -> u64 {
        self.properties.revision
    }
    /// Whether `uid`/`gid` come from the catalog (schema >= 2.1).
    pub fn stores_ownership(&self) -> bool {
        !self.schema.before_2_1()
    }

    /// The path in this catalog's namespace for `path` seen under `mountpoint`
    /// (`Catalog::NormalizePath`): `root_prefix` + the part below the mountpoint.
    /// `None` if `path` is not at or below `mountpoint`.
    pub fn normalize(&self, mountpoint: &RepoPath, path: &RepoPath) -> Option<RepoPath> {
        if mountpoint == self.root_prefix() {
            return path.starts_with(mountpoint).then(|| path.clone());
        }
        path.rebase(mountpoint, self.root_prefix())
    }

    /// The inverse of [`Catalog::normalize`] (`PlantPath`).
    pub fn plant(&self, mountpoint: &RepoPath, path: &RepoPath) -> Option<RepoPath> {
        path.rebase(self.root_prefix(), mountpoint)
    }

    /// The entry at `path` (this catalog's namespace), hidden entries included.
    pub fn lookup(&self, path: &RepoPath) -> Result<Option<DirectoryEntry>, CatalogError> {
        let Some(entry) = self.lookup_key(path.key())? else {
            return Ok(None);
        };
        let expected = path.file_name().unwrap_or_default();
        if entry.name != expected {
            return Err(CatalogError::NameMismatch {
                row: path.to_string(),
                found: String::from_utf8_lossy(&entry.name).into_owned(),
            });
        }
        Ok(Some(entry))
    }

    /// The entry stored under `key`, without checking its name against a path.
    pub fn lookup_key(&self, key: PathKey) -> Result<Option<DirectoryEntry>, CatalogError> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(&self.lookup_sql)?;
            let mut rows = stmt.query([key.p1, key.p2])?;
            match rows.next()? {
                Some(row) => decode_row(row, self.dialect).map(Some),
                None => Ok(None),
            }
        })
    }

    /// The entries of directory `dir` (this catalog's namespace), without hidden ones,
    /// in storage order. Every name is validated.
    pub fn list(&self, dir: &RepoPath) -> Result<Vec<DirectoryEntry>, CatalogError> {
        let mut entries = self.list_all(dir)?;
        entries.retain(|e| !e.is_hidden());
        Ok(entries)
    }

    /// Like [`Catalog::list`], hidden entries included.
    pub fn list_all(&self, dir: &RepoPath) -> Result<Vec<DirectoryEntry>, CatalogError> {
        let key = dir.key();
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(&self.listing_sql)?;
            let mut rows = stmt.query([key.p1, key.p2])?;
            let mut entries = Vec::new();
            while let Some(row) = rows.next()? {
                let entry = decode_row(row, self.dialect)?;
                validate_name(&entry.name)
                    .map_err(|source| CatalogError::BadName { row: dir.to_string(), source })?;
                entries.push(entry);
            }
            Ok(entries)
        })
    }

    /// The extended attributes of `entry` (read lazily; empty if it has none).
    pub fn xattrs(&self, entry: &DirectoryEntry) -> Result<XattrList, CatalogError> {
        if !entry.has_xattrs || !self.has_xattr_column {
            return Ok(XattrList::new());
        }
        let label = || format!("{}/{}", entry.key.p1, entry.key.p2);
        let blob = self.with_conn(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT xattr FROM catalog WHERE md5path_1 = ?1 AND md5path_2 = ?2")?;
            let mut rows = stmt.query([entry.key.p1, entry.key.p2])?;
            let Some(row) = rows.next()? else { return Ok(None) };
            match row.get_ref(0)? {
                ValueRef::Null => Ok(None),
                ValueRef::Blob(b) | ValueRef::Text(b) => Ok(Some(b.to_vec())),
                _ => Err(CatalogError::BadColumn { row: label(), column: "xattr" }),
            }
        })?;
        match blob {
            None => Ok(XattrList::new()),
            Some(blob) => {
                XattrList::parse(&blob).map_err(|source| CatalogError::BadXattrs { row: label(), source })
            }
        }
    }

    /// The chunks of a chunked regular file, checked to be sorted, contiguous from 0
    /// and to add up to the file size. Empty for other entries.
    pub fn chunks(&self, entry: &DirectoryEntry) -> Result<Vec<Chunk>, CatalogError> {
        if !entry.is_chunked() {
            return Ok(Vec::new());
        }
        let label =
            || format!("{}/{} ({:?})", entry.key.p1, entry.key.p2, String::from_utf8_lossy(&entry.name));
        if !entry.is_regular() || !self.has_chunks {
            return Err(CatalogError::BadChunks {
                row: label(),
                problem: "chunk flag on an entry that cannot have chunks".into(),
            });
        }
        let rows = self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT offset, size, hash FROM chunks WHERE md5path_1 = ?1 AND md5path_2 = ?2 ORDER BY offset ASC",
            )?;
            let mut rows = stmt.query([entry.key.p1, entry.key.p2])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(read_chunk_row(row, entry)?);
            }
            Ok(out)
        })?;
        check_chunk_list(&rows, entry.size)
            .map_err(|problem| CatalogError::BadChunks { row: label(), problem })?;
        Ok(rows)
    }

    /// The nested catalogs and bind mountpoints this catalog references.
    pub fn nested_refs(&self) -> &[NestedRef] {
        &self.nested
    }

    /// The reference whose mountpoint is `path` or its shallowest ancestor having one.
    pub fn find_nested(&self, path: &RepoPath) -> Option<&NestedRef> {
        let bytes = path.as_bytes();
        let boundaries = bytes.iter().enumerate().skip(1).filter(|(_, &b)| b == b'/').map(|(i, _)| i);
        boundaries
            .chain(std::iter::once(bytes.len()))
            .filter_map(|end| bytes.get(..end))
            .find_map(|prefix| self.nested_index.get(prefix))
            .and_then(|&i| self.nested.get(i))
    }

    /// The statistics counters, with the missing-counter rules of spec 6.10.
    pub fn counters(&self) -> Result<Counters, CatalogError> {
        if !self.has_statistics {
            return Ok(Counters::default());
        }
        let rows = self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached("SELECT counter, value FROM statistics")?;
            let mut rows = stmt.query([])?;
            let mut map = HashMap::new();
            while let Some(row) = rows.next()? {
                let (ValueRef::Text(name), ValueRef::Integer(value)) = (row.get_ref(0)?, row.get_ref(1)?)
                else {
                    continue;
                };
                map.insert(String::from_utf8_lossy(name).into_owned(), value);
            }
            Ok(map)
        })?;
        let revision = self.schema.revision;
        if self.schema.is_2_5() {
            Counters::from_rows(&rows, |name| optional_in_revision(revision, name))
        } else {
            Counters::from_rows(&rows, |_| true)
        }
    }

    /// Largest rowid in the `catalog` table (upstream sizes inode ranges with it).
    pub fn max_rowid(&self) -> Result<i64, CatalogError> {
        self.with_conn(|conn| {
            let value: Option<i64> = conn.query_row("SELECT MAX(rowid) FROM catalog", [], |r| r.get(0))?;
            Ok(value.unwrap_or(0))
        })
    }

    fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, CatalogError>,
    ) -> Result<T, CatalogError> {
        let guard: MutexGuard<'_, Connection> = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&guard)
    }

    fn load_nested(&mut self, layout: &Layout) -> Result<(), CatalogError> {
        let mut refs =
            self.with_conn(|conn| read_nested_table(conn, "nested_catalogs", layout, NestedKind::Nested))?;
        if layout.has_bind_mountpoints {
            refs.extend(
                self.with_conn(|conn| read_nested_table(conn, "bind_mountpoints", layout, NestedKind::Bind))?,
            );
        }
        for nested in &refs {
            check_below_root(nested, self.root_prefix())?;
        }
        for (i, nested) in refs.iter().enumerate() {
            self.nested_index.entry(nested.path.as_bytes().to_vec()).or_insert(i);
        }
        self.nested = refs;
        Ok(())
    }
}

/// Which optional tables and columns this file has.
struct Layout {
    has_chunks: bool,
    has_statistics: bool,
    has_bind_mountpoints: bool,
    /// `nested_catalogs.sha1` exists (schema 1.0 files without it count as 0.9).
    has_nested_hash: bool,
    has_nested_size: bool,
}

impl Layout {
    fn check(tables: &HashMap<String, String>, schema: SchemaVersion) -> Result<Layout, CatalogError> {
        let nested_sql =
            tables.get("nested_catalogs").ok_or(CatalogError::MissingTable("nested_catalogs"))?;
        if !tables.contains_key("catalog") {
            return Err(CatalogError::MissingTable("catalog"));
        }
        let has_chunks = tables.contains_key("chunks");
        if !schema.is_legacy() && !has_chunks {
            return Err(CatalogError::MissingTable("chunks"));
        }
        let is_25 = schema.is_2_5();
        let has_bind_mountpoints = is_25 && schema.revision >= 4;
        if has_bind_mountpoints && !tables.contains_key("bind_mountpoints") {
            return Err(CatalogError::MissingTable("bind_mountpoints"));
        }
        let has_statistics = tables.contains_key("statistics");
        if is_25 && !has_statistics {
            return Err(CatalogError::MissingTable("statistics"));
        }
        Ok(Layout {
            has_chunks,
            has_statistics,
            has_bind_mountpoints,
            has_nested_hash: !schema.is_legacy() || nested_sql.contains("sha1"),
            has_nested_size: is_25 && schema.revision >= 1,
        })
    }
}

/// Names and SQL of the plain tables (views and virtual tables do not count).
fn plain_tables(conn: &Connection) -> Result<HashMap<String, String>, CatalogError> {
    let mut stmt = conn.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table'")?;
    let mut rows = stmt.query([])?;
    let mut tables = HashMap::new();
    while let Some(row) = rows.next()? {
        let (ValueRef::Text(name), sql) = (row.get_ref(0)?, row.get_ref(1)?) else { continue };
        let sql = match sql {
            ValueRef::Text(s) => String::from_utf8_lossy(s).into_owned(),
            _ => String::new(),
        };
        // A virtual table could run arbitrary module code on read.
        if sql.to_ascii_uppercase().contains("VIRTUAL") {
            continue;
        }
        tables.insert(String::from_utf8_lossy(name).into_owned(), sql);
    }
    Ok(tables)
}

/// Every property as text. A file without a `properties` table is schema 1.0.
fn read_properties(conn: &Connection, present: bool) -> Result<BTreeMap<String, String>, CatalogError> {
    let mut all = BTreeMap::new();
    if !present {
        return Ok(all);
    }
    let mut stmt = conn.prepare("SELECT key, value FROM properties")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let ValueRef::Text(key) = row.get_ref(0)? else { continue };
        let value = match row.get_ref(1)? {
            ValueRef::Null => continue,
            ValueRef::Integer(v) => v.to_string(),
            ValueRef::Real(v) => v.to_string(),
            ValueRef::Text(b) | ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
        };
        all.insert(String::from_utf8_lossy(key).into_owned(), value);
    }
    Ok(all)
}

/// `schema` (missing: 1.0) and `schema_revision` (missing: 0), checked for support.
fn detect_schema(all: &BTreeMap<String, String>) -> Result<SchemaVersion, CatalogError> {
    let schema = match all.get("schema") {
        None => 1.0,
        Some(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| CatalogError::BadProperty { key: "schema", value: text.clone() })?,
    };
    let revision = match all.get("schema_revision") {
        None => 0,
        Some(text) => text
            .trim()
            .parse::<i64>()
            .map_err(|_| CatalogError::BadProperty { key: "schema_revision", value: text.clone() })?,
    };
    let version = SchemaVersion { schema, revision: u32::try_from(revision).unwrap_or(u32::MAX) };
    let legacy = version.is_legacy();
    let known_revision = (0..=MAX_REVISION).contains(&revision);
    let supported = legacy || ((version.equals(2.4) || version.equals(2.5)) && known_revision);
    if !supported {
        return Err(CatalogError::UnsupportedSchema { schema, revision });
    }
    // Revisions mean nothing to legacy catalogs.
    Ok(if legacy { SchemaVersion { schema, revision: 0 } } else { version })
}

fn decode_properties(all: BTreeMap<String, String>) -> Result<Properties, CatalogError> {
    fn number<T: std::str::FromStr>(
        all: &BTreeMap<String, String>,
        key: &'static str,
    ) -> Result<Option<T>, CatalogError> {
        all.get(key)
            .map(|text| {
                text.trim().parse::<T>().map_err(|_| CatalogError::BadProperty { key, value: text.clone() })
            })
            .transpose()
    }
    let root_prefix = match all.get("root_prefix") {
        None => RepoPath::root(),
        Some(text) => RepoPath::parse(text.as_bytes())
            .map_err(|_| CatalogError::BadProperty { key: "root_prefix", value: text.clone() })?,
    };
    Ok(Properties {
        revision: number(&all, "revision")?.unwrap_or(0),
        last_modified: number(&all, "last_modified")?,
        ttl_seconds: number(&all, "TTL")?.unwrap_or(DEFAULT_TTL_SECONDS),
        root_prefix,
        previous_revision: all
            .get("previous_revision")
            .and_then(|t| ContentHash::parse_content(t.trim()).ok()),
        is_volatile: all.get("volatile").is_some_and(|v| v.trim() == "1"),
        voms_authz: all.get("voms_authz").cloned(),
        all,
    })
}

/// The uniform 17-column select list `decode_row` reads, per dialect (spec 6.9).
fn select_list(schema: SchemaVersion) -> &'static str {
    if schema.before_2_1() {
        "hash, 1, size, mode, mtime, flags, name, symlink, md5path_1, md5path_2, \
         parent_1, parent_2, rowid, 0, 0, 0, NULL"
    } else if schema.revision < 2 {
        "hash, hardlinks, size, mode, mtime, flags, name, symlink, md5path_1, md5path_2, \
         parent_1, parent_2, rowid, uid, gid, 0, NULL"
    } else if schema.revision < 7 {
        "hash, hardlinks, size, mode, mtime, flags, name, symlink, md5path_1, md5path_2, \
         parent_1, parent_2, rowid, uid, gid, xattr IS NOT NULL, NULL"
    } else {
        "hash, hardlinks, size, mode, mtime, flags, name, symlink, md5path_1, md5path_2, \
         parent_1, parent_2, rowid, uid, gid, xattr IS NOT NULL, mtimens"
    }
}

fn read_nested_table(
    conn: &Connection,
    table: &str,
    layout: &Layout,
    kind: NestedKind,
) -> Result<Vec<NestedRef>, CatalogError> {
    let hash = if layout.has_nested_hash { "sha1" } else { "''" };
    let size = if layout.has_nested_size { "size" } else { "NULL" };
    let mut stmt = conn.prepare(&format!("SELECT path, {hash}, {size} FROM {table}"))?;
    let mut rows = stmt.query([])?;
    let mut refs = Vec::new();
    while let Some(row) = rows.next()? {
        refs.push(decode_nested_row(row, kind)?);
    }
    Ok(refs)
}

fn decode_nested_row(row: &rusqlite::Row<'_>, kind: NestedKind) -> Result<NestedRef, CatalogError> {
    let text = |v: ValueRef<'_>| match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => Some(b.to_vec()),
        _ => None,
    };
    let raw_path = text(row.get_ref(0)?).unwrap_or_default();
    let shown = String::from_utf8_lossy(&raw_path).into_owned();
    let bad = |problem: String| CatalogError::BadNestedRef { path: shown.clone(), problem };
    let path = RepoPath::parse(&raw_path).map_err(|e| bad(e.to_string()))?;
    let hash_text = text(row.get_ref(1)?).unwrap_or_default();
    let hash = if hash_text.is_empty() {
        None
    } else {
        let hash_str = std::str::from_utf8(&hash_text).map_err(|_| bad("hash is not text".into()))?;
        Some(ContentHash::parse_content(hash_str).map_err(|e| bad(e.to_string()))?)
    };
    let size = match row.get_ref(2)? {
        ValueRef::Null => None,
        ValueRef::Integer(v) => Some(u64::try_from(v).map_err(|_| bad(format!("negative size {v}")))?),
        _ => return Err(bad("size is not an integer".into())),
    };
    Ok(NestedRef { path, hash, size, kind })
}

/// A reference must lie strictly below the catalog's root: anything else would make
/// the catalog its own child or graft a subtree elsewhere.
fn check_below_root(nested: &NestedRef, root_prefix: &RepoPath) -> Result<(), CatalogError> {
    match nested.path.strip_prefix(root_prefix) {
        Some(rest) if !rest.is_empty() => Ok(()),
        _ => Err(CatalogError::BadNestedRef {
            path: nested.path.to_string(),
            problem: format!("not strictly below the catalog root {root_prefix}"),
        }),
    }
}

fn read_chunk_row(row: &rusqlite::Row<'_>, entry: &DirectoryEntry) -> Result<Chunk, CatalogError> {
    let label = format!("{}/{}", entry.key.p1, entry.key.p2);
    let bad = |problem: String| CatalogError::BadChunks { row: label.clone(), problem };
    let (ValueRef::Integer(offset), ValueRef::Integer(size)) = (row.get_ref(0)?, row.get_ref(1)?) else {
        return Err(bad("offset or size is not an integer".into()));
    };
    let offset = u64::try_from(offset).map_err(|_| bad(format!("negative offset {offset}")))?;
    let size =
        u64::try_from(size).ok().filter(|&s| s > 0).ok_or_else(|| bad(format!("chunk size {size}")))?;
    let ValueRef::Blob(digest) = row.get_ref(2)? else {
        return Err(bad(format!("chunk at {offset} has no hash")));
    };
    let hash = ContentHash::from_digest(entry.hash_algorithm, digest).map_err(|e| bad(e.to_string()))?;
    Ok(Chunk { offset, size, hash })
}

/// Sorted, contiguous from offset 0, adding up to `file_size`.
fn check_chunk_list(chunks: &[Chunk], file_size: u64) -> Result<(), String> {
    let mut expected_offset = 0u64;
    for chunk in chunks {
        if chunk.offset != expected_offset {
            return Err(format!("chunk at offset {} where {} was expected", chunk.offset, expected_offset));
        }
        expected_offset = expected_offset
            .checked_add(chunk.size)
            .ok_or_else(|| format!("chunk at {} overflows", chunk.offset))?;
    }
    if expected_offset != file_size {
        return Err(format!("chunks add up to {expected_offset} bytes, the file has {file_size}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_of(pairs: &[(&str, &str)]) -> Result<SchemaVersion, CatalogError> {
        detect_schema(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn accepted_schemas_match_upstream() {
        assert!(schema_of(&[]).unwrap().is_legacy());
        assert!(schema_of(&[("schema", "0.9")]).is_ok());
        assert!(schema_of(&[("schema", "2.4")]).is_ok());
        for rev in 0..=7 {
            assert!(schema_of(&[("schema", "2.5"), ("schema_revision", &rev.to_string())]).is_ok());
        }
        for bad in ["2.0", "2.1", "2.3", "2.6", "3", "nan", "x"] {
            assert!(schema_of(&[("schema", bad)]).is_err(), "{bad}");
        }
        assert!(schema_of(&[("schema", "2.5"), ("schema_revision", "8")]).is_err());
        assert!(schema_of(&[("schema", "2.5"), ("schema_revision", "-1")]).is_err());
    }

    #[test]
    fn chunk_lists_must_add_up() {
        let h = ContentHash::null(crate::hash::Algorithm::Sha1);
        let c = |offset, size| Chunk { offset, size, hash: h };
        assert!(check_chunk_list(&[c(0, 5), c(5, 5)], 10).is_ok());
        assert!(check_chunk_list(&[], 0).is_ok());
        assert!(check_chunk_list(&[c(0, 5), c(6, 4)], 10).is_err());
        assert!(check_chunk_list(&[c(0, 5), c(5, 5)], 11).is_err());
        assert!(check_chunk_list(&[c(1, 5)], 6).is_err());
        assert!(check_chunk_list(&[c(0, u64::MAX), c(u64::MAX, 1)], 0).is_err());
    }
}

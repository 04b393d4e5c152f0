//! The byte-level catalog schema: table definitions of schema 2.5 revision 7 exactly as
//! upstream creates them, the `flags` bits, and the `hardlinks` column packing.
//!
//! What it is for: writers (the publisher) create new catalogs from these constants, and
//! the reader decodes flags and hardlinks with the same definitions, so both sides agree
//! by construction. What it is not for: it runs no queries of its own except
//! [`create_empty_schema`], and it knows nothing of older schema dialects (the reader in
//! `catalog::sql` handles those).

use rusqlite::Connection;

use crate::compression::Compression;
use crate::hash::Algorithm;

/// The schema version current writers produce (property `schema`).
pub const LATEST_SCHEMA: f64 = 2.5;
/// The schema revision current writers produce (property `schema_revision`).
pub const LATEST_SCHEMA_REVISION: u32 = 7;
/// The text upstream stores for `schema` (a double bound into a TEXT column).
pub const LATEST_SCHEMA_TEXT: &str = "2.5";
/// Float comparisons of schema versions use this epsilon (`kSchemaEpsilon`).
pub const SCHEMA_EPSILON: f64 = 0.0005;

/// `properties`: created first, by the generic database layer (`sql_impl.h`).
pub const PROPERTIES_DDL: &str = "CREATE TABLE properties (key TEXT, value TEXT, \
CONSTRAINT pk_properties PRIMARY KEY (key));";

/// `catalog`: one row per directory entry.
pub const CATALOG_DDL: &str = "CREATE TABLE catalog \
(md5path_1 INTEGER, md5path_2 INTEGER, parent_1 INTEGER, parent_2 INTEGER, \
hardlinks INTEGER, hash BLOB, size INTEGER, mode INTEGER, mtime INTEGER, \
mtimens INTEGER, flags INTEGER, name TEXT, symlink TEXT, uid INTEGER, \
gid INTEGER, xattr BLOB, \
CONSTRAINT pk_catalog PRIMARY KEY (md5path_1, md5path_2));";

/// The listing index on the parent key.
pub const PARENT_INDEX_DDL: &str = "CREATE INDEX idx_catalog_parent ON catalog (parent_1, parent_2);";

/// `chunks`: the pieces of chunked files.
pub const CHUNKS_DDL: &str = "CREATE TABLE chunks \
(md5path_1 INTEGER, md5path_2 INTEGER, offset INTEGER, size INTEGER, hash BLOB, \
CONSTRAINT pk_chunks PRIMARY KEY (md5path_1, md5path_2, offset, size), \
FOREIGN KEY (md5path_1, md5path_2) REFERENCES catalog(md5path_1, md5path_2));";

/// `nested_catalogs`: mountpoint path, hex hash (column named `sha1` for history's sake)
/// and inflated size of each nested catalog.
pub const NESTED_CATALOGS_DDL: &str = "CREATE TABLE nested_catalogs \
(path TEXT, sha1 TEXT, size INTEGER, \
CONSTRAINT pk_nested_catalogs PRIMARY KEY (path));";

/// `bind_mountpoints` (revision >= 4): like `nested_catalogs`, but pointing at root catalogs.
pub const BIND_MOUNTPOINTS_DDL: &str = "CREATE TABLE bind_mountpoints \
(path TEXT, sha1 TEXT, size INTEGER, \
CONSTRAINT pk_bind_mountpoints PRIMARY KEY (path));";

/// `statistics`: the counters of spec 6.10.
pub const STATISTICS_DDL: &str = "CREATE TABLE statistics (counter TEXT, value INTEGER, \
CONSTRAINT pk_statistics PRIMARY KEY (counter));";

/// Every statement in the order upstream executes them for a new catalog.
pub const ALL_DDL: [&str; 7] = [
    PROPERTIES_DDL,
    CATALOG_DDL,
    PARENT_INDEX_DDL,
    CHUNKS_DDL,
    NESTED_CATALOGS_DDL,
    BIND_MOUNTPOINTS_DDL,
    STATISTICS_DDL,
];

/// Creates all tables of an empty schema-2.5-revision-7 catalog and stores the `schema`
/// and `schema_revision` properties. Rows (root entry, counters, `revision`,
/// `last_modified`, `root_prefix`, ...) are the writer's business.
pub fn create_empty_schema(conn: &Connection) -> rusqlite::Result<()> {
    for statement in ALL_DDL {
        conn.execute_batch(statement)?;
    }
    conn.execute(
        "INSERT OR REPLACE INTO properties (key, value) VALUES ('schema', ?1), ('schema_revision', ?2);",
        rusqlite::params![LATEST_SCHEMA_TEXT, LATEST_SCHEMA_REVISION.to_string()],
    )?;
    Ok(())
}

/// The `flags` column bits (`catalog_sql.h` `SqlDirent::kFlag*`, spec 6.4).
pub mod flags {
    /// Directory.
    pub const DIR: u32 = 0x1;
    /// Directory that is a nested-catalog mountpoint (the copy in the parent catalog).
    pub const DIR_NESTED_MOUNTPOINT: u32 = 0x2;
    /// Non-directory: regular file, symlink or special file.
    pub const FILE: u32 = 0x4;
    /// Symbolic link (always with [`FILE`]).
    pub const LINK: u32 = 0x8;
    /// FIFO, socket, character or block device (with [`FILE`]); revision >= 5.
    pub const FILE_SPECIAL: u32 = 0x10;
    /// Root entry of a nested catalog (the copy in the child catalog).
    pub const DIR_NESTED_ROOT: u32 = 0x20;
    /// Regular file stored as chunks.
    pub const FILE_CHUNK: u32 = 0x40;
    /// External file; revision >= 3.
    pub const FILE_EXTERNAL: u32 = 0x80;
    /// Bit position of the 3-bit hash algorithm field (`algorithm - 1`).
    pub const HASH_ALGORITHM_SHIFT: u32 = 8;
    /// Mask of the hash algorithm field.
    pub const HASH_ALGORITHM_MASK: u32 = 0x7 << HASH_ALGORITHM_SHIFT;
    /// Bit position of the 3-bit compression field (`zlib::Algorithms`).
    pub const COMPRESSION_SHIFT: u32 = 11;
    /// Mask of the compression field.
    pub const COMPRESSION_MASK: u32 = 0x7 << COMPRESSION_SHIFT;
    /// Directory that is a bind mountpoint (revision >= 4).
    pub const DIR_BIND_MOUNTPOINT: u32 = 0x4000;
    /// Entry left out of directory listings (lookups still find it).
    pub const HIDDEN: u32 = 0x8000;
    /// Regular file to be opened with direct I/O (revision >= 6).
    pub const DIRECT_IO: u32 = 0x10000;
}

/// The flag bits that encode `algorithm` (bits 8-10).
pub fn hash_algorithm_flag_bits(algorithm: Algorithm) -> u32 {
    algorithm.catalog_flag_value() << flags::HASH_ALGORITHM_SHIFT
}

/// The flag bits that encode `compression` (bits 11-13).
pub fn compression_flag_bits(compression: Compression) -> u32 {
    compression.catalog_flag_value() << flags::COMPRESSION_SHIFT
}

/// The hash algorithm a `flags` value names; `None` for a value no writer produces.
pub fn hash_algorithm_from_flags(flags_value: u32) -> Option<Algorithm> {
    Algorithm::from_catalog_flag_value(
        (flags_value & flags::HASH_ALGORITHM_MASK) >> flags::HASH_ALGORITHM_SHIFT,
    )
}

/// The compression a `flags` value names; `None` for a value no writer produces.
pub fn compression_from_flags(flags_value: u32) -> Option<Compression> {
    Compression::from_catalog_flag_value((flags_value & flags::COMPRESSION_MASK) >> flags::COMPRESSION_SHIFT)
}

/// The `hardlinks` column: hardlink group in the upper 32 bits, link count in the lower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hardlinks {
    /// 0 means "no hardlinks"; a group > 0 is unique within one catalog.
    pub group: u32,
    /// `st_nlink`.
    pub linkcount: u32,
}

impl Hardlinks {
    /// Decodes the column as stored (a signed SQLite integer holding a u64).
    pub fn from_column(raw: i64) -> Hardlinks {
        // Reinterpreting the bits is the point: upstream stores a uint64_t.
        let bits = raw as u64;
        Hardlinks { group: (bits >> 32) as u32, linkcount: (bits & 0xffff_ffff) as u32 }
    }

    /// Encodes for the column (`MakeHardlinks`).
    pub fn to_column(self) -> i64 {
        ((u64::from(self.group) << 32) | u64::from(self.linkcount)) as i64
    }
}

/// `MakeHardlinks(group, linkcount)` as the column value.
pub fn pack_hardlinks(group: u32, linkcount: u32) -> i64 {
    Hardlinks { group, linkcount }.to_column()
}

/// The (group, linkcount) pair of a column value.
pub fn unpack_hardlinks(raw: i64) -> (u32, u32) {
    let h = Hardlinks::from_column(raw);
    (h.group, h.linkcount)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_vectors_of_spec_12_7() {
        use flags::*;
        assert_eq!(FILE | hash_algorithm_flag_bits(Algorithm::Rmd160), 260);
        assert_eq!(FILE | hash_algorithm_flag_bits(Algorithm::Shake128), 516);
        assert_eq!(FILE | compression_flag_bits(Compression::None), 2052);
        assert_eq!(FILE | FILE_CHUNK, 68);
        assert_eq!(FILE | FILE_EXTERNAL | compression_flag_bits(Compression::None), 2180);
        assert_eq!(FILE | DIRECT_IO, 65540);
        assert_eq!(DIR | DIR_BIND_MOUNTPOINT, 16385);
        assert_eq!(DIR | DIR_NESTED_ROOT | HIDDEN, 32801);
        assert_eq!(FILE | FILE_SPECIAL, 20);
        assert_eq!(hash_algorithm_from_flags(516), Some(Algorithm::Shake128));
        assert_eq!(compression_from_flags(2180), Some(Compression::None));
        assert_eq!(hash_algorithm_from_flags(7 << 8), None);
    }

    #[test]
    fn hardlinks_pack_both_ways() {
        assert_eq!(pack_hardlinks(1, 2), 4_294_967_298);
        assert_eq!(unpack_hardlinks(4_294_967_299), (1, 3));
        assert_eq!(unpack_hardlinks(pack_hardlinks(u32::MAX, u32::MAX)), (u32::MAX, u32::MAX));
    }

    #[test]
    fn empty_schema_is_created() {
        let conn = Connection::open_in_memory().unwrap();
        create_empty_schema(&conn).unwrap();
        let revision: String = conn
            .query_row("SELECT value FROM properties WHERE key='schema_revision'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(revision, "7");
    }
}

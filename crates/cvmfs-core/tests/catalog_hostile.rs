//! Hostile catalogs built with rusqlite: every malformation gives a clear error, never
//! a panic, and bad names never come back as entries.

mod catalog_common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use catalog_common::Builder;
use cvmfs_core::catalog::schema::flags;
use cvmfs_core::catalog::tree::LoadError;
use cvmfs_core::catalog::{Catalog, CatalogError, CatalogLoader, CatalogTree, TreeError};
use cvmfs_core::path::{PathError, RepoPath};
use cvmfs_core::{Algorithm, ContentHash, PathKey};

fn path(text: &str) -> RepoPath {
    RepoPath::parse(text.as_bytes()).unwrap()
}

fn fake_hash(label: &str) -> ContentHash {
    ContentHash::of(Algorithm::Sha1, label.as_bytes())
}

/// Serves catalog files by (fake) hash.
struct MapLoader(HashMap<ContentHash, PathBuf>);

impl CatalogLoader for MapLoader {
    fn load(&self, hash: &ContentHash, _mountpoint: &RepoPath) -> Result<Arc<Catalog>, LoadError> {
        let file = self.0.get(hash).ok_or_else(|| format!("no catalog {hash}"))?;
        Ok(Arc::new(Catalog::open(file)?))
    }
}

fn open(file: &std::path::Path) -> Catalog {
    Catalog::open(file).unwrap()
}

#[test]
fn bad_names_in_listings_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (i, bad) in [&b".."[..], b".", b"", b"a/b", b"nul\0byte"].into_iter().enumerate() {
        let mut b = Builder::new(dir.path(), &format!("names{i}.db"), "");
        b.dir("/d", flags::DIR);
        let key = PathKey::of(format!("/d/bad{i}").as_bytes());
        b.raw_row(key, path("/d").key(), bad, catalog_common::FILE_MODE, 0, flags::FILE, Some(&[0; 20]));
        let file = b.finish();
        let catalog = open(&file);
        let err = catalog.list(&path("/d")).unwrap_err();
        assert!(matches!(err, CatalogError::BadName { .. }), "{bad:?}: {err}");
        let tree =
            CatalogTree::with_root(MapLoader(HashMap::new()), fake_hash("r"), Arc::new(open(&file))).unwrap();
        let err = tree.list(&path("/d")).unwrap_err();
        assert!(matches!(err, TreeError::Catalog { source: CatalogError::BadName { .. }, .. }), "{err}");
    }
}

#[test]
fn lookup_refuses_a_row_whose_name_differs_from_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Builder::new(dir.path(), "mismatch.db", "");
    b.raw_row(path("/a").key(), PathKey::of(b""), b"..", catalog_common::FILE_MODE, 0, flags::FILE, None);
    let catalog = open(&b.finish());
    let err = catalog.lookup(&path("/a")).unwrap_err();
    assert!(matches!(err, CatalogError::NameMismatch { .. }), "{err}");
}

#[test]
fn impossible_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Builder::new(dir.path(), "values.db", "");
    b.file("/negative", -1, flags::FILE, Some(&[0; 20]));
    b.file("/short_hash", 1, flags::FILE, Some(&[0; 19]));
    b.file("/bad_algorithm", 1, flags::FILE | (5 << 8), Some(&[0; 20]));
    b.file("/bad_compression", 1, flags::FILE | (6 << 11), Some(&[0; 20]));
    b.file("/good", 1, flags::FILE | (2 << 8) | (1 << 11), Some(&[7; 20]));
    b.raw_row(path("/nomode").key(), PathKey::of(b""), b"nomode", 0o7777, 0, flags::FILE, None);
    b.file("/uid", 0, flags::FILE, None);
    b.file("/ns", 0, flags::FILE, None);
    b.file("/link", 3, flags::FILE | flags::LINK, None);
    b.file("/xattr", 0, flags::FILE, None);
    b.conn.execute("UPDATE catalog SET uid = -5 WHERE name = 'uid'", []).unwrap();
    b.conn.execute("UPDATE catalog SET mtimens = 1000000000 WHERE name = 'ns'", []).unwrap();
    b.conn
        .execute("UPDATE catalog SET mode = 41471, symlink = CAST(X'610062' AS TEXT) WHERE name = 'link'", [])
        .unwrap();
    b.conn.execute("UPDATE catalog SET xattr = X'0201' WHERE name = 'xattr'", []).unwrap();
    b.conn.execute("UPDATE catalog SET size = 'big' WHERE name = 'good'", []).ok();
    let catalog = open(&b.finish());
    let err = |p: &str| catalog.lookup(&path(p)).unwrap_err();
    assert!(matches!(err("/negative"), CatalogError::ImpossibleSize { size: -1, .. }));
    assert!(matches!(err("/short_hash"), CatalogError::BadHash { .. }), "{}", err("/short_hash"));
    assert!(matches!(err("/bad_algorithm"), CatalogError::BadFlags { what: "hash algorithm", .. }));
    assert!(matches!(err("/bad_compression"), CatalogError::BadFlags { what: "compression", .. }));
    assert!(matches!(err("/nomode"), CatalogError::BadMode { .. }));
    assert!(matches!(err("/uid"), CatalogError::OutOfRange { column: "uid", .. }));
    assert!(matches!(err("/ns"), CatalogError::OutOfRange { column: "mtimens", .. }));
    assert!(matches!(err("/link"), CatalogError::NulInSymlink { .. }));
    assert!(matches!(err("/good"), CatalogError::BadColumn { column: "size", .. }));
    let x = catalog.lookup(&path("/xattr")).unwrap().unwrap();
    assert!(matches!(catalog.xattrs(&x), Err(CatalogError::BadXattrs { .. })));
    // Listing the root reports the first bad row instead of returning partial data.
    assert!(catalog.list(&RepoPath::root()).is_err());
}

#[test]
fn shake_and_uncompressed_flags_decode() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Builder::new(dir.path(), "flags.db", "");
    b.file(
        "/f",
        1,
        flags::FILE | (2 << 8) | (1 << 11) | flags::DIRECT_IO | flags::FILE_EXTERNAL,
        Some(&[7; 20]),
    );
    let catalog = open(&b.finish());
    let e = catalog.lookup(&path("/f")).unwrap().unwrap();
    assert_eq!(e.hash_algorithm, Algorithm::Shake128);
    assert_eq!(e.compression, cvmfs_core::Compression::None);
    assert!(e.is_direct_io() && e.is_external() && !e.is_hidden());
    assert_eq!(e.content_hash.unwrap().to_string(), format!("{}-shake128", "07".repeat(20)));
}

#[test]
fn chunk_lists_that_do_not_add_up_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Builder::new(dir.path(), "chunks.db", "");
    let chunked = flags::FILE | flags::FILE_CHUNK;
    b.file("/gap", 10, chunked, None);
    b.chunk("/gap", 0, 5, &[1; 20]);
    b.chunk("/gap", 6, 4, &[2; 20]);
    b.file("/short", 11, chunked, None);
    b.chunk("/short", 0, 5, &[1; 20]);
    b.chunk("/short", 5, 5, &[2; 20]);
    b.file("/overlap", 8, chunked, None);
    b.chunk("/overlap", 0, 5, &[1; 20]);
    b.chunk("/overlap", 3, 5, &[2; 20]);
    b.file("/badhash", 5, chunked, None);
    b.chunk("/badhash", 0, 5, &[1; 3]);
    b.file("/zero", 5, chunked, None);
    b.chunk("/zero", 0, 0, &[1; 20]);
    b.chunk("/zero", 0, 5, &[1; 20]);
    b.file("/ok", 10, chunked, None);
    b.chunk("/ok", 5, 5, &[2; 20]);
    b.chunk("/ok", 0, 5, &[1; 20]);
    let catalog = open(&b.finish());
    for name in ["/gap", "/short", "/overlap", "/badhash", "/zero"] {
        let e = catalog.lookup(&path(name)).unwrap().unwrap();
        let err = catalog.chunks(&e).unwrap_err();
        assert!(matches!(err, CatalogError::BadChunks { .. }), "{name}: {err}");
    }
    let ok = catalog.lookup(&path("/ok")).unwrap().unwrap();
    let chunks = catalog.chunks(&ok).unwrap();
    assert_eq!(chunks.iter().map(|c| c.offset).collect::<Vec<_>>(), vec![0, 5]);
}

#[test]
fn unsupported_schemas_and_broken_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (schema, revision) in [("2.6", "0"), ("2.5", "8"), ("2.3", "0"), ("two", "0")] {
        let b = Builder::new(dir.path(), "schema.db", "");
        b.conn.execute("UPDATE properties SET value = ?1 WHERE key = 'schema'", [schema]).unwrap();
        b.conn.execute("UPDATE properties SET value = ?1 WHERE key = 'schema_revision'", [revision]).unwrap();
        let err = Catalog::open(&b.finish()).unwrap_err();
        assert!(
            matches!(err, CatalogError::UnsupportedSchema { .. } | CatalogError::BadProperty { .. }),
            "{schema}/{revision}: {err}"
        );
    }
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, b"this is not an SQLite database, not at all, no....").unwrap();
    assert!(matches!(Catalog::open(&garbage), Err(CatalogError::Sqlite(_))));
    let view = Builder::new(dir.path(), "view.db", "");
    view.conn
        .execute_batch(
            "ALTER TABLE catalog RENAME TO real_catalog; CREATE VIEW catalog AS SELECT * FROM real_catalog;",
        )
        .unwrap();
    assert!(matches!(Catalog::open(&view.finish()), Err(CatalogError::MissingTable("catalog"))));
    let no_mtimens = Builder::new(dir.path(), "nomtimens.db", "");
    no_mtimens.conn.execute_batch("ALTER TABLE catalog DROP COLUMN mtimens;").unwrap();
    assert!(matches!(Catalog::open(&no_mtimens.finish()), Err(CatalogError::Sqlite(_))));
    let bad_prefix = Builder::new(dir.path(), "prefix.db", "");
    bad_prefix.conn.execute("INSERT INTO properties VALUES ('root_prefix', '/a/../b')", []).unwrap();
    assert!(matches!(
        Catalog::open(&bad_prefix.finish()),
        Err(CatalogError::BadProperty { key: "root_prefix", .. })
    ));
}

#[test]
fn bad_nested_references_are_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let good = fake_hash("x").to_string();
    for (i, (table, p, h)) in [
        ("nested_catalogs", "", good.as_str()),
        ("nested_catalogs", "relative", good.as_str()),
        ("nested_catalogs", "/a/../b", good.as_str()),
        ("nested_catalogs", "/a", "not-a-hash"),
        ("bind_mountpoints", "/a/", good.as_str()),
    ]
    .into_iter()
    .enumerate()
    {
        let mut b = Builder::new(dir.path(), &format!("nested{i}.db"), "");
        b.nested(table, p, h);
        let err = Catalog::open(&b.finish()).unwrap_err();
        assert!(matches!(err, CatalogError::BadNestedRef { .. }), "{p}: {err}");
    }
    // A nested catalog that lists its own root (or something outside it).
    let mut b = Builder::new(dir.path(), "self.db", "/a");
    b.nested("nested_catalogs", "/a", &good);
    assert!(matches!(Catalog::open(&b.finish()), Err(CatalogError::BadNestedRef { .. })));
    let mut b = Builder::new(dir.path(), "outside.db", "/a");
    b.nested("nested_catalogs", "/b/c", &good);
    assert!(matches!(Catalog::open(&b.finish()), Err(CatalogError::BadNestedRef { .. })));
}

/// Root catalog `r` with a directory `/m` that is a mountpoint of `kind` pointing at `target`.
fn root_with_mount(dir: &std::path::Path, name: &str, table: &str, target: ContentHash) -> PathBuf {
    let mut b = Builder::new(dir, name, "");
    let flag =
        if table == "bind_mountpoints" { flags::DIR_BIND_MOUNTPOINT } else { flags::DIR_NESTED_MOUNTPOINT };
    b.dir("/m", flags::DIR | flag);
    b.nested(table, "/m", &target.to_string());
    b.finish()
}

#[test]
fn nested_cycles_mismatches_missing_catalogs_and_depth_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Bind cycle: r -> (bind /m) s -> (bind /m) r.
    let (r, s) = (fake_hash("r"), fake_hash("s"));
    let loader = MapLoader(HashMap::from([
        (r, root_with_mount(d, "r.db", "bind_mountpoints", s)),
        (s, root_with_mount(d, "s.db", "bind_mountpoints", r)),
    ]));
    let tree = CatalogTree::new(loader, r).unwrap();
    assert!(tree.list(&path("/m")).unwrap().iter().any(|e| e.path == path("/m/m")));
    let err = tree.list(&path("/m/m")).unwrap_err();
    assert!(matches!(err, TreeError::Cycle { .. }), "{err}");
    assert!(matches!(tree.lookup(&path("/m/m/x")).unwrap_err(), TreeError::Cycle { .. }));

    // Nested catalog whose root_prefix is not its mountpoint.
    let (p, c) = (fake_hash("p"), fake_hash("c"));
    let loader = MapLoader(HashMap::from([
        (p, root_with_mount(d, "p.db", "nested_catalogs", c)),
        (c, Builder::new(d, "c.db", "/elsewhere").finish()),
    ]));
    let tree = CatalogTree::new(loader, p).unwrap();
    assert!(tree.lookup(&path("/m")).unwrap().is_some(), "served by the parent");
    assert!(matches!(tree.list(&path("/m")).unwrap_err(), TreeError::RootPrefixMismatch { .. }));

    // A bind mountpoint must reference a root catalog.
    let (p2, n2) = (fake_hash("p2"), fake_hash("n2"));
    let loader = MapLoader(HashMap::from([
        (p2, root_with_mount(d, "p2.db", "bind_mountpoints", n2)),
        (n2, Builder::new(d, "n2.db", "/m").finish()),
    ]));
    let tree = CatalogTree::new(loader, p2).unwrap();
    assert!(matches!(tree.list(&path("/m")).unwrap_err(), TreeError::RootPrefixMismatch { .. }));

    // Missing nested catalog.
    let lonely = fake_hash("lonely");
    let loader = MapLoader(HashMap::from([(
        lonely,
        root_with_mount(d, "lonely.db", "nested_catalogs", fake_hash("gone")),
    )]));
    let tree = CatalogTree::new(loader, lonely).unwrap();
    let err = tree.lookup(&path("/m/x")).unwrap_err();
    assert!(matches!(err, TreeError::Load { .. }), "{err}");
    assert!(err.to_string().contains("/m"));

    // Absurd depth: a chain of distinct bind mounts, limited to 2 levels.
    let chain: Vec<ContentHash> = (0..5).map(|i| fake_hash(&format!("chain{i}"))).collect();
    let mut files = HashMap::new();
    for i in 0..4 {
        files.insert(chain[i], root_with_mount(d, &format!("chain{i}.db"), "bind_mountpoints", chain[i + 1]));
    }
    files.insert(chain[4], Builder::new(d, "chain4.db", "").finish());
    let tree = CatalogTree::new(MapLoader(files), chain[0]).unwrap().with_max_depth(2);
    assert!(tree.list(&path("/m/m")).is_ok());
    assert!(matches!(tree.list(&path("/m/m/m")).unwrap_err(), TreeError::TooDeep { limit: 2, .. }));

    // The root itself must be a root catalog.
    let not_root = fake_hash("not_root");
    let loader = MapLoader(HashMap::from([(not_root, Builder::new(d, "nr.db", "/x").finish())]));
    assert!(matches!(CatalogTree::new(loader, not_root), Err(TreeError::RootPrefixMismatch { .. })));
}

#[test]
fn bind_mounted_root_resolves_with_its_own_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (r, snap) = (fake_hash("r"), fake_hash("snap"));
    let mut b = Builder::new(d, "r.db", "");
    b.dir("/.cvmfs", flags::DIR | flags::HIDDEN);
    b.dir("/.cvmfs/snap", flags::DIR | flags::DIR_BIND_MOUNTPOINT);
    b.nested("bind_mountpoints", "/.cvmfs/snap", &snap.to_string());
    let root = b.finish();
    let mut s = Builder::new(d, "snap.db", "");
    s.file("/old.txt", 3, flags::FILE, Some(&[9; 20]));
    let snap_file = s.finish();
    let tree = CatalogTree::new(MapLoader(HashMap::from([(r, root), (snap, snap_file)])), r).unwrap();
    assert!(tree.list(&RepoPath::root()).unwrap().is_empty(), "hidden /.cvmfs is not listed");
    assert!(tree.lookup(&path("/.cvmfs")).unwrap().unwrap().entry.is_hidden());
    let old = tree.lookup(&path("/.cvmfs/snap/old.txt")).unwrap().unwrap();
    assert_eq!(old.entry.size, 3);
    assert_eq!(old.catalog.mountpoint, path("/.cvmfs/snap"));
    let listing = tree.list(&path("/.cvmfs/snap")).unwrap();
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].path, path("/.cvmfs/snap/old.txt"));
    let mp = tree.lookup(&path("/.cvmfs/snap")).unwrap().unwrap();
    assert!(mp.entry.is_bind_mountpoint());
    assert_eq!(mp.entry.name, b"snap");
}

#[test]
fn path_errors_are_descriptive() {
    let err = RepoPath::parse(b"/a/../b").unwrap_err();
    assert!(matches!(err, PathError::BadComponent { .. }));
    assert!(err.to_string().contains(".."), "{err}");
}

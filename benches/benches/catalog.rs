//! Catalog hot paths: path lookup in a catalog of 100k entries and listing a directory of
//! 10k entries, on a synthetic schema-2.5 catalog written with the real DDL.
//! `CVMFS_BENCH_CATALOG_ENTRIES` changes the catalog size (default 100000).

use std::path::Path;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use cvmfs_core::catalog::schema::{create_empty_schema, flags, pack_hardlinks};
use cvmfs_core::catalog::Catalog;
use cvmfs_core::path::RepoPath;
use cvmfs_core::{Algorithm, ContentHash, PathKey};
use rusqlite::{params, Connection};

const BIG_DIR: &str = "/big";
const BIG_DIR_ENTRIES: usize = 10_000;
const FILES_PER_DIR: usize = 100;

fn total_entries() -> usize {
    std::env::var("CVMFS_BENCH_CATALOG_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000)
}

/// `/big` with 10k files, the rest spread over `/d<i>` directories of 100 files each.
fn write_catalog(file: &Path, entries: usize) {
    let conn = Connection::open(file).unwrap();
    create_empty_schema(&conn).unwrap();
    conn.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; BEGIN;").unwrap();
    conn.execute("INSERT INTO properties VALUES ('revision', '1')", []).unwrap();
    let mut insert = conn
        .prepare(
            "INSERT INTO catalog (md5path_1, md5path_2, parent_1, parent_2, hardlinks, hash, size, mode, \
             mtime, mtimens, flags, name, symlink, uid, gid, xattr) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1700000000, 0, ?9, ?10, '', 0, 0, NULL)",
        )
        .unwrap();
    let mut row = |path: &RepoPath, mode: u32, flag: u32, size: u64| {
        let key = path.key();
        let parent = path.parent().map_or(PathKey::ROOT_PARENT, |p| p.key());
        let name = String::from_utf8_lossy(path.file_name().unwrap_or_default()).into_owned();
        let hash = (flag & flags::FILE != 0).then(|| ContentHash::of(Algorithm::Sha1, path.as_bytes()));
        insert
            .execute(params![
                key.p1,
                key.p2,
                parent.p1,
                parent.p2,
                pack_hardlinks(0, 1),
                hash.as_ref().map(|h| h.digest().to_vec()),
                size as i64,
                mode,
                flag,
                name
            ])
            .unwrap();
    };
    row(&RepoPath::root(), 0o40755, flags::DIR, 4096);
    let big = RepoPath::parse(BIG_DIR.as_bytes()).unwrap();
    row(&big, 0o40755, flags::DIR, 4096);
    for i in 0..BIG_DIR_ENTRIES.min(entries) {
        row(&big.join(format!("file{i:05}").as_bytes()).unwrap(), 0o100644, flags::FILE, i as u64);
    }
    let rest = entries.saturating_sub(BIG_DIR_ENTRIES);
    for d in 0..rest.div_ceil(FILES_PER_DIR) {
        let dir = RepoPath::root().join(format!("d{d:04}").as_bytes()).unwrap();
        row(&dir, 0o40755, flags::DIR, 4096);
        for f in 0..FILES_PER_DIR.min(rest - d * FILES_PER_DIR) {
            row(&dir.join(format!("f{f:03}.py").as_bytes()).unwrap(), 0o100644, flags::FILE, f as u64);
        }
    }
    drop(insert);
    conn.execute_batch("COMMIT;").unwrap();
}

fn catalog_benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("catalog.db");
    let entries = total_entries();
    write_catalog(&file, entries);
    let catalog = Catalog::open(&file).unwrap();
    let dirs = entries.saturating_sub(BIG_DIR_ENTRIES).div_ceil(FILES_PER_DIR).max(1);
    let paths: Vec<RepoPath> = (0..1024)
        .map(|i| {
            let text = format!("/d{:04}/f{:03}.py", (i * 7919) % dirs, (i * 31) % FILES_PER_DIR);
            RepoPath::parse(text.as_bytes()).unwrap()
        })
        .collect();
    let mut group = c.benchmark_group(format!("catalog_{entries}_entries"));
    let mut next = 0usize;
    group.bench_function("lookup_hit", |b| {
        b.iter(|| {
            next = (next + 1) % paths.len();
            black_box(catalog.lookup(&paths[next]).unwrap().unwrap())
        })
    });
    let missing = RepoPath::parse(b"/d0001/__init__.cpython-311.pyc").unwrap();
    group.bench_function("lookup_miss", |b| b.iter(|| black_box(catalog.lookup(&missing).unwrap())));
    let big = RepoPath::parse(BIG_DIR.as_bytes()).unwrap();
    group.sample_size(20);
    group.bench_function("list_10k_entry_directory", |b| {
        b.iter_batched(|| (), |()| black_box(catalog.list(&big).unwrap().len()), BatchSize::SmallInput)
    });
    group.finish();
}

criterion_group!(benches, catalog_benches);
criterion_main!(benches);

//! Reading a large chunked file from a local nginx: every chunk fetched and verified one
//! at a time, against 4 chunks in flight at once (the download manager is shared by
//! all threads of a mount). `CVMFS_BENCH_FILE_MIB` sets the file size (default 64; the
//! issue's figure uses 500).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cvmfs_core::catalog::Catalog;
use cvmfs_core::path::RepoPath;
use cvmfs_core::repository::ContentPiece;
use cvmfs_core::verify::read_verified_to_vec;
use cvmfs_core::{Compression, ObjectId, ObjectKind};
use cvmfs_proxy::{DownloadConfig, DownloadManager};
use cvmfs_publish::{generate_keys, publish, PublishOptions};
use cvmfs_testkit::servers::Nginx;
use rand::RngCore;

const FQRN: &str = "bench.test.local";

fn file_mib() -> usize {
    std::env::var("CVMFS_BENCH_FILE_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

/// Publishes one random file of `mib` MiB (default chunking 4/8/16 MiB) and returns its
/// chunks.
fn publish_big_file(base: &std::path::Path, mib: usize) -> Vec<ContentPiece> {
    generate_keys(FQRN, &base.join("keys"), cvmfs_publish::publish::unix_now()).unwrap();
    let source = base.join("tree");
    std::fs::create_dir_all(&source).unwrap();
    let mut data = vec![0u8; mib << 20];
    rand::thread_rng().fill_bytes(&mut data);
    std::fs::write(source.join("big.bin"), &data).unwrap();
    drop(data);
    let storage = base.join("srv").join(FQRN);
    let report = publish(&PublishOptions::new(FQRN, &base.join("keys"), &storage, &source)).unwrap();
    let catalog_id = ObjectId::new(report.root_hash, ObjectKind::Catalog);
    let stored = std::fs::read(storage.join(catalog_id.data_path())).unwrap();
    let db = read_verified_to_vec(&stored, report.root_hash, Compression::Zlib, 1 << 30).unwrap();
    let db_path = base.join("root.db");
    std::fs::write(&db_path, db).unwrap();
    let catalog = Catalog::open(&db_path).unwrap();
    let entry = catalog.lookup(&RepoPath::parse(b"/big.bin").unwrap()).unwrap().unwrap();
    catalog
        .chunks(&entry)
        .unwrap()
        .into_iter()
        .map(|c| ContentPiece { id: c.object_id(), offset: c.offset, size: c.size })
        .collect()
}

fn fetch(manager: &DownloadManager, piece: &ContentPiece) {
    let mut sink = Vec::with_capacity(piece.size as usize);
    let size = manager.fetch_object(&piece.id, Compression::Zlib, &mut sink, piece.size).unwrap();
    assert_eq!(size, piece.size);
}

fn proxy_benches(c: &mut Criterion) {
    let base = tempfile::tempdir().unwrap();
    let mib = file_mib();
    let pieces = publish_big_file(base.path(), mib);
    let nginx = Nginx::serve(&base.path().join("srv"));
    let manager = DownloadManager::new(DownloadConfig::new(vec![nginx.url(FQRN)])).unwrap();
    let mut group = c.benchmark_group(format!("read_{mib}MiB_chunked_file_from_nginx"));
    group.throughput(Throughput::Bytes((mib as u64) << 20));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function(format!("one_chunk_at_a_time_{}_chunks", pieces.len()), |b| {
        b.iter(|| pieces.iter().for_each(|p| fetch(&manager, p)))
    });
    group.bench_function("four_chunks_in_parallel", |b| {
        b.iter(|| {
            std::thread::scope(|scope| {
                for lane in 0..4 {
                    let (manager, pieces) = (&manager, &pieces);
                    scope.spawn(move || pieces.iter().skip(lane).step_by(4).for_each(|p| fetch(manager, p)));
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, proxy_benches);
criterion_main!(benches);

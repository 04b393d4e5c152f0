//! Benches of `cvmfs-cache` (issue 6):
//! * hit path: `Cache::open` + read of a cached object, against opening and reading the
//!   same bytes from a plain file (the ratio is printed as `hit/direct`);
//! * insertion throughput (transaction, write, commit);
//! * cleanup of 100k objects (`cleanup(0)`);
//! * the longest stall of readers (and of a writer) while such a cleanup runs, printed
//!   as a report (criterion measures means, not maxima).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{
    black_box, criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use cvmfs_cache::{Cache, CacheConfig, QuotaLimit};
use cvmfs_core::{Algorithm, ContentHash, ObjectId, ObjectKind};

const MANY: u64 = 100_000;
const SMALL: usize = 1024;

/// An object id for number `n`; the cache does not check content against the name, so
/// benches need not hash.
fn id(n: u64) -> ObjectId {
    let mut digest = [0u8; 20];
    digest[..8].copy_from_slice(&n.to_le_bytes());
    digest[8..16].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    ObjectId::new(ContentHash::from_digest(Algorithm::Sha1, &digest).unwrap(), ObjectKind::File)
}

fn payload(len: usize, n: u64) -> Vec<u8> {
    (0..len).map(|i| (i as u64 ^ n) as u8).collect()
}

fn open_cache(dir: &Path, quota: QuotaLimit) -> Cache {
    Cache::new(CacheConfig::new(dir).with_quota(quota)).unwrap()
}

fn insert(cache: &Cache, id: ObjectId, bytes: &[u8]) {
    let mut txn = cache.start_txn(id, Some(bytes.len() as u64)).unwrap();
    txn.write_all(bytes).unwrap();
    txn.commit().unwrap();
}

fn hit_path(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let cache = open_cache(&tmp.path().join("cache"), QuotaLimit::Unlimited);
    let mut group = c.benchmark_group("cache/hit_read");
    group.sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for size in [4 * 1024usize, 1 << 20] {
        let bytes = payload(size, 1);
        let object = id(size as u64);
        insert(&cache, object, &bytes);
        let plain = tmp.path().join(format!("plain-{size}"));
        std::fs::write(&plain, &bytes).unwrap();
        let mut buf = vec![0u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("cache", size), &object, |b, object| {
            b.iter(|| {
                let hit = cache.open(object).unwrap().unwrap();
                hit.read_exact_at(&mut buf, 0).unwrap();
                black_box(&buf);
            })
        });
        group.bench_with_input(BenchmarkId::new("direct", size), &plain, |b, plain| {
            b.iter(|| {
                let mut file = std::fs::File::open(plain).unwrap();
                file.read_exact(&mut buf).unwrap();
                black_box(&buf);
            })
        });
        let ratio = time_per_op(|| {
            let hit = cache.open(&object).unwrap().unwrap();
            hit.read_exact_at(&mut buf, 0).unwrap();
        }) / time_per_op(|| {
            let mut file = std::fs::File::open(&plain).unwrap();
            file.read_exact(&mut buf).unwrap();
        });
        println!("REPORT hit_read {size} bytes: hit/direct time ratio {ratio:.2}");
    }
    group.finish();
}

/// Mean seconds per call over ~0.5 s, after a short warm-up.
fn time_per_op(mut op: impl FnMut()) -> f64 {
    for _ in 0..100 {
        op();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(500) {
        op();
        n += 1;
    }
    start.elapsed().as_secs_f64() / n as f64
}

fn insertion(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let cache = open_cache(&tmp.path().join("cache"), QuotaLimit::Unlimited);
    let counter = AtomicU64::new(1 << 40);
    let mut group = c.benchmark_group("cache/insert");
    group.sample_size(20).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    for size in [4 * 1024usize, 64 * 1024] {
        let bytes = payload(size, 7);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| insert(&cache, id(counter.fetch_add(1, Ordering::Relaxed)), &bytes))
        });
    }
    group.finish();
}

/// A cache directory holding `count` objects of `SMALL` bytes: files written directly,
/// then accounted by the rebuild that opening an unknown directory performs.
fn populated(dir: &Path, count: u64) -> (Cache, Duration) {
    let bytes = payload(SMALL, 3);
    std::fs::create_dir_all(dir).unwrap();
    for prefix in 0..=255u8 {
        std::fs::create_dir_all(dir.join(format!("{prefix:02x}"))).unwrap();
    }
    for n in 0..count {
        std::fs::write(dir.join(id(n).cache_path()), &bytes).unwrap();
    }
    let start = Instant::now();
    let cache = open_cache(dir, QuotaLimit::Unlimited);
    (cache, start.elapsed())
}

fn cleanup_many(c: &mut Criterion) {
    let mut group = c.benchmark_group("cache/cleanup");
    group.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_secs(60));
    group.throughput(Throughput::Elements(MANY));
    group.bench_function("100k_objects_to_0", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let tmp = tempfile::tempdir().unwrap();
                let (cache, _) = populated(&tmp.path().join("cache"), MANY);
                let start = Instant::now();
                let report = cache.cleanup(0).unwrap();
                total += start.elapsed();
                assert_eq!(report.evicted, MANY);
            }
            total
        })
    });
    group.finish();
}

/// Latency of every operation of `threads` readers (open + read of a random object)
/// and of one writer while `work` runs; returns (reader max, reader p99, writer max).
fn stalls(cache: &Cache, threads: usize, work: impl FnOnce()) -> (Duration, Duration, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..threads)
        .map(|t| {
            let (cache, stop) = (cache.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut buf = vec![0u8; SMALL];
                let mut n = t as u64;
                while !stop.load(Ordering::Relaxed) {
                    n = (n * 6364136223846793005 + 1442695040888963407) % MANY;
                    let start = Instant::now();
                    if let Some(hit) = cache.open(&id(n)).unwrap() {
                        let _ = hit.read_at(&mut buf, 0).unwrap();
                    }
                    latencies.push(start.elapsed());
                }
                latencies
            })
        })
        .collect();
    let writer = {
        let (cache, stop) = (cache.clone(), stop.clone());
        std::thread::spawn(move || {
            let bytes = payload(SMALL, 9);
            let mut worst = Duration::ZERO;
            let mut n = 1u64 << 50;
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                insert(&cache, id(n), &bytes);
                worst = worst.max(start.elapsed());
                n += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            worst
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    work();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<Duration> = readers.into_iter().flat_map(|r| r.join().unwrap()).collect();
    all.sort();
    let max = all.last().copied().unwrap_or_default();
    let p99 = all.get(all.len() * 99 / 100).copied().unwrap_or_default();
    (max, p99, writer.join().unwrap())
}

fn stall_during_cleanup(_c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let (cache, rebuild) = populated(&tmp.path().join("cache"), MANY);
    println!("REPORT rebuild of the quota database for {MANY} objects: {rebuild:?}");
    let (max, p99, writer) = stalls(&cache, 4, || std::thread::sleep(Duration::from_secs(2)));
    println!("REPORT baseline without cleanup: reader max {max:?}, p99 {p99:?}; writer max {writer:?}");
    let mut took = Duration::ZERO;
    let (max, p99, writer) = stalls(&cache, 4, || {
        let start = Instant::now();
        cache.cleanup(0).unwrap();
        took = start.elapsed();
    });
    println!(
        "REPORT during cleanup of {MANY} objects ({took:?}): reader max {max:?}, p99 {p99:?}; writer max {writer:?}"
    );
}

criterion_group!(benches, hit_path, insertion, cleanup_many, stall_during_cleanup);
criterion_main!(benches);

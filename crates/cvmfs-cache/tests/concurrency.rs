//! Two processes with eight threads each read and insert in one cache directory whose
//! quota is far smaller than the objects they use, so cleanups run all the time. Every
//! byte read must be the byte inserted, both processes must finish (each wait is
//! bounded: a deadlock fails the test), and the directory must be consistent after.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use common::{assert_consistent, content, id_of, open_cache, spawn_helper, wait_bounded, Rng};

const HELPER_DIR: &str = "CVMFS_CACHE_CONCURRENCY_HELPER_DIR";
const HELPER_SEED: &str = "CVMFS_CACHE_CONCURRENCY_HELPER_SEED";
const LIMIT: u64 = 512 * 1024;
const THREADS: u64 = 8;
const OPS_PER_THREAD: u64 = 600;
/// About 8 MB of distinct objects against a 512 KB quota.
const OBJECTS: u64 = 1000;

/// One process's work; an ordinary (empty) test unless started by `two_processes_share_one_cache`.
#[test]
fn concurrency_helper() {
    let (Some(dir), Some(seed)) = (std::env::var_os(HELPER_DIR), std::env::var(HELPER_SEED).ok()) else {
        return;
    };
    let cache = Arc::new(open_cache(std::path::Path::new(&dir), LIMIT));
    let seed: u64 = seed.parse().unwrap();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let cache = cache.clone();
            std::thread::spawn(move || work(&cache, Rng((seed << 8 | t) * 0x9e37_79b9 + 1)))
        })
        .collect();
    let mut hits = 0;
    for worker in workers {
        hits += worker.join().expect("a worker failed");
    }
    eprintln!("process {seed}: {hits} verified hits");
}

/// Returns the number of hits, each checked byte for byte.
fn work(cache: &cvmfs_cache::Cache, mut rng: Rng) -> u64 {
    let mut hits = 0;
    for _ in 0..OPS_PER_THREAD {
        // Skewed choice: a hot set that should mostly hit, and a long tail.
        let n = if rng.below(2) == 0 { rng.below(40) } else { rng.below(OBJECTS) };
        let bytes = content(n);
        let id = id_of(&bytes);
        match rng.below(20) {
            0 => {
                cache.cleanup(rng.below(LIMIT)).unwrap();
            }
            1 => {
                if let Some(object) = cache.open_pinned(&id).unwrap() {
                    assert_eq!(object.read_to_vec().unwrap(), bytes, "pinned object {n} has wrong bytes");
                    assert!(cache.unpin(&id));
                }
            }
            _ => match cache.open(&id).unwrap() {
                Some(object) => {
                    assert_eq!(object.read_to_vec().unwrap(), bytes, "object {n} has wrong bytes");
                    hits += 1;
                }
                None => {
                    let mut txn = cache.start_txn(id, Some(bytes.len() as u64)).unwrap();
                    txn.write_all(&bytes).unwrap();
                    let stored = txn.commit().unwrap();
                    assert_eq!(stored.read_to_vec().unwrap(), bytes, "object {n} read back wrong");
                }
            },
        }
    }
    hits
}

#[test]
fn two_processes_share_one_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shared");
    let mut children: Vec<_> = (1..=2u64)
        .map(|seed| {
            spawn_helper(
                "concurrency_helper",
                &[(HELPER_DIR, dir.display().to_string()), (HELPER_SEED, seed.to_string())],
            )
        })
        .collect();
    for child in &mut children {
        let status = wait_bounded(child, Duration::from_secs(240), "helper process");
        assert!(status.success(), "a helper process failed: {status}");
    }
    let cache = open_cache(&dir, LIMIT);
    assert_eq!(cache.startup_repair(), None, "both processes shut down cleanly");
    assert_eq!(cache.repair().unwrap(), Default::default(), "database matches the directory");
    assert_consistent(&cache);
    // Each process may overshoot by the objects the other inserted between its
    // cleanup and its own insert; the soft limit plus that slack still holds.
    let size = cache.size().unwrap();
    assert!(size <= LIMIT + 2 * THREADS * 16 * 1024, "{size}");
}

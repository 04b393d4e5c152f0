//! Shared by the multi-process tests: deterministic objects, a consistency check of a
//! cache directory, and running this test binary again as a helper process.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cvmfs_cache::{Cache, CacheConfig, QuotaLimit};
use cvmfs_core::{Algorithm, ContentHash, ObjectId, ObjectKind};

/// A small deterministic generator (tests must not depend on an RNG crate's stream).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Content of object number `n`: its length and bytes follow from `n` alone, so any
/// process can check what it reads.
pub fn content(n: u64) -> Vec<u8> {
    let mut rng = Rng(n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let len = rng.below(16 * 1024) as usize;
    (0..len).map(|_| rng.next() as u8).collect()
}

pub fn id_of(content: &[u8]) -> ObjectId {
    ObjectId::new(ContentHash::of(Algorithm::Sha1, content), ObjectKind::File)
}

pub fn open_cache(dir: &Path, limit: u64) -> Cache {
    let mut config = CacheConfig::new(dir).with_quota(QuotaLimit::Bytes(limit));
    // A deadlock or a stuck lock must fail the test, not hang it.
    config.lock_timeout = Duration::from_secs(20);
    Cache::new(config).expect("opening the cache")
}

/// Every object file verifies by hash, the database lists exactly the files on disk
/// with their sizes, the gauge is their sum, and no temporary file is left over.
pub fn assert_consistent(cache: &Cache) -> usize {
    let dir = cache.dir().to_path_buf();
    let mut on_disk = std::collections::BTreeMap::new();
    for prefix in 0..=255u8 {
        let sub = dir.join(format!("{prefix:02x}"));
        for entry in std::fs::read_dir(&sub).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{prefix:02x}{}", entry.file_name().to_str().unwrap());
            let bytes = std::fs::read(entry.path()).unwrap();
            let hash = ContentHash::parse_content(&name).expect("only hash-named files in the cache");
            assert_eq!(ContentHash::of(Algorithm::Sha1, &bytes), hash, "object {name} does not verify");
            on_disk.insert(name, bytes.len() as u64);
        }
    }
    let listed: std::collections::BTreeMap<String, u64> =
        cache.list().unwrap().into_iter().map(|e| (e.hash.to_string(), e.size)).collect();
    assert_eq!(listed, on_disk, "quota database and directory differ");
    assert_eq!(cache.size().unwrap(), on_disk.values().sum::<u64>(), "gauge is not the sum of the objects");
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("txn")).unwrap().collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    on_disk.len()
}

/// Starts this test binary again running only `test_name`, with `env` set.
pub fn spawn_helper(test_name: &str, env: &[(&str, String)]) -> Child {
    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new(exe);
    command.args(["--exact", test_name, "--nocapture", "--test-threads=1"]);
    for (key, value) in env {
        command.env(key, value);
    }
    command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap()
}

/// Waits for a child at most `timeout`; kills it and fails the test on expiry.
pub fn wait_bounded(child: &mut Child, timeout: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {timeout:?} (deadlock?)");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

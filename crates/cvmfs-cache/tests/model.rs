//! Property test: random inserts, reads, pins, unpins, evictions and cleanups against a
//! model. The cache must stay within its limit after every insert and cleanup, never
//! lose a pinned object, and never return bytes other than those inserted.

use std::collections::HashMap;
use std::io::Write;

use cvmfs_cache::{Cache, CacheConfig, CacheError, QuotaLimit};
use cvmfs_core::{Algorithm, ContentHash, ObjectId, ObjectKind};
use proptest::prelude::*;

const LIMIT: u64 = 64 * 1024;
const OBJECTS: usize = 12;

#[derive(Debug, Clone)]
enum Op {
    Insert(usize),
    Read(usize),
    Pin(usize),
    Unpin(usize),
    Evict(usize),
    Cleanup(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let object = 0..OBJECTS;
    prop_oneof![
        4 => object.clone().prop_map(Op::Insert),
        3 => object.clone().prop_map(Op::Read),
        1 => object.clone().prop_map(Op::Pin),
        1 => object.clone().prop_map(Op::Unpin),
        1 => object.prop_map(Op::Evict),
        1 => (0..LIMIT).prop_map(Op::Cleanup),
    ]
}

fn bytes_of(index: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 131 + index * 17 + 3) as u8).collect()
}

struct World {
    cache: Cache,
    contents: Vec<Vec<u8>>,
    ids: Vec<ObjectId>,
    pins: HashMap<usize, u32>,
}

impl World {
    fn new(dir: &std::path::Path, sizes: &[usize]) -> World {
        let cache = Cache::new(CacheConfig::new(dir).with_quota(QuotaLimit::Bytes(LIMIT))).unwrap();
        let contents: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &len)| bytes_of(i, len)).collect();
        let ids = contents
            .iter()
            .map(|c| ObjectId::new(ContentHash::of(Algorithm::Sha1, c), ObjectKind::File))
            .collect();
        World { cache, contents, ids, pins: HashMap::new() }
    }

    fn pinned_bytes(&self) -> u64 {
        self.pins.keys().map(|&i| self.contents[i].len() as u64).sum()
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Insert(i) => {
                let mut txn = self.cache.start_txn(self.ids[i], Some(self.contents[i].len() as u64)).unwrap();
                txn.write_all(&self.contents[i]).unwrap();
                let stored = txn.commit().unwrap();
                prop_assert_eq!(stored.read_to_vec().unwrap(), self.contents[i].clone());
                let size = self.cache.size().unwrap();
                prop_assert!(size <= LIMIT, "after insert: {} > limit", size);
            }
            Op::Read(i) => {
                if let Some(object) = self.cache.open(&self.ids[i]).unwrap() {
                    prop_assert_eq!(object.read_to_vec().unwrap(), self.contents[i].clone());
                }
            }
            Op::Pin(i) => match self.cache.pin(&self.ids[i]) {
                Ok(true) => *self.pins.entry(i).or_default() += 1,
                Ok(false) => prop_assert!(!self.pins.contains_key(&i), "a pinned object vanished"),
                Err(CacheError::PinBudget { .. }) => {
                    prop_assert!(self.pinned_bytes() + self.contents[i].len() as u64 > LIMIT / 2)
                }
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            },
            Op::Unpin(i) => {
                let pinned = self.pins.get(&i).copied().unwrap_or(0);
                prop_assert_eq!(self.cache.unpin(&self.ids[i]), pinned > 0);
                match pinned {
                    0 => {}
                    1 => {
                        self.pins.remove(&i);
                    }
                    _ => *self.pins.entry(i).or_default() -= 1,
                }
            }
            Op::Evict(i) => {
                self.cache.evict(&self.ids[i]).unwrap();
            }
            Op::Cleanup(target) => {
                let report = self.cache.cleanup(target).unwrap();
                let size = self.cache.size().unwrap();
                prop_assert_eq!(size, report.remaining_bytes);
                prop_assert!(size <= target.max(self.pinned_bytes()), "after cleanup({}): {}", target, size);
            }
        }
        self.check_pins_and_accounting()
    }

    fn check_pins_and_accounting(&self) -> Result<(), TestCaseError> {
        for &i in self.pins.keys() {
            let object = self.cache.open(&self.ids[i]).unwrap();
            prop_assert!(object.is_some(), "pinned object {} was evicted", i);
        }
        let listed: u64 = self.cache.list().unwrap().iter().map(|e| e.size).sum();
        prop_assert_eq!(listed, self.cache.size().unwrap());
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn cache_follows_the_model(
        sizes in proptest::collection::vec(0usize..12_000, OBJECTS),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let mut world = World::new(tmp.path(), &sizes);
        for op in &ops {
            world.apply(op)?;
        }
        // The directory holds exactly what the database accounts.
        let on_disk: u64 = world.ids.iter()
            .filter_map(|id| std::fs::metadata(tmp.path().join(id.cache_path())).ok())
            .map(|m| m.len())
            .sum();
        prop_assert_eq!(on_disk, world.cache.size().unwrap());
    }
}

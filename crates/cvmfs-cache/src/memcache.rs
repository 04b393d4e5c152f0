//! A generic, thread-safe LRU bounded by a byte budget, for the client's metadata
//! caches (path → entry, inode → entry, md5 path → entry) sized by
//! `CVMFS_MEMCACHE_SIZE`. Upstream splits that budget over its three caches; the
//! client library decides the split and instantiates one `MemCache` per map.
//!
//! The map is split into shards, each with its own lock and its share of the budget,
//! so that FUSE threads looking up different keys rarely wait for each other; LRU
//! order is therefore kept per shard, which is close enough for a cache.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;

use lru::LruCache;

use crate::config::MIB;

/// Bytes of a `CVMFS_MEMCACHE_SIZE` value (MB); zero or negative gives zero.
pub fn memcache_bytes(mb: i64) -> usize {
    usize::try_from(mb.max(0) as u64 * MIB).unwrap_or(usize::MAX)
}

/// Hit and miss counts, for `cvmfs_talk internal affairs`-style statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemCacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

struct Shard<K: Hash + Eq, V> {
    entries: LruCache<K, (V, usize)>,
    weight: usize,
    stats: MemCacheStats,
}

pub struct MemCache<K: Hash + Eq, V> {
    shards: Box<[Mutex<Shard<K, V>>]>,
    shard_capacity: usize,
    weigh: fn(&K, &V) -> usize,
    hasher: RandomState,
}

/// Budgets below this use one shard, so a small cache is not cut into slivers.
const SHARDING_THRESHOLD: usize = 1 << 20;
const SHARDS: usize = 16;

impl<K: Hash + Eq, V: Clone> MemCache<K, V> {
    /// A cache holding at most `capacity_bytes`, each entry weighing `weigh(key, value)`
    /// (include a fixed per-entry overhead in it).
    pub fn new(capacity_bytes: usize, weigh: fn(&K, &V) -> usize) -> MemCache<K, V> {
        let shard_count = if capacity_bytes >= SHARDING_THRESHOLD { SHARDS } else { 1 };
        let shards = (0..shard_count)
            .map(|_| {
                Mutex::new(Shard {
                    entries: LruCache::unbounded(),
                    weight: 0,
                    stats: MemCacheStats::default(),
                })
            })
            .collect();
        MemCache { shards, shard_capacity: capacity_bytes / shard_count, weigh, hasher: RandomState::new() }
    }

    fn shard(&self, key: &K) -> std::sync::MutexGuard<'_, Shard<K, V>> {
        let index = (self.hasher.hash_one(key) as usize) % self.shards.len();
        crate::lock(&self.shards[index])
    }

    /// The value for `key`, marking it most recently used.
    pub fn get(&self, key: &K) -> Option<V> {
        let mut shard = self.shard(key);
        let found = shard.entries.get(key).map(|(value, _)| value.clone());
        match found {
            Some(_) => shard.stats.hits += 1,
            None => shard.stats.misses += 1,
        }
        found
    }

    /// Stores `value`, evicting least recently used entries to stay in budget. An
    /// entry heavier than a whole shard's budget is not stored.
    pub fn insert(&self, key: K, value: V) {
        let weight = (self.weigh)(&key, &value);
        let mut shard = self.shard(&key);
        if let Some((_, old_weight)) = shard.entries.pop(&key) {
            shard.weight -= old_weight;
        }
        if weight > self.shard_capacity {
            return;
        }
        while shard.weight + weight > self.shard_capacity {
            match shard.entries.pop_lru() {
                Some((_, (_, evicted_weight))) => {
                    shard.weight -= evicted_weight;
                    shard.stats.evictions += 1;
                }
                None => break,
            }
        }
        shard.weight += weight;
        shard.entries.put(key, (value, weight));
    }

    pub fn remove(&self, key: &K) -> Option<V> {
        let mut shard = self.shard(key);
        let (value, weight) = shard.entries.pop(key)?;
        shard.weight -= weight;
        Some(value)
    }

    /// Drops everything (e.g. after a catalog reload).
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            let mut shard = crate::lock(shard);
            shard.entries.clear();
            shard.weight = 0;
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| crate::lock(s).entries.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sum of the weights of the stored entries.
    pub fn weight(&self) -> usize {
        self.shards.iter().map(|s| crate::lock(s).weight).sum()
    }

    pub fn capacity(&self) -> usize {
        self.shard_capacity * self.shards.len()
    }

    pub fn stats(&self) -> MemCacheStats {
        self.shards.iter().fold(MemCacheStats::default(), |acc, s| {
            let s = crate::lock(s).stats;
            MemCacheStats {
                hits: acc.hits + s.hits,
                misses: acc.misses + s.misses,
                evictions: acc.evictions + s.evictions,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::ptr_arg)] // the signature MemCache<u64, String> asks for
    fn weigh(_: &u64, v: &String) -> usize {
        16 + v.len()
    }

    #[test]
    fn evicts_least_recently_used_within_budget() {
        let cache: MemCache<u64, String> = MemCache::new(100, weigh);
        cache.insert(1, "a".repeat(20)); // 36
        cache.insert(2, "b".repeat(20)); // 72
        assert_eq!(cache.get(&1).as_deref(), Some("a".repeat(20).as_str()));
        cache.insert(3, "c".repeat(20)); // would be 108: evicts 2, the least recent
        assert_eq!(cache.get(&2), None);
        assert_eq!(cache.get(&3), Some("c".repeat(20)));
        assert!(cache.weight() <= 100);
        cache.insert(4, "d".repeat(200));
        assert_eq!(cache.get(&4), None, "heavier than the budget: not stored");
        assert_eq!(cache.remove(&1), Some("a".repeat(20)));
        assert_eq!(cache.stats().evictions, 1);
    }

    #[test]
    fn sharded_cache_stays_in_budget_under_threads() {
        let cache: std::sync::Arc<MemCache<u64, String>> = std::sync::Arc::new(MemCache::new(2 << 20, weigh));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        let key = t * 1_000_000 + i;
                        cache.insert(key, format!("{key:0200}"));
                        if let Some(v) = cache.get(&key) {
                            assert_eq!(v, format!("{key:0200}"));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(cache.weight() <= cache.capacity());
        assert!(!cache.is_empty());
    }
}

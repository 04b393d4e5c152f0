//! Inode numbers and the table of inodes the kernel holds.
//!
//! An inode number is derived from the path (or, for hard links, from the catalog and
//! hard-link group), so it is the same in every revision and every mount of the
//! repository: a file keeps its inode across revision switches, and all members of a
//! hard-link group share one. The table remembers the path of each inode the kernel
//! was handed by `lookup`, counted, until `forget` brings the count to zero.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{PoisonError, RwLock};

use cvmfs_core::path::RepoPath;

/// The FUSE root.
pub const ROOT_INODE: u64 = 1;
/// Numbers below this are never derived (0 is invalid, 1 the root; room for specials).
const FIRST_DERIVED: u64 = 256;

/// What identifies an inode: a path, or a hard-link group inside a catalog.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InodeKey {
    Path(Vec<u8>),
    Hardlink { catalog_mountpoint: Vec<u8>, group: u32 },
}

impl InodeKey {
    pub fn number(&self) -> u64 {
        if matches!(self, InodeKey::Path(p) if p.is_empty()) {
            return ROOT_INODE;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut hasher);
        let h = hasher.finish();
        if h < FIRST_DERIVED {
            h + FIRST_DERIVED
        } else {
            h
        }
    }
}

#[derive(Debug)]
struct Known {
    key: InodeKey,
    /// A path that reaches the inode (the first one looked up, for hard links).
    path: RepoPath,
    lookups: u64,
}

/// Inodes the kernel references.
#[derive(Debug, Default)]
pub struct InodeTable {
    known: RwLock<HashMap<u64, Known>>,
}

impl InodeTable {
    pub fn new() -> InodeTable {
        InodeTable::default()
    }

    /// Records one kernel reference to the inode of `key`, reached by `path`, and
    /// returns its number. On the (astronomically unlikely) collision of two keys the
    /// newcomer gets a probed number.
    pub fn remember(&self, key: InodeKey, path: &RepoPath) -> u64 {
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        let mut ino = key.number();
        if ino == ROOT_INODE {
            return ino;
        }
        loop {
            match known.get_mut(&ino) {
                Some(entry) if entry.key == key => {
                    entry.lookups += 1;
                    return ino;
                }
                Some(_) => ino = ino.wrapping_add(0x9e37_79b9_7f4a_7c15).max(FIRST_DERIVED),
                None => {
                    known.insert(ino, Known { key, path: path.clone(), lookups: 1 });
                    return ino;
                }
            }
        }
    }

    /// The number the kernel would get for `key`, without recording a reference (for
    /// directory listings, which the kernel does not hold).
    pub fn peek(&self, key: &InodeKey) -> u64 {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        let mut ino = key.number();
        while let Some(entry) = known.get(&ino) {
            if &entry.key == key || ino == ROOT_INODE {
                break;
            }
            ino = ino.wrapping_add(0x9e37_79b9_7f4a_7c15).max(FIRST_DERIVED);
        }
        ino
    }

    /// The path of a referenced inode.
    pub fn path(&self, ino: u64) -> Option<RepoPath> {
        if ino == ROOT_INODE {
            return Some(RepoPath::root());
        }
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        known.get(&ino).map(|entry| entry.path.clone())
    }

    /// Drops `n` kernel references.
    pub fn forget(&self, ino: u64, n: u64) {
        if ino == ROOT_INODE {
            return;
        }
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = known.get_mut(&ino) {
            entry.lookups = entry.lookups.saturating_sub(n);
            if entry.lookups == 0 {
                known.remove(&ino);
            }
        }
    }

    /// Inodes currently referenced (for `cvmfs_talk` and tests).
    pub fn len(&self) -> usize {
        self.known.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every referenced inode with its path (for kernel cache invalidation).
    pub fn snapshot(&self) -> Vec<(u64, RepoPath)> {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        known.iter().map(|(&ino, entry)| (ino, entry.path.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> RepoPath {
        RepoPath::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn numbers_are_stable_and_counted() {
        let table = InodeTable::new();
        let key = InodeKey::Path(b"/a/b".to_vec());
        let ino = table.remember(key.clone(), &path("/a/b"));
        assert!(ino >= FIRST_DERIVED);
        assert_eq!(table.remember(key.clone(), &path("/a/b")), ino);
        assert_eq!(table.peek(&key), ino);
        assert_eq!(InodeTable::new().peek(&key), ino, "the same in another mount");
        table.forget(ino, 1);
        assert_eq!(table.path(ino), Some(path("/a/b")));
        table.forget(ino, 1);
        assert_eq!(table.path(ino), None);
        assert_eq!(table.path(ROOT_INODE), Some(RepoPath::root()));
        assert_eq!(InodeKey::Path(Vec::new()).number(), ROOT_INODE);
    }

    #[test]
    fn hard_links_share_a_number() {
        let table = InodeTable::new();
        let key = InodeKey::Hardlink { catalog_mountpoint: Vec::new(), group: 3 };
        let a = table.remember(key.clone(), &path("/x"));
        let b = table.remember(key, &path("/y"));
        assert_eq!(a, b);
        assert_eq!(table.path(a), Some(path("/x")));
    }
}

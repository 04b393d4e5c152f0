//! Pins: objects (catalogs in use, `cvmfs_talk pin`) that cleanup must not evict.
//!
//! A pin holds a shared `flock` on the object file. Cleanup, in any process, takes an
//! exclusive non-blocking `flock` on a candidate before unlinking it and skips the
//! object when that fails. The kernel drops the lock when the pinning process dies,
//! so a crash can never leave an object pinned forever (upstream instead resets all
//! pins at start-up). The byte budget of pins is per process, like upstream's
//! per-manager table.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use cvmfs_core::ContentHash;

use crate::layout::try_flock;

struct Pin {
    count: u32,
    size: u64,
    // Never read: holding the descriptor holds the lock.
    _lock: File,
}

#[derive(Default)]
pub(crate) struct PinTable {
    pins: HashMap<ContentHash, Pin>,
    bytes: u64,
}

/// Why a new pin could not be taken.
pub(crate) enum PinRefusal {
    /// Pinned bytes would exceed the budget.
    Budget { pinned: u64 },
}

impl PinTable {
    pub fn contains(&self, hash: &ContentHash) -> bool {
        self.pins.contains_key(hash)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Adds one more reference to an existing pin; false if there is none.
    pub fn add_reference(&mut self, hash: &ContentHash) -> bool {
        match self.pins.get_mut(hash) {
            Some(pin) => {
                pin.count += 1;
                true
            }
            None => false,
        }
    }

    /// Records a pin whose lock `lock` already holds, if the budget allows.
    pub fn insert(
        &mut self,
        hash: ContentHash,
        size: u64,
        lock: File,
        budget: Option<u64>,
    ) -> Result<(), PinRefusal> {
        if budget.is_some_and(|budget| self.bytes + size > budget) {
            return Err(PinRefusal::Budget { pinned: self.bytes });
        }
        self.bytes += size;
        self.pins.insert(hash, Pin { count: 1, size, _lock: lock });
        Ok(())
    }

    /// Drops one reference; the lock goes with the last one. False if not pinned.
    pub fn release(&mut self, hash: &ContentHash) -> bool {
        let Some(pin) = self.pins.get_mut(hash) else { return false };
        pin.count -= 1;
        if pin.count == 0 {
            self.bytes -= pin.size;
            self.pins.remove(hash);
        }
        true
    }
}

/// Opens `path` and takes a shared lock on the file that is *currently* linked there
/// (an object can be evicted and re-inserted between open and lock). Returns the
/// locked file and its size, or `None` when the object is not cached.
pub(crate) fn lock_shared(path: &Path) -> io::Result<Option<(File, u64)>> {
    for _ in 0..8 {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if !wait_for_shared_lock(&file)? {
            continue;
        }
        let locked = file.metadata()?;
        match std::fs::metadata(path) {
            Ok(linked) if linked.ino() == locked.ino() && linked.dev() == locked.dev() => {
                return Ok(Some((file, locked.len())))
            }
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Cleanup holds an exclusive lock only for the moment it unlinks the file, so a
/// short wait suffices; if it keeps failing the file is being evicted.
fn wait_for_shared_lock(file: &File) -> io::Result<bool> {
    for attempt in 0..100u32 {
        if try_flock(file, libc::LOCK_SH)? {
            return Ok(true);
        }
        std::thread::sleep(std::time::Duration::from_micros(50 * u64::from(attempt + 1)));
    }
    Ok(false)
}

/// Cleanup's side: true if `path` may be unlinked now (nobody pins it), with the
/// exclusive lock held by the returned file until it is dropped after the unlink.
pub(crate) fn try_lock_for_eviction(path: &Path) -> io::Result<Eviction> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Eviction::Gone),
        Err(e) => return Err(e),
    };
    if try_flock(&file, libc::LOCK_EX)? {
        Ok(Eviction::Free(file))
    } else {
        Ok(Eviction::PinnedElsewhere)
    }
}

pub(crate) enum Eviction {
    /// No file (deleted by someone else): only the row has to go.
    Gone,
    /// Locked exclusively: unlink while holding this.
    Free(File),
    /// Another handle or process pins it.
    PinnedElsewhere,
}

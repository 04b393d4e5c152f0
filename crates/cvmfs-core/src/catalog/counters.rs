//! Statistics counters of a catalog (spec 6.10, `catalog_counters*`): `self_*` for the
//! catalog itself, `subtree_*` for everything nested below it.
//!
//! Which counters may be missing depends on the schema revision, as upstream's
//! `ReadCatalogCounters` decides; a counter that must exist but does not is an error.

use std::collections::HashMap;

use super::error::CatalogError;

/// The counter names without their `self_`/`subtree_` prefix, in upstream's order.
pub const COUNTER_NAMES: [&str; 12] = [
    "regular",
    "symlink",
    "special",
    "dir",
    "nested",
    "chunked",
    "chunks",
    "file_size",
    "chunked_size",
    "xattr",
    "external",
    "external_file_size",
];

/// One set of counters (`self_*` or `subtree_*`). Upstream keeps them as int64.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSet {
    pub regular: i64,
    pub symlink: i64,
    pub special: i64,
    pub dir: i64,
    pub nested: i64,
    pub chunked: i64,
    pub chunks: i64,
    pub file_size: i64,
    pub chunked_size: i64,
    pub xattr: i64,
    pub external: i64,
    pub external_file_size: i64,
}

impl CounterSet {
    /// The counter of that (unprefixed) name.
    pub fn get(&self, name: &str) -> Option<i64> {
        Some(match name {
            "regular" => self.regular,
            "symlink" => self.symlink,
            "special" => self.special,
            "dir" => self.dir,
            "nested" => self.nested,
            "chunked" => self.chunked,
            "chunks" => self.chunks,
            "file_size" => self.file_size,
            "chunked_size" => self.chunked_size,
            "xattr" => self.xattr,
            "external" => self.external,
            "external_file_size" => self.external_file_size,
            _ => return None,
        })
    }

    fn slot(&mut self, name: &str) -> Option<&mut i64> {
        Some(match name {
            "regular" => &mut self.regular,
            "symlink" => &mut self.symlink,
            "special" => &mut self.special,
            "dir" => &mut self.dir,
            "nested" => &mut self.nested,
            "chunked" => &mut self.chunked,
            "chunks" => &mut self.chunks,
            "file_size" => &mut self.file_size,
            "chunked_size" => &mut self.chunked_size,
            "xattr" => &mut self.xattr,
            "external" => &mut self.external,
            "external_file_size" => &mut self.external_file_size,
            _ => return None,
        })
    }

    /// Entries that get an inode: regular files, symlinks, special files, directories.
    pub fn inodes(&self) -> i64 {
        self.regular.saturating_add(self.symlink).saturating_add(self.special).saturating_add(self.dir)
    }
}

/// The counters of one catalog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub self_: CounterSet,
    pub subtree: CounterSet,
}

impl Counters {
    /// `all_inodes` of upstream (statfs `f_files` of the root catalog).
    pub fn all_inodes(&self) -> i64 {
        self.self_.inodes().saturating_add(self.subtree.inodes())
    }

    /// A counter by its full name (`self_regular`, `subtree_dir`, ...).
    pub fn get(&self, full_name: &str) -> Option<i64> {
        if let Some(name) = full_name.strip_prefix("self_") {
            self.self_.get(name)
        } else {
            self.subtree.get(full_name.strip_prefix("subtree_")?)
        }
    }

    /// Fills the counters from the `statistics` rows; `may_be_missing` says which
    /// (unprefixed) counters are optional for this schema revision.
    pub(crate) fn from_rows(
        rows: &HashMap<String, i64>,
        may_be_missing: impl Fn(&str) -> bool,
    ) -> Result<Counters, CatalogError> {
        let mut counters = Counters::default();
        for name in COUNTER_NAMES {
            for (prefix, set) in [("self_", &mut counters.self_), ("subtree_", &mut counters.subtree)] {
                let full = format!("{prefix}{name}");
                let value = match rows.get(&full) {
                    Some(v) => *v,
                    None if may_be_missing(name) => 0,
                    None => return Err(CatalogError::MissingCounter(full)),
                };
                if let Some(slot) = set.slot(name) {
                    *slot = value;
                }
            }
        }
        Ok(counters)
    }
}

/// Which counters a schema-2.5 catalog of `revision` may lack (`LegacyMode`).
pub(crate) fn optional_in_revision(revision: u32, name: &str) -> bool {
    let special = name == "special";
    let external = name == "external" || name == "external_file_size";
    match revision {
        0 | 1 => special || external || name == "xattr",
        2 => special || external,
        3 | 4 => special,
        _ => false,
    }
}

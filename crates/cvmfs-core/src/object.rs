//! Object names in the content-addressed store: kind suffixes and paths.
//!
//! `data/` + first two hex digits + `/` + the remaining digits + algorithm id + kind
//! suffix. The local cache uses the same name without the suffix.

use std::fmt;

use crate::hash::ContentHash;

/// What an object is; its suffix letter is part of the stored file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// Regular file content (no suffix); also the bulk hash of a chunked file.
    File,
    /// File catalog, `C`.
    Catalog,
    /// One chunk of a chunked file, `P`.
    Partial,
    /// History (tags) database, `H`.
    History,
    /// X.509 certificate in PEM, `X`.
    Certificate,
    /// Repository meta-info JSON, `M`.
    MetaInfo,
    /// Reserved "micro catalog", `L`.
    MicroCatalog,
}

impl ObjectKind {
    pub fn suffix(self) -> Option<char> {
        match self {
            ObjectKind::File => None,
            ObjectKind::Catalog => Some('C'),
            ObjectKind::Partial => Some('P'),
            ObjectKind::History => Some('H'),
            ObjectKind::Certificate => Some('X'),
            ObjectKind::MetaInfo => Some('M'),
            ObjectKind::MicroCatalog => Some('L'),
        }
    }

    pub fn from_suffix(suffix: Option<char>) -> Option<ObjectKind> {
        [
            ObjectKind::File,
            ObjectKind::Catalog,
            ObjectKind::Partial,
            ObjectKind::History,
            ObjectKind::Certificate,
            ObjectKind::MetaInfo,
            ObjectKind::MicroCatalog,
        ]
        .into_iter()
        .find(|k| k.suffix() == suffix)
    }

    /// Catalogs, history, certificates and meta-info are always zlib-compressed,
    /// whatever the repository's compression setting.
    pub fn always_zlib(self) -> bool {
        !matches!(self, ObjectKind::File | ObjectKind::Partial)
    }

    /// A short human name for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            ObjectKind::File => "file",
            ObjectKind::Catalog => "catalog",
            ObjectKind::Partial => "chunk",
            ObjectKind::History => "history database",
            ObjectKind::Certificate => "certificate",
            ObjectKind::MetaInfo => "meta-info",
            ObjectKind::MicroCatalog => "micro catalog",
        }
    }
}

/// A stored object: its content hash and its kind.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    pub hash: ContentHash,
    pub kind: ObjectKind,
}

impl ObjectId {
    pub fn new(hash: ContentHash, kind: ObjectKind) -> ObjectId {
        ObjectId { hash, kind }
    }

    /// The file name below the two-digit directory: rest of hex + id + suffix.
    fn tail(&self, with_suffix: bool) -> String {
        let hex = self.hash.hex();
        let mut tail = format!("{}{}", &hex[2..], self.hash.algorithm().text_id());
        if let (true, Some(c)) = (with_suffix, self.kind.suffix()) {
            tail.push(c);
        }
        tail
    }

    /// The path relative to the repository URL, e.g. `data/6e/d3d4…9aC`.
    pub fn data_path(&self) -> String {
        format!("data/{}/{}", &self.hash.hex()[..2], self.tail(true))
    }

    /// The name relative to a cache directory (no suffix), e.g. `6e/d3d4…9a`.
    pub fn cache_path(&self) -> String {
        format!("{}/{}", &self.hash.hex()[..2], self.tail(false))
    }

    /// The bootstrap shortcut at the repository root, `.cvmfsalt-<hash><suffix>`.
    pub fn alt_path(&self) -> String {
        let suffix = self.kind.suffix().map(String::from).unwrap_or_default();
        format!(".cvmfsalt-{}{}", self.hash, suffix)
    }

    /// Parses a path below `data/` (`xx/rest[-id][suffix]`) back into an object id.
    pub fn from_data_path(path: &str) -> Option<ObjectId> {
        let (dir, rest) = path.split_once('/')?;
        if dir.len() != 2 {
            return None;
        }
        let joined = format!("{dir}{rest}");
        if let Ok(hash) = ContentHash::parse_content(&joined) {
            return Some(ObjectId::new(hash, ObjectKind::File));
        }
        let last = joined.chars().last()?;
        let kind = ObjectKind::from_suffix(Some(last))?;
        let hash = ContentHash::parse_content(&joined[..joined.len() - 1]).ok()?;
        Some(ObjectId::new(hash, kind))
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.hash, self.kind.suffix().map(String::from).unwrap_or_default())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str, kind: ObjectKind) -> ObjectId {
        ObjectId::new(ContentHash::parse(text).unwrap(), kind)
    }

    #[test]
    fn paths_match_upstream_vectors() {
        let plain = id("cf3e56cf3da37ad17cf1f2c2ff5d86497fc29068", ObjectKind::File);
        assert_eq!(plain.data_path(), "data/cf/3e56cf3da37ad17cf1f2c2ff5d86497fc29068");
        let catalog = id("aa1deda59d5329553580d78fcd0b393157a5d28e-rmd160", ObjectKind::Catalog);
        assert_eq!(catalog.data_path(), "data/aa/1deda59d5329553580d78fcd0b393157a5d28e-rmd160C");
        assert_eq!(catalog.cache_path(), "aa/1deda59d5329553580d78fcd0b393157a5d28e-rmd160");
        let shake = id("0152bb2ee41313d8d63b9274230f90379adf9201-shake128", ObjectKind::File);
        assert_eq!(shake.data_path(), "data/01/52bb2ee41313d8d63b9274230f90379adf9201-shake128");
        assert_eq!(catalog.alt_path(), ".cvmfsalt-aa1deda59d5329553580d78fcd0b393157a5d28e-rmd160C");
    }

    #[test]
    fn data_paths_parse_back() {
        for kind in [ObjectKind::File, ObjectKind::Catalog, ObjectKind::Partial, ObjectKind::Certificate] {
            for text in [
                "cf3e56cf3da37ad17cf1f2c2ff5d86497fc29068",
                "aa1deda59d5329553580d78fcd0b393157a5d28e-rmd160",
                "0152bb2ee41313d8d63b9274230f90379adf9201-shake128",
            ] {
                let object = id(text, kind);
                let path = object.data_path();
                assert_eq!(ObjectId::from_data_path(&path["data/".len()..]), Some(object));
            }
        }
        assert_eq!(ObjectId::from_data_path("txn/foo"), None);
        assert_eq!(ObjectId::from_data_path("cf/3e56cf3da37ad17cf1f2c2ff5d86497fc29068Q"), None);
    }
}

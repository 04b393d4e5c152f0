//! Validated repository paths: the normalised form catalogs hash (`""` for the root,
//! otherwise `/a/b`), and checks on single names.
//!
//! Every name a catalog supplies goes through [`validate_name`] before it becomes part
//! of a path or a directory entry, so `.`, `..`, empty names and names containing `/` or
//! NUL never reach a local path or a `readdir` reply. Paths are raw bytes, as on Linux
//! and in upstream catalogs (UTF-8 in practice, but not guaranteed).
//!
//! What it is not for: it does not resolve symlinks and knows nothing of the local file
//! system; it does not limit name length (upstream does not either).

use std::fmt;

use thiserror::Error;

use crate::hash::PathKey;

/// Why a name or path was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum PathError {
    #[error("empty name")]
    EmptyName,
    #[error("name '.' is not allowed")]
    Dot,
    #[error("name '..' is not allowed")]
    DotDot,
    #[error("name {0:?} contains '/'")]
    Slash(String),
    #[error("name {0:?} contains a NUL byte")]
    Nul(String),
    #[error("path {0:?} must be empty (the root) or start with '/'")]
    NotAbsolute(String),
    #[error("path {0:?} ends with '/'")]
    TrailingSlash(String),
    #[error("path {path:?}: {source}")]
    BadComponent { path: String, source: Box<PathError> },
}

/// Checks one path component as a catalog or a caller supplies it.
pub fn validate_name(name: &[u8]) -> Result<(), PathError> {
    match name {
        b"" => Err(PathError::EmptyName),
        b"." => Err(PathError::Dot),
        b".." => Err(PathError::DotDot),
        _ if name.contains(&b'/') => Err(PathError::Slash(lossy(name))),
        _ if name.contains(&0) => Err(PathError::Nul(lossy(name))),
        _ => Ok(()),
    }
}

/// A normalised repository path: `""` (the root) or `/` followed by valid names joined
/// with single `/`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RepoPath {
    bytes: Vec<u8>,
}

impl RepoPath {
    /// The repository root, `""`.
    pub fn root() -> RepoPath {
        RepoPath::default()
    }

    /// Accepts only the normalised form (`""` or `/a/b`).
    pub fn parse(bytes: &[u8]) -> Result<RepoPath, PathError> {
        if bytes.is_empty() {
            return Ok(RepoPath::root());
        }
        let rest = bytes.strip_prefix(b"/").ok_or_else(|| PathError::NotAbsolute(lossy(bytes)))?;
        if rest.is_empty() || rest.ends_with(b"/") {
            return Err(PathError::TrailingSlash(lossy(bytes)));
        }
        for name in rest.split(|&b| b == b'/') {
            validate_name(name)
                .map_err(|e| PathError::BadComponent { path: lossy(bytes), source: Box::new(e) })?;
        }
        Ok(RepoPath { bytes: bytes.to_vec() })
    }

    /// Accepts what a user might type: `/` for the root, a missing leading `/`,
    /// repeated or trailing slashes. `.`, `..` and NUL are still refused.
    pub fn normalize(text: &[u8]) -> Result<RepoPath, PathError> {
        let mut path = RepoPath::root();
        for name in text.split(|&b| b == b'/').filter(|n| !n.is_empty()) {
            path = path
                .join(name)
                .map_err(|e| PathError::BadComponent { path: lossy(text), source: Box::new(e) })?;
        }
        Ok(path)
    }

    /// `self/name` after validating `name`.
    pub fn join(&self, name: &[u8]) -> Result<RepoPath, PathError> {
        validate_name(name)?;
        let mut bytes = Vec::with_capacity(self.bytes.len() + 1 + name.len());
        bytes.extend_from_slice(&self.bytes);
        bytes.push(b'/');
        bytes.extend_from_slice(name);
        Ok(RepoPath { bytes })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn is_root(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The catalog key (MD5 split) of this path.
    pub fn key(&self) -> PathKey {
        PathKey::of(&self.bytes)
    }

    /// The parent; `None` for the root.
    pub fn parent(&self) -> Option<RepoPath> {
        let slash = self.bytes.iter().rposition(|&b| b == b'/')?;
        Some(RepoPath { bytes: self.bytes.get(..slash).unwrap_or_default().to_vec() })
    }

    /// The last component; `None` for the root.
    pub fn file_name(&self) -> Option<&[u8]> {
        let slash = self.bytes.iter().rposition(|&b| b == b'/')?;
        self.bytes.get(slash + 1..)
    }

    /// The components, outermost first.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.bytes.split(|&b| b == b'/').skip(1)
    }

    /// Number of components (0 for the root).
    pub fn depth(&self) -> usize {
        self.bytes.iter().filter(|&&b| b == b'/').count()
    }

    /// Whether `prefix` is this path or one of its ancestors (component-wise).
    pub fn starts_with(&self, prefix: &RepoPath) -> bool {
        self.strip_prefix(prefix).is_some()
    }

    /// The rest after `prefix`, in normalised form (`""` if equal), if `prefix` is this
    /// path or one of its ancestors.
    pub fn strip_prefix(&self, prefix: &RepoPath) -> Option<&[u8]> {
        let rest = self.bytes.strip_prefix(prefix.bytes.as_slice())?;
        (rest.is_empty() || rest.starts_with(b"/")).then_some(rest)
    }

    /// `prefix` followed by the part of `self` below `old_prefix`: moves a path from one
    /// namespace to another (catalog root_prefix versus mountpoint).
    pub fn rebase(&self, old_prefix: &RepoPath, new_prefix: &RepoPath) -> Option<RepoPath> {
        let rest = self.strip_prefix(old_prefix)?;
        let mut bytes = Vec::with_capacity(new_prefix.bytes.len() + rest.len());
        bytes.extend_from_slice(&new_prefix.bytes);
        bytes.extend_from_slice(rest);
        Some(RepoPath { bytes })
    }

    /// This path and its ancestors, deepest first, ending with the root.
    pub fn ancestors(&self) -> impl Iterator<Item = RepoPath> + '_ {
        std::iter::successors(Some(self.clone()), RepoPath::parent)
    }

    /// A printable form (invalid UTF-8 replaced).
    pub fn to_string_lossy(&self) -> String {
        lossy(&self.bytes)
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            f.write_str("/")
        } else {
            f.write_str(&self.to_string_lossy())
        }
    }
}

impl fmt::Debug for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoPath({:?})", self.to_string_lossy())
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_paths_parse() {
        assert!(RepoPath::parse(b"").unwrap().is_root());
        let p = RepoPath::parse(b"/a/b c/d").unwrap();
        assert_eq!(p.file_name(), Some(&b"d"[..]));
        assert_eq!(p.parent().unwrap().as_bytes(), b"/a/b c");
        assert_eq!(p.depth(), 3);
        assert_eq!(p.components().collect::<Vec<_>>(), vec![&b"a"[..], b"b c", b"d"]);
        assert_eq!(RepoPath::parse(b"/a").unwrap().parent(), Some(RepoPath::root()));
        assert_eq!(RepoPath::root().parent(), None);
        assert_eq!(p.ancestors().count(), 4);
    }

    #[test]
    fn bad_paths_and_names_are_refused() {
        for bad in [&b"/"[..], b"a", b"/a/", b"//a", b"/a/./b", b"/a/..", b"/a\0b"] {
            assert!(RepoPath::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(validate_name(b""), Err(PathError::EmptyName));
        assert_eq!(validate_name(b"."), Err(PathError::Dot));
        assert_eq!(validate_name(b".."), Err(PathError::DotDot));
        assert!(matches!(validate_name(b"a/b"), Err(PathError::Slash(_))));
        assert!(matches!(validate_name(b"a\0"), Err(PathError::Nul(_))));
        assert!(validate_name(b"...").is_ok());
        assert!(RepoPath::root().join(b"..").is_err());
    }

    #[test]
    fn prefixes_respect_component_boundaries() {
        let ab = RepoPath::parse(b"/a/b").unwrap();
        let a = RepoPath::parse(b"/a").unwrap();
        let abc = RepoPath::parse(b"/a/bc").unwrap();
        assert_eq!(ab.strip_prefix(&a), Some(&b"/b"[..]));
        assert_eq!(ab.strip_prefix(&RepoPath::root()), Some(&b"/a/b"[..]));
        assert_eq!(abc.strip_prefix(&ab), None);
        assert_eq!(ab.strip_prefix(&ab), Some(&b""[..]));
        let moved = ab.rebase(&a, &RepoPath::parse(b"/x/y").unwrap()).unwrap();
        assert_eq!(moved.as_bytes(), b"/x/y/b");
        assert_eq!(RepoPath::normalize(b"/a//b/").unwrap(), ab);
        assert_eq!(RepoPath::normalize(b"/").unwrap(), RepoPath::root());
        assert!(RepoPath::normalize(b"/a/../b").is_err());
    }

    #[test]
    fn keys_match_spec_12_2() {
        assert_eq!(RepoPath::root().key().p1, 338333539836370388);
        let key = RepoPath::parse(b"/needs_migration/foo").unwrap().key();
        assert_eq!((key.p1, key.p2), (3461018882590136880, -9134087094439672277));
    }
}

//! The breadcrumb `cvmfschecksum.<fqrn>` a client leaves in its cache directory: the
//! newest root hash, its manifest timestamp and revision, for rollback protection.
//!
//! What it does: parses and formats `<hash>T<timestamp>R<revision>` as upstream's
//! `manifest::Breadcrumb` does, and says whether one is valid.
//!
//! What it is not for: reading or writing the file (atomic rename, mode 0600) is the
//! cache's job; [`Breadcrumb::file_name`] and [`MAX_BREADCRUMB_BYTES`] tell it how.

use std::fmt;

use thiserror::Error;

use crate::hash::ContentHash;

/// Upstream reads at most this many bytes of a breadcrumb file.
pub const MAX_BREADCRUMB_BYTES: usize = 164;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BreadcrumbError {
    #[error("breadcrumb has no readable root hash before 'T'")]
    BadHash,
    #[error("breadcrumb timestamp is missing or 0")]
    NoTimestamp,
    #[error("breadcrumb revision is the reserved value u64::MAX")]
    BadRevision,
}

/// A valid breadcrumb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breadcrumb {
    /// Root catalog hash (printed without the `C` suffix).
    pub catalog_hash: ContentHash,
    /// The manifest `T` of that root.
    pub timestamp: u64,
    /// Its revision; 0 for old breadcrumbs without `R`.
    pub revision: u64,
}

impl Breadcrumb {
    /// The file name in the cache directory (no leading dot).
    pub fn file_name(fqrn: &str) -> String {
        format!("cvmfschecksum.{fqrn}")
    }

    /// Parses breadcrumb file content (only the first [`MAX_BREADCRUMB_BYTES`] count):
    /// split at `T`, the rest at `R`. Valid iff the hash is readable and non-null, the
    /// timestamp is > 0 and the revision is not u64::MAX. Numbers are read as upstream's
    /// `String2Uint64` reads them: leading digits, anything else gives 0.
    pub fn parse(bytes: &[u8]) -> Result<Breadcrumb, BreadcrumbError> {
        let bytes = bytes.get(..MAX_BREADCRUMB_BYTES).unwrap_or(bytes);
        let mut at_t = bytes.split(|&b| b == b'T');
        let hash_text = at_t.next().unwrap_or_default();
        let mut at_r = at_t.next().unwrap_or_default().split(|&b| b == b'R');
        let timestamp = leading_number(at_r.next().unwrap_or_default());
        let revision = leading_number(at_r.next().unwrap_or_default());
        let catalog_hash = std::str::from_utf8(hash_text)
            .ok()
            .and_then(crate::letter::parse_hash_text)
            .filter(|hash| hash.algorithm() != crate::hash::Algorithm::Md5 && !hash.is_null())
            .ok_or(BreadcrumbError::BadHash)?;
        if timestamp == 0 {
            return Err(BreadcrumbError::NoTimestamp);
        }
        if revision == u64::MAX {
            return Err(BreadcrumbError::BadRevision);
        }
        Ok(Breadcrumb { catalog_hash, timestamp, revision })
    }
}

impl fmt::Display for Breadcrumb {
    /// The file content, without a trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}T{}R{}", self.catalog_hash, self.timestamp, self.revision)
    }
}

/// The leading decimal digits of `text` (saturating), 0 if there are none.
fn leading_number(text: &[u8]) -> u64 {
    text.iter()
        .map_while(|&b| char::from(b).to_digit(10))
        .fold(0u64, |acc, digit| acc.saturating_mul(10).saturating_add(u64::from(digit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "0000000000000000000000000000000000000001";

    #[test]
    fn upstream_t_manifest_vectors() {
        let valid = Breadcrumb::parse(format!("{ONE}T1").as_bytes()).unwrap();
        assert_eq!((valid.timestamp, valid.revision), (1, 0));
        assert_eq!(valid.catalog_hash.to_string(), ONE);
        let with_revision = Breadcrumb::parse(format!("{ONE}T1R10").as_bytes()).unwrap();
        assert_eq!((with_revision.timestamp, with_revision.revision), (1, 10));
        assert_eq!(with_revision.to_string(), format!("{ONE}T1R10"));
        assert_eq!(Breadcrumb::parse(format!("{ONE}T0").as_bytes()), Err(BreadcrumbError::NoTimestamp));
        for invalid in ["", "T", "0T", "T1"] {
            assert!(Breadcrumb::parse(invalid.as_bytes()).is_err(), "{invalid:?}");
        }
        let null = "0".repeat(40);
        assert_eq!(Breadcrumb::parse(format!("{null}T5R1").as_bytes()), Err(BreadcrumbError::BadHash));
        let max = format!("{ONE}T1R{}", u64::MAX);
        assert_eq!(Breadcrumb::parse(max.as_bytes()), Err(BreadcrumbError::BadRevision));
    }

    #[test]
    fn formats_like_upstream_and_round_trips() {
        let hash = ContentHash::parse("6ed3d49a5c64f21f36936ab350d49aaf57585b9a").unwrap();
        let crumb = Breadcrumb { catalog_hash: hash, timestamp: 1445428515, revision: 2 };
        let text = crumb.to_string();
        assert_eq!(text, "6ed3d49a5c64f21f36936ab350d49aaf57585b9aT1445428515R2");
        assert_eq!(Breadcrumb::parse(text.as_bytes()), Ok(crumb));
        let shake = ContentHash::of(crate::hash::Algorithm::Shake128, b"x");
        let crumb = Breadcrumb { catalog_hash: shake, timestamp: 7, revision: 0 };
        assert_eq!(Breadcrumb::parse(crumb.to_string().as_bytes()), Ok(crumb));
        assert_eq!(Breadcrumb::file_name("a.b"), "cvmfschecksum.a.b");
        assert_eq!(Breadcrumb::parse(format!("{ONE}T12xR3").as_bytes()).unwrap().timestamp, 12);
    }
}

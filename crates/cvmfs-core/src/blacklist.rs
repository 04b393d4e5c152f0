//! Client blacklists (`CVMFS_BLACKLIST`, default `/etc/cvmfs/blacklist`, plus the one in
//! the config repository): revoked certificate fingerprints and revision floors.
//!
//! What it does: reads one or more blacklist files into one [`Blacklist`] and answers
//! "is this certificate revoked?" and "is this revision of this repository refused?" by
//! upstream's rules (`LoadBlacklist`, `VerifyLoadedCertificate`,
//! `IsRevisionBlacklisted`).
//!
//! What it is not for: deciding what happens on a match (mount failure or a panic on a
//! TTL check); that belongs to the client.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::certificate::Certificate;
use crate::hash::ContentHash;

#[derive(Debug, Error)]
#[error("cannot read blacklist {path}: {source}; check CVMFS_BLACKLIST")]
pub struct BlacklistError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// The lines of all loaded blacklist files that mean something.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blacklist {
    /// Revoked certificate fingerprints (any algorithm).
    fingerprints: Vec<ContentHash>,
    /// Raw `<fqrn N` lines; they are matched per repository, as upstream does.
    revision_lines: Vec<Vec<u8>>,
}

impl Blacklist {
    pub fn new() -> Blacklist {
        Blacklist::default()
    }

    /// Reads one blacklist file's content. Never fails: lines that are neither a
    /// fingerprint nor a `<` revision line are ignored.
    pub fn parse(bytes: &[u8]) -> Blacklist {
        let mut blacklist = Blacklist::new();
        blacklist.add(bytes);
        blacklist
    }

    /// Appends the lines of another blacklist file's content.
    pub fn add(&mut self, bytes: &[u8]) {
        for line in lines(bytes) {
            if line.first() == Some(&b'<') {
                self.revision_lines.push(line.to_vec());
                continue;
            }
            let parsed = std::str::from_utf8(line).ok().and_then(crate::letter::parse_fingerprint_line);
            if let Some(hash) = parsed.filter(|h| !h.is_null()) {
                self.fingerprints.push(hash);
            }
        }
    }

    /// Merges another blacklist into this one.
    pub fn merge(&mut self, other: Blacklist) {
        self.fingerprints.extend(other.fingerprints);
        self.revision_lines.extend(other.revision_lines);
    }

    /// Loads and merges several files. A file that does not exist is skipped (upstream
    /// only loads the blacklists that exist); any other read error is reported.
    pub fn load_files<P: AsRef<Path>>(paths: &[P]) -> Result<Blacklist, BlacklistError> {
        let mut blacklist = Blacklist::new();
        for path in paths {
            let path = path.as_ref();
            match std::fs::read(path) {
                Ok(bytes) => blacklist.add(&bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(BlacklistError { path: path.to_path_buf(), source }),
            }
        }
        Ok(blacklist)
    }

    pub fn fingerprints(&self) -> &[ContentHash] {
        &self.fingerprints
    }

    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty() && self.revision_lines.is_empty()
    }

    /// The blacklisted fingerprint matching this certificate, if any (each fingerprint is
    /// compared under its own algorithm).
    pub fn revoked_fingerprint(&self, certificate: &Certificate) -> Option<ContentHash> {
        self.fingerprints.iter().copied().find(|fp| certificate.fingerprint(fp.algorithm()) == *fp)
    }

    /// If `revision` of `fqrn` is refused, the floor `N` of the first line refusing it
    /// (every revision below `N` is refused).
    pub fn revision_floor(&self, fqrn: &str, revision: u64) -> Option<u64> {
        self.revision_lines
            .iter()
            .filter_map(|line| revision_line_floor(line, fqrn))
            .find(|&floor| revision < floor)
    }
}

/// `N` of a line `<fqrn N`: `<`, the exact fqrn, at least one space or TAB, then only
/// decimal digits to the end of the line.
fn revision_line_floor(line: &[u8], fqrn: &str) -> Option<u64> {
    let after_name = line.strip_prefix(b"<")?.strip_prefix(fqrn.as_bytes())?;
    if !matches!(after_name.first(), Some(b' ' | b'\t')) {
        return None;
    }
    let number_start = after_name.iter().position(|b| !matches!(b, b' ' | b'\t'))?;
    let number = after_name.get(number_start..)?;
    // Upstream parses N with strtoll: it must fit a signed 64-bit integer.
    crate::manifest::parse_decimal(number).filter(|&n| i64::try_from(n).is_ok())
}

/// Lines as upstream's blacklist reader splits them: on `\n`; a final line without `\n`
/// counts, an empty piece after a final `\n` does not.
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    body.split(|&b| b == b'\n').filter(move |_| !bytes.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_lines_follow_upstream_rules() {
        let bl =
            Blacklist::parse(b"<repo.cern.ch 10\n<other.org\t\t5\n<repo.cern.ch 20 \n<repo.cern.chx 30\n");
        assert_eq!(bl.revision_floor("repo.cern.ch", 9), Some(10));
        assert_eq!(bl.revision_floor("repo.cern.ch", 10), None);
        assert_eq!(bl.revision_floor("other.org", 4), Some(5));
        assert_eq!(bl.revision_floor("other.org", 5), None);
        assert_eq!(bl.revision_floor("x", 0), None);
        for bad in [
            "<repo 1x",
            "<repo1",
            "<repo ",
            "<repo -1",
            "<repo +1",
            "repo 5",
            "<repo\n5",
            "<repo 99999999999999999999",
        ] {
            assert_eq!(Blacklist::parse(bad.as_bytes()).revision_floor("repo", 0), None, "{bad:?}");
        }
        assert_eq!(Blacklist::parse(b"<repo \t 3").revision_floor("repo", 2), Some(3));
    }

    #[test]
    fn fingerprint_lines_and_merging() {
        let sha = ContentHash::of(crate::hash::Algorithm::Sha1, b"a");
        let rmd = ContentHash::of(crate::hash::Algorithm::Rmd160, b"b");
        let text =
            format!("# comment\n\n{} revoked 2020\n{}\nnonsense\n", sha.fingerprint(), rmd.fingerprint());
        let mut bl = Blacklist::parse(text.as_bytes());
        assert_eq!(bl.fingerprints(), &[sha, rmd]);
        bl.merge(Blacklist::parse(b"<r 2"));
        assert_eq!(bl.fingerprints().len(), 2);
        assert_eq!(bl.revision_floor("r", 1), Some(2));
        assert!(Blacklist::parse(b"").is_empty());
    }

    #[test]
    fn load_files_skips_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, "<r 7").unwrap();
        let bl = Blacklist::load_files(&[a.clone(), dir.path().join("missing")]).unwrap();
        assert_eq!(bl.revision_floor("r", 6), Some(7));
        let err = Blacklist::load_files(&[dir.path().to_path_buf()]).unwrap_err();
        assert_eq!(err.path, dir.path());
    }
}

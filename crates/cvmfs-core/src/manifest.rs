//! The repository manifest `.cvmfspublished`: its keys as typed fields, parsing and the
//! exact letter text upstream writers export.
//!
//! What it does: [`Manifest::parse`] reads the key/value letter (the signature part of a
//! signed file is ignored, as upstream's parser stops at `--`); [`Manifest::export`]
//! produces the letter a writer hashes and signs; [`Manifest::letter_hash`] is the hash
//! line for it.
//!
//! What it is not for: it checks no signature and no acceptance rule (name, root path,
//! timestamp); that is [`crate::trust::verify_manifest`].
//!
//! Strictness: upstream reads numbers with `sscanf` (garbage = 0)
//! and hashes by length only (garbage = null hash). Every upstream writer emits clean
//! decimals and lowercase hex, so we refuse a present-but-unreadable value with
//! [`ManifestError::BadValue`] instead of guessing.

use std::fmt::Write as _;

use thiserror::Error;

use crate::hash::{Algorithm, ContentHash, ROOT_PATH_MD5};
use crate::letter::{parse_keyvals, KeyValues};
use crate::object::{ObjectId, ObjectKind};

/// The catalog TTL upstream writers put into `D` by default (`Catalog::kDefaultTTL`).
pub const DEFAULT_TTL: u64 = 240;

/// Why a manifest letter is not usable.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest lacks the required key '{0}' (C, R, D and S are required)")]
    Incomplete(char),
    #[error("manifest key '{key}' has an unreadable value '{value}': {reason}")]
    BadValue { key: char, value: String, reason: &'static str },
}

/// All fields of a manifest. Optional hashes are `None` when absent (or, as old 2.0
/// servers wrote for `L`, all zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `C`: root catalog hash; its algorithm is the repository's hash algorithm.
    pub catalog_hash: ContentHash,
    /// `B`: size of the uncompressed root catalog in bytes.
    pub catalog_size: u64,
    /// `R`: MD5 of the root path; a client requires MD5 of `""`.
    pub root_path_hash: ContentHash,
    /// `D`: TTL in seconds (written by servers, unused by clients).
    pub ttl: u64,
    /// `S`: revision.
    pub revision: u64,
    /// `G`: garbage-collectable (only the text `yes` is true).
    pub garbage_collectable: bool,
    /// `A`: alternative `.cvmfsalt-` bootstrap paths exist.
    pub has_alt_catalog_path: bool,
    /// `L`: micro catalog hash (reserved, unused).
    pub micro_catalog_hash: Option<ContentHash>,
    /// `N`: fully qualified repository name; empty when absent.
    pub repository_name: String,
    /// `X`: certificate object hash.
    pub certificate: Option<ContentHash>,
    /// `H`: history database hash.
    pub history: Option<ContentHash>,
    /// `T`: publish timestamp, unix seconds; 0 when absent.
    pub publish_timestamp: u64,
    /// `M`: meta-info object hash.
    pub meta_info: Option<ContentHash>,
    /// `Y`: hash of the uncompressed `.cvmfsreflog`.
    pub reflog_hash: Option<ContentHash>,
    /// `Z`: reserved "channel tips", repeated values joined by `|`. Never exported.
    pub channel_tops: Option<String>,
}

impl Manifest {
    /// A manifest as a writer starts one: root path MD5(""), TTL 240 s, revision 0.
    pub fn new(catalog_hash: ContentHash, catalog_size: u64, repository_name: &str) -> Manifest {
        Manifest {
            catalog_hash,
            catalog_size,
            root_path_hash: ContentHash::of(Algorithm::Md5, b""),
            ttl: DEFAULT_TTL,
            revision: 0,
            garbage_collectable: false,
            has_alt_catalog_path: false,
            micro_catalog_hash: None,
            repository_name: repository_name.to_string(),
            certificate: None,
            history: None,
            publish_timestamp: 0,
            meta_info: None,
            reflog_hash: None,
            channel_tops: None,
        }
    }

    /// Parses the key/value letter of `.cvmfspublished` (the whole file may be passed).
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let kv = parse_keyvals(bytes);
        Ok(Manifest {
            catalog_hash: content_hash(&kv, 'C')?.ok_or(ManifestError::Incomplete('C'))?,
            root_path_hash: root_path_hash(&kv)?,
            ttl: number(&kv, 'D')?.ok_or(ManifestError::Incomplete('D'))?,
            revision: number(&kv, 'S')?.ok_or(ManifestError::Incomplete('S'))?,
            catalog_size: number(&kv, 'B')?.unwrap_or(0),
            garbage_collectable: is_yes(&kv, 'G'),
            has_alt_catalog_path: is_yes(&kv, 'A'),
            micro_catalog_hash: non_null(content_hash(&kv, 'L')?),
            repository_name: text(&kv, 'N')?.unwrap_or_default(),
            certificate: non_null(content_hash(&kv, 'X')?),
            history: non_null(content_hash(&kv, 'H')?),
            publish_timestamp: number(&kv, 'T')?.unwrap_or(0),
            meta_info: non_null(content_hash(&kv, 'M')?),
            reflog_hash: non_null(content_hash(&kv, 'Y')?),
            channel_tops: text(&kv, 'Z')?,
        })
    }

    /// The letter text upstream's `Manifest::ExportString` writes: `C B R D S G A`
    /// always, then `L N X H T M Y` when set, each line ending in `\n`.
    pub fn export(&self) -> String {
        let mut out = String::new();
        let mut line = |key: char, value: &dyn std::fmt::Display| {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{key}{value}");
        };
        line('C', &self.catalog_hash);
        line('B', &self.catalog_size);
        line('R', &self.root_path_hash);
        line('D', &self.ttl);
        line('S', &self.revision);
        line('G', &yes_no(self.garbage_collectable));
        line('A', &yes_no(self.has_alt_catalog_path));
        let optional: [(char, Option<&dyn std::fmt::Display>); 7] = [
            ('L', self.micro_catalog_hash.as_ref().map(|h| h as _)),
            ('N', Some(&self.repository_name).filter(|n| !n.is_empty()).map(|n| n as _)),
            ('X', self.certificate.as_ref().map(|h| h as _)),
            ('H', self.history.as_ref().map(|h| h as _)),
            ('T', Some(&self.publish_timestamp).filter(|&&t| t > 0).map(|t| t as _)),
            ('M', self.meta_info.as_ref().map(|h| h as _)),
            ('Y', self.reflog_hash.as_ref().map(|h| h as _)),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                line(key, value);
            }
        }
        out
    }

    /// The hash line for a letter: the letter hashed under the algorithm of `C`.
    pub fn letter_hash(&self, letter: &[u8]) -> ContentHash {
        ContentHash::of(self.hash_algorithm(), letter)
    }

    /// The repository hash algorithm (that of `C`).
    pub fn hash_algorithm(&self) -> Algorithm {
        self.catalog_hash.algorithm()
    }

    /// True when `R` is MD5 of the empty path, as clients require.
    pub fn has_root_path_of_repository_root(&self) -> bool {
        self.root_path_hash.to_string() == ROOT_PATH_MD5
    }

    pub fn root_catalog(&self) -> ObjectId {
        ObjectId::new(self.catalog_hash, ObjectKind::Catalog)
    }

    pub fn certificate_object(&self) -> Option<ObjectId> {
        self.certificate.map(|h| ObjectId::new(h, ObjectKind::Certificate))
    }

    pub fn history_object(&self) -> Option<ObjectId> {
        self.history.map(|h| ObjectId::new(h, ObjectKind::History))
    }

    pub fn meta_info_object(&self) -> Option<ObjectId> {
        self.meta_info.map(|h| ObjectId::new(h, ObjectKind::MetaInfo))
    }
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

fn raw(kv: &KeyValues, key: char) -> Option<&[u8]> {
    u8::try_from(key).ok().and_then(|k| kv.get(&k)).map(Vec::as_slice)
}

fn bad(key: char, value: &[u8], reason: &'static str) -> ManifestError {
    ManifestError::BadValue { key, value: String::from_utf8_lossy(value).into_owned(), reason }
}

fn text(kv: &KeyValues, key: char) -> Result<Option<String>, ManifestError> {
    raw(kv, key)
        .map(|value| String::from_utf8(value.to_vec()).map_err(|_| bad(key, value, "not UTF-8")))
        .transpose()
}

fn number(kv: &KeyValues, key: char) -> Result<Option<u64>, ManifestError> {
    raw(kv, key)
        .map(|value| parse_decimal(value).ok_or_else(|| bad(key, value, "not a decimal number")))
        .transpose()
}

fn content_hash(kv: &KeyValues, key: char) -> Result<Option<ContentHash>, ManifestError> {
    raw(kv, key)
        .map(|value| {
            std::str::from_utf8(value)
                .ok()
                .and_then(crate::letter::parse_hash_text)
                .filter(|hash| hash.algorithm() != Algorithm::Md5)
                .ok_or_else(|| bad(key, value, "not a content hash (lowercase hex + algorithm id)"))
        })
        .transpose()
}

fn root_path_hash(kv: &KeyValues) -> Result<ContentHash, ManifestError> {
    let value = raw(kv, 'R').ok_or(ManifestError::Incomplete('R'))?;
    std::str::from_utf8(value)
        .ok()
        .and_then(crate::letter::parse_hash_text)
        .filter(|hash| hash.algorithm() == Algorithm::Md5)
        .ok_or_else(|| bad('R', value, "not an MD5 hash (32 lowercase hex digits)"))
}

fn is_yes(kv: &KeyValues, key: char) -> bool {
    raw(kv, key) == Some(b"yes")
}

/// The all-zero hash means "not set" (old servers wrote `L` as 40 zeros).
fn non_null(hash: Option<ContentHash>) -> Option<ContentHash> {
    hash.filter(|h| !h.is_null())
}

/// Plain decimal digits fitting a u64; anything else is `None`.
pub(crate) fn parse_decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.iter().try_fold(0u64, |acc, &b| {
        let digit = char::from(b).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The letter of the upstream legacy fixture (spec 12.3).
    const LEGACY_LETTER: &str = "C6ed3d49a5c64f21f36936ab350d49aaf57585b9a\nB14336\n\
        Rd41d8cd98f00b204e9800998ecf8427e\nD900\nS2\nGno\nNlegacy_aufs.cern.ch\n\
        X65133968f581abad1e75489c92a634e44929cbd7\nH365d5083b27d67e2caeff6d66e5fe3f2d104a6bd\n\
        T1445428515\n";

    #[test]
    fn legacy_letter_parses_and_hashes_to_its_hash_line() {
        assert_eq!(LEGACY_LETTER.len(), 212);
        let m = Manifest::parse(LEGACY_LETTER.as_bytes()).unwrap();
        assert_eq!(m.catalog_hash.to_string(), "6ed3d49a5c64f21f36936ab350d49aaf57585b9a");
        assert_eq!(m.catalog_size, 14336);
        assert!(m.has_root_path_of_repository_root());
        assert_eq!((m.ttl, m.revision, m.publish_timestamp), (900, 2, 1445428515));
        assert!(!m.garbage_collectable && !m.has_alt_catalog_path);
        assert_eq!(m.repository_name, "legacy_aufs.cern.ch");
        assert_eq!(m.certificate.unwrap().to_string(), "65133968f581abad1e75489c92a634e44929cbd7");
        assert_eq!(m.history.unwrap().to_string(), "365d5083b27d67e2caeff6d66e5fe3f2d104a6bd");
        assert_eq!(
            m.letter_hash(LEGACY_LETTER.as_bytes()).to_string(),
            "a7c0345bd49103a80f2341c0319e020d1acf454b"
        );
        assert_eq!(
            m.certificate_object().unwrap().data_path(),
            "data/65/133968f581abad1e75489c92a634e44929cbd7X"
        );
    }

    #[test]
    fn export_writes_upstream_order_and_adds_a_line() {
        let m = Manifest::parse(LEGACY_LETTER.as_bytes()).unwrap();
        let expected = LEGACY_LETTER.replace("Gno\n", "Gno\nAno\n");
        assert_eq!(m.export(), expected);
        assert_eq!(Manifest::parse(m.export().as_bytes()).unwrap(), m);
    }

    #[test]
    fn full_manifest_round_trips_in_order() {
        let sha = |s: &[u8]| ContentHash::of(Algorithm::Rmd160, s);
        let mut m = Manifest::new(sha(b"c"), 29696, "x.test");
        m.revision = 3;
        m.garbage_collectable = true;
        m.micro_catalog_hash = Some(sha(b"l"));
        m.certificate = Some(sha(b"x"));
        m.history = Some(sha(b"h"));
        m.publish_timestamp = 17;
        m.meta_info = Some(sha(b"m"));
        m.reflog_hash = Some(sha(b"y"));
        let text = m.export();
        let keys: String = text.lines().filter_map(|l| l.chars().next()).collect();
        assert_eq!(keys, "CBRDSGALNXHTMY");
        assert!(text.contains("D240\nS3\nGyes\nAno\n"));
        assert_eq!(Manifest::parse(text.as_bytes()).unwrap(), m);
        assert_eq!(m.letter_hash(text.as_bytes()).algorithm(), Algorithm::Rmd160);
    }

    #[test]
    fn required_keys_and_bad_values() {
        let without = |key: char| -> String {
            LEGACY_LETTER.lines().filter(|l| !l.starts_with(key)).map(|l| format!("{l}\n")).collect()
        };
        for key in ['C', 'R', 'D', 'S'] {
            assert_eq!(Manifest::parse(without(key).as_bytes()), Err(ManifestError::Incomplete(key)));
        }
        assert!(Manifest::parse(without('B').as_bytes()).is_ok());
        let bad_number = LEGACY_LETTER.replace("S2\n", "S2x\n");
        assert!(matches!(
            Manifest::parse(bad_number.as_bytes()),
            Err(ManifestError::BadValue { key: 'S', .. })
        ));
        let bad_hash = LEGACY_LETTER.replace("X65", "XZ5");
        assert!(matches!(
            Manifest::parse(bad_hash.as_bytes()),
            Err(ManifestError::BadValue { key: 'X', .. })
        ));
        let md5_catalog = LEGACY_LETTER
            .replace("C6ed3d49a5c64f21f36936ab350d49aaf57585b9a", "Cd41d8cd98f00b204e9800998ecf8427e");
        assert!(matches!(
            Manifest::parse(md5_catalog.as_bytes()),
            Err(ManifestError::BadValue { key: 'C', .. })
        ));
        assert_eq!(Manifest::parse(b""), Err(ManifestError::Incomplete('C')));
    }

    #[test]
    fn zero_micro_catalog_is_unset_and_z_is_kept() {
        let text = format!("{LEGACY_LETTER}L{}\nZ01ab\nZ02cd\n", "0".repeat(40));
        let m = Manifest::parse(text.as_bytes()).unwrap();
        assert_eq!(m.micro_catalog_hash, None);
        assert_eq!(m.channel_tops.as_deref(), Some("01ab|02cd"));
        assert!(!m.export().contains('Z'));
    }

    #[test]
    fn decimal_parser_is_strict() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b" 1"), None);
        assert_eq!(parse_decimal(b"-1"), None);
    }
}

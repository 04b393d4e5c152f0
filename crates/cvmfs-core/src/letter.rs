//! Signed "letters": the common envelope of `.cvmfspublished` and `.cvmfswhitelist`, and
//! the key/value text inside a manifest.
//!
//! What it does: splits a signed file into letter, hash line and raw signature exactly as
//! upstream's `CutLetter`/`VerifyLetter` do, checks the hash line against the letter, puts
//! an envelope back together, and parses the one-letter-key text (`ParseKeyvalMem`).
//!
//! What it is not for: it verifies no RSA signature (see [`crate::signature`]) and knows
//! no key meanings (see [`crate::manifest`], [`crate::whitelist`]).

use std::collections::BTreeMap;

use thiserror::Error;

use crate::hash::ContentHash;

/// The separator between letter and hash line; its leading `\n` belongs to the letter.
const SEPARATOR: &[u8] = b"\n--\n";

/// Why a signed file could not be split or its hash line does not fit its letter.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LetterError {
    #[error("no '--' separator line: the file is not a signed letter (truncated or not a CernVM-FS file)")]
    NoSeparator,
    #[error("the hash line after '--' has no terminating newline (truncated file)")]
    UnterminatedHashLine,
    #[error("the hash line '{0}' is not a hash")]
    BadHashLine(String),
    #[error("the letter hashes to {computed}, but its hash line says {printed}: the file was altered")]
    HashMismatch { printed: ContentHash, computed: ContentHash },
}

/// The three parts of a signed file, borrowed from the raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedLetter<'a> {
    /// Everything up to and including the `\n` before `--`.
    pub letter: &'a [u8],
    /// The hash text after `--\n`, without its newline. This is what gets signed.
    pub hash_line: &'a [u8],
    /// Raw signature bytes to the end of the file (possibly empty).
    pub signature: &'a [u8],
}

impl<'a> SignedLetter<'a> {
    /// Splits at the first `\n--\n`. The hash line must end in `\n` (upstream refuses a
    /// file that ends inside the hash line).
    pub fn split(raw: &'a [u8]) -> Result<SignedLetter<'a>, LetterError> {
        let separator_at = find(raw, SEPARATOR).ok_or(LetterError::NoSeparator)?;
        let (letter, rest) = raw.split_at(separator_at + 1);
        let after_mark = rest.get(SEPARATOR.len() - 1..).ok_or(LetterError::NoSeparator)?;
        let newline = after_mark.iter().position(|&b| b == b'\n').ok_or(LetterError::UnterminatedHashLine)?;
        let (hash_line, newline_and_signature) = after_mark.split_at(newline);
        let signature = newline_and_signature.get(1..).unwrap_or_default();
        Ok(SignedLetter { letter, hash_line, signature })
    }

    /// The hash printed in the hash line.
    pub fn printed_hash(&self) -> Result<ContentHash, LetterError> {
        let text = std::str::from_utf8(self.hash_line)
            .map_err(|_| LetterError::BadHashLine(String::from_utf8_lossy(self.hash_line).into_owned()))?;
        parse_hash_text(text).ok_or_else(|| LetterError::BadHashLine(text.to_string()))
    }

    /// Recomputes the letter's hash under the algorithm of the hash line and compares.
    /// Returns the (matching) hash.
    pub fn check_hash(&self) -> Result<ContentHash, LetterError> {
        let printed = self.printed_hash()?;
        let computed = ContentHash::of(printed.algorithm(), self.letter);
        if computed != printed {
            return Err(LetterError::HashMismatch { printed, computed });
        }
        Ok(printed)
    }
}

/// Puts a signed file together: `letter` + `--\n` + hash text + `\n` + signature.
/// `letter` must end in `\n` (every exported letter does).
pub fn assemble(letter: &[u8], hash: &ContentHash, signature: &[u8]) -> Vec<u8> {
    let hash_line = hash.to_string();
    let mut out = Vec::with_capacity(letter.len() + hash_line.len() + signature.len() + 4);
    out.extend_from_slice(letter);
    out.extend_from_slice(b"--\n");
    out.extend_from_slice(hash_line.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(signature);
    out
}

/// Key/value pairs of a letter: key = one byte, value = the rest of its line.
pub type KeyValues = BTreeMap<u8, Vec<u8>>;

/// Parses one-letter-key lines as upstream's `ParseKeyvalMem` does: a line counts only
/// once its `\n` was seen, parsing stops at a line `--`, empty lines are skipped, no
/// trimming, a repeated key overwrites the earlier value except `Z`, whose values are
/// joined with `|`.
pub fn parse_keyvals(bytes: &[u8]) -> KeyValues {
    let mut out = KeyValues::new();
    for line in terminated_lines(bytes) {
        if line == b"--" {
            break;
        }
        let Some((&key, value)) = line.split_first() else { continue };
        insert_keyval(&mut out, key, value);
    }
    out
}

fn insert_keyval(out: &mut KeyValues, key: u8, value: &[u8]) {
    match out.get_mut(&key) {
        // `Z` is reserved for "channel tips", which may repeat.
        Some(existing) if key == b'Z' => {
            existing.push(b'|');
            existing.extend_from_slice(value);
        }
        _ => {
            out.insert(key, value.to_vec());
        }
    }
}

/// The lines of `bytes` that end in `\n`, without it; a final unterminated piece is dropped.
pub(crate) fn terminated_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let newline = rest.iter().position(|&b| b == b'\n')?;
        let (line, newline_and_tail) = rest.split_at(newline);
        rest = newline_and_tail.get(1..).unwrap_or_default();
        Some(line)
    })
}

/// [`ContentHash::parse`] for untrusted text. A hash is ASCII; checking that first also
/// keeps non-ASCII text away from `ContentHash::parse`, which slices at a byte offset.
pub(crate) fn parse_hash_text(text: &str) -> Option<ContentHash> {
    text.is_ascii().then(|| ContentHash::parse(text).ok()).flatten()
}

/// [`ContentHash::parse_fingerprint`] for untrusted lines: the fingerprint part (before
/// a space, TAB or `#`) must be ASCII; a comment after it may be anything.
pub(crate) fn parse_fingerprint_line(line: &str) -> Option<ContentHash> {
    let fingerprint = line.split([' ', '\t', '#']).next().unwrap_or_default();
    fingerprint.is_ascii().then(|| ContentHash::parse_fingerprint(fingerprint)).flatten()
}

/// Position of the first occurrence of `needle` in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Algorithm;

    #[test]
    fn splits_at_first_separator() {
        let hash = ContentHash::of(Algorithm::Sha1, b"Ca\nBb\n");
        let raw = assemble(b"Ca\nBb\n", &hash, b"\x00sig\n--\nmore");
        let parts = SignedLetter::split(&raw).unwrap();
        assert_eq!(parts.letter, b"Ca\nBb\n");
        assert_eq!(parts.hash_line, hash.to_string().as_bytes());
        assert_eq!(parts.signature, b"\x00sig\n--\nmore");
        assert_eq!(parts.check_hash().unwrap(), hash);
    }

    #[test]
    fn refuses_missing_separator_and_unterminated_hash() {
        assert_eq!(SignedLetter::split(b"Ca\nBb\n"), Err(LetterError::NoSeparator));
        assert_eq!(SignedLetter::split(b"--\nabc\n"), Err(LetterError::NoSeparator));
        assert_eq!(SignedLetter::split(b"Ca\n--\nabc"), Err(LetterError::UnterminatedHashLine));
        let parts = SignedLetter::split(b"Ca\n--\nabc\n").unwrap();
        assert_eq!(parts.signature, b"");
        assert_eq!(parts.printed_hash(), Err(LetterError::BadHashLine("abc".into())));
    }

    #[test]
    fn detects_altered_letter() {
        let hash = ContentHash::of(Algorithm::Shake128, b"Ca\n");
        let raw = assemble(b"Cb\n", &hash, b"");
        let err = SignedLetter::split(&raw).unwrap().check_hash().unwrap_err();
        assert!(matches!(err, LetterError::HashMismatch { printed, .. } if printed == hash));
    }

    #[test]
    fn keyval_rules_match_parse_keyval_mem() {
        let kv = parse_keyvals(b"Cabc\n\nD1\nD2\nZx\nZy\nE\n--\nNafter\n");
        assert_eq!(kv.get(&b'C').map(Vec::as_slice), Some(&b"abc"[..]));
        assert_eq!(kv.get(&b'D').map(Vec::as_slice), Some(&b"2"[..]));
        assert_eq!(kv.get(&b'Z').map(Vec::as_slice), Some(&b"x|y"[..]));
        assert_eq!(kv.get(&b'E').map(Vec::as_slice), Some(&b""[..]));
        assert!(!kv.contains_key(&b'N'));
        let unterminated = parse_keyvals(b"Cabc\nSlast");
        assert!(unterminated.contains_key(&b'C'));
        assert!(!unterminated.contains_key(&b'S'));
        assert!(parse_keyvals(b"Sno newline").is_empty());
        assert_eq!(parse_keyvals(b"X\r\n").get(&b'X').map(Vec::as_slice), Some(&b"\r"[..]));
    }

    #[test]
    fn hash_helpers_refuse_non_ascii_without_panicking() {
        // 39 ASCII bytes and a two-byte character straddle the 40-byte hex boundary.
        let straddling = format!("{}\u{485}{}", "8".repeat(39), "a".repeat(6));
        assert_eq!(straddling.len(), 47);
        assert_eq!(parse_hash_text(&straddling), None);
        assert_eq!(parse_fingerprint_line(&format!("{straddling} # x")), None);
        let sha = ContentHash::of(crate::hash::Algorithm::Sha1, b"");
        assert_eq!(
            parse_fingerprint_line(&format!("{} # revoked by Jos\u{e9}", sha.fingerprint())),
            Some(sha)
        );
        assert_eq!(parse_hash_text(&sha.to_string()), Some(sha));
    }
}

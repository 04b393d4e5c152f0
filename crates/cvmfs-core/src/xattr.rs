//! Extended-attribute blobs of catalog entries (`xattr.{h,cc}`, spec 6.7): parse the
//! `xattr` column and serialize a list for a writer.
//!
//! Layout: `u8 version = 1`, `u8 count`, then per attribute `u8 key_len`, `u8 value_len`,
//! key bytes, value bytes, in byte-wise ascending key order.
//!
//! What it is not for: it does not read or set attributes of local files, and it knows
//! nothing of the client's "magic" attributes (`user.pid`, ...).
//!
//! Decisions (see also the report): upstream silently lets a later duplicate key
//! overwrite an earlier one and ignores bytes after the last attribute; no upstream
//! writer produces either (it serializes a `std::map`), so we refuse duplicates (a blob
//! with two different values for one key has no single meaning) and, like upstream,
//! ignore trailing bytes. Keys and values are limited to 255 bytes and lists to 255
//! attributes, because the u8 length fields cannot represent upstream's stated 256.

use std::collections::BTreeMap;

use thiserror::Error;

/// The only blob version there is.
pub const XATTR_VERSION: u8 = 1;
/// Longest key or value the u8 length fields can carry.
pub const MAX_LEN: usize = 255;
/// Most attributes the u8 count field can carry.
pub const MAX_ATTRIBUTES: usize = 255;

/// Why a blob or an attribute was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum XattrError {
    #[error("xattr blob is shorter than its 2-byte header")]
    MissingHeader,
    #[error("xattr blob has version {0}, expected 1")]
    BadVersion(u8),
    #[error("xattr blob is truncated in attribute {index}")]
    Truncated { index: usize },
    #[error("xattr blob attribute {index} has neither key nor value")]
    EmptyEntry { index: usize },
    #[error("xattr key is empty")]
    EmptyKey,
    #[error("xattr key contains a NUL byte")]
    NulInKey,
    #[error("xattr key of {0} bytes exceeds 255")]
    KeyTooLong(usize),
    #[error("xattr value of {0} bytes exceeds 255")]
    ValueTooLong(usize),
    #[error("more than 255 xattrs")]
    TooMany,
    #[error("xattr blob repeats a key")]
    DuplicateKey,
}

/// An ordered set of attributes (key -> value), both raw bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XattrList {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl XattrList {
    pub fn new() -> XattrList {
        XattrList::default()
    }

    /// Adds or replaces an attribute after checking the limits a blob can carry.
    pub fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), XattrError> {
        check_key(key)?;
        if value.len() > MAX_LEN {
            return Err(XattrError::ValueTooLong(value.len()));
        }
        if !self.entries.contains_key(key) && self.entries.len() >= MAX_ATTRIBUTES {
            return Err(XattrError::TooMany);
        }
        self.entries.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.entries.get(key).map(Vec::as_slice)
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        self.entries.remove(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Attributes in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// Keys as `listxattr(2)` returns them: each followed by a NUL.
    pub fn list_keys_posix(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for key in self.entries.keys() {
            out.extend_from_slice(key);
            out.push(0);
        }
        out
    }

    /// Parses a non-NULL `xattr` column value. (A NULL column means "no attributes".)
    pub fn parse(blob: &[u8]) -> Result<XattrList, XattrError> {
        let (&version, rest) = blob.split_first().ok_or(XattrError::MissingHeader)?;
        let (&count, mut rest) = rest.split_first().ok_or(XattrError::MissingHeader)?;
        if version != XATTR_VERSION {
            return Err(XattrError::BadVersion(version));
        }
        let mut list = XattrList::new();
        for index in 0..usize::from(count) {
            let (key, value, remaining) = split_entry(rest, index)?;
            if list.entries.contains_key(key) {
                return Err(XattrError::DuplicateKey);
            }
            list.set(key, value)?;
            rest = remaining;
        }
        Ok(list)
    }

    /// The blob for the `xattr` column. An empty list serializes to a header with count
    /// 0; writers store NULL instead, see [`XattrList::to_column`].
    pub fn serialize(&self) -> Vec<u8> {
        let body: usize = self.entries.iter().map(|(k, v)| 2 + k.len() + v.len()).sum();
        let mut out = Vec::with_capacity(2 + body);
        out.push(XATTR_VERSION);
        // `set` keeps every length and the count within u8 range.
        out.push(u8::try_from(self.entries.len()).unwrap_or(u8::MAX));
        for (key, value) in &self.entries {
            out.push(u8::try_from(key.len()).unwrap_or(u8::MAX));
            out.push(u8::try_from(value.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(key);
            out.extend_from_slice(value);
        }
        out
    }

    /// What a writer stores in the column: NULL (`None`) for no attributes.
    pub fn to_column(&self) -> Option<Vec<u8>> {
        (!self.is_empty()).then(|| self.serialize())
    }
}

fn check_key(key: &[u8]) -> Result<(), XattrError> {
    if key.is_empty() {
        return Err(XattrError::EmptyKey);
    }
    if key.len() > MAX_LEN {
        return Err(XattrError::KeyTooLong(key.len()));
    }
    if key.contains(&0) {
        return Err(XattrError::NulInKey);
    }
    Ok(())
}

/// One record (key, value) and the bytes after it.
type SplitEntry<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// Splits one `key_len value_len key value` record off the front of `data`.
fn split_entry(data: &[u8], index: usize) -> Result<SplitEntry<'_>, XattrError> {
    let truncated = XattrError::Truncated { index };
    let (lengths, rest) = data.split_at_checked(2).ok_or(truncated.clone())?;
    let (key_len, value_len) = match lengths {
        [k, v] => (usize::from(*k), usize::from(*v)),
        _ => return Err(truncated),
    };
    if key_len + value_len == 0 {
        return Err(XattrError::EmptyEntry { index });
    }
    let (key, rest) = rest.split_at_checked(key_len).ok_or(truncated.clone())?;
    let (value, rest) = rest.split_at_checked(value_len).ok_or(truncated)?;
    Ok((key, value, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR_HEX: &str =
        "0102130473656375726974792e6361706162696c697479010000020803757365722e666f6f626172";

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn spec_vector_round_trips() {
        let mut list = XattrList::new();
        list.set(b"user.foo", b"bar").unwrap();
        list.set(b"security.capability", &[1, 0, 0, 2]).unwrap();
        assert_eq!(list.serialize(), unhex(VECTOR_HEX));
        assert_eq!(XattrList::parse(&unhex(VECTOR_HEX)).unwrap(), list);
        assert_eq!(list.list_keys_posix(), b"security.capability\0user.foo\0");
    }

    #[test]
    fn hostile_blobs_are_refused() {
        assert_eq!(XattrList::parse(&[]), Err(XattrError::MissingHeader));
        assert_eq!(XattrList::parse(&[2, 0]), Err(XattrError::BadVersion(2)));
        assert_eq!(XattrList::parse(&[1, 1, 3]), Err(XattrError::Truncated { index: 0 }));
        assert_eq!(XattrList::parse(&[1, 1, 3, 0, b'a']), Err(XattrError::Truncated { index: 0 }));
        assert_eq!(XattrList::parse(&[1, 1, 0, 0]), Err(XattrError::EmptyEntry { index: 0 }));
        assert_eq!(XattrList::parse(&[1, 1, 0, 1, b'v']), Err(XattrError::EmptyKey));
        assert_eq!(XattrList::parse(&[1, 1, 2, 0, b'a', 0]), Err(XattrError::NulInKey));
        assert_eq!(XattrList::parse(&[1, 2, 1, 0, b'a', 1, 0, b'a']), Err(XattrError::DuplicateKey));
        assert_eq!(XattrList::parse(&[1, 0]).unwrap(), XattrList::new());
    }

    #[test]
    fn limits_are_enforced_on_set() {
        let mut list = XattrList::new();
        assert_eq!(list.set(&[b'k'; 256], b""), Err(XattrError::KeyTooLong(256)));
        assert_eq!(list.set(b"k", &[0; 256]), Err(XattrError::ValueTooLong(256)));
        for i in 0..255u32 {
            list.set(format!("k{i}").as_bytes(), b"").unwrap();
        }
        assert_eq!(list.set(b"one-more", b""), Err(XattrError::TooMany));
        list.set(b"k0", b"replaced").unwrap();
        assert_eq!(XattrList::parse(&list.serialize()).unwrap(), list);
        assert_eq!(XattrList::new().to_column(), None);
    }
}

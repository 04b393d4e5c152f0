//! Content hashes as CernVM-FS names them: algorithms, text forms, fingerprints,
//! and the MD5 path keys of catalogs.
//!
//! The text form of a hash is lowercase hex followed by an algorithm id (`-rmd160`,
//! `-shake128`; nothing for SHA-1 and MD5). Upstream's lenient parser picks the algorithm
//! from the string length alone; we parse strictly (lowercase hex *and* a known id), which
//! accepts every hash an upstream writer produces and rejects everything else
//! (docs/DECISIONS.md, "hash text").

use std::fmt;

use digest::{Digest, ExtendableOutput, Update, XofReader};
use thiserror::Error;

/// Longest digest of any supported algorithm, in bytes.
pub const MAX_DIGEST_LEN: usize = 20;

/// A hash algorithm. The order matches upstream's `shash::Algorithms` numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// Only for path keys and the manifest `R` field, never for content.
    Md5,
    Sha1,
    Rmd160,
    /// SHAKE-128 squeezed to 160 bits.
    Shake128,
}

impl Algorithm {
    /// The algorithms allowed for content (objects, catalogs, certificates).
    pub const CONTENT: [Algorithm; 3] = [Algorithm::Sha1, Algorithm::Rmd160, Algorithm::Shake128];

    /// Digest size in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Md5 => 16,
            _ => 20,
        }
    }

    /// The id appended to the hex digits in the text form.
    pub fn text_id(self) -> &'static str {
        match self {
            Algorithm::Md5 | Algorithm::Sha1 => "",
            Algorithm::Rmd160 => "-rmd160",
            Algorithm::Shake128 => "-shake128",
        }
    }

    /// Length of the text form (hex digits plus id).
    pub fn text_len(self) -> usize {
        2 * self.digest_len() + self.text_id().len()
    }

    /// The value stored in bits 8-10 of catalog flags (`algorithm - 1` upstream).
    pub fn catalog_flag_value(self) -> u32 {
        match self {
            Algorithm::Md5 | Algorithm::Sha1 => 0,
            Algorithm::Rmd160 => 1,
            Algorithm::Shake128 => 2,
        }
    }

    /// Inverse of [`Algorithm::catalog_flag_value`]; `None` for values no writer produces.
    pub fn from_catalog_flag_value(value: u32) -> Option<Algorithm> {
        match value {
            0 => Some(Algorithm::Sha1),
            1 => Some(Algorithm::Rmd160),
            2 => Some(Algorithm::Shake128),
            _ => None,
        }
    }

    /// The server option spelling (`CVMFS_HASH_ALGORITHM`): `sha1`, `rmd160`, `shake128`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "md5",
            Algorithm::Sha1 => "sha1",
            Algorithm::Rmd160 => "rmd160",
            Algorithm::Shake128 => "shake128",
        }
    }

    /// Parses the server option spelling of a content algorithm.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::CONTENT.into_iter().find(|a| a.name() == name)
    }

    /// Which algorithm a text form of this length denotes (upstream's length rule).
    fn from_text_len(len: usize) -> Option<Algorithm> {
        [Algorithm::Md5, Algorithm::Sha1, Algorithm::Rmd160, Algorithm::Shake128]
            .into_iter()
            .find(|a| a.text_len() == len)
    }
}

/// Why a text could not be read as a hash.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HashError {
    #[error("'{0}' is not a hash: its length fits no algorithm")]
    BadLength(String),
    #[error("'{0}' is not a hash: expected lowercase hex digits")]
    BadHex(String),
    #[error("'{0}' is not a hash: unknown algorithm id")]
    BadAlgorithmId(String),
    #[error("digest of {got} bytes does not fit algorithm {algorithm} ({want} bytes)")]
    BadDigestLength { algorithm: &'static str, got: usize, want: usize },
}

/// A digest together with its algorithm.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash {
    algorithm: Algorithm,
    digest: [u8; MAX_DIGEST_LEN],
}

impl ContentHash {
    /// Wraps a raw digest; its length must match the algorithm.
    pub fn from_digest(algorithm: Algorithm, digest: &[u8]) -> Result<ContentHash, HashError> {
        if digest.len() != algorithm.digest_len() {
            return Err(HashError::BadDigestLength {
                algorithm: algorithm.name(),
                got: digest.len(),
                want: algorithm.digest_len(),
            });
        }
        let mut bytes = [0u8; MAX_DIGEST_LEN];
        bytes[..digest.len()].copy_from_slice(digest);
        Ok(ContentHash { algorithm, digest: bytes })
    }

    /// The all-zero hash of an algorithm (upstream's "null" hash).
    pub fn null(algorithm: Algorithm) -> ContentHash {
        ContentHash { algorithm, digest: [0; MAX_DIGEST_LEN] }
    }

    /// Hashes `data` in one go.
    pub fn of(algorithm: Algorithm, data: &[u8]) -> ContentHash {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(data);
        hasher.finish()
    }

    /// Parses the text form strictly: lowercase hex digits plus the exact algorithm id.
    pub fn parse(text: &str) -> Result<ContentHash, HashError> {
        let algorithm =
            Algorithm::from_text_len(text.len()).ok_or_else(|| HashError::BadLength(text.to_string()))?;
        let hex_len = 2 * algorithm.digest_len();
        let (hex, id) = text.split_at(hex_len);
        if id != algorithm.text_id() {
            return Err(HashError::BadAlgorithmId(text.to_string()));
        }
        let digest = decode_lower_hex(hex).ok_or_else(|| HashError::BadHex(text.to_string()))?;
        ContentHash::from_digest(algorithm, &digest)
    }

    /// Parses a content hash (SHA-1, RIPEMD-160 or SHAKE-128; MD5 is refused).
    pub fn parse_content(text: &str) -> Result<ContentHash, HashError> {
        let hash = ContentHash::parse(text)?;
        if hash.algorithm == Algorithm::Md5 {
            return Err(HashError::BadLength(text.to_string()));
        }
        Ok(hash)
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The raw digest bytes.
    pub fn digest(&self) -> &[u8] {
        &self.digest[..self.algorithm.digest_len()]
    }

    pub fn is_null(&self) -> bool {
        self.digest().iter().all(|&b| b == 0)
    }

    /// Lowercase hex digits without the algorithm id.
    pub fn hex(&self) -> String {
        encode_lower_hex(self.digest())
    }

    /// Fingerprint form: upper-case hex pairs joined by `:`, then the upper-case id,
    /// e.g. `5A:6E:…:D0-RMD160`.
    pub fn fingerprint(&self) -> String {
        let pairs: Vec<String> = self.digest().iter().map(|b| format!("{b:02X}")).collect();
        format!("{}{}", pairs.join(":"), self.algorithm.text_id().to_uppercase())
    }

    /// Parses one fingerprint line as whitelists and blacklists hold them: the text up to
    /// the first space, TAB or `#`, colons removed, lower-cased. `None` if that is no hash.
    pub fn parse_fingerprint(line: &str) -> Option<ContentHash> {
        let end = line.find([' ', '\t', '#']).unwrap_or(line.len());
        let text: String = line[..end].chars().filter(|&c| c != ':').collect();
        ContentHash::parse(&text.to_lowercase()).ok()
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.hex(), self.algorithm.text_id())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

impl std::str::FromStr for ContentHash {
    type Err = HashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ContentHash::parse(s)
    }
}

/// An incremental hasher for any supported algorithm.
#[derive(Clone)]
pub struct Hasher(HasherState);

// One hasher lives per object in flight, never in bulk: boxing the larger state would
// only add an allocation per object.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum HasherState {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Rmd160(ripemd::Ripemd160),
    Shake128(sha3::Shake128),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        Hasher(match algorithm {
            Algorithm::Md5 => HasherState::Md5(md5::Md5::new()),
            Algorithm::Sha1 => HasherState::Sha1(sha1::Sha1::new()),
            Algorithm::Rmd160 => HasherState::Rmd160(ripemd::Ripemd160::new()),
            Algorithm::Shake128 => HasherState::Shake128(sha3::Shake128::default()),
        })
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            HasherState::Md5(h) => Digest::update(h, data),
            HasherState::Sha1(h) => Digest::update(h, data),
            HasherState::Rmd160(h) => Digest::update(h, data),
            HasherState::Shake128(h) => Update::update(h, data),
        }
    }

    pub fn finish(self) -> ContentHash {
        let (algorithm, digest): (Algorithm, Vec<u8>) = match self.0 {
            HasherState::Md5(h) => (Algorithm::Md5, h.finalize().to_vec()),
            HasherState::Sha1(h) => (Algorithm::Sha1, h.finalize().to_vec()),
            HasherState::Rmd160(h) => (Algorithm::Rmd160, h.finalize().to_vec()),
            HasherState::Shake128(h) => {
                let mut out = [0u8; 20];
                h.finalize_xof().read(&mut out);
                (Algorithm::Shake128, out.to_vec())
            }
        };
        ContentHash::from_digest(algorithm, &digest).expect("digest length matches algorithm")
    }
}

/// The catalog key of a repository path: MD5 of the normalised path split into two
/// little-endian signed 64-bit integers (`md5path_1`, `md5path_2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathKey {
    pub p1: i64,
    pub p2: i64,
}

impl PathKey {
    /// Key of a normalised repository path (`""` for the root, otherwise `/a/b`).
    pub fn of(path: &[u8]) -> PathKey {
        let hash = ContentHash::of(Algorithm::Md5, path);
        PathKey::from_md5_digest(hash.digest())
    }

    /// The key upstream stores as the parent of the repository root: 0/0.
    pub const ROOT_PARENT: PathKey = PathKey { p1: 0, p2: 0 };

    fn from_md5_digest(digest: &[u8]) -> PathKey {
        let mut first = [0u8; 8];
        let mut second = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        second.copy_from_slice(&digest[8..16]);
        PathKey { p1: i64::from_le_bytes(first), p2: i64::from_le_bytes(second) }
    }
}

/// MD5 of the empty path, the value the manifest `R` field must carry.
pub const ROOT_PATH_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

pub(crate) fn encode_lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// Decodes lowercase hex only, as upstream's parser does; `None` on anything else.
pub(crate) fn decode_lower_hex(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    bytes.chunks(2).map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_abc_digests_match_upstream_vectors() {
        let cases = [
            (Algorithm::Md5, "", "d41d8cd98f00b204e9800998ecf8427e"),
            (Algorithm::Sha1, "", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            (Algorithm::Rmd160, "", "9c1185a5c5e9fc54612808977ee8f548b2258d31-rmd160"),
            (Algorithm::Shake128, "", "7f9c2ba4e88f827d616045507605853ed73b8093-shake128"),
            (Algorithm::Md5, "abc", "900150983cd24fb0d6963f7d28e17f72"),
            (Algorithm::Sha1, "abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (Algorithm::Rmd160, "abc", "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc-rmd160"),
            (Algorithm::Shake128, "abc", "5881092dd818bf5cf8a3ddb793fbcba74097d5c5-shake128"),
        ];
        for (algorithm, input, text) in cases {
            let hash = ContentHash::of(algorithm, input.as_bytes());
            assert_eq!(hash.to_string(), text);
            assert_eq!(ContentHash::parse(text).unwrap(), hash);
        }
    }

    #[test]
    fn strict_parser_rejects_what_upstreams_validator_rejects() {
        assert!(ContentHash::parse("A68b329da9893e34099c7d8ad5cb9c94").is_err());
        let hex40 = "a".repeat(40);
        assert!(ContentHash::parse(&format!("{hex40}-rmd160")).is_ok());
        assert!(matches!(ContentHash::parse(&format!("{hex40}-rmd161")), Err(HashError::BadAlgorithmId(_))));
        assert!(ContentHash::parse(&format!("{}-rmd160", "a".repeat(39))).is_err());
        assert!(ContentHash::parse(&format!("{hex40}-shake256")).is_err());
        assert!(ContentHash::parse_content(&"a".repeat(32)).is_err());
    }

    #[test]
    fn null_hash_prints_zeros_and_id() {
        assert_eq!(
            ContentHash::null(Algorithm::Shake128).to_string(),
            "0000000000000000000000000000000000000000-shake128"
        );
        assert!(ContentHash::null(Algorithm::Sha1).is_null());
    }

    #[test]
    fn fingerprints_round_trip() {
        let sha1 = ContentHash::parse("cf95c182bb9214bcb9a23fed6658c60d061b45b5").unwrap();
        assert_eq!(sha1.fingerprint(), "CF:95:C1:82:BB:92:14:BC:B9:A2:3F:ED:66:58:C6:0D:06:1B:45:B5");
        let rmd = ContentHash::parse("5a6e43fe25f5988160a07ff1fb200b29e6c10ad0-rmd160").unwrap();
        let fp = rmd.fingerprint();
        assert_eq!(fp, "5A:6E:43:FE:25:F5:98:81:60:A0:7F:F1:FB:20:0B:29:E6:C1:0A:D0-RMD160");
        assert_eq!(ContentHash::parse_fingerprint(&fp), Some(rmd));
        assert_eq!(ContentHash::parse_fingerprint(&format!("{fp} # a comment")), Some(rmd));
        assert_eq!(ContentHash::parse_fingerprint(&format!("{fp}\tcomment")), Some(rmd));
        assert_eq!(ContentHash::parse_fingerprint("not a fingerprint"), None);
    }

    #[test]
    fn path_keys_split_little_endian() {
        assert_eq!(PathKey::of(b""), PathKey { p1: 338333539836370388, p2: 9098107892288553193 });
        assert_eq!(PathKey::of(b"/"), PathKey { p1: 5068354950813017702, p2: -2754218947814130786 });
        assert_eq!(PathKey::of(b"/.cvmfs"), PathKey { p1: -2402492567927477437, p2: -171651727507129842 });
        assert_eq!(
            PathKey::of(b"/needs_migration/foo"),
            PathKey { p1: 3461018882590136880, p2: -9134087094439672277 }
        );
    }

    #[test]
    fn catalog_flag_values() {
        for a in Algorithm::CONTENT {
            assert_eq!(Algorithm::from_catalog_flag_value(a.catalog_flag_value()), Some(a));
        }
        assert_eq!(Algorithm::from_catalog_flag_value(3), None);
    }
}

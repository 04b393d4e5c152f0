//! Object compression: a zlib stream (RFC 1950, not raw deflate, not gzip) or nothing.

use std::io::{Read, Write};

use flate2::{read::ZlibDecoder, write::ZlibEncoder};
use thiserror::Error;

/// How an object's bytes are stored. The numbering is catalog flag bits 11-13.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    #[default]
    Zlib,
    None,
}

impl Compression {
    pub fn catalog_flag_value(self) -> u32 {
        match self {
            Compression::Zlib => 0,
            Compression::None => 1,
        }
    }

    pub fn from_catalog_flag_value(value: u32) -> Option<Compression> {
        match value {
            0 => Some(Compression::Zlib),
            1 => Some(Compression::None),
            _ => None,
        }
    }

    /// The server option spelling: `zlib` (alias `default`) or `none`.
    pub fn from_name(name: &str) -> Option<Compression> {
        match name {
            "zlib" | "default" => Some(Compression::Zlib),
            "none" => Some(Compression::None),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::Zlib => "zlib",
            Compression::None => "none",
        }
    }
}

#[derive(Debug, Error)]
pub enum CompressionError {
    #[error("corrupt zlib stream: {0}")]
    Corrupt(std::io::Error),
    #[error("inflated object exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
}

/// Compresses `data` as upstream writers do (`deflateInit(Z_DEFAULT_COMPRESSION)`).
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder =
        ZlibEncoder::new(Vec::with_capacity(data.len() / 2 + 16), flate2::Compression::default());
    encoder.write_all(data).expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// Inflates a whole zlib object held in memory, refusing to grow past `limit` bytes
/// (a hostile "zip bomb" must not exhaust memory).
pub fn inflate(data: &[u8], limit: u64) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    let mut decoder = ZlibDecoder::new(data).take(limit.saturating_add(1));
    decoder.read_to_end(&mut out).map_err(CompressionError::Corrupt)?;
    if out.len() as u64 > limit {
        return Err(CompressionError::TooLarge { limit });
    }
    Ok(out)
}

/// Stores `data` with the given compression.
pub fn encode(data: &[u8], compression: Compression) -> Vec<u8> {
    match compression {
        Compression::Zlib => deflate(data),
        Compression::None => data.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_object_matches_upstream_bytes() {
        // Upstream stores the empty file as these 8 bytes (spec 1.6).
        assert_eq!(deflate(b""), [0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
        assert_eq!(
            inflate(&[0x78, 0x9c, 0x4b, 0xcb, 0xcf, 0xe7, 0x02, 0x00, 0x03, 0xd1, 0x01, 0x4f], 100).unwrap(),
            b"foo\n"
        );
    }

    #[test]
    fn inflate_limits_output() {
        let bomb = deflate(&vec![0u8; 1 << 20]);
        assert!(matches!(inflate(&bomb, 1000), Err(CompressionError::TooLarge { limit: 1000 })));
        assert_eq!(inflate(&bomb, 1 << 20).unwrap().len(), 1 << 20);
        assert!(matches!(inflate(b"not zlib", 100), Err(CompressionError::Corrupt(_))));
    }
}

//! One-pass verification: hash the bytes as served and inflate them into a sink, in a
//! single streaming pass, without buffering the whole object.
//!
//! The sink receives inflated bytes before the hash can be known to match, so the sink
//! must be a transaction: a temporary file renamed into place, or a buffer that is only
//! used once [`VerifyingWriter::finish`] returned `Ok`. [`read_verified_to_vec`] and
//! [`copy_verified`] package that rule for callers; nothing in this module hands out
//! bytes of an object that failed its check.

use std::io::{self, Read, Write};

use flate2::write::ZlibDecoder;
use thiserror::Error;

use crate::compression::Compression;
use crate::hash::{ContentHash, Hasher};

#[derive(Debug, Error)]
pub enum VerifyError {
    #[error("hash mismatch: expected {expected}, got {actual}")]
    HashMismatch { expected: ContentHash, actual: ContentHash },
    #[error("corrupt zlib stream: {0}")]
    Inflate(io::Error),
    #[error("zlib stream ends early (truncated object)")]
    Truncated,
    #[error("inflated object exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("writing the verified object failed: {0}")]
    Sink(io::Error),
    #[error("reading the object failed: {0}")]
    Source(io::Error),
}

impl VerifyError {
    /// True when the bytes themselves were bad (as opposed to local I/O trouble): the
    /// download manager retries these on the next proxy or host with no-cache headers.
    pub fn is_bad_data(&self) -> bool {
        matches!(
            self,
            VerifyError::HashMismatch { .. }
                | VerifyError::Inflate(_)
                | VerifyError::Truncated
                | VerifyError::TooLarge { .. }
        )
    }
}

/// A destination a download can start over in: when an attempt fails half-way (a reset
/// connection, bad bytes from a proxy) the next attempt on another proxy or host first
/// rewinds it, so the bytes of a failed attempt never mix with those of the next.
pub trait RewindableSink: Write {
    /// Discards everything written so far.
    fn rewind(&mut self) -> io::Result<()>;
}

impl RewindableSink for Vec<u8> {
    fn rewind(&mut self) -> io::Result<()> {
        self.clear();
        Ok(())
    }
}

impl RewindableSink for io::Sink {
    fn rewind(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl RewindableSink for std::fs::File {
    fn rewind(&mut self) -> io::Result<()> {
        use std::io::Seek;
        self.set_len(0)?;
        self.seek(io::SeekFrom::Start(0)).map(|_| ())
    }
}

/// A sink adapter that caps how many bytes reach the inner writer.
struct Limited<W> {
    inner: W,
    written: u64,
    limit: u64,
}

impl<W: Write> Write for Limited<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.limit {
            return Err(io::Error::other(LimitExceeded));
        }
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[derive(Debug)]
struct LimitExceeded;
impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("inflated size limit exceeded")
    }
}
impl std::error::Error for LimitExceeded {}

enum Stage<W: Write> {
    Inflate(ZlibDecoder<Limited<W>>),
    Plain(Limited<W>),
}

/// Feed it the raw bytes of an object as they arrive; it hashes them and writes the
/// decoded content to the sink. Call [`finish`](Self::finish) to learn the verdict.
pub struct VerifyingWriter<W: Write> {
    expected: ContentHash,
    hasher: Hasher,
    stage: Stage<W>,
    limit: u64,
    raw_bytes: u64,
}

impl<W: Write> VerifyingWriter<W> {
    /// `limit` caps the decoded size (use `u64::MAX` for none).
    pub fn new(expected: ContentHash, compression: Compression, sink: W, limit: u64) -> Self {
        let limited = Limited { inner: sink, written: 0, limit };
        let stage = match compression {
            Compression::Zlib => Stage::Inflate(ZlibDecoder::new(limited)),
            Compression::None => Stage::Plain(limited),
        };
        VerifyingWriter { expected, hasher: Hasher::new(expected.algorithm()), stage, limit, raw_bytes: 0 }
    }

    /// Hashes and decodes the next piece of the object as served.
    pub fn write_raw(&mut self, raw: &[u8]) -> Result<(), VerifyError> {
        self.hasher.update(raw);
        self.raw_bytes += raw.len() as u64;
        let limit = self.limit;
        let result = match &mut self.stage {
            Stage::Inflate(decoder) => decoder.write_all(raw),
            Stage::Plain(sink) => sink.write_all(raw),
        };
        result.map_err(|e| classify_write_error(e, limit, matches!(self.stage, Stage::Inflate(_))))
    }

    /// Bytes of the served object seen so far.
    pub fn raw_bytes(&self) -> u64 {
        self.raw_bytes
    }

    /// Decoded bytes written to the sink so far.
    pub fn decoded_bytes(&self) -> u64 {
        match &self.stage {
            Stage::Inflate(decoder) => decoder.get_ref().written,
            Stage::Plain(sink) => sink.written,
        }
    }

    /// Checks the hash (and, for zlib, that the stream is complete) and returns the sink.
    /// On `Err` the sink's content must be discarded.
    pub fn finish(self) -> Result<W, VerifyError> {
        self.finish_with_size().map(|(sink, _)| sink)
    }

    /// [`VerifyingWriter::finish`], also returning the total number of decoded bytes
    /// (including what the decoder flushed at the end).
    pub fn finish_with_size(self) -> Result<(W, u64), VerifyError> {
        let limit = self.limit;
        let actual = self.hasher.finish();
        let limited = match self.stage {
            Stage::Inflate(mut decoder) => {
                decoder.try_finish().map_err(|e| classify_write_error(e, limit, true))?;
                let complete = decoder.total_in() == self.raw_bytes;
                let limited = decoder.finish().map_err(|e| classify_write_error(e, limit, true))?;
                if actual != self.expected {
                    return Err(VerifyError::HashMismatch { expected: self.expected, actual });
                }
                if !complete {
                    return Err(VerifyError::Truncated);
                }
                limited
            }
            Stage::Plain(limited) => limited,
        };
        if actual != self.expected {
            return Err(VerifyError::HashMismatch { expected: self.expected, actual });
        }
        Ok((limited.inner, limited.written))
    }
}

fn classify_write_error(error: io::Error, limit: u64, inflating: bool) -> VerifyError {
    let over_limit = error.get_ref().is_some_and(|inner| inner.is::<LimitExceeded>());
    let corrupt = matches!(error.kind(), io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput);
    if over_limit {
        VerifyError::TooLarge { limit }
    } else if inflating && error.kind() == io::ErrorKind::UnexpectedEof {
        VerifyError::Truncated
    } else if inflating && corrupt {
        VerifyError::Inflate(error)
    } else {
        VerifyError::Sink(error)
    }
}

/// Reads a whole object from `source` into `sink`, verifying as it goes. Returns the
/// number of decoded bytes. On `Err` the sink holds garbage and must be discarded.
pub fn copy_verified<R: Read, W: Write>(
    mut source: R,
    expected: ContentHash,
    compression: Compression,
    sink: W,
    limit: u64,
) -> Result<(W, u64), VerifyError> {
    let mut writer = VerifyingWriter::new(expected, compression, sink, limit);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(VerifyError::Source(e)),
        };
        writer.write_raw(&buf[..n])?;
    }
    writer.finish_with_size()
}

/// Verifies and decodes an object held in memory; the bytes are returned only if the
/// object is intact.
pub fn read_verified_to_vec(
    stored: &[u8],
    expected: ContentHash,
    compression: Compression,
    limit: u64,
) -> Result<Vec<u8>, VerifyError> {
    let mut writer = VerifyingWriter::new(expected, compression, Vec::new(), limit);
    writer.write_raw(stored)?;
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::deflate;
    use crate::hash::Algorithm;

    fn stored(content: &[u8], compression: Compression, algorithm: Algorithm) -> (Vec<u8>, ContentHash) {
        let bytes = crate::compression::encode(content, compression);
        let hash = ContentHash::of(algorithm, &bytes);
        (bytes, hash)
    }

    #[test]
    fn intact_objects_decode_in_pieces() {
        let content: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for compression in [Compression::Zlib, Compression::None] {
            for algorithm in Algorithm::CONTENT {
                let (bytes, hash) = stored(&content, compression, algorithm);
                let mut writer = VerifyingWriter::new(hash, compression, Vec::new(), u64::MAX);
                for piece in bytes.chunks(777) {
                    writer.write_raw(piece).unwrap();
                }
                assert_eq!(writer.finish().unwrap(), content);
            }
        }
    }

    #[test]
    fn flipped_byte_is_refused() {
        let (mut bytes, hash) = stored(b"hello world, hello world", Compression::Zlib, Algorithm::Sha1);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let err = read_verified_to_vec(&bytes, hash, Compression::Zlib, u64::MAX).unwrap_err();
        assert!(err.is_bad_data(), "{err}");
        let (mut plain, hash) = stored(b"plain", Compression::None, Algorithm::Shake128);
        plain[0] ^= 0x20;
        assert!(matches!(
            read_verified_to_vec(&plain, hash, Compression::None, u64::MAX),
            Err(VerifyError::HashMismatch { .. })
        ));
    }

    #[test]
    fn truncated_stream_is_refused_even_if_its_hash_matches() {
        let full = deflate(&[7u8; 5000]);
        let cut = &full[..full.len() - 3];
        let hash = ContentHash::of(Algorithm::Sha1, cut);
        let err = read_verified_to_vec(cut, hash, Compression::Zlib, u64::MAX).unwrap_err();
        assert!(matches!(err, VerifyError::Truncated | VerifyError::Inflate(_)), "{err}");
    }

    #[test]
    fn size_limit_stops_bombs() {
        let (bytes, hash) = stored(&vec![0u8; 1 << 20], Compression::Zlib, Algorithm::Sha1);
        let err = read_verified_to_vec(&bytes, hash, Compression::Zlib, 4096).unwrap_err();
        assert!(matches!(err, VerifyError::TooLarge { limit: 4096 }), "{err}");
    }

    #[test]
    fn garbage_is_an_inflate_error() {
        let garbage = b"<html>502 Bad Gateway</html>".to_vec();
        let hash = ContentHash::of(Algorithm::Sha1, b"something else");
        let err = read_verified_to_vec(&garbage, hash, Compression::Zlib, u64::MAX).unwrap_err();
        assert!(err.is_bad_data(), "{err}");
    }
}

//! Content-defined chunking with upstream's xor32 rolling checksum
//! (`ingestion/chunk_detector.{h,cc}`, `Xor32Detector`).
//!
//! The rules, restated:
//! * the checksum is `x = (x << 1) ^ byte` on 32 bits, so it depends on the last 32 bytes;
//! * within a chunk, bytes before `min - 32` are skipped, bytes in `[min - 32, min)` only
//!   feed the checksum, and from `min` on every byte is fed and then tested;
//! * a byte at chunk position `k` is a cut mark when
//!   `|wrapping(x as i32 - i32::MAX)| < u32::MAX / avg` (with C's wrap-around, so
//!   `x = 0xffffffff` also cuts); the cut is *before* that byte, which starts the next
//!   chunk, and the checksum restarts from 0;
//! * with no mark, the chunk is cut hard at `max` bytes;
//! * only files larger than `min` are chunked at all, and a file that ends up as a single
//!   piece is stored as an ordinary file (`task_chunk.cc`, `MightFindChunks`).

use crate::error::PublishError;

/// The xor32 checksum covers this many trailing bytes.
pub const WINDOW: u64 = 32;

/// The centre of the accepted checksum interval (`kMagicNumber`).
const MAGIC: i32 = i32::MAX;

/// Minimum, average and maximum chunk sizes in bytes (`CVMFS_{MIN,AVG,MAX}_CHUNK_SIZE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSizes {
    pub min: u64,
    pub avg: u64,
    pub max: u64,
}

impl Default for ChunkSizes {
    /// Upstream's defaults: 4, 8 and 16 MiB.
    fn default() -> ChunkSizes {
        ChunkSizes { min: 4 << 20, avg: 8 << 20, max: 16 << 20 }
    }
}

impl ChunkSizes {
    /// Checks upstream's constraints: `32 <= min < avg < max`.
    pub fn new(min: u64, avg: u64, max: u64) -> Result<ChunkSizes, PublishError> {
        if min < WINDOW || min >= avg || avg >= max {
            return Err(PublishError::ChunkSizes(format!(
                "{min},{avg},{max}: need {WINDOW} <= MIN < AVG < MAX"
            )));
        }
        Ok(ChunkSizes { min, avg, max })
    }

    /// Parses `MIN,AVG,MAX` (bytes).
    pub fn parse(text: &str) -> Result<ChunkSizes, PublishError> {
        let bad = || PublishError::ChunkSizes(format!("'{text}' is not MIN,AVG,MAX in bytes"));
        let numbers: Vec<u64> =
            text.split(',').map(|n| n.trim().parse::<u64>().map_err(|_| bad())).collect::<Result<_, _>>()?;
        match numbers.as_slice() {
            [min, avg, max] => ChunkSizes::new(*min, *avg, *max),
            _ => Err(bad()),
        }
    }

    /// Whether a file of `size` bytes goes through the chunker (`MightFindChunks`).
    pub fn might_chunk(&self, size: u64) -> bool {
        size > self.min
    }

    fn threshold(&self) -> i32 {
        // avg > min >= 32, so the quotient fits an i32.
        i32::try_from(u64::from(u32::MAX) / self.avg.max(1)).unwrap_or(i32::MAX)
    }
}

/// Finds cut marks in a byte stream fed piece by piece.
#[derive(Debug, Clone)]
pub struct Xor32Chunker {
    sizes: ChunkSizes,
    threshold: i32,
    checksum: u32,
    /// Bytes of the current chunk consumed so far.
    position: u64,
}

impl Xor32Chunker {
    pub fn new(sizes: ChunkSizes) -> Xor32Chunker {
        Xor32Chunker { threshold: sizes.threshold(), sizes, checksum: 0, position: 0 }
    }

    /// Consumes `data` up to the next cut mark. Returns the index in `data` where the next
    /// chunk starts (the bytes before it end the current chunk), or `None` if all of
    /// `data` belongs to the current chunk. After a cut, feed the rest of `data` again.
    pub fn next_cut(&mut self, data: &[u8]) -> Option<usize> {
        let skip_until = self.sizes.min.saturating_sub(WINDOW);
        let mut index = 0;
        while index < data.len() {
            // `max(1)`: even unchecked sizes never yield an empty chunk.
            if self.position >= self.sizes.max.max(1) {
                return Some(self.cut(index));
            }
            if self.position < skip_until {
                let skip = (skip_until - self.position).min((data.len() - index) as u64);
                self.position += skip;
                index += skip as usize;
                continue;
            }
            self.checksum = (self.checksum << 1) ^ u32::from(data[index]);
            if self.position >= self.sizes.min.max(1) && self.is_mark() {
                return Some(self.cut(index));
            }
            self.position += 1;
            index += 1;
        }
        None
    }

    fn is_mark(&self) -> bool {
        // Upstream computes abs(int32(x) - kMagicNumber) with wrap-around.
        (self.checksum as i32).wrapping_sub(MAGIC).wrapping_abs() < self.threshold
    }

    fn cut(&mut self, index: usize) -> usize {
        self.checksum = 0;
        self.position = 0;
        index
    }
}

/// Chunk lengths of a whole buffer (for tests and callers holding the data in memory).
pub fn chunk_lengths(sizes: ChunkSizes, data: &[u8]) -> Vec<u64> {
    if !sizes.might_chunk(data.len() as u64) {
        return vec![data.len() as u64];
    }
    let mut chunker = Xor32Chunker::new(sizes);
    let mut lengths = Vec::new();
    let mut rest = data;
    while let Some(cut) = chunker.next_cut(rest) {
        lengths.push(cut as u64);
        rest = &rest[cut..];
    }
    lengths.push(rest.len() as u64);
    lengths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 33) as u8
            })
            .collect()
    }

    #[test]
    fn sizes_are_validated_and_parsed() {
        assert_eq!(ChunkSizes::default(), ChunkSizes::parse("4194304,8388608,16777216").unwrap());
        assert!(ChunkSizes::parse("1,2,3").is_err());
        assert!(ChunkSizes::parse("64,64,128").is_err());
        assert!(ChunkSizes::parse("64,128").is_err());
        assert!(ChunkSizes::parse("a,b,c").is_err());
        assert_eq!(ChunkSizes::default().threshold(), 511);
    }

    #[test]
    fn chunks_respect_bounds_and_cover_the_input() {
        let sizes = ChunkSizes::new(1024, 2048, 4096).unwrap();
        let data = pseudo_random(300_000, 7);
        let lengths = chunk_lengths(sizes, &data);
        assert_eq!(lengths.iter().sum::<u64>(), data.len() as u64);
        let (last, body) = lengths.split_last().unwrap();
        assert!(body.iter().all(|&l| (1024..=4096).contains(&l)), "{lengths:?}");
        assert!(*last <= 4096);
        let zeros = chunk_lengths(sizes, &vec![0u8; 10_000]);
        assert_eq!(zeros, vec![4096, 4096, 1808], "zeros never hit a mark: hard cuts");
    }

    #[test]
    fn feeding_in_pieces_gives_the_same_cuts() {
        let sizes = ChunkSizes::new(256, 512, 1024).unwrap();
        let data = pseudo_random(50_000, 3);
        let whole = chunk_lengths(sizes, &data);
        for piece in [1usize, 7, 100, 4096] {
            let mut chunker = Xor32Chunker::new(sizes);
            let (mut lengths, mut current) = (Vec::new(), 0u64);
            for block in data.chunks(piece) {
                let mut rest = block;
                while let Some(cut) = chunker.next_cut(rest) {
                    lengths.push(current + cut as u64);
                    current = 0;
                    rest = &rest[cut..];
                }
                current += rest.len() as u64;
            }
            lengths.push(current);
            assert_eq!(lengths, whole, "piece size {piece}");
        }
    }

    #[test]
    fn local_edits_keep_later_cuts() {
        let sizes = ChunkSizes::new(256, 512, 1024).unwrap();
        let data = pseudo_random(100_000, 11);
        let mut edited = data.clone();
        edited[5000..5100].fill(0x55);
        let before = chunk_lengths(sizes, &data);
        let after = chunk_lengths(sizes, &edited);
        let ends = |l: &[u64]| -> Vec<u64> {
            l.iter()
                .scan(0, |s, x| {
                    *s += x;
                    Some(*s)
                })
                .collect()
        };
        let shared = ends(&before).into_iter().filter(|e| ends(&after).contains(e)).count();
        assert!(shared + 5 >= before.len(), "{shared} of {}", before.len());
    }

    #[test]
    fn unchecked_sizes_do_not_hang_or_panic() {
        let nonsense = ChunkSizes { min: 0, avg: 0, max: 0 };
        assert_eq!(chunk_lengths(nonsense, &[1, 2, 3]), vec![1, 1, 1]);
    }

    #[test]
    fn small_files_are_one_piece() {
        let sizes = ChunkSizes::new(1024, 2048, 4096).unwrap();
        assert_eq!(chunk_lengths(sizes, &[1u8; 1024]), vec![1024]);
        assert_eq!(chunk_lengths(sizes, &[]), vec![0]);
    }
}

//! Turning one regular file into objects: a whole-file object, or chunks (`P`) cut by
//! the xor32 chunker, streamed so that memory stays bounded whatever the file size.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use cvmfs_core::{Algorithm, Compression, ContentHash, ObjectKind};

use crate::chunker::{ChunkSizes, Xor32Chunker};
use crate::error::{IoContext, PublishError};
use crate::store::{ObjectStore, ObjectWriter};

/// Read buffer size.
const BLOCK: usize = 1 << 20;

/// One chunk of a chunked file: uncompressed offset and size, and the object hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRecord {
    pub offset: u64,
    pub size: u64,
    pub hash: ContentHash,
}

/// Where a regular file's content went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileContent {
    /// One object without suffix.
    Whole { hash: ContentHash, size: u64 },
    /// Several `P` objects; the catalog hash column stays NULL.
    Chunked { chunks: Vec<ChunkRecord>, size: u64 },
}

impl FileContent {
    /// The number of content bytes.
    pub fn size(&self) -> u64 {
        match self {
            FileContent::Whole { size, .. } | FileContent::Chunked { size, .. } => *size,
        }
    }
}

/// How file content is stored.
#[derive(Debug, Clone, Copy)]
pub struct IngestSettings {
    pub algorithm: Algorithm,
    pub compression: Compression,
    /// `None` disables chunking.
    pub chunking: Option<ChunkSizes>,
}

/// Stores the content of the regular file `path`, whose `lstat` size was `size`
/// (the bytes actually read decide in the end).
pub fn ingest_file(
    store: &mut ObjectStore,
    settings: &IngestSettings,
    path: &Path,
    size: u64,
) -> Result<FileContent, PublishError> {
    let file = File::open(path).io("opening", path)?;
    match settings.chunking {
        Some(sizes) if sizes.might_chunk(size) => ingest_chunked(store, settings, sizes, file, path),
        _ => ingest_whole(store, settings, file, path),
    }
}

fn ingest_whole(
    store: &mut ObjectStore,
    settings: &IngestSettings,
    mut file: File,
    path: &Path,
) -> Result<FileContent, PublishError> {
    let mut writer = store.writer(settings.algorithm, settings.compression);
    std::io::copy(&mut file, &mut writer).io("reading", path)?;
    let size = writer.input_bytes();
    let hash = store.commit(writer, ObjectKind::File)?;
    Ok(FileContent::Whole { hash, size })
}

/// The chunk being written and the chunks already stored.
struct ChunkState {
    current: ObjectWriter,
    offset: u64,
    done: Vec<ChunkRecord>,
}

impl ChunkState {
    /// Closes the current chunk as a `P` object and opens the next one.
    fn cut(&mut self, store: &mut ObjectStore, settings: &IngestSettings) -> Result<(), PublishError> {
        let next = store.writer(settings.algorithm, settings.compression);
        let finished = std::mem::replace(&mut self.current, next);
        let size = finished.input_bytes();
        let hash = store.commit(finished, ObjectKind::Partial)?;
        self.done.push(ChunkRecord { offset: self.offset, size, hash });
        self.offset += size;
        Ok(())
    }
}

fn ingest_chunked(
    store: &mut ObjectStore,
    settings: &IngestSettings,
    sizes: ChunkSizes,
    mut file: File,
    path: &Path,
) -> Result<FileContent, PublishError> {
    let mut chunker = Xor32Chunker::new(sizes);
    let mut state = ChunkState {
        current: store.writer(settings.algorithm, settings.compression),
        offset: 0,
        done: Vec::new(),
    };
    let mut buffer = vec![0u8; BLOCK];
    loop {
        let n = read_some(&mut file, &mut buffer).io("reading", path)?;
        if n == 0 {
            break;
        }
        let mut rest = &buffer[..n];
        while let Some(cut) = chunker.next_cut(rest) {
            state.current.write_all(&rest[..cut]).io("compressing", path)?;
            state.cut(store, settings)?;
            rest = &rest[cut..];
        }
        state.current.write_all(rest).io("compressing", path)?;
    }
    if state.done.is_empty() {
        // A single piece: an ordinary file, as upstream stores it.
        let size = state.current.input_bytes();
        let hash = store.commit(state.current, ObjectKind::File)?;
        return Ok(FileContent::Whole { hash, size });
    }
    if state.current.input_bytes() > 0 {
        state.cut(store, settings)?;
    }
    Ok(FileContent::Chunked { size: state.offset, chunks: state.done })
}

fn read_some(file: &mut File, buffer: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match file.read(buffer) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunker::chunk_lengths;

    #[test]
    fn chunked_and_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ObjectStore::open(&dir.path().join("s")).unwrap();
        let sizes = ChunkSizes::new(1024, 2048, 4096).unwrap();
        let settings = IngestSettings {
            algorithm: Algorithm::Sha1,
            compression: Compression::Zlib,
            chunking: Some(sizes),
        };
        let data: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let file = dir.path().join("f");
        std::fs::write(&file, &data).unwrap();
        let FileContent::Chunked { chunks, size } =
            ingest_file(&mut store, &settings, &file, 100_000).unwrap()
        else {
            panic!("expected chunks")
        };
        assert_eq!(size, 100_000);
        let lengths: Vec<u64> = chunks.iter().map(|c| c.size).collect();
        assert_eq!(lengths, chunk_lengths(sizes, &data));
        std::fs::write(&file, &data[..1024]).unwrap();
        let small = ingest_file(&mut store, &settings, &file, 1024).unwrap();
        assert!(matches!(small, FileContent::Whole { size: 1024, .. }));
        std::fs::write(&file, vec![0u8; 4096]).unwrap();
        let one_piece = ingest_file(&mut store, &settings, &file, 4096).unwrap();
        assert!(matches!(one_piece, FileContent::Whole { size: 4096, .. }), "a single chunk is a whole file");
    }
}

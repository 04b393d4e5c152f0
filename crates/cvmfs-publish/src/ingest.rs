//! Turning one regular file into objects: a whole-file object, or chunks (`P`) cut by
//! the xor32 chunker. Unchunked files are streamed; chunked files are cut on the
//! reading thread and their chunks compressed on [`worker_count`] threads, so memory
//! stays within a few maximal chunks whatever the file size.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::{mpsc, Mutex};

use cvmfs_core::{Algorithm, Compression, ContentHash, ObjectKind};

use crate::chunker::{ChunkSizes, Xor32Chunker};
use crate::error::{IoContext, PublishError};
use crate::store::ObjectStore;

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
    store: &ObjectStore,
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

/// How many threads compress in parallel.
pub fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4)
}

fn ingest_whole(
    store: &ObjectStore,
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

/// One chunk on its way to a compression worker.
struct Piece {
    offset: u64,
    data: Vec<u8>,
}

/// Cuts the file on the reading thread and compresses the chunks on worker threads; at
/// most one chunk waits in the queue, so memory stays within a few maximal chunks.
fn ingest_chunked(
    store: &ObjectStore,
    settings: &IngestSettings,
    sizes: ChunkSizes,
    file: File,
    path: &Path,
) -> Result<FileContent, PublishError> {
    let (sender, receiver) = mpsc::sync_channel::<Piece>(1);
    let receiver = Mutex::new(receiver);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..worker_count())
            .map(|_| scope.spawn(|| compress_pieces(store, settings, &receiver)))
            .collect();
        let split = split_file(store, settings, sizes, file, path, &sender);
        drop(sender);
        let mut chunks = Vec::new();
        let mut failure = None;
        for worker in workers {
            match worker.join().unwrap_or_else(|_| Err(worker_panicked(path))) {
                Ok(mut done) => chunks.append(&mut done),
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        let split = split?;
        if let Some(e) = failure {
            return Err(e);
        }
        if let Some(whole) = split {
            return Ok(whole);
        }
        chunks.sort_by_key(|c| c.offset);
        let size = chunks.iter().map(|c| c.size).sum();
        Ok(FileContent::Chunked { chunks, size })
    })
}

fn worker_panicked(path: &Path) -> PublishError {
    PublishError::Source { path: path.to_path_buf(), reason: "a compression thread panicked".into() }
}

/// Reads and cuts the file, sending every chunk to the workers. A file that stays one
/// piece is stored here as an ordinary file and returned.
fn split_file(
    store: &ObjectStore,
    settings: &IngestSettings,
    sizes: ChunkSizes,
    mut file: File,
    path: &Path,
    sender: &mpsc::SyncSender<Piece>,
) -> Result<Option<FileContent>, PublishError> {
    let mut chunker = Xor32Chunker::new(sizes);
    let mut current = Piece { offset: 0, data: Vec::new() };
    let mut sent_any = false;
    let mut buffer = vec![0u8; BLOCK];
    loop {
        let n = read_some(&mut file, &mut buffer).io("reading", path)?;
        if n == 0 {
            break;
        }
        let mut rest = &buffer[..n];
        while let Some(cut) = chunker.next_cut(rest) {
            current.data.extend_from_slice(&rest[..cut]);
            let offset = current.offset + current.data.len() as u64;
            let full = std::mem::replace(&mut current, Piece { offset, data: Vec::new() });
            send(sender, full, path)?;
            sent_any = true;
            rest = &rest[cut..];
        }
        current.data.extend_from_slice(rest);
    }
    if !sent_any {
        // A single piece: an ordinary file, as upstream stores it.
        let hash = store.put(&current.data, ObjectKind::File, settings.algorithm, settings.compression)?;
        return Ok(Some(FileContent::Whole { hash, size: current.data.len() as u64 }));
    }
    if !current.data.is_empty() {
        send(sender, current, path)?;
    }
    Ok(None)
}

fn send(sender: &mpsc::SyncSender<Piece>, piece: Piece, path: &Path) -> Result<(), PublishError> {
    sender.send(piece).map_err(|_| worker_panicked(path))
}

/// A worker: stores pieces as `P` objects until the queue closes. After a failure it
/// keeps draining the queue (so the reader never blocks) and reports the first error.
fn compress_pieces(
    store: &ObjectStore,
    settings: &IngestSettings,
    receiver: &Mutex<mpsc::Receiver<Piece>>,
) -> Result<Vec<ChunkRecord>, PublishError> {
    let mut result = Ok(Vec::new());
    loop {
        let next = receiver.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
        let Ok(piece) = next else { return result };
        if let Ok(done) = &mut result {
            match store.put(&piece.data, ObjectKind::Partial, settings.algorithm, settings.compression) {
                Ok(hash) => {
                    done.push(ChunkRecord { offset: piece.offset, size: piece.data.len() as u64, hash })
                }
                Err(e) => result = Err(e),
            }
        }
    }
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
        let store = ObjectStore::open(&dir.path().join("s")).unwrap();
        let sizes = ChunkSizes::new(1024, 2048, 4096).unwrap();
        let settings = IngestSettings {
            algorithm: Algorithm::Sha1,
            compression: Compression::Zlib,
            chunking: Some(sizes),
        };
        let data: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let file = dir.path().join("f");
        std::fs::write(&file, &data).unwrap();
        let FileContent::Chunked { chunks, size } = ingest_file(&store, &settings, &file, 100_000).unwrap()
        else {
            panic!("expected chunks")
        };
        assert_eq!(size, 100_000);
        let lengths: Vec<u64> = chunks.iter().map(|c| c.size).collect();
        assert_eq!(lengths, chunk_lengths(sizes, &data));
        std::fs::write(&file, &data[..1024]).unwrap();
        let small = ingest_file(&store, &settings, &file, 1024).unwrap();
        assert!(matches!(small, FileContent::Whole { size: 1024, .. }));
        std::fs::write(&file, vec![0u8; 4096]).unwrap();
        let one_piece = ingest_file(&store, &settings, &file, 4096).unwrap();
        assert!(matches!(one_piece, FileContent::Whole { size: 4096, .. }), "a single chunk is a whole file");
    }
}

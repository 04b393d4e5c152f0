//! A whole repository revision, read through a [`RepositorySource`]: the verified
//! manifest, the history, the chosen root catalog with its nested catalogs, and file
//! contents whose every byte is checked against its content hash before it is handed out.
//!
//! This is the reader behind `cvmfs-inspect` and the writer's round-trip tests. The
//! mounting client builds the same pieces (trust chain, [`CatalogTree`]) over its cache
//! and download manager instead.
//!
//! What it is not for: caching (every object is fetched again), network fail-over (the
//! source's business) or inode numbering.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use crate::blacklist::Blacklist;
use crate::catalog::tree::LoadError;
use crate::catalog::{Catalog, CatalogError, CatalogLoader, CatalogTree, TreeEntry, TreeError};
use crate::compression::Compression;
use crate::hash::ContentHash;
use crate::history::{History, HistoryError, Tag};
use crate::object::{ObjectId, ObjectKind};
use crate::path::RepoPath;
use crate::signature::KeyRing;
use crate::trust::{
    check_revision_blacklist, verify_manifest, SourceError, TrustContext, TrustError, TrustSource,
    VerifiedManifest,
};
use crate::verify::{read_verified_to_vec, VerifyError, VerifyingWriter};

/// Inflated catalogs and history databases larger than this are refused.
pub const MAX_DATABASE_BYTES: u64 = 8 << 30;
/// Largest manifest or whitelist accepted from a source.
pub const MAX_LETTER_BYTES: usize = 1 << 20;

/// Raw bytes of the files of a repository, by path relative to its root (what a
/// Stratum-1 serves under `/cvmfs/<fqrn>/`): `.cvmfspublished`, `.cvmfswhitelist`,
/// `data/ab/cdef…C`. Nothing a source returns is trusted.
pub trait RepositorySource: Send + Sync {
    fn fetch(&self, relative: &str) -> Result<Vec<u8>, SourceError>;
    /// Where `relative` lives (a path or a URL), for error messages.
    fn location(&self, relative: &str) -> String;
}

/// Which revision to open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RevisionChoice {
    /// The manifest's root catalog.
    #[default]
    Head,
    /// A named tag of the history database.
    Tag(String),
    /// The newest tag at or before this unix time (upstream's `CVMFS_REPOSITORY_DATE`).
    Date(i64),
    /// This root catalog; trusted because the caller chose it.
    RootHash(ContentHash),
}

/// What the caller trusts and wants.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub fqrn: String,
    pub keys: KeyRing,
    pub blacklist: Blacklist,
    /// Unix seconds, for the whitelist expiry.
    pub now: u64,
    /// Rollback floor for the manifest timestamp (0 = none).
    pub minimum_timestamp: u64,
    pub revision: RevisionChoice,
    /// A writable directory for inflated catalogs and the history database; it must
    /// outlive the [`Repository`].
    pub scratch: PathBuf,
}

#[derive(Debug, Error)]
pub enum RepositoryError {
    #[error("cannot read {location}: {source}")]
    Fetch { location: String, source: SourceError },
    #[error("{location} is larger than {limit} bytes; it is not a manifest or whitelist")]
    LetterTooLarge { location: String, limit: usize },
    #[error("trust chain of {location}: {source}")]
    Trust { location: String, source: TrustError },
    #[error("{kind} object {id} from {location} fails verification: {source}")]
    Object { kind: &'static str, id: ObjectId, location: String, source: VerifyError },
    #[error("history database {id}: {source}")]
    History { id: ObjectId, source: HistoryError },
    #[error("the manifest names no history database, so tag '{0}' cannot be resolved")]
    NoHistory(String),
    #[error("tag '{0}' does not exist in the history database (see the `tags` command)")]
    NoSuchTag(String),
    #[error("no tag at or before unix time {0} exists in the history database")]
    NoTagAtDate(i64),
    #[error("{0}")]
    Tree(#[from] TreeError),
    #[error("{path}: {source}")]
    Catalog { path: String, source: CatalogError },
    #[error("{0}: no such file or directory")]
    NotFound(String),
    #[error("{0}: not a regular file")]
    NotAFile(String),
    #[error("{path}: external file; its data is not stored in the repository")]
    External { path: String },
    #[error("{path}: content is {actual} bytes, the catalog says {expected}")]
    SizeMismatch { path: String, expected: u64, actual: u64 },
    #[error("{path}: {problem}")]
    BadChunkList { path: String, problem: String },
    #[error("writing output failed: {0}")]
    Output(std::io::Error),
    #[error("scratch directory {dir}: {source}")]
    Scratch { dir: PathBuf, source: std::io::Error },
}

/// One opened, verified revision of a repository.
pub struct Repository {
    source: Arc<dyn RepositorySource>,
    manifest: VerifiedManifest,
    history: Option<History>,
    selected_tag: Option<Tag>,
    tree: CatalogTree<SourceCatalogLoader>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("fqrn", &self.manifest.manifest.repository_name)
            .field("root", &self.tree.root().hash)
            .finish()
    }
}

impl Repository {
    /// Verifies the manifest's trust chain, picks the revision and loads its root catalog.
    pub fn open(
        source: Arc<dyn RepositorySource>,
        options: &OpenOptions,
    ) -> Result<Repository, RepositoryError> {
        std::fs::create_dir_all(&options.scratch)
            .map_err(|e| RepositoryError::Scratch { dir: options.scratch.clone(), source: e })?;
        let manifest = verify_trust(source.as_ref(), options)?;
        let history = load_history(source.as_ref(), &manifest, &options.scratch)?;
        let (root_hash, selected_tag) = choose_root(&manifest, history.as_ref(), &options.revision)?;
        let loader = SourceCatalogLoader { source: Arc::clone(&source), scratch: options.scratch.clone() };
        let tree = CatalogTree::new(loader, root_hash)?;
        let revision = tree.root().catalog.revision();
        check_revision_blacklist(&options.blacklist, &options.fqrn, revision)
            .map_err(|source| RepositoryError::Trust { location: source_location(&tree), source })?;
        Ok(Repository { source, manifest, history, selected_tag, tree })
    }

    pub fn manifest(&self) -> &VerifiedManifest {
        &self.manifest
    }

    pub fn history(&self) -> Option<&History> {
        self.history.as_ref()
    }

    /// The tag the revision was chosen by, if any.
    pub fn selected_tag(&self) -> Option<&Tag> {
        self.selected_tag.as_ref()
    }

    pub fn root_hash(&self) -> ContentHash {
        self.tree.root().hash
    }

    /// The `revision` property of the opened root catalog.
    pub fn revision(&self) -> u64 {
        self.tree.root().catalog.revision()
    }

    pub fn tree(&self) -> &CatalogTree<SourceCatalogLoader> {
        &self.tree
    }

    /// Every tag, newest first (empty without a history database).
    pub fn tags(&self) -> Result<Vec<Tag>, RepositoryError> {
        match (&self.history, self.manifest.manifest.history_object()) {
            (Some(history), Some(id)) => {
                history.tags().map_err(|source| RepositoryError::History { id, source })
            }
            _ => Ok(Vec::new()),
        }
    }

    /// The entry at `path`, which must exist.
    pub fn stat(&self, path: &RepoPath) -> Result<TreeEntry, RepositoryError> {
        self.tree.lookup(path)?.ok_or_else(|| RepositoryError::NotFound(path.to_string_lossy()))
    }

    /// The visible entries of directory `path`.
    pub fn list(&self, path: &RepoPath) -> Result<Vec<TreeEntry>, RepositoryError> {
        Ok(self.tree.list(path)?)
    }

    /// Writes the content of a regular file to `out`, one verified object (whole file or
    /// chunk) at a time: nothing of an object reaches `out` before its hash matched.
    pub fn write_content(&self, entry: &TreeEntry, out: &mut dyn Write) -> Result<u64, RepositoryError> {
        let path = entry.path.to_string_lossy();
        for piece in self.content_pieces(entry)? {
            let bytes = self.fetch_verified(piece.id, entry.entry.compression, piece.size, "file")?;
            if bytes.len() as u64 != piece.size {
                return Err(RepositoryError::SizeMismatch {
                    path,
                    expected: piece.size,
                    actual: bytes.len() as u64,
                });
            }
            out.write_all(&bytes).map_err(RepositoryError::Output)?;
        }
        Ok(entry.entry.size)
    }

    /// The content of a regular file, verified.
    pub fn read_content(&self, entry: &TreeEntry) -> Result<Vec<u8>, RepositoryError> {
        let mut out = Vec::with_capacity(usize::try_from(entry.entry.size).unwrap_or(0).min(1 << 30));
        self.write_content(entry, &mut out)?;
        Ok(out)
    }

    /// The objects holding a regular file's content, in file order.
    pub fn content_pieces(&self, entry: &TreeEntry) -> Result<Vec<ContentPiece>, RepositoryError> {
        content_pieces(entry)
    }

    /// Walks every catalog of the revision and checks every object it references.
    pub fn verify_all(&self) -> Result<VerifyReport, RepositoryError> {
        let mut walk = VerifyWalk { repository: self, seen: HashSet::new(), report: VerifyReport::default() };
        walk.directory(&RepoPath::root())?;
        walk.report.catalogs = self.tree.loaded().len();
        Ok(walk.report)
    }

    /// Fetches one object and checks it; `expected_size` caps the inflated size.
    pub fn fetch_verified(
        &self,
        id: ObjectId,
        compression: Compression,
        expected_size: u64,
        kind: &'static str,
    ) -> Result<Vec<u8>, RepositoryError> {
        fetch_object(self.source.as_ref(), id, compression, expected_size, kind)
    }
}

/// The objects holding a regular file's content, in file order: its chunks (checked to
/// tile the file exactly) or its one object; none for an empty file without a hash.
pub fn content_pieces(entry: &TreeEntry) -> Result<Vec<ContentPiece>, RepositoryError> {
    let path = entry.path.to_string_lossy();
    if !entry.entry.is_regular() {
        return Err(RepositoryError::NotAFile(path));
    }
    if entry.entry.is_external() {
        return Err(RepositoryError::External { path });
    }
    if entry.entry.is_chunked() {
        let chunks =
            entry.chunks().map_err(|source| RepositoryError::Catalog { path: path.clone(), source })?;
        return chunk_pieces(&path, entry.entry.size, &chunks);
    }
    if entry.entry.size == 0 && entry.entry.content_hash.is_none() {
        return Ok(Vec::new());
    }
    let id = entry.entry.object_id().ok_or_else(|| RepositoryError::BadChunkList {
        path: path.clone(),
        problem: "regular file without a content hash".into(),
    })?;
    Ok(vec![ContentPiece { id, offset: 0, size: entry.entry.size }])
}

/// One object of a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentPiece {
    pub id: ObjectId,
    pub offset: u64,
    pub size: u64,
}

/// What [`Repository::verify_all`] checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub catalogs: usize,
    pub entries: u64,
    /// Distinct content objects (files and chunks) fetched and checked.
    pub objects: u64,
    pub bytes: u64,
    /// External files, whose data lives outside the repository.
    pub external: u64,
}

struct VerifyWalk<'a> {
    repository: &'a Repository,
    seen: HashSet<ObjectId>,
    report: VerifyReport,
}

impl VerifyWalk<'_> {
    fn directory(&mut self, dir: &RepoPath) -> Result<(), RepositoryError> {
        for entry in self.repository.list(dir)? {
            self.report.entries += 1;
            if entry.entry.is_directory() {
                self.directory(&entry.path)?;
            } else if entry.entry.is_regular() {
                self.file(&entry)?;
            }
        }
        Ok(())
    }

    fn file(&mut self, entry: &TreeEntry) -> Result<(), RepositoryError> {
        if entry.entry.is_external() {
            self.report.external += 1;
            return Ok(());
        }
        for piece in self.repository.content_pieces(entry)? {
            if !self.seen.insert(piece.id) {
                continue;
            }
            let bytes =
                self.repository.fetch_verified(piece.id, entry.entry.compression, piece.size, "file")?;
            if bytes.len() as u64 != piece.size {
                return Err(RepositoryError::SizeMismatch {
                    path: entry.path.to_string_lossy(),
                    expected: piece.size,
                    actual: bytes.len() as u64,
                });
            }
            self.report.objects += 1;
            self.report.bytes += piece.size;
        }
        Ok(())
    }
}

/// Chunks must tile the file: start at 0, no gaps or overlaps, end at its size.
fn chunk_pieces(
    path: &str,
    size: u64,
    chunks: &[crate::catalog::Chunk],
) -> Result<Vec<ContentPiece>, RepositoryError> {
    let bad = |problem: String| RepositoryError::BadChunkList { path: path.to_string(), problem };
    let mut next = 0u64;
    let mut pieces = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        if chunk.offset != next {
            return Err(bad(format!("chunk at offset {} where {next} was expected", chunk.offset)));
        }
        next = next.checked_add(chunk.size).ok_or_else(|| bad("chunk sizes overflow".into()))?;
        pieces.push(ContentPiece { id: chunk.object_id(), offset: chunk.offset, size: chunk.size });
    }
    if next != size {
        return Err(bad(format!("chunks cover {next} bytes of a {size}-byte file")));
    }
    Ok(pieces)
}

fn fetch_object(
    source: &dyn RepositorySource,
    id: ObjectId,
    compression: Compression,
    limit: u64,
    kind: &'static str,
) -> Result<Vec<u8>, RepositoryError> {
    let relative = id.data_path();
    let stored = source.fetch(&relative).map_err(|source_error| RepositoryError::Fetch {
        location: source.location(&relative),
        source: source_error,
    })?;
    read_verified_to_vec(&stored, id.hash, compression, limit).map_err(|e| RepositoryError::Object {
        kind,
        id,
        location: source.location(&relative),
        source: e,
    })
}

fn fetch_letter(source: &dyn RepositorySource, relative: &str) -> Result<Vec<u8>, RepositoryError> {
    let bytes = source
        .fetch(relative)
        .map_err(|e| RepositoryError::Fetch { location: source.location(relative), source: e })?;
    if bytes.len() > MAX_LETTER_BYTES {
        return Err(RepositoryError::LetterTooLarge {
            location: source.location(relative),
            limit: MAX_LETTER_BYTES,
        });
    }
    Ok(bytes)
}

/// Adapts a [`RepositorySource`] to what the trust chain fetches.
struct TrustAdapter<'a>(&'a dyn RepositorySource);

impl TrustSource for TrustAdapter<'_> {
    fn fetch_object(&self, id: &ObjectId, alternative_path: bool) -> Result<Vec<u8>, SourceError> {
        if alternative_path {
            // `.cvmfsalt-*` is a shortcut for servers that hide `data/`; data/ is canonical.
            if let Ok(bytes) = self.0.fetch(&id.alt_path()) {
                return Ok(bytes);
            }
        }
        self.0.fetch(&id.data_path())
    }

    fn fetch_whitelist(&self) -> Result<Vec<u8>, SourceError> {
        let bytes = self.0.fetch(".cvmfswhitelist")?;
        if bytes.len() > MAX_LETTER_BYTES {
            return Err(format!(
                "{} is larger than {MAX_LETTER_BYTES} bytes",
                self.0.location(".cvmfswhitelist")
            )
            .into());
        }
        Ok(bytes)
    }
}

fn verify_trust(
    source: &dyn RepositorySource,
    options: &OpenOptions,
) -> Result<VerifiedManifest, RepositoryError> {
    let raw = fetch_letter(source, ".cvmfspublished")?;
    let ctx = TrustContext {
        fqrn: &options.fqrn,
        keys: &options.keys,
        blacklist: &options.blacklist,
        now: options.now,
        minimum_timestamp: options.minimum_timestamp,
        base_root_hash: None,
    };
    verify_manifest(&raw, &ctx, &TrustAdapter(source))
        .map_err(|e| RepositoryError::Trust { location: source.location(".cvmfspublished"), source: e })
}

fn load_history(
    source: &dyn RepositorySource,
    manifest: &VerifiedManifest,
    scratch: &Path,
) -> Result<Option<History>, RepositoryError> {
    let Some(id) = manifest.manifest.history_object() else { return Ok(None) };
    let file = inflate_to_scratch(source, id, scratch, "history")?;
    History::open(&file).map(Some).map_err(|source| RepositoryError::History { id, source })
}

fn choose_root(
    manifest: &VerifiedManifest,
    history: Option<&History>,
    choice: &RevisionChoice,
) -> Result<(ContentHash, Option<Tag>), RepositoryError> {
    let history_id = manifest.manifest.history_object();
    let need_history = |label: String| match (history, history_id) {
        (Some(h), Some(id)) => Ok((h, id)),
        _ => Err(RepositoryError::NoHistory(label)),
    };
    match choice {
        RevisionChoice::Head => Ok((manifest.manifest.catalog_hash, None)),
        RevisionChoice::RootHash(hash) => Ok((*hash, None)),
        RevisionChoice::Tag(name) => {
            let (history, id) = need_history(name.clone())?;
            let tag = history.tag(name).map_err(|source| RepositoryError::History { id, source })?;
            let tag = tag.ok_or_else(|| RepositoryError::NoSuchTag(name.clone()))?;
            Ok((tag.hash, Some(tag)))
        }
        RevisionChoice::Date(when) => {
            let (history, id) = need_history(format!("at {when}"))?;
            let tag = history.tag_at(*when).map_err(|source| RepositoryError::History { id, source })?;
            let tag = tag.ok_or(RepositoryError::NoTagAtDate(*when))?;
            Ok((tag.hash, Some(tag)))
        }
    }
}

/// Fetches a zlib database object (catalog or history), verifies and inflates it into
/// `scratch/<hash><suffix>.db` and returns that path. Written under a temporary name
/// and renamed, so a half-written file is never opened.
fn inflate_to_scratch(
    source: &dyn RepositorySource,
    id: ObjectId,
    scratch: &Path,
    kind: &'static str,
) -> Result<PathBuf, RepositoryError> {
    let name = format!("{}{}.db", id.hash.hex(), id.kind.suffix().map(String::from).unwrap_or_default());
    let file = scratch.join(&name);
    if file.exists() {
        return Ok(file);
    }
    let relative = id.data_path();
    let stored = source
        .fetch(&relative)
        .map_err(|e| RepositoryError::Fetch { location: source.location(&relative), source: e })?;
    let scratch_error =
        |e: std::io::Error| RepositoryError::Scratch { dir: scratch.to_path_buf(), source: e };
    let partial = scratch.join(format!(".{name}.partial"));
    let out = BufWriter::new(File::create(&partial).map_err(scratch_error)?);
    let mut writer = VerifyingWriter::new(id.hash, Compression::Zlib, out, MAX_DATABASE_BYTES);
    let verified = writer.write_raw(&stored).and_then(|()| writer.finish());
    let object_error =
        |e| RepositoryError::Object { kind, id, location: source.location(&relative), source: e };
    let mut out = match verified {
        Ok(out) => out,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(object_error(e));
        }
    };
    out.flush().map_err(scratch_error)?;
    drop(out);
    std::fs::rename(&partial, &file).map_err(scratch_error)?;
    Ok(file)
}

fn source_location(tree: &CatalogTree<SourceCatalogLoader>) -> String {
    let root = ObjectId::new(tree.root().hash, ObjectKind::Catalog);
    tree.loader().source.location(&root.data_path())
}

/// Loads catalogs by hash from the source: fetch, verify, inflate into the scratch
/// directory, open.
pub struct SourceCatalogLoader {
    source: Arc<dyn RepositorySource>,
    scratch: PathBuf,
}

impl CatalogLoader for SourceCatalogLoader {
    fn load(&self, hash: &ContentHash, _mountpoint: &RepoPath) -> Result<Arc<Catalog>, LoadError> {
        let id = ObjectId::new(*hash, ObjectKind::Catalog);
        let file = inflate_to_scratch(self.source.as_ref(), id, &self.scratch, "catalog")?;
        Ok(Arc::new(Catalog::open(&file)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Chunk;

    fn chunk(offset: u64, size: u64) -> Chunk {
        Chunk { offset, size, hash: ContentHash::of(crate::Algorithm::Sha1, &offset.to_le_bytes()) }
    }

    #[test]
    fn chunks_must_tile_the_file() {
        assert_eq!(chunk_pieces("/f", 10, &[chunk(0, 4), chunk(4, 6)]).unwrap().len(), 2);
        assert!(chunk_pieces("/f", 10, &[chunk(0, 4), chunk(5, 5)]).is_err());
        assert!(chunk_pieces("/f", 10, &[chunk(0, 4), chunk(4, 4)]).is_err());
        assert!(chunk_pieces("/f", 10, &[chunk(0, 4), chunk(4, u64::MAX)]).is_err());
        assert!(chunk_pieces("/f", 0, &[]).unwrap().is_empty());
    }
}

//! One publish: source tree in, new signed revision out.
//!
//! Order of writes, so that an interrupted publish leaves the previous revision served:
//! content objects and catalogs, the certificate, meta-info and history objects (all
//! content-addressed: new names only), then a `syncfs`, then `.cvmfswhitelist` and last
//! `.cvmfspublished`, each written to a temporary file, synced and renamed into place.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use cvmfs_core::letter::assemble;
use cvmfs_core::manifest::{Manifest, DEFAULT_TTL};
use cvmfs_core::signature::{sign_manifest_hash_line, sign_whitelist_hash_line};
use cvmfs_core::whitelist::Whitelist;
use cvmfs_core::{Algorithm, Compression, ContentHash, ObjectKind};
use tracing::info;

use crate::build::{BuildStats, TreeBuilder};
use crate::chunker::ChunkSizes;
use crate::error::{IoContext, PublishError};
use crate::history::{check_tag_name, generic_tag_name, has_tag, write_history, TagRow};
use crate::ingest::IngestSettings;
use crate::keys::{check_fqrn, load_keys, RepositoryKeys};
use crate::previous::Previous;
use crate::store::{readable_temp_file, ObjectStore, StoreStats};

/// Whitelist validity upstream uses with a master key file.
pub const DEFAULT_WHITELIST_DAYS: u32 = 30;

/// What to publish and how.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub fqrn: String,
    /// Holds `NAME.key`, `NAME.crt`, `NAME.masterkey` (and `NAME.pub`).
    pub keys_dir: PathBuf,
    /// The directory served as `<server>/cvmfs/NAME`.
    pub storage: PathBuf,
    /// The tree to publish.
    pub source: PathBuf,
    /// Tag name; `None` gives the automatic `generic-<time>` tag.
    pub tag: Option<String>,
    pub tag_description: String,
    pub algorithm: Algorithm,
    pub compression: Compression,
    /// `None` disables chunking.
    pub chunking: Option<ChunkSizes>,
    pub whitelist_days: u32,
    /// Root catalog `TTL` property and manifest `D`.
    pub ttl: u64,
    /// Repository meta-info JSON to store as the `M` object.
    pub meta_info: Option<PathBuf>,
    /// Publish extended attributes of the source.
    pub xattrs: bool,
    /// The publish time (unix seconds); `None` is the current time.
    pub now: Option<u64>,
}

impl PublishOptions {
    /// Upstream's defaults: SHA-1, zlib, 4/8/16 MiB chunks, 30-day whitelist, TTL 240 s.
    pub fn new(fqrn: &str, keys_dir: &Path, storage: &Path, source: &Path) -> PublishOptions {
        PublishOptions {
            fqrn: fqrn.to_string(),
            keys_dir: keys_dir.to_path_buf(),
            storage: storage.to_path_buf(),
            source: source.to_path_buf(),
            tag: None,
            tag_description: String::new(),
            algorithm: Algorithm::Sha1,
            compression: Compression::Zlib,
            chunking: Some(ChunkSizes::default()),
            whitelist_days: DEFAULT_WHITELIST_DAYS,
            ttl: DEFAULT_TTL,
            meta_info: None,
            xattrs: true,
            now: None,
        }
    }
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishReport {
    pub revision: u64,
    pub root_hash: ContentHash,
    pub root_size: u64,
    pub tag: String,
    pub timestamp: u64,
    pub build: BuildStats,
    pub objects: StoreStats,
}

/// The current unix time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Publishes `options.source` as the next revision of the repository in
/// `options.storage` (the first one if the storage is empty).
pub fn publish(options: &PublishOptions) -> Result<PublishReport, PublishError> {
    check_fqrn(&options.fqrn)?;
    check_layout(options)?;
    let keys = load_keys(&options.fqrn, &options.keys_dir)?;
    let store = ObjectStore::open(&options.storage)?;
    let scratch = tempfile::Builder::new()
        .prefix("publish-")
        .tempdir_in(store.txn_dir())
        .io("creating a scratch directory in", store.txn_dir())?;
    let previous = Previous::load(&store, &options.fqrn, scratch.path())?;
    let now = options.now.unwrap_or_else(unix_now);
    let tag_name = options.tag.clone().unwrap_or_else(|| generic_tag_name(now));
    check_tag_name(&tag_name)?;
    if let Some(history) = previous.as_ref().and_then(|p| p.history.as_deref()) {
        if has_tag(history, &tag_name)? {
            return Err(PublishError::TagExists(tag_name));
        }
    }
    let revision = previous.as_ref().map_or(1, |p| p.manifest.revision + 1);
    let settings = IngestSettings {
        algorithm: options.algorithm,
        compression: options.compression,
        chunking: options.chunking,
    };
    let mut builder = TreeBuilder::new(
        &store,
        settings,
        options.xattrs,
        scratch.path().to_path_buf(),
        previous.as_ref(),
        revision,
        now,
        options.ttl,
    );
    let root = builder.build(&options.source)?;
    let build_stats = builder.stats;
    let tag = TagRow {
        name: tag_name,
        hash: root.hash,
        revision,
        timestamp: now,
        description: options.tag_description.clone(),
        size: root.size,
    };
    let mut manifest = Manifest::new(root.hash, root.size, &options.fqrn);
    manifest.ttl = options.ttl;
    manifest.revision = revision;
    manifest.publish_timestamp = now;
    let objects =
        RepositoryObjects { keys: &keys, options, previous: previous.as_ref(), scratch: scratch.path() };
    objects.store_all(&store, &tag, &mut manifest)?;
    sync_storage(&options.storage)?;
    let whitelist = signed_whitelist(&keys, &options.fqrn, options.algorithm, now, options.whitelist_days)?;
    replace_file(&options.storage.join(".cvmfswhitelist"), &whitelist)?;
    ensure_master_replica(&options.storage)?;
    replace_file(&options.storage.join(".cvmfspublished"), &signed_manifest(&keys, &manifest)?)?;
    info!(revision, root = %root.hash, tag = %tag.name, "published");
    Ok(PublishReport {
        revision,
        root_hash: root.hash,
        root_size: root.size,
        tag: tag.name,
        timestamp: now,
        build: build_stats,
        objects: store.stats(),
    })
}

/// The source must be a directory, and neither the storage nor the keys may lie inside
/// it (they would be published, and the storage would grow with every publish).
fn check_layout(options: &PublishOptions) -> Result<(), PublishError> {
    let source = options.source.canonicalize().io("resolving the source", &options.source)?;
    if !source.is_dir() {
        return Err(PublishError::SourceNotDirectory(options.source.clone()));
    }
    for (inner, what) in [(&options.storage, "the storage"), (&options.keys_dir, "the key directory")] {
        if resolve(inner).is_some_and(|p| p.starts_with(&source)) {
            return Err(PublishError::Source {
                path: inner.clone(),
                reason: format!("{what} lies inside the source tree"),
            });
        }
    }
    Ok(())
}

/// The absolute path of `path`, which may not exist yet (its parent must).
fn resolve(path: &Path) -> Option<PathBuf> {
    path.canonicalize().ok().or_else(|| {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Some(parent.canonicalize().ok()?.join(path.file_name()?))
    })
}

/// The certificate, meta-info and history objects of a revision.
struct RepositoryObjects<'a> {
    keys: &'a RepositoryKeys,
    options: &'a PublishOptions,
    previous: Option<&'a Previous>,
    scratch: &'a Path,
}

impl RepositoryObjects<'_> {
    fn store_all(
        &self,
        store: &ObjectStore,
        tag: &TagRow,
        manifest: &mut Manifest,
    ) -> Result<(), PublishError> {
        let algorithm = self.options.algorithm;
        let certificate =
            store.put(&self.keys.certificate_pem, ObjectKind::Certificate, algorithm, Compression::Zlib)?;
        manifest.certificate = Some(certificate);
        if let Some(file) = &self.options.meta_info {
            let json = std::fs::read(file).io("reading the meta-info", file)?;
            manifest.meta_info =
                Some(store.put(&json, ObjectKind::MetaInfo, algorithm, Compression::Zlib)?);
        }
        let previous_history = self.previous.and_then(|p| p.history.as_deref());
        let previous_hash =
            self.previous.and_then(|p| p.manifest.history).unwrap_or_else(|| ContentHash::null(algorithm));
        let file = write_history(
            previous_history,
            previous_hash,
            &self.scratch.join("history.db"),
            &self.options.fqrn,
            tag,
        )?;
        manifest.history = Some(store.put_file(&file, ObjectKind::History, algorithm)?);
        Ok(())
    }
}

/// `.cvmfspublished`: the letter, `--`, its hash, the RSA/SHA-1 signature of the hash
/// line made with the repository (certificate) key.
pub fn signed_manifest(keys: &RepositoryKeys, manifest: &Manifest) -> Result<Vec<u8>, PublishError> {
    let letter = manifest.export();
    let hash = manifest.letter_hash(letter.as_bytes());
    let signature = sign_manifest_hash_line(&keys.private, hash.to_string().as_bytes())
        .map_err(|e| PublishError::Sign(e.to_string()))?;
    Ok(assemble(letter.as_bytes(), &hash, &signature))
}

/// `.cvmfswhitelist`: valid from `now` for `days`, listing the certificate fingerprint,
/// signed (raw PKCS#1) with the master key.
pub fn signed_whitelist(
    keys: &RepositoryKeys,
    fqrn: &str,
    algorithm: Algorithm,
    now: u64,
    days: u32,
) -> Result<Vec<u8>, PublishError> {
    let expires = now.saturating_add(u64::from(days) * 86_400);
    let fingerprint = keys.certificate.fingerprint(algorithm);
    let letter = Whitelist::export(now, expires, fqrn, &[fingerprint]);
    let hash = ContentHash::of(algorithm, letter.as_bytes());
    let signature = sign_whitelist_hash_line(&keys.master, hash.to_string().as_bytes())
        .map_err(|e| PublishError::Sign(e.to_string()))?;
    Ok(assemble(letter.as_bytes(), &hash, &signature))
}

/// Writes `bytes` to a temporary file next to `target`, syncs it and renames it over
/// `target` (readers see the old or the new file, never a partial one).
fn replace_file(target: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let mut file = readable_temp_file(dir).io("creating a temporary file in", dir)?;
    file.write_all(bytes).io("writing", file.path())?;
    file.as_file().sync_all().io("syncing", file.path())?;
    file.persist(target).map_err(|e| e.error).io("replacing", target)?;
    Ok(())
}

/// The empty marker saying the repository may be replicated (`.cvmfs_master_replica`).
fn ensure_master_replica(storage: &Path) -> Result<(), PublishError> {
    let marker = storage.join(".cvmfs_master_replica");
    if !marker.exists() {
        std::fs::write(&marker, b"").io("creating", &marker)?;
    }
    Ok(())
}

/// Flushes every object to disk before the manifest may name them.
fn sync_storage(storage: &Path) -> Result<(), PublishError> {
    let dir = std::fs::File::open(storage).io("opening", storage)?;
    // SAFETY: syncfs takes a valid open descriptor, which `dir` holds.
    let rc = unsafe { libc::syncfs(std::os::unix::io::AsRawFd::as_raw_fd(&dir)) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).io("syncing", storage);
    }
    Ok(())
}

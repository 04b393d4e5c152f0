//! The mount lifecycle: which root catalog to serve, proving it is the publisher's,
//! rollback protection with the breadcrumb, mounting from the cache alone when the
//! network is down, and switching to new revisions.
//!
//! A [`Revision`] is immutable: a verified root with its catalog tree. The mount holds
//! the current one behind a lock and replaces it whole on a revision switch; readers
//! that already hold the old one (open files, a listing in progress) finish on it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cvmfs_cache::{Cache, CacheConfig, QuotaLimit};
use cvmfs_core::blacklist::Blacklist;
use cvmfs_core::breadcrumb::Breadcrumb;
use cvmfs_core::catalog::tree::LoadError;
use cvmfs_core::catalog::{Catalog, CatalogLoader, CatalogTree, TreeError};
use cvmfs_core::history::{History, HistoryError};
use cvmfs_core::path::RepoPath;
use cvmfs_core::signature::{KeyError, KeyRing};
use cvmfs_core::trust::{
    check_revision_blacklist, verify_manifest, SourceError, TrustContext, TrustError, TrustSource,
    VerifiedManifest,
};
use cvmfs_core::{Compression, ContentHash, ObjectId, ObjectKind};
use thiserror::Error;
use tracing::{info, warn};

use crate::config::{ClientConfig, RootSelection};
use crate::error::ClientError;
use crate::fetch::{Downloader, FetchError};
use crate::objects::ObjectStore;

/// Largest manifest or whitelist accepted.
const MAX_LETTER_BYTES: u64 = 1 << 20;
/// After a failed revision check, try again this much later (upstream: 180 s).
pub const OFFLINE_RETRY: Duration = Duration::from_secs(180);

#[derive(Debug, Error)]
pub enum MountError {
    #[error("no master public key configured: set CVMFS_PUBLIC_KEY or CVMFS_KEYS_DIR")]
    NoKeys,
    #[error("loading master public keys: {0}")]
    Keys(#[from] KeyError),
    #[error("opening the cache: {0}")]
    Cache(#[from] cvmfs_cache::CacheError),
    #[error("no server configured: set CVMFS_SERVER_URL")]
    NoServer,
    #[error("failed to discover HTTP proxy servers: {0}")]
    ProxyDiscovery(String),
    #[error("cannot fetch the manifest: {0}")]
    Manifest(FetchError),
    #[error("the manifest is not trustworthy: {0}")]
    Trust(Box<TrustError>),
    #[error(
        "failed to initialize root file catalog: {cause}; no usable revision is in the cache either \
         (check CVMFS_SERVER_URL, the proxy and the keys)"
    )]
    NoRevision { cause: String },
    #[error("CVMFS_ROOT_HASH '{0}' is not a content hash")]
    BadRootHash(String),
    #[error("the history database (tags) cannot be loaded: {0}")]
    History(String),
    #[error("repository has no tag '{0}'")]
    NoSuchTag(String),
    #[error("repository has no tag at or before {0} (CVMFS_REPOSITORY_DATE)")]
    NoTagAtDate(u64),
    #[error("root catalog {hash}: {source}")]
    RootCatalog { hash: ContentHash, source: Box<TreeError> },
}

/// What a revision check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Fixed root (tag, date, root hash, `CVMFS_AUTO_UPDATE=no`): nothing to check.
    Fixed,
    UpToDate,
    /// Switched from revision `from` to `to`.
    Applied {
        from: u64,
        to: u64,
    },
    /// The check failed; the current revision stays (offline mode until a check works).
    Failed(String),
}

/// One verified revision.
pub struct Revision {
    pub tree: CatalogTree<CacheCatalogLoader>,
    pub root_hash: ContentHash,
    /// The manifest's publish timestamp (0 when unknown, e.g. a fixed root hash).
    pub timestamp: u64,
    /// The verified manifest it came from, if any (not for fixed roots or offline).
    pub manifest: Option<VerifiedManifest>,
    /// The tag named by configuration (`CVMFS_REPOSITORY_TAG` or resolved date).
    pub tag: Option<String>,
    /// No revision checks (tag, date, root hash, auto update off).
    pub fixed: bool,
    /// Served from the cache because the network or the manifest failed.
    pub offline: bool,
    pub loaded_at: Instant,
}

impl std::fmt::Debug for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revision")
            .field("root_hash", &self.root_hash)
            .field("revision", &self.revision())
            .field("fixed", &self.fixed)
            .field("offline", &self.offline)
            .finish()
    }
}

impl Revision {
    pub fn revision(&self) -> u64 {
        self.tree.root().catalog.revision()
    }

    /// Catalog TTL capped by `CVMFS_MAX_TTL`.
    pub fn ttl(&self, max_ttl: Option<Duration>) -> Duration {
        let ttl = Duration::from_secs(self.tree.root().catalog.properties().ttl_seconds);
        max_ttl.map_or(ttl, |max| ttl.min(max))
    }
}

/// The parts a mount is built from, made once from configuration.
pub struct Parts {
    pub config: ClientConfig,
    pub keys: KeyRing,
    pub objects: Arc<ObjectStore>,
    pub blacklist: Mutex<Blacklist>,
    /// Unix time source; tests move it.
    pub clock: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl Parts {
    /// Opens the cache and loads keys and blacklists as configured.
    pub fn new(config: ClientConfig, downloader: Arc<dyn Downloader>) -> Result<Parts, MountError> {
        let keys = load_keys(&config)?;
        let cache = Cache::new(cache_config(&config))?;
        let blacklist = Mutex::new(load_blacklist(&config));
        let objects = Arc::new(ObjectStore::new(cache, downloader));
        Ok(Parts { config, keys, objects, blacklist, clock: Box::new(unix_now) })
    }

    pub fn now(&self) -> u64 {
        (self.clock)()
    }

    fn trust_context<'a>(
        &'a self,
        blacklist: &'a Blacklist,
        minimum: u64,
        base: Option<ContentHash>,
    ) -> TrustContext<'a> {
        TrustContext {
            fqrn: &self.config.fqrn,
            keys: &self.keys,
            blacklist,
            now: self.now(),
            minimum_timestamp: minimum,
            base_root_hash: base,
        }
    }

    /// Fetches and verifies the manifest; `minimum` is the rollback floor.
    pub fn verified_manifest(
        &self,
        minimum: u64,
        base: Option<ContentHash>,
    ) -> Result<VerifiedManifest, MountError> {
        let raw = self
            .objects
            .downloader()
            .fetch_file(".cvmfspublished", MAX_LETTER_BYTES)
            .map_err(MountError::Manifest)?;
        let blacklist = self.blacklist.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let ctx = self.trust_context(&blacklist, minimum, base);
        let source = DownloaderTrust { downloader: self.objects.downloader().as_ref() };
        verify_manifest(&raw, &ctx, &source).map_err(|e| MountError::Trust(Box::new(e)))
    }

    pub fn breadcrumb(&self) -> Option<Breadcrumb> {
        let raw = self.objects.cache().read_breadcrumb(&self.config.fqrn).ok().flatten()?;
        Breadcrumb::parse(&raw).ok()
    }

    fn write_breadcrumb(&self, revision: &Revision) {
        if revision.timestamp == 0 || revision.fixed {
            return;
        }
        let crumb = Breadcrumb {
            catalog_hash: revision.root_hash,
            timestamp: revision.timestamp,
            revision: revision.revision(),
        };
        if let Err(e) = self.objects.cache().write_breadcrumb(&self.config.fqrn, crumb.to_string().as_bytes())
        {
            warn!(error = %e, "cannot write the breadcrumb; rollback protection is weaker until it works");
        }
    }

    /// A tree over `root`, its root catalog loaded (from the cache or the network).
    pub fn tree(&self, root: ContentHash) -> Result<CatalogTree<CacheCatalogLoader>, MountError> {
        let loader = CacheCatalogLoader::new(Arc::clone(&self.objects));
        CatalogTree::new(loader, root)
            .map_err(|e| MountError::RootCatalog { hash: root, source: Box::new(e) })
    }

    fn check_blacklisted_revision(&self, revision: u64) -> Result<(), MountError> {
        let blacklist = self.blacklist.lock().unwrap_or_else(PoisonError::into_inner);
        check_revision_blacklist(&blacklist, &self.config.fqrn, revision)
            .map_err(|e| MountError::Trust(Box::new(e)))
    }

    /// Reloads the blacklist files (at every revision check, as upstream).
    pub fn reload_blacklist(&self) {
        *self.blacklist.lock().unwrap_or_else(PoisonError::into_inner) = load_blacklist(&self.config);
    }

    /// The revision to serve at mount time.
    pub fn initial_revision(&self) -> Result<Revision, MountError> {
        let revision = match &self.config.root {
            RootSelection::RootHash(text) => self.fixed_root(text)?,
            RootSelection::Tag(name) => {
                self.tagged(|h| h.tag(name), || MountError::NoSuchTag(name.clone()))?
            }
            RootSelection::Date(when) => {
                let at = i64::try_from(*when).unwrap_or(i64::MAX);
                self.tagged(|h| h.tag_at(at), || MountError::NoTagAtDate(*when))?
            }
            RootSelection::Head => self.head_or_cached()?,
        };
        self.check_blacklisted_revision(revision.revision())?;
        self.write_breadcrumb(&revision);
        info!(
            fqrn = %self.config.fqrn,
            revision = revision.revision(),
            root = %revision.root_hash,
            offline = revision.offline,
            "mounted"
        );
        Ok(revision)
    }

    fn fixed_root(&self, text: &str) -> Result<Revision, MountError> {
        let hash = ContentHash::parse(text.trim_end_matches('C'))
            .map_err(|_| MountError::BadRootHash(text.to_string()))?;
        self.revision(hash, None, None, true, false)
    }

    fn tagged(
        &self,
        find: impl Fn(&History) -> Result<Option<cvmfs_core::history::Tag>, HistoryError>,
        missing: impl Fn() -> MountError,
    ) -> Result<Revision, MountError> {
        let manifest = self.verified_manifest(0, None)?;
        let history_id = manifest
            .manifest
            .history_object()
            .ok_or_else(|| MountError::History("the manifest names none".into()))?;
        let object = self
            .objects
            .get(&history_id, Compression::Zlib, None, "history database")
            .map_err(|e| MountError::History(e.to_string()))?;
        let history_path = self.objects.cache().dir().join(history_id.cache_path());
        let history = History::open(&history_path).map_err(|e| MountError::History(e.to_string()))?;
        drop(object);
        let tag = find(&history).map_err(|e| MountError::History(e.to_string()))?.ok_or_else(missing)?;
        let timestamp = u64::try_from(tag.timestamp).unwrap_or(0);
        let mut revision = self.revision(tag.hash, Some(manifest), Some(tag.name), true, false)?;
        revision.timestamp = timestamp;
        Ok(revision)
    }

    /// HEAD from a verified manifest; if that fails, the breadcrumb's revision from the
    /// cache (offline mode). A manifest older than the breadcrumb is a rollback: the
    /// cached newer revision is served instead.
    fn head_or_cached(&self) -> Result<Revision, MountError> {
        let crumb = self.breadcrumb();
        let floor = crumb.map_or(0, |c| c.timestamp);
        let fixed = !self.config.auto_update;
        match self.verified_manifest(floor, None) {
            Ok(manifest) => {
                let root = manifest.manifest.catalog_hash;
                let timestamp = manifest.manifest.publish_timestamp;
                let mut revision = self.revision(root, Some(manifest), None, fixed, false)?;
                revision.timestamp = timestamp;
                Ok(revision)
            }
            Err(cause) => {
                let Some(crumb) = crumb else {
                    return Err(MountError::NoRevision { cause: cause.to_string() });
                };
                warn!(error = %cause, root = %crumb.catalog_hash, "manifest unusable; mounting the cached revision (offline mode)");
                let mut revision =
                    self.revision(crumb.catalog_hash, None, None, fixed, true).map_err(|e| {
                        MountError::NoRevision { cause: format!("{cause}; cached revision: {e}") }
                    })?;
                revision.timestamp = crumb.timestamp;
                Ok(revision)
            }
        }
    }

    fn revision(
        &self,
        root: ContentHash,
        manifest: Option<VerifiedManifest>,
        tag: Option<String>,
        fixed: bool,
        offline: bool,
    ) -> Result<Revision, MountError> {
        let tree = self.tree(root)?;
        let timestamp = manifest.as_ref().map_or(0, |m| m.manifest.publish_timestamp);
        Ok(Revision {
            tree,
            root_hash: root,
            timestamp,
            manifest,
            tag,
            fixed,
            offline,
            loaded_at: Instant::now(),
        })
    }

    /// Looks for a newer revision than `current`; returns it if there is one.
    pub fn newer_revision(&self, current: &Revision) -> Result<Option<Revision>, MountError> {
        self.reload_blacklist();
        self.check_blacklisted_revision(current.revision())?;
        let manifest = self.verified_manifest(current.timestamp, Some(current.root_hash))?;
        if manifest.manifest.catalog_hash == current.root_hash {
            return Ok(None);
        }
        let timestamp = manifest.manifest.publish_timestamp;
        let mut next = self.revision(manifest.manifest.catalog_hash, Some(manifest), None, false, false)?;
        next.timestamp = timestamp;
        self.check_blacklisted_revision(next.revision())?;
        self.write_breadcrumb(&next);
        Ok(Some(next))
    }
}

fn load_keys(config: &ClientConfig) -> Result<KeyRing, MountError> {
    let mut ring = KeyRing::new();
    for key in &config.public_keys {
        ring.load_file(key)?;
    }
    if ring.is_empty() {
        if let Some(dir) = &config.keys_dir {
            ring = KeyRing::from_dir(dir)?;
        }
    }
    if ring.is_empty() {
        return Err(MountError::NoKeys);
    }
    Ok(ring)
}

/// `CVMFS_BLACKLIST` plus the config repository's `etc/cvmfs/blacklist`; missing files
/// are no blacklist, as upstream.
fn load_blacklist(config: &ClientConfig) -> Blacklist {
    let mut files: Vec<PathBuf> = vec![config.blacklist.clone()];
    if let Some(repo) = &config.config_repository {
        files.push(config.mount_dir.join(repo).join("etc/cvmfs/blacklist"));
    }
    Blacklist::load_files(&files).unwrap_or_else(|e| {
        warn!(error = %e, "cannot read the blacklist");
        Blacklist::new()
    })
}

fn cache_config(config: &ClientConfig) -> CacheConfig {
    let quota = match config.quota_limit_mb {
        Some(mb) => QuotaLimit::from_mb(i64::try_from(mb).unwrap_or(i64::MAX)),
        None => QuotaLimit::from_mb(-1),
    };
    CacheConfig::new(config.effective_cache_dir()).with_quota(quota)
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The trust chain reads the certificate and whitelist through the downloader.
struct DownloaderTrust<'a> {
    downloader: &'a dyn Downloader,
}

impl TrustSource for DownloaderTrust<'_> {
    fn fetch_object(&self, id: &ObjectId, alternative_path: bool) -> Result<Vec<u8>, SourceError> {
        if alternative_path {
            if let Ok(bytes) = self.downloader.fetch_file(&id.alt_path(), MAX_LETTER_BYTES) {
                return Ok(bytes);
            }
        }
        Ok(self.downloader.fetch_file(&id.data_path(), MAX_LETTER_BYTES)?)
    }

    fn fetch_whitelist(&self) -> Result<Vec<u8>, SourceError> {
        Ok(self.downloader.fetch_file(".cvmfswhitelist", MAX_LETTER_BYTES)?)
    }
}

/// Loads catalogs through the object store, pinned in the cache while the tree lives.
pub struct CacheCatalogLoader {
    objects: Arc<ObjectStore>,
    pinned: Mutex<Vec<ObjectId>>,
}

impl CacheCatalogLoader {
    fn new(objects: Arc<ObjectStore>) -> CacheCatalogLoader {
        CacheCatalogLoader { objects, pinned: Mutex::new(Vec::new()) }
    }
}

impl CatalogLoader for CacheCatalogLoader {
    fn load(&self, hash: &ContentHash, mountpoint: &RepoPath) -> Result<Arc<Catalog>, LoadError> {
        let id = ObjectId::new(*hash, ObjectKind::Catalog);
        let what = format!("catalog for {}", display(mountpoint));
        let object = self.objects.get_pinned(&id, Compression::Zlib, &what).map_err(boxed)?;
        self.pinned.lock().unwrap_or_else(PoisonError::into_inner).push(id);
        let path = self.objects.cache().dir().join(id.cache_path());
        let catalog = Catalog::open(&path);
        drop(object);
        match catalog {
            Ok(catalog) => Ok(Arc::new(catalog)),
            Err(e) => {
                // A cached catalog that does not open was damaged on disk: drop it so
                // the next attempt downloads a verified copy.
                self.objects.cache().unpin(&id);
                self.objects.report_corrupt(&id);
                Err(Box::new(e))
            }
        }
    }
}

impl Drop for CacheCatalogLoader {
    fn drop(&mut self) {
        for id in self.pinned.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
            self.objects.cache().unpin(&id);
        }
    }
}

fn boxed(e: ClientError) -> LoadError {
    Box::new(e)
}

pub fn display(path: &RepoPath) -> String {
    if path.is_root() {
        "/".into()
    } else {
        path.to_string_lossy()
    }
}

//! How the client gets bytes from Stratum-1s: the [`Downloader`] seam between the mount
//! and the network, and [`FileDownloader`] for `file://` server URLs.
//!
//! The mount never sees HTTP: `cvmfs-proxy`'s download manager (proxy chains, fail-over,
//! PAC, Geo-API) implements [`Downloader`]; `file://` URLs, which upstream also accepts
//! in `CVMFS_SERVER_URL` (a repository on a local or shared file system), are read
//! directly. Either way every object passes through `cvmfs_core::verify` before a byte
//! of it is used.

use std::path::{Component, Path, PathBuf};

use cvmfs_core::verify::{RewindableSink, VerifyError, VerifyingWriter};
use cvmfs_core::{Compression, ObjectId};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum FetchError {
    #[error("{what}: not found at {location}")]
    NotFound { what: String, location: String },
    #[error("{what} from {location}: {source}")]
    Verify { what: String, location: String, source: VerifyError },
    #[error("{what}: {message}")]
    Failed { what: String, message: String },
    #[error("{what} is larger than {limit} bytes")]
    TooLarge { what: String, limit: u64 },
    #[error("{what}: no space left in the cache ({message})")]
    NoSpace { what: String, message: String },
}

impl FetchError {
    pub fn is_no_space(&self) -> bool {
        matches!(self, FetchError::NoSpace { .. })
    }
}

/// Where the current host/proxy stand, for `user.host`, `user.proxy` and `cvmfs_talk`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkInfo {
    pub host: String,
    /// The host chain in its current order (not rotated).
    pub host_list: Vec<String>,
    pub proxy: String,
    pub proxy_list: Vec<String>,
    pub timeout_seconds: u64,
    pub timeout_direct_seconds: u64,
    pub bytes_received: u64,
    pub downloads: u64,
    pub speed_kib_per_second: Option<u64>,
}

/// Run-time changes of the network path (`cvmfs_talk host switch`, `proxy set`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkControl {
    SwitchHost,
    SetHosts(Vec<String>),
    SwitchProxyGroup,
    Rebalance,
    SetProxies(String),
    /// Proxy and direct timeouts; zero = none.
    SetTimeouts(std::time::Duration, std::time::Duration),
    /// Reorder the hosts with the Geo-API.
    ProbeGeo,
}

/// Fetches repository files and objects. Implementations decide hosts, proxies and
/// retries; they must hand out only verified object bytes.
pub trait Downloader: Send + Sync {
    /// A small unverified file of the repository root (`.cvmfspublished`,
    /// `.cvmfswhitelist`) or a raw stored object (`data/..`), at most `limit` bytes.
    fn fetch_file(&self, relative: &str, limit: u64) -> Result<Vec<u8>, FetchError>;

    /// Streams object `id` through inflate + hash verification into `sink` and returns
    /// the number of decompressed bytes. On error `sink` may hold a prefix: callers
    /// write into a cache transaction and abort it.
    fn fetch_object(
        &self,
        id: &ObjectId,
        compression: Compression,
        sink: &mut dyn RewindableSink,
        limit: u64,
    ) -> Result<u64, FetchError>;

    fn info(&self) -> NetworkInfo {
        NetworkInfo::default()
    }

    /// Applies a run-time change; `Err` says why it was not applied.
    fn control(&self, command: NetworkControl) -> Result<(), String> {
        Err(format!("{command:?} does not apply to this server"))
    }
}

/// Reads a repository from a directory (`file:///srv/cvmfs/<fqrn>` server URLs).
#[derive(Debug, Clone)]
pub struct FileDownloader {
    root: PathBuf,
    url: String,
}

impl FileDownloader {
    /// `url` is a `file://` URL of the repository root, after `@fqrn@` substitution.
    pub fn from_url(url: &str) -> Option<FileDownloader> {
        let path = url.strip_prefix("file://")?;
        Some(FileDownloader { root: PathBuf::from(path), url: url.to_string() })
    }

    fn resolve(&self, relative: &str) -> Result<PathBuf, FetchError> {
        let inside = Path::new(relative).components().all(|c| matches!(c, Component::Normal(_)));
        if !inside {
            return Err(FetchError::Failed {
                what: relative.to_string(),
                message: "path leaves the repository".into(),
            });
        }
        Ok(self.root.join(relative))
    }

    fn open(&self, relative: &str) -> Result<std::fs::File, FetchError> {
        let path = self.resolve(relative)?;
        std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                FetchError::NotFound { what: relative.to_string(), location: self.location(relative) }
            }
            _ => FetchError::Failed { what: self.location(relative), message: e.to_string() },
        })
    }

    fn location(&self, relative: &str) -> String {
        format!("{}/{relative}", self.url.trim_end_matches('/'))
    }
}

impl Downloader for FileDownloader {
    fn fetch_file(&self, relative: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        use std::io::Read;
        let mut bytes = Vec::new();
        let file = self.open(relative)?;
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| FetchError::Failed { what: self.location(relative), message: e.to_string() })?;
        if bytes.len() as u64 > limit {
            return Err(FetchError::TooLarge { what: self.location(relative), limit });
        }
        Ok(bytes)
    }

    fn fetch_object(
        &self,
        id: &ObjectId,
        compression: Compression,
        sink: &mut dyn RewindableSink,
        limit: u64,
    ) -> Result<u64, FetchError> {
        use std::io::Read;
        let relative = id.data_path();
        let mut file = self.open(&relative)?;
        let verify_error = |source| FetchError::Verify {
            what: format!("object {id}"),
            location: self.location(&relative),
            source,
        };
        let mut writer = VerifyingWriter::new(id.hash, compression, sink, limit);
        let mut buffer = vec![0u8; 128 << 10];
        loop {
            let n = file.read(&mut buffer).map_err(|e| verify_error(VerifyError::Source(e)))?;
            if n == 0 {
                break;
            }
            writer.write_raw(&buffer[..n]).map_err(verify_error)?;
        }
        let (_, decoded) = writer.finish_with_size().map_err(verify_error)?;
        Ok(decoded)
    }

    fn info(&self) -> NetworkInfo {
        NetworkInfo {
            host: self.url.clone(),
            host_list: vec![self.url.clone()],
            proxy: "DIRECT".into(),
            proxy_list: vec!["DIRECT".into()],
            ..NetworkInfo::default()
        }
    }
}

//! HTTP servers: the bridge from the mount's [`Downloader`] seam to `cvmfs-proxy`'s
//! download manager, and the mapping of `CVMFS_*` network parameters onto it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use cvmfs_core::verify::RewindableSink;
use cvmfs_core::{Compression, ObjectId};
use cvmfs_proxy::{DownloadConfig, DownloadError, DownloadManager};
use tracing::warn;

use crate::config::ClientConfig;
use crate::fetch::{Downloader, FetchError, NetworkInfo};
use crate::mount::MountError;

/// `@fqrn@` and `@org@` (the first label of the name) substituted.
pub fn substitute(url: &str, fqrn: &str) -> String {
    let org = fqrn.split('.').next().unwrap_or(fqrn);
    url.replace("@fqrn@", fqrn).replace("@org@", org)
}

/// The download configuration of a mount.
pub fn download_config(config: &ClientConfig) -> DownloadConfig {
    let hosts = config.server_urls.iter().map(|u| substitute(u, &config.fqrn)).collect();
    let mut download = DownloadConfig::new(hosts);
    let proxy = config.http_proxy.clone().unwrap_or_default();
    let groups: Vec<&str> = proxy.split(';').filter(|g| !g.trim().eq_ignore_ascii_case("auto")).collect();
    if groups.len() != proxy.split(';').count() {
        warn!("CVMFS_HTTP_PROXY 'auto' (WPAD/PAC) is not supported yet; ignoring that group");
    }
    download.proxy =
        if groups.iter().all(|g| g.trim().is_empty()) { "DIRECT".into() } else { groups.join(";") };
    download.fallback_proxy = config.fallback_proxy.clone().unwrap_or_default();
    download.timeout = config.timeout;
    download.timeout_direct = config.timeout_direct;
    download.low_speed_limit = config.low_speed_limit;
    download.max_retries = config.max_retries;
    download.backoff_init = config.backoff_init;
    download.backoff_max = config.backoff_max;
    download.proxy_reset_after = config.proxy_reset_after;
    download.host_reset_after = config.host_reset_after;
    download
}

/// The download manager for `http://` and `https://` server URLs.
pub fn downloader(config: &ClientConfig) -> Result<Arc<dyn Downloader>, MountError> {
    let manager = DownloadManager::new(download_config(config))
        .map_err(|e| MountError::NoRevision { cause: format!("network set-up: {e}") })?;
    Ok(Arc::new(HttpDownloader { manager }))
}

/// [`Downloader`] over `cvmfs-proxy`.
#[derive(Debug)]
pub struct HttpDownloader {
    pub manager: DownloadManager,
}

fn fetch_error(e: DownloadError) -> FetchError {
    let message = e.to_string();
    match e {
        DownloadError::NotFound { what, url } => FetchError::NotFound { what, location: url },
        DownloadError::TooLarge { what, limit, .. } => FetchError::TooLarge { what, limit },
        DownloadError::LocalIo { what, message } => FetchError::NoSpace { what, message },
        _ => FetchError::Failed { what: "download".into(), message },
    }
}

impl Downloader for HttpDownloader {
    fn fetch_file(&self, relative: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        self.manager.fetch_file(relative, limit).map_err(fetch_error)
    }

    fn fetch_object(
        &self,
        id: &ObjectId,
        compression: Compression,
        sink: &mut dyn RewindableSink,
        limit: u64,
    ) -> Result<u64, FetchError> {
        self.manager.fetch_object(id, compression, sink, limit).map_err(fetch_error)
    }

    fn info(&self) -> NetworkInfo {
        let state = self.manager.state();
        NetworkInfo {
            host: state.host.clone(),
            host_list: rotate_to(&state.hosts, &state.host),
            proxy: state.proxy,
            proxy_list: state.proxies,
            timeout_seconds: state.timeout.as_secs(),
            timeout_direct_seconds: state.timeout_direct.as_secs(),
            bytes_received: self.manager.counters.bytes.load(Ordering::Relaxed),
            downloads: self.manager.counters.requests.load(Ordering::Relaxed),
            speed_kib_per_second: self.manager.speed_kib_per_second(),
        }
    }
}

/// The host list starting at the current host (`user.host_list`).
fn rotate_to(hosts: &[String], current: &str) -> Vec<String> {
    let start = hosts.iter().position(|h| h == current).unwrap_or(0);
    hosts[start..].iter().chain(&hosts[..start]).cloned().collect()
}

//! HTTP servers: the bridge from the mount's [`Downloader`] seam to `cvmfs-proxy`'s
//! download manager, and the mapping of `CVMFS_*` network parameters onto it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use cvmfs_core::verify::RewindableSink;
use cvmfs_core::{Compression, ObjectId};
use cvmfs_proxy::{DownloadConfig, DownloadError, DownloadManager};
use tracing::warn;

use crate::config::ClientConfig;
use crate::fetch::{Downloader, FetchError, NetworkControl, NetworkInfo};
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
    // Upstream's CA options: X509_CERT_BUNDLE (a file) and X509_CERT_DIR (a directory).
    for variable in ["X509_CERT_BUNDLE", "X509_CERT_DIR"] {
        if let Some(path) = std::env::var_os(variable) {
            download.ca_paths.push(path.into());
        }
    }
    download
}

/// The download manager for `http://` and `https://` server URLs: `auto` proxy groups
/// resolved (WPAD/PAC), Stratum-1s ordered by the Geo-API if asked, at most
/// `CVMFS_MAX_SERVERS` hosts.
pub fn downloader(config: &ClientConfig) -> Result<Arc<dyn Downloader>, MountError> {
    let client_id = client_uuid(config);
    let mut download = download_config(config);
    download.proxy = resolve_proxies(config, &download)?;
    let manager = DownloadManager::new(download)
        .map_err(|e| MountError::NoRevision { cause: format!("network set-up: {e}") })?;
    if config.use_geoapi {
        let _ = manager.order_hosts_by_geo_api(&client_id);
    }
    if let Some(max) = config.max_servers {
        let hosts = manager.state().hosts;
        if hosts.len() > max {
            manager.set_hosts(hosts[..max].to_vec());
        }
    }
    Ok(Arc::new(HttpDownloader { manager, client_id }))
}

/// `auto` groups of `CVMFS_HTTP_PROXY` through `$http_proxy` or `CVMFS_PAC_URLS` (spec
/// 3), with the last complete answer cached in the workspace for when discovery fails.
fn resolve_proxies(config: &ClientConfig, download: &DownloadConfig) -> Result<String, MountError> {
    if !download.proxy.split(';').any(|g| g.trim() == "auto") {
        return Ok(download.proxy.clone());
    }
    let bootstrap = DownloadManager::new(DownloadConfig { proxy: "DIRECT".into(), ..download.clone() })
        .map_err(|e| MountError::ProxyDiscovery(e.to_string()))?;
    let fetch = |url: &str| bootstrap.fetch_url(url, 1 << 20).ok();
    let env_proxy = std::env::var("http_proxy").ok();
    let first_host = download.hosts.first().cloned().unwrap_or_default();
    let (resolved, complete) = cvmfs_proxy::pac::resolve_auto(
        &download.proxy,
        &config.pac_urls,
        &first_host,
        env_proxy.as_deref(),
        &fetch,
    );
    let cache_file = config.effective_workspace().join(format!("proxies.cvmfs2-{}", config.fqrn));
    let resolved = if complete {
        let _ = std::fs::create_dir_all(config.effective_workspace());
        let _ = std::fs::write(&cache_file, &resolved);
        resolved
    } else {
        match std::fs::read_to_string(&cache_file) {
            Ok(cached) if !cached.trim().is_empty() => {
                warn!("proxy auto-discovery failed, using cached proxy settings");
                cached.trim().to_string()
            }
            _ => resolved,
        }
    };
    if resolved.trim().is_empty() {
        return Err(MountError::ProxyDiscovery("no PAC file gave a usable answer (CVMFS_PAC_URLS)".into()));
    }
    Ok(resolved)
}

/// A persistent random id for Geo-API requests without a proxy (`<workspace>/uuid`).
fn client_uuid(config: &ClientConfig) -> String {
    let file = config.effective_workspace().join("uuid");
    if let Ok(text) = std::fs::read_to_string(&file) {
        if !text.trim().is_empty() {
            return text.trim().to_string();
        }
    }
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let uuid = format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]);
    let _ = std::fs::create_dir_all(config.effective_workspace());
    let _ = std::fs::write(&file, &uuid);
    uuid
}

/// [`Downloader`] over `cvmfs-proxy`.
#[derive(Debug)]
pub struct HttpDownloader {
    pub manager: DownloadManager,
    /// Sent to the Geo-API when there is no proxy.
    pub client_id: String,
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
            host_list: state.hosts.clone(),
            proxy: state.proxy,
            proxy_list: state.proxies,
            timeout_seconds: state.timeout.as_secs(),
            timeout_direct_seconds: state.timeout_direct.as_secs(),
            bytes_received: self.manager.counters.bytes.load(Ordering::Relaxed),
            downloads: self.manager.counters.requests.load(Ordering::Relaxed),
            speed_kib_per_second: self.manager.speed_kib_per_second(),
        }
    }

    fn control(&self, command: NetworkControl) -> Result<(), String> {
        match command {
            NetworkControl::SwitchHost => self.manager.switch_host(),
            NetworkControl::SetHosts(hosts) => self.manager.set_hosts(hosts),
            NetworkControl::SwitchProxyGroup => self.manager.switch_proxy_group(),
            NetworkControl::Rebalance => self.manager.rebalance(),
            NetworkControl::SetProxies(chain) => {
                self.manager.set_proxies(&chain).map_err(|e| e.to_string())?
            }
            NetworkControl::SetTimeouts(proxy, direct) => self.manager.set_timeouts(proxy, direct),
            NetworkControl::ProbeGeo => {
                self.manager.order_hosts_by_geo_api(&self.client_id)?;
            }
        }
        Ok(())
    }
}

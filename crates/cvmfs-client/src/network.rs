//! HTTP servers: the bridge from the mount's [`Downloader`] seam to `cvmfs-proxy`.

use std::sync::Arc;

use crate::config::ClientConfig;
use crate::fetch::Downloader;
use crate::mount::MountError;

/// The download manager for `http://` and `https://` server URLs.
pub fn downloader(config: &ClientConfig) -> Result<Arc<dyn Downloader>, MountError> {
    Err(MountError::NoRevision {
        cause: format!(
            "server URL {:?}: HTTP servers are not wired to the download manager yet",
            config.server_urls.first()
        ),
    })
}

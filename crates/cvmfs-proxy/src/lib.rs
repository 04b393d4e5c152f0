//! The CernVM-FS download manager: where the client's bytes come from.
//!
//! What it does: the Stratum-1 host chain and the proxy chain (`;` groups, `|`
//! load-balanced members, `DIRECT`, fallback proxies) with upstream's fail-over state
//! shared by every request of a mount ([`chain`]); HTTP/1.1 over hyper with keep-alive
//! connections per endpoint, HTTPS via rustls, requests through proxies, upstream's
//! headers and timeouts and its classification of failures ([`http`]); retries with
//! backoff, no-cache repeats after bad data, proxy and host fail-over and their reset
//! timers, and streaming inflate + hash verification of objects into a rewindable sink
//! ([`manager::DownloadManager`]).
//!
//! What it is not for: caching (the caller hands in a cache transaction as the sink),
//! configuration files (the client maps `CVMFS_*` onto [`DownloadConfig`]) and
//! coalescing of concurrent requests for one object (the client's object store does
//! that in front of the cache).

pub mod chain;
pub mod http;
pub mod manager;
pub mod pac;

pub use chain::{ChainError, Proxy};
pub use manager::{DownloadConfig, DownloadError, DownloadManager, State};

//! The download manager: one per mount, shared by all its requests. Blocking API for
//! the (synchronous) client library; inside, a tokio runtime drives hyper.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use cvmfs_core::verify::{RewindableSink, VerifyingWriter};
use cvmfs_core::{Compression, ObjectId};
use rand::Rng;
use thiserror::Error;
use tracing::{debug, warn};

use crate::chain::{effective_chain, ChainError, Failover, Proxy, Route};
use crate::http::{tls_config, Client, ConsumeError, Failure, Pool, Timing};

/// The `CVMFS_*` network parameters, typed (the client library maps its configuration
/// onto this; this crate reads no files).
#[derive(Debug, Clone)]
pub struct DownloadConfig {
    /// `CVMFS_SERVER_URL` entries after `@fqrn@`/`@org@` substitution.
    pub hosts: Vec<String>,
    /// `CVMFS_HTTP_PROXY` (`auto` groups already resolved).
    pub proxy: String,
    /// `CVMFS_FALLBACK_PROXY`.
    pub fallback_proxy: String,
    pub timeout: Duration,
    pub timeout_direct: Duration,
    pub low_speed_limit: u64,
    pub max_retries: u32,
    pub backoff_init: Duration,
    pub backoff_max: Duration,
    pub proxy_reset_after: Duration,
    pub host_reset_after: Duration,
    /// Extra CA bundles or directories (`X509_CERT_BUNDLE`, `X509_CERT_DIR`).
    pub ca_paths: Vec<PathBuf>,
    /// Appended to `cvmfs Fuse <version>` in the User-Agent.
    pub user_agent: String,
}

impl DownloadConfig {
    /// Upstream's defaults for `hosts` with DIRECT access.
    pub fn new(hosts: Vec<String>) -> DownloadConfig {
        DownloadConfig {
            hosts,
            proxy: "DIRECT".into(),
            fallback_proxy: String::new(),
            timeout: Duration::from_secs(5),
            timeout_direct: Duration::from_secs(10),
            low_speed_limit: 1024,
            max_retries: 1,
            backoff_init: Duration::from_secs(2),
            backoff_max: Duration::from_secs(10),
            proxy_reset_after: Duration::ZERO,
            host_reset_after: Duration::ZERO,
            ca_paths: Vec::new(),
            user_agent: format!("cvmfs Fuse {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

#[derive(Debug, Error)]
pub enum DownloadError {
    #[error("{0}")]
    Config(#[from] ChainError),
    #[error("cannot start the network runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{what}: not found (HTTP 404) at {url}")]
    NotFound { what: String, url: String },
    #[error("{what}: failed after {attempts} attempt(s); last: {last} ({url})")]
    Failed { what: String, url: String, attempts: u32, last: String },
    #[error("{what}: corrupt data from every server tried ({last}; last {url})")]
    BadData { what: String, url: String, last: String },
    #[error("{what}: larger than {limit} bytes ({url})")]
    TooLarge { what: String, url: String, limit: u64 },
    #[error("{what}: writing locally failed: {message}")]
    LocalIo { what: String, message: String },
}

/// Counters for `user.rx`, `user.speed`, `cvmfs_talk` and metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub attempts: AtomicU64,
    pub retries: AtomicU64,
    pub proxy_failovers: AtomicU64,
    pub host_failovers: AtomicU64,
    pub bytes: AtomicU64,
    /// Wall time spent in successful transfers, microseconds (for the average speed).
    pub transfer_micros: AtomicU64,
}

/// Timeouts changeable at run time (`cvmfs_talk timeout set`).
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    proxy: Duration,
    direct: Duration,
    low_speed_limit: u64,
}

/// A snapshot for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub host: String,
    pub hosts: Vec<String>,
    pub proxy: String,
    pub proxies: Vec<String>,
    pub groups: Vec<Vec<String>>,
    pub current_group: usize,
    pub first_fallback: usize,
    pub timeout: Duration,
    pub timeout_direct: Duration,
}

pub struct DownloadManager {
    runtime: tokio::runtime::Runtime,
    client: Client,
    failover: Mutex<Failover>,
    timeouts: Mutex<Timeouts>,
    max_retries: u32,
    backoff_init: Duration,
    backoff_max: Duration,
    pub counters: Counters,
}

impl std::fmt::Debug for DownloadManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadManager").field("state", &self.state()).finish()
    }
}

/// Largest manifest, whitelist and similar small files read into memory by default.
pub const MAX_SMALL_FILE: u64 = 16 << 20;

impl DownloadManager {
    pub fn new(config: DownloadConfig) -> Result<DownloadManager, DownloadError> {
        let (groups, first_fallback) = effective_chain(&config.proxy, &config.fallback_proxy)?;
        let groups = crate::chain::expand_proxy_names(groups, &crate::chain::system_resolve);
        let mut failover = Failover::new(config.hosts.clone(), groups, first_fallback)?;
        failover.proxy_reset_after = config.proxy_reset_after;
        failover.host_reset_after = config.host_reset_after;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cvmfs-net")
            .enable_all()
            .build()
            .map_err(DownloadError::Runtime)?;
        let client = Client {
            pool: Pool::default(),
            tls: tls_config(&config.ca_paths),
            user_agent: config.user_agent,
        };
        Ok(DownloadManager {
            runtime,
            client,
            failover: Mutex::new(failover),
            timeouts: Mutex::new(Timeouts {
                proxy: config.timeout,
                direct: config.timeout_direct,
                low_speed_limit: config.low_speed_limit,
            }),
            max_retries: config.max_retries,
            backoff_init: config.backoff_init,
            backoff_max: config.backoff_max,
            counters: Counters::default(),
        })
    }

    /// A small file relative to the repository root (`.cvmfspublished`, ...), unverified.
    pub fn fetch_file(&self, relative: &str, limit: u64) -> Result<Vec<u8>, DownloadError> {
        let mut out = Vec::new();
        let mut plain = PlainAttempt { out: &mut out, limit };
        self.fetch_with(relative, relative, &mut plain, limit)?;
        Ok(out)
    }

    /// An absolute URL (PAC file, Geo-API) through the current proxy, one attempt, no
    /// host fail-over (spec 2.5).
    pub fn fetch_url(&self, url: &str, limit: u64) -> Result<Vec<u8>, DownloadError> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let proxy = self.failover.lock().unwrap_or_else(PoisonError::into_inner).current_proxy().clone();
        let mut out = Vec::new();
        let mut plain = PlainAttempt { out: &mut out, limit };
        let result = self.attempt(url, &proxy, false, &mut plain);
        match result {
            Ok(_) => Ok(out),
            Err(failure) => Err(final_error(url, url, &failure, 1, limit)),
        }
    }

    /// Orders the Stratum-1s by the Geo-API of the servers themselves (spec 4): asks
    /// up to three hosts `<host>/api/v1.0/geo/<who>/<names>`; the first valid answer
    /// reorders the host chain. Any failure keeps the configured order.
    pub fn order_hosts_by_geo_api(&self, client_id: &str) -> Result<Vec<String>, String> {
        let (hosts, proxy) = {
            let f = self.failover.lock().unwrap_or_else(PoisonError::into_inner);
            (f.hosts.clone(), f.current_proxy().clone())
        };
        if hosts.len() < 2 {
            return Ok(hosts);
        }
        let mut sorted: Vec<(String, String)> =
            hosts.iter().map(|h| (crate::pac::host_of(h), h.clone())).collect();
        sorted.sort();
        let names: Vec<&str> = sorted.iter().map(|(n, _)| n.as_str()).collect();
        let who = match &proxy.url {
            Some(url) => crate::pac::host_of(url),
            None => client_id.to_string(),
        };
        let mut order: Vec<usize> = (0..hosts.len()).collect();
        rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rand::thread_rng());
        let mut last = String::from("no host asked");
        for index in order.into_iter().take(3) {
            let url =
                format!("{}/api/v1.0/geo/{who}/{}", hosts[index].trim_end_matches('/'), names.join(","));
            match self
                .fetch_url(&url, 64 << 10)
                .map_err(|e| e.to_string())
                .and_then(|b| parse_geo_reply(&b, names.len()))
            {
                Ok(permutation) => {
                    let ordered: Vec<String> = permutation.iter().map(|&i| sorted[i].1.clone()).collect();
                    self.set_hosts(ordered.clone());
                    return Ok(ordered);
                }
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        tracing::warn!(reason = %last, "Geo-API ordering failed; keeping the configured host order");
        Err(last)
    }
    /// Streams object `id` through inflate + hash verification into `sink`; returns the
    /// decoded size. Bad data is retried with no-cache headers, then on other hosts;
    /// `sink` is rewound before every new attempt and holds only verified bytes on `Ok`.
    pub fn fetch_object(
        &self,
        id: &ObjectId,
        compression: Compression,
        sink: &mut dyn RewindableSink,
        limit: u64,
    ) -> Result<u64, DownloadError> {
        let relative = id.data_path();
        let what = format!("object {id}");
        let mut decoded = 0u64;
        let shared = SharedSink(Rc::new(RefCell::new(sink)));
        let mut attempt_sink = ObjectAttempt {
            id: *id,
            compression,
            limit,
            sink: shared,
            verifier: None,
            decoded: &mut decoded,
        };
        self.fetch_with(&relative, &what, &mut attempt_sink, limit)?;
        Ok(decoded)
    }

    /// The request cycle of spec 2.5-2.7 for one path.
    fn fetch_with(
        &self,
        relative: &str,
        what: &str,
        target: &mut dyn AttemptTarget,
        limit: u64,
    ) -> Result<(), DownloadError> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let mut job = Job::default();
        let (n_hosts, n_proxies) = {
            let f = self.failover.lock().unwrap_or_else(PoisonError::into_inner);
            (f.hosts.len() as u32, f.proxy_count() as u32)
        };
        loop {
            let route = self.route();
            let url = format!("{}/{}", route.host.trim_end_matches('/'), relative.trim_start_matches('/'));
            target
                .begin()
                .map_err(|e| DownloadError::LocalIo { what: what.into(), message: e.to_string() })?;
            let started = Instant::now();
            let result = self.attempt(&url, &route.proxy, job.no_cache, target);
            job.attempts += 1;
            let failure = match result {
                Ok(bytes) => match target.finish() {
                    Ok(()) => {
                        self.counters.bytes.fetch_add(bytes, Ordering::Relaxed);
                        self.counters
                            .transfer_micros
                            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                        return Ok(());
                    }
                    Err(ConsumeError::BadData(m)) => Failure::BadData(m),
                    Err(ConsumeError::LocalIo(m)) => {
                        return Err(DownloadError::LocalIo { what: what.into(), message: m });
                    }
                },
                Err(failure) => failure,
            };
            debug!(url = %url, proxy = %route.proxy.label(), failure = %failure.describe(), "attempt failed");
            match self.next_step(&mut job, &failure, &route, n_hosts, n_proxies) {
                Step::Again => continue,
                Step::Backoff(delay) => {
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(delay);
                }
                Step::GiveUp => return Err(final_error(what, &url, &failure, job.attempts, limit)),
            }
        }
    }

    fn route(&self) -> Route {
        let mut failover = self.failover.lock().unwrap_or_else(PoisonError::into_inner);
        failover.apply_resets(Instant::now());
        failover.route()
    }

    fn attempt(
        &self,
        url: &str,
        proxy: &Proxy,
        no_cache: bool,
        target: &mut dyn AttemptTarget,
    ) -> Result<u64, Failure> {
        self.counters.attempts.fetch_add(1, Ordering::Relaxed);
        let timeouts = *self.timeouts.lock().unwrap_or_else(PoisonError::into_inner);
        let timing = Timing {
            timeout: if proxy.is_direct() { timeouts.direct } else { timeouts.proxy },
            low_speed_limit: timeouts.low_speed_limit,
        };
        let mut consume = |bytes: &[u8]| target.consume(bytes);
        self.runtime.block_on(self.client.get(url, proxy, no_cache, timing, &mut consume))
    }

    /// Upstream's decision after a failed attempt (spec 2.6, 2.7).
    fn next_step(
        &self,
        job: &mut Job,
        failure: &Failure,
        route: &Route,
        n_hosts: u32,
        n_proxies: u32,
    ) -> Step {
        if matches!(failure, Failure::BadData(_)) && !job.no_cache {
            job.no_cache = true;
            return Step::Again;
        }
        let was_no_cache = std::mem::take(&mut job.no_cache);
        let same_path = !was_no_cache && job.retries < self.max_retries && failure.is_transfer();
        if failure.is_host_side() {
            if same_path {
                return Step::Backoff(self.backoff(job));
            }
            if job.used_hosts < n_hosts {
                self.counters.host_failovers.fetch_add(1, Ordering::Relaxed);
                self.failover
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .fail_host(route.host_index, &failure.describe());
                job.used_hosts += 1;
                return Step::Again;
            }
            return Step::GiveUp;
        }
        if failure.is_proxy_side() {
            if same_path {
                return Step::Backoff(self.backoff(job));
            }
            let mut failover = self.failover.lock().unwrap_or_else(PoisonError::into_inner);
            if job.used_proxies < n_proxies {
                self.counters.proxy_failovers.fetch_add(1, Ordering::Relaxed);
                failover.fail_proxy(&route.proxy, &failure.describe());
                job.used_proxies += 1;
                return Step::Again;
            }
            if job.used_hosts < n_hosts {
                warn!("all proxies failed, trying host fail-over");
                failover.reset_proxies();
                failover.fail_host(route.host_index, &failure.describe());
                self.counters.host_failovers.fetch_add(1, Ordering::Relaxed);
                job.used_proxies = 1;
                job.used_hosts += 1;
                return Step::Again;
            }
        }
        Step::GiveUp
    }

    fn backoff(&self, job: &mut Job) -> Duration {
        job.retries += 1;
        job.backoff = if job.backoff.is_zero() {
            let max_ms = self.backoff_init.as_millis() as u64;
            Duration::from_millis(rand::thread_rng().gen_range(0..=max_ms))
        } else {
            job.backoff * 2
        };
        job.backoff = job.backoff.min(self.backoff_max);
        job.backoff
    }

    /// Where requests go now.
    pub fn state(&self) -> State {
        let failover = self.failover.lock().unwrap_or_else(PoisonError::into_inner);
        let timeouts = *self.timeouts.lock().unwrap_or_else(PoisonError::into_inner);
        State {
            host: failover.hosts[failover.current_host].clone(),
            hosts: failover.hosts.clone(),
            proxy: failover.current_proxy().label().to_string(),
            proxies: failover.all_proxies().iter().map(|p| p.label().to_string()).collect(),
            groups: failover
                .groups
                .iter()
                .map(|g| g.iter().map(|p| p.label().to_string()).collect())
                .collect(),
            current_group: failover.current_group,
            first_fallback: failover.first_fallback,
            timeout: timeouts.proxy,
            timeout_direct: timeouts.direct,
        }
    }

    /// Average download speed in KiB/s, `None` before any transfer.
    pub fn speed_kib_per_second(&self) -> Option<u64> {
        let micros = self.counters.transfer_micros.load(Ordering::Relaxed);
        let bytes = self.counters.bytes.load(Ordering::Relaxed);
        (micros > 0).then(|| (bytes as u128 * 1_000_000 / micros as u128 / 1024) as u64)
    }

    /// `cvmfs_talk timeout set <proxy> <direct>`.
    pub fn set_timeouts(&self, proxy: Duration, direct: Duration) {
        let mut timeouts = self.timeouts.lock().unwrap_or_else(PoisonError::into_inner);
        timeouts.proxy = proxy;
        timeouts.direct = direct;
    }

    /// `cvmfs_talk host switch`.
    pub fn switch_host(&self) {
        self.failover.lock().unwrap_or_else(PoisonError::into_inner).switch_host();
    }

    /// `cvmfs_talk host set`.
    pub fn set_hosts(&self, hosts: Vec<String>) {
        self.failover.lock().unwrap_or_else(PoisonError::into_inner).set_hosts(hosts);
    }

    /// `cvmfs_talk proxy group switch`.
    pub fn switch_proxy_group(&self) {
        self.failover.lock().unwrap_or_else(PoisonError::into_inner).switch_group();
    }

    /// `cvmfs_talk proxy rebalance`.
    pub fn rebalance(&self) {
        self.failover.lock().unwrap_or_else(PoisonError::into_inner).rebalance();
    }

    /// `cvmfs_talk proxy set <chain>`: replaces the regular proxies, keeps the fallback.
    pub fn set_proxies(&self, regular: &str) -> Result<(), ChainError> {
        let mut failover = self.failover.lock().unwrap_or_else(PoisonError::into_inner);
        let fallback: Vec<String> = failover.groups[failover.first_fallback..]
            .iter()
            .map(|g| g.iter().map(|p| p.label().to_string()).collect::<Vec<_>>().join("|"))
            .collect();
        let (groups, first) = effective_chain(regular, &fallback.join(";"))?;
        let mut next = Failover::new(failover.hosts.clone(), groups, first)?;
        next.proxy_reset_after = failover.proxy_reset_after;
        next.host_reset_after = failover.host_reset_after;
        next.current_host = failover.current_host;
        *failover = next;
        Ok(())
    }
}

/// A valid Geo-API reply: a comma list of the 1-based indices 1..=n in some order.
pub fn parse_geo_reply(body: &[u8], n: usize) -> Result<Vec<usize>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "reply is not text".to_string())?;
    if !text.chars().all(|c| c.is_ascii_digit() || matches!(c, ',' | ' ' | '\n' | '\r')) {
        return Err(format!("reply {text:?} is not a list of numbers"));
    }
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let indices: Vec<usize> = compact
        .split(',')
        .map(|item| item.parse::<usize>().map_err(|_| format!("reply {text:?} is not a list of numbers")))
        .collect::<Result<_, _>>()?;
    let mut seen = vec![false; n];
    if indices.len() != n {
        return Err(format!("reply has {} entries for {n} servers", indices.len()));
    }
    for &i in &indices {
        if i == 0 || i > n || seen[i - 1] {
            return Err(format!("reply {text:?} is not a permutation of 1..{n}"));
        }
        seen[i - 1] = true;
    }
    Ok(indices.into_iter().map(|i| i - 1).collect())
}

#[derive(Debug)]
struct Job {
    retries: u32,
    backoff: Duration,
    used_proxies: u32,
    used_hosts: u32,
    no_cache: bool,
    attempts: u32,
}

impl Default for Job {
    fn default() -> Job {
        Job {
            retries: 0,
            backoff: Duration::ZERO,
            used_proxies: 1,
            used_hosts: 1,
            no_cache: false,
            attempts: 0,
        }
    }
}

enum Step {
    Again,
    Backoff(Duration),
    GiveUp,
}

fn final_error(what: &str, url: &str, failure: &Failure, attempts: u32, limit: u64) -> DownloadError {
    match failure {
        Failure::HostHttp(404) => DownloadError::NotFound { what: what.into(), url: url.into() },
        Failure::BadData(m) if m.contains("exceeds the limit") => {
            DownloadError::TooLarge { what: what.into(), url: url.into(), limit }
        }
        Failure::BadData(m) => DownloadError::BadData { what: what.into(), url: url.into(), last: m.clone() },
        Failure::LocalIo(m) => DownloadError::LocalIo { what: what.into(), message: m.clone() },
        other => {
            DownloadError::Failed { what: what.into(), url: url.into(), attempts, last: other.describe() }
        }
    }
}

fn consume_error(e: cvmfs_core::verify::VerifyError) -> ConsumeError {
    if e.is_bad_data() {
        ConsumeError::BadData(e.to_string())
    } else {
        ConsumeError::LocalIo(e.to_string())
    }
}

/// What one attempt writes into.
trait AttemptTarget {
    /// Prepares for a new attempt (discarding a previous one).
    fn begin(&mut self) -> std::io::Result<()>;
    fn consume(&mut self, bytes: &[u8]) -> Result<(), ConsumeError>;
    /// The attempt's body is complete: final checks.
    fn finish(&mut self) -> Result<(), ConsumeError>;
}

struct PlainAttempt<'a> {
    out: &'a mut Vec<u8>,
    limit: u64,
}

impl AttemptTarget for PlainAttempt<'_> {
    fn begin(&mut self) -> std::io::Result<()> {
        self.out.clear();
        Ok(())
    }
    fn consume(&mut self, bytes: &[u8]) -> Result<(), ConsumeError> {
        if self.out.len() as u64 + bytes.len() as u64 > self.limit {
            return Err(ConsumeError::BadData(format!("exceeds the limit of {} bytes", self.limit)));
        }
        self.out.extend_from_slice(bytes);
        Ok(())
    }
    fn finish(&mut self) -> Result<(), ConsumeError> {
        Ok(())
    }
}

/// The caller's sink, shared between the verifier of the current attempt and the
/// attempt loop that rewinds it.
#[derive(Clone)]
struct SharedSink<'a>(Rc<RefCell<&'a mut dyn RewindableSink>>);

impl std::io::Write for SharedSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

struct ObjectAttempt<'a, 'd> {
    id: ObjectId,
    compression: Compression,
    limit: u64,
    sink: SharedSink<'a>,
    verifier: Option<VerifyingWriter<SharedSink<'a>>>,
    decoded: &'d mut u64,
}

impl AttemptTarget for ObjectAttempt<'_, '_> {
    fn begin(&mut self) -> std::io::Result<()> {
        self.verifier = None;
        self.sink.0.borrow_mut().rewind()?;
        self.verifier =
            Some(VerifyingWriter::new(self.id.hash, self.compression, self.sink.clone(), self.limit));
        Ok(())
    }
    fn consume(&mut self, bytes: &[u8]) -> Result<(), ConsumeError> {
        match self.verifier.as_mut() {
            Some(v) => v.write_raw(bytes).map_err(consume_error),
            None => Err(ConsumeError::LocalIo("no attempt in progress".into())),
        }
    }
    fn finish(&mut self) -> Result<(), ConsumeError> {
        let verifier =
            self.verifier.take().ok_or_else(|| ConsumeError::LocalIo("no attempt in progress".into()))?;
        let (_, decoded) = verifier.finish_with_size().map_err(consume_error)?;
        *self.decoded = decoded;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geo_replies_must_be_permutations() {
        assert_eq!(parse_geo_reply(b"2,1,3\n", 3).unwrap(), vec![1, 0, 2]);
        assert_eq!(parse_geo_reply(b" 1 , 2 ", 2).unwrap(), vec![0, 1]);
        for bad in [&b"1,1"[..], b"1,3", b"1", b"1,2,3", b"<html>", b"0,1", b"1,,2"] {
            assert!(parse_geo_reply(bad, 2).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}

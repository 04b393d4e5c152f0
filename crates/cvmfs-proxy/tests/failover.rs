//! The download manager against a real nginx (Stratum-1) and a real squid (proxy) on
//! 127.0.0.1, and against our fault-injecting server: fetching through the proxy,
//! proxy and host fail-over, return to the preferred host, and each fault handled in
//! bounded time without a wrong byte delivered.

use std::time::{Duration, Instant};

use cvmfs_core::{Compression, ContentHash, ObjectId, ObjectKind};
use cvmfs_proxy::{DownloadConfig, DownloadError, DownloadManager};
use cvmfs_testkit::faulty::{black_hole, closed_port, Fault, FaultyServer};
use cvmfs_testkit::fixtures::{reference_repo, FixtureRepo};
use cvmfs_testkit::servers::{Nginx, Squid};

const FQRN: &str = "fixture.test.local";
/// The HEAD root catalog: 7594 bytes stored, 29696 inflated.
const ROOT_CATALOG: &str = "33168bb52dd017fad762f79b5ee71382ca9e3016";

fn catalog_id() -> ObjectId {
    ObjectId::new(ContentHash::parse(ROOT_CATALOG).unwrap(), ObjectKind::Catalog)
}

fn served(repo: &FixtureRepo) -> std::path::PathBuf {
    repo.storage.parent().unwrap().to_path_buf()
}

fn config(hosts: Vec<String>, proxy: &str) -> DownloadConfig {
    let mut config = DownloadConfig::new(hosts);
    config.proxy = proxy.to_string();
    config.timeout = Duration::from_secs(2);
    config.timeout_direct = Duration::from_secs(2);
    config.backoff_init = Duration::from_millis(50);
    config.backoff_max = Duration::from_millis(100);
    config
}

/// Fetches the root catalog; returns the inflated bytes or the error.
fn fetch_catalog(manager: &DownloadManager) -> Result<Vec<u8>, DownloadError> {
    let mut sink = Vec::new();
    let size = manager.fetch_object(&catalog_id(), Compression::Zlib, &mut sink, 1 << 30)?;
    assert_eq!(size as usize, sink.len());
    Ok(sink)
}

fn expected_catalog(repo: &FixtureRepo) -> Vec<u8> {
    let stored = std::fs::read(repo.storage.join(catalog_id().data_path())).unwrap();
    cvmfs_core::verify::read_verified_to_vec(&stored, catalog_id().hash, Compression::Zlib, 1 << 30).unwrap()
}

#[test]
fn objects_and_files_come_through_squid_from_nginx() {
    let repo = reference_repo();
    let nginx = Nginx::serve(&served(&repo));
    let squid = Squid::start();
    let manager = DownloadManager::new(config(vec![nginx.url(FQRN)], &squid.url())).unwrap();
    assert_eq!(fetch_catalog(&manager).unwrap(), expected_catalog(&repo));
    let manifest = manager.fetch_file(".cvmfspublished", 1 << 20).unwrap();
    assert_eq!(manifest, std::fs::read(repo.storage.join(".cvmfspublished")).unwrap());
    assert_eq!(manager.state().proxy, squid.url());
    // Keep-alive: the second request reuses the connection, and nginx saw both.
    let log = nginx.access_log();
    assert!(log.contains(&format!("/cvmfs/{FQRN}/data/33/")), "{log}");
    assert!(log.contains(&format!("/cvmfs/{FQRN}/.cvmfspublished")), "{log}");
    assert!(log.contains("cvmfs Fuse"), "user agent: {log}");
}

#[test]
fn a_dead_or_silent_proxy_first_in_the_chain_fails_over_to_the_next() {
    let repo = reference_repo();
    let nginx = Nginx::serve(&served(&repo));
    let squid = Squid::start();
    let (silent, _hole) = black_hole();
    for dead in [format!("http://127.0.0.1:{}", closed_port()), format!("http://127.0.0.1:{silent}")] {
        let manager =
            DownloadManager::new(config(vec![nginx.url(FQRN)], &format!("{dead};{}", squid.url()))).unwrap();
        let started = Instant::now();
        assert_eq!(fetch_catalog(&manager).unwrap(), expected_catalog(&repo));
        assert!(started.elapsed() < Duration::from_secs(30), "fail-over took {:?}", started.elapsed());
        assert_eq!(manager.state().proxy, squid.url(), "the working proxy is kept for later requests");
        assert_eq!(manager.state().current_group, 1);
    }
}

#[test]
fn a_failing_first_host_fails_over_to_the_second_and_returns_after_the_reset_time() {
    let repo = reference_repo();
    let nginx = Nginx::serve(&served(&repo));
    let faulty = FaultyServer::serve(&served(&repo));
    for fault in [Fault::Status(500), Fault::Garbage, Fault::HtmlOk, Fault::BlackHole] {
        faulty.set_fault(fault.clone(), "");
        let mut cfg = config(vec![faulty.url(FQRN), nginx.url(FQRN)], "DIRECT");
        cfg.host_reset_after = Duration::from_millis(500);
        let manager = DownloadManager::new(cfg).unwrap();
        assert_eq!(fetch_catalog(&manager).unwrap(), expected_catalog(&repo), "{fault:?}");
        assert_eq!(manager.state().host, nginx.url(FQRN), "{fault:?}");
        // The first host recovers; after the reset time the client goes back to it.
        faulty.set_fault(Fault::None, "");
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(fetch_catalog(&manager).unwrap(), expected_catalog(&repo));
        assert_eq!(manager.state().host, faulty.url(FQRN), "{fault:?}: back to the preferred host");
    }
    let closed = format!("http://127.0.0.1:{}/cvmfs/{FQRN}", closed_port());
    let manager = DownloadManager::new(config(vec![closed, nginx.url(FQRN)], "DIRECT")).unwrap();
    assert_eq!(fetch_catalog(&manager).unwrap(), expected_catalog(&repo));
}

#[test]
fn every_body_fault_is_refused_in_bounded_time_and_a_good_host_is_used_when_there_is_one() {
    let repo = reference_repo();
    let nginx = Nginx::serve(&served(&repo));
    let faulty = FaultyServer::serve(&served(&repo));
    let faults = [
        Fault::Truncate(1000),
        Fault::FlipByte,
        Fault::Trickle(200),
        Fault::ResetMidBody,
        Fault::LongerContentLength(100),
        Fault::Redirect(format!("{}/data/33/168bb52dd017fad762f79b5ee71382ca9e3016C", nginx.url(FQRN))),
        Fault::RedirectLoop,
        Fault::Garbage,
        Fault::HtmlOk,
    ];
    for fault in faults {
        faulty.set_fault(fault.clone(), "");
        let mut cfg = config(vec![faulty.url(FQRN)], "DIRECT");
        cfg.timeout_direct = Duration::from_secs(1);
        cfg.low_speed_limit = 1024;
        let alone = DownloadManager::new(cfg.clone()).unwrap();
        let started = Instant::now();
        let error = fetch_catalog(&alone).expect_err(&format!("{fault:?} must fail"));
        assert!(started.elapsed() < Duration::from_secs(30), "{fault:?} took {:?}", started.elapsed());
        assert!(error.to_string().contains("object"), "{fault:?}: {error}");
        cfg.hosts.push(nginx.url(FQRN));
        let with_backup = DownloadManager::new(cfg).unwrap();
        assert_eq!(fetch_catalog(&with_backup).unwrap(), expected_catalog(&repo), "{fault:?}");
    }
}

#[test]
fn bad_data_is_retried_once_with_no_cache_headers() {
    let repo = reference_repo();
    let faulty = FaultyServer::serve(&served(&repo));
    faulty.set_fault(Fault::FlipByte, "data/");
    let manager = DownloadManager::new(config(vec![faulty.url(FQRN)], "DIRECT")).unwrap();
    let error = fetch_catalog(&manager).unwrap_err();
    assert!(matches!(error, DownloadError::BadData { .. }), "{error}");
    let log = faulty.log();
    assert_eq!(log.len(), 2, "one normal request, one no-cache repeat: {log:?}");
    let (first, second) = (log[0].to_lowercase(), log[1].to_lowercase());
    assert!(!first.contains("no-cache"), "{first}");
    assert!(second.contains("pragma: no-cache") && second.contains("cache-control: no-cache"), "{second}");
}

#[test]
fn a_missing_object_is_final_and_not_retried() {
    let repo = reference_repo();
    let faulty = FaultyServer::serve(&served(&repo));
    let manager = DownloadManager::new(config(vec![faulty.url(FQRN)], "DIRECT")).unwrap();
    let missing = ObjectId::new(ContentHash::parse(&"ab".repeat(20)).unwrap(), ObjectKind::File);
    let mut sink = Vec::new();
    let error = manager.fetch_object(&missing, Compression::Zlib, &mut sink, 1 << 20).unwrap_err();
    assert!(matches!(error, DownloadError::NotFound { .. }), "{error}");
    assert_eq!(faulty.requests(), 1);
    assert!(sink.is_empty());
}

#[test]
fn after_the_reset_time_the_client_returns_to_the_preferred_proxy() {
    let repo = reference_repo();
    let nginx = Nginx::serve(&served(&repo));
    let squid = Squid::start();
    // Our fault server answers absolute-form requests like a proxy with a cache.
    let preferred = FaultyServer::serve(&served(&repo));
    let preferred_url = format!("http://127.0.0.1:{}", preferred.port);
    // 407 is a proxy error (a 5xx would count against the host, as upstream).
    preferred.set_fault(Fault::Status(407), "");
    let mut cfg = config(vec![nginx.url(FQRN)], &format!("{preferred_url};{}", squid.url()));
    cfg.proxy_reset_after = Duration::from_millis(500);
    let manager = DownloadManager::new(cfg).unwrap();
    assert_eq!(fetch_catalog(&manager).unwrap(), expected_catalog(&repo));
    assert_eq!(manager.state().proxy, squid.url(), "failed over to the second group");
    preferred.set_fault(Fault::None, "");
    std::thread::sleep(Duration::from_millis(600));
    let before = preferred.requests();
    assert_eq!(fetch_catalog(&manager).unwrap(), expected_catalog(&repo));
    assert_eq!(manager.state().proxy, preferred_url, "back to the preferred proxy group");
    assert_eq!(preferred.requests(), before + 1);
}

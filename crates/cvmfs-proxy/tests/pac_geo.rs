//! WPAD/PAC files and Geo-API answers served over HTTP by a local server.

use cvmfs_proxy::pac::resolve_auto;
use cvmfs_proxy::{DownloadConfig, DownloadManager};
use cvmfs_testkit::faulty::{Fault, FaultyServer};

#[test]
fn served_pac_files_give_the_chains_upstream_would() {
    let root = tempfile::tempdir().unwrap();
    let pac_dir = root.path().join("pac");
    std::fs::create_dir(&pac_dir).unwrap();
    std::fs::write(
        pac_dir.join("fixed.pac"),
        "function FindProxyForURL(url, host) { return \"PROXY p1:3128; PROXY p2:3128; DIRECT\"; }",
    )
    .unwrap();
    std::fs::write(
        pac_dir.join("by-host.pac"),
        "function FindProxyForURL(url, host) {\n  if (dnsDomainIs(host, '.cern.ch')) return 'PROXY cern-squid:3128';\n  if (isPlainHostName(host)) return 'DIRECT';\n  return 'PROXY other:8080';\n}",
    )
    .unwrap();
    std::fs::write(pac_dir.join("broken.pac"), "function FindProxyForURL(url, host) { return ").unwrap();
    let server = FaultyServer::serve(root.path());
    let pac = |name: &str| format!("http://127.0.0.1:{}/cvmfs/pac/{name}", server.port);
    let manager =
        DownloadManager::new(DownloadConfig::new(vec!["http://s1.cern.ch/cvmfs/x".into()])).unwrap();
    let fetch = |url: &str| manager.fetch_url(url, 1 << 20).ok();
    let resolve = |urls: &[String], host: &str| resolve_auto("auto;DIRECT", urls, host, None, &fetch);
    assert_eq!(
        resolve(&[pac("fixed.pac")], "http://s1.cern.ch/cvmfs/x"),
        ("p1:3128;p2:3128;DIRECT;DIRECT".into(), true)
    );
    assert_eq!(
        resolve(&[pac("by-host.pac")], "http://s1.cern.ch/cvmfs/x"),
        ("cern-squid:3128;DIRECT".into(), true)
    );
    assert_eq!(resolve(&[pac("by-host.pac")], "http://localmirror/cvmfs/x"), ("DIRECT;DIRECT".into(), true));
    assert_eq!(
        resolve(&[pac("by-host.pac")], "http://s1.example.org/cvmfs/x"),
        ("other:8080;DIRECT".into(), true)
    );
    // A broken script or a missing file falls through to the next PAC URL...
    assert_eq!(
        resolve(&[pac("broken.pac"), pac("missing.pac"), pac("fixed.pac")], "http://s1.cern.ch/x"),
        ("p1:3128;p2:3128;DIRECT;DIRECT".into(), true)
    );
    // ...and when none works, the auto group is dropped and reported incomplete.
    assert_eq!(resolve(&[pac("broken.pac")], "http://s1.cern.ch/x"), ("DIRECT".into(), false));
}

#[test]
fn a_geo_api_answer_reorders_the_hosts_and_a_broken_one_does_not() {
    let root = tempfile::tempdir().unwrap();
    let repo = root.path().join("geo.test");
    std::fs::create_dir_all(&repo).unwrap();
    let a = FaultyServer::serve(root.path());
    let b = FaultyServer::serve(root.path());
    let hosts = vec![a.url("geo.test"), b.url("geo.test")];
    let mut sorted = hosts.clone();
    sorted.sort();
    // Both hosts are named 127.0.0.1; the service answers with 1-based indices.
    let answer_dir = repo.join("api/v1.0/geo/client-uuid");
    std::fs::create_dir_all(&answer_dir).unwrap();
    std::fs::write(answer_dir.join("127.0.0.1,127.0.0.1"), "2,1\n").unwrap();
    let manager = DownloadManager::new(DownloadConfig::new(hosts.clone())).unwrap();
    let ordered = manager.order_hosts_by_geo_api("client-uuid").unwrap();
    assert_eq!(ordered, vec![sorted[1].clone(), sorted[0].clone()]);
    assert_eq!(manager.state().hosts, ordered);
    assert_eq!(manager.state().host, sorted[1]);

    for broken in ["1,1\n", "<html>maintenance</html>", "3,1,2", ""] {
        std::fs::write(answer_dir.join("127.0.0.1,127.0.0.1"), broken).unwrap();
        let manager = DownloadManager::new(DownloadConfig::new(hosts.clone())).unwrap();
        assert!(manager.order_hosts_by_geo_api("client-uuid").is_err(), "{broken:?}");
        assert_eq!(manager.state().hosts, hosts, "{broken:?} leaves the configured order");
    }
    a.set_fault(Fault::Status(500), "");
    b.set_fault(Fault::Status(500), "");
    let manager = DownloadManager::new(DownloadConfig::new(hosts.clone())).unwrap();
    assert!(manager.order_hosts_by_geo_api("client-uuid").is_err());
    assert_eq!(manager.state().hosts, hosts);
}

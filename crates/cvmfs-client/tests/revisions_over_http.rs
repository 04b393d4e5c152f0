//! The mount lifecycle against a real nginx: a repository published by our writer gets
//! a new revision while mounted (short TTL) and the mount switches to it while an open
//! file keeps reading its old bytes; an older manifest served later is refused; with
//! nginx gone, a new mount works from the cache alone. Also every fixture tag, a date
//! and a root hash over HTTP through squid.

use std::path::Path;
use std::time::Duration;

use cvmfs_client::config::{ClientConfig, Parameters};
use cvmfs_client::{CheckOutcome, Mount, MountOptions};
use cvmfs_publish::{generate_keys, publish, PublishOptions};
use cvmfs_testkit::fixtures::{reference_repo, REFERENCE_NOW};
use cvmfs_testkit::servers::{Nginx, Squid};

const FQRN: &str = "rev.test.local";

fn config(fqrn: &str, url: &str, key: &Path, cache: &Path, extra: &[(&str, &str)]) -> ClientConfig {
    let mut params = Parameters::default();
    params.set("CVMFS_SERVER_URL", url, "test");
    params.set("CVMFS_PUBLIC_KEY", &key.display().to_string(), "test");
    params.set("CVMFS_CACHE_BASE", &cache.display().to_string(), "test");
    params.set("CVMFS_BLACKLIST", &cache.join("none").display().to_string(), "test");
    params.set("CVMFS_TIMEOUT", "2", "test");
    params.set("CVMFS_TIMEOUT_DIRECT", "2", "test");
    for (k, v) in extra {
        params.set(k, v, "test");
    }
    ClientConfig::from_parameters(fqrn, &params).unwrap()
}

fn read_path(mount: &Mount, path: &str) -> Vec<u8> {
    let mut attr = mount.getattr(1).unwrap();
    for part in path.trim_start_matches('/').split('/') {
        attr = mount.lookup(attr.ino, part.as_bytes()).unwrap();
    }
    let handle = mount.open(attr.ino).unwrap();
    let bytes = mount.read(handle, 0, attr.size as usize).unwrap();
    mount.release(handle);
    bytes
}

struct Published {
    dir: tempfile::TempDir,
}

impl Published {
    fn new() -> Published {
        let dir = tempfile::tempdir().unwrap();
        generate_keys(FQRN, &dir.path().join("keys"), cvmfs_publish::publish::unix_now()).unwrap();
        std::fs::create_dir_all(dir.path().join("srv")).unwrap();
        Published { dir }
    }

    fn storage(&self) -> std::path::PathBuf {
        self.dir.path().join("srv").join(FQRN)
    }

    fn key(&self) -> std::path::PathBuf {
        self.dir.path().join("keys").join(format!("{FQRN}.pub"))
    }

    /// Publishes a tree with `a.txt` = `content` and a TTL of one second.
    fn publish(&self, content: &str, tag: &str) {
        let source = self.dir.path().join(format!("tree-{tag}"));
        std::fs::create_dir_all(source.join("sub")).unwrap();
        std::fs::write(source.join("a.txt"), content).unwrap();
        std::fs::write(source.join("sub/b.txt"), format!("b of {tag}")).unwrap();
        let mut options = PublishOptions::new(FQRN, &self.dir.path().join("keys"), &self.storage(), &source);
        options.tag = Some(tag.to_string());
        options.ttl = 1;
        publish(&options).unwrap();
    }
}

#[test]
fn a_new_revision_appears_after_the_ttl_and_open_files_keep_their_bytes() {
    let repo = Published::new();
    repo.publish("one", "v1");
    let nginx = Nginx::serve(&repo.dir.path().join("srv"));
    let cache = tempfile::tempdir().unwrap();
    let mount = Mount::new(
        config(FQRN, &nginx.url("@fqrn@"), &repo.key(), cache.path(), &[]),
        MountOptions::default(),
    )
    .unwrap();
    assert_eq!(read_path(&mount, "/a.txt"), b"one");
    let a = mount.lookup(1, b"a.txt").unwrap();
    let open_before = mount.open(a.ino).unwrap();
    let old_manifest = std::fs::read(repo.storage().join(".cvmfspublished")).unwrap();

    std::thread::sleep(Duration::from_millis(1100));
    repo.publish("two!", "v2");
    std::thread::sleep(Duration::from_millis(1100));
    assert!(matches!(mount.check_revision_if_due(), Some(CheckOutcome::Applied { from: 1, to: 2 })));
    assert_eq!(read_path(&mount, "/a.txt"), b"two!");
    assert_eq!(mount.read(open_before, 0, 100).unwrap(), b"one", "an open file keeps its bytes");
    assert_eq!(mount.lookup(1, b"a.txt").unwrap().ino, a.ino, "the inode stays");

    // The server rolls back to the older manifest: refused, the mount stays on v2.
    std::fs::write(repo.storage().join(".cvmfspublished"), &old_manifest).unwrap();
    match mount.check_revision() {
        CheckOutcome::Failed(reason) => assert!(reason.contains("older"), "{reason}"),
        other => panic!("a rollback was not refused: {other:?}"),
    }
    assert_eq!(mount.revision().revision(), 2);
    assert_eq!(read_path(&mount, "/a.txt"), b"two!");
    drop(mount);

    // nginx goes away: a new mount serves the cached revision (and what was read).
    drop(nginx);
    let offline = Mount::new(
        config(FQRN, "http://127.0.0.1:1/cvmfs/@fqrn@", &repo.key(), cache.path(), &[]),
        MountOptions::default(),
    )
    .unwrap();
    assert!(offline.is_offline());
    assert_eq!(offline.revision().revision(), 2);
    assert_eq!(read_path(&offline, "/a.txt"), b"two!");
    let names: Vec<Vec<u8>> = offline.readdir(1).unwrap().into_iter().map(|e| e.name).collect();
    assert!(names.contains(&b"sub".to_vec()) && names.contains(&b"a.txt".to_vec()), "{names:?}");
    let sub = offline.lookup(1, b"sub").unwrap();
    let b = offline.lookup(sub.ino, b"b.txt").unwrap();
    assert_eq!(offline.open(b.ino).unwrap_err().errno(), libc::EIO, "never cached, no network");
}

#[test]
fn fixture_tags_dates_and_root_hashes_mount_over_http_through_squid() {
    let repo = reference_repo();
    let nginx = Nginx::serve(repo.storage.parent().unwrap());
    let squid = Squid::start();
    let cache = tempfile::tempdir().unwrap();
    let cases: [(&[(&str, &str)], u64); 4] = [
        (&[], 3),
        (&[("CVMFS_REPOSITORY_TAG", "r1")], 2),
        (&[("CVMFS_REPOSITORY_DATE", "2026-11-22T10:31:43Z")], 2),
        (&[("CVMFS_ROOT_HASH", "b35f9c77af0148d3c7f565ae51656d9b6232fc22")], 2),
    ];
    for (extra, revision) in cases {
        let mut all = vec![("CVMFS_HTTP_PROXY", squid.url())];
        all.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        let borrowed: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let options = MountOptions { clock: Some(Box::new(|| REFERENCE_NOW)), ..MountOptions::default() };
        let mount = Mount::new(
            config(&repo.fqrn, &nginx.url("@fqrn@"), &repo.public_key, cache.path(), &borrowed),
            options,
        )
        .unwrap();
        assert_eq!(mount.revision().revision(), revision, "{extra:?}");
        let about = read_path(&mount, "/ABOUT.txt");
        assert_eq!(about.len(), if revision == 3 { 65 } else { 54 }, "{extra:?}");
        assert_eq!(read_path(&mount, "/payload/random_b.bin").len(), 1_216_032);
    }
}

#[test]
fn control_socket_commands_steer_the_download_manager() {
    use cvmfs_client::talk::{answer, TalkContext};
    let repo = Published::new();
    repo.publish("one", "v1");
    let nginx = Nginx::serve(&repo.dir.path().join("srv"));
    let squid = Squid::start();
    let cache = tempfile::tempdir().unwrap();
    let second = nginx.url("@fqrn@").replace("/cvmfs/", "/cvmfs/../cvmfs/");
    let urls = format!("{};{second}", nginx.url("@fqrn@"));
    let mount = Mount::new(
        config(
            FQRN,
            &urls,
            &repo.key(),
            cache.path(),
            &[("CVMFS_HTTP_PROXY", &format!("{};DIRECT", squid.url()))],
        ),
        MountOptions::default(),
    )
    .unwrap();
    let ctx = TalkContext::default();
    let ask = |command: &str| answer(&mount, &ctx, command);
    let info = ask("host info");
    assert!(info.contains("Active host 0: http://127.0.0.1"), "{info}");
    assert_eq!(ask("host switch"), "OK\n");
    assert!(ask("host info").contains("Active host 1:"), "{}", ask("host info"));
    assert!(
        ask("proxy info").contains(&format!("Active proxy: [0] {}", squid.url())),
        "{}",
        ask("proxy info")
    );
    assert_eq!(ask("proxy group switch"), "OK\n");
    assert!(ask("proxy info").contains("Active proxy: [0] DIRECT"), "{}", ask("proxy info"));
    assert_eq!(ask("timeout set 7 8"), "OK\n");
    assert_eq!(ask("timeout info"), "Timeout with proxy: 7s\nTimeout without proxy: 8s\n");
    assert_eq!(ask("proxy set http://127.0.0.1:1|"), "OK\n");
    assert_eq!(read_path(&mount, "/a.txt"), b"one", "reads still work after the changes");
    let metrics = ask("metrics prometheus");
    assert!(metrics.contains(&format!("cvmfs_revision{{repo=\"{FQRN}\"}} 1")), "{metrics}");
    assert!(metrics.contains("# TYPE cvmfs_downloads_total counter"), "{metrics}");
}

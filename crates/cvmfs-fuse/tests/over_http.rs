//! `cvmfs2` over HTTP: fixture repositories served by nginx through squid, compared with
//! their listings with the variant-symlink variable set and unset; `cp -a` and `tar` out
//! of the mount; a new revision published while mounted; unmount leaves no process;
//! 16 parallel readers under quota pressure never see a wrong byte.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{mount_with, walk, xattr, Mounted};
use cvmfs_publish::{generate_keys, publish, PublishOptions};
use cvmfs_testkit::fixtures::{reference_repo, FixtureRepo};
use cvmfs_testkit::servers::{Nginx, Squid};
use cvmfs_tools::listing::render;
use rand::Rng;
use sha2::{Digest, Sha256};

fn http_config(dir: &Path, fqrn: &str, url: &str, proxy: &str, key: &Path, extra: &str) -> PathBuf {
    let conf = dir.join("repo.conf");
    let text = format!(
        "CVMFS_SERVER_URL={url}\nCVMFS_HTTP_PROXY={proxy}\nCVMFS_PUBLIC_KEY={}\nCVMFS_CACHE_BASE={}\n\
         CVMFS_BLACKLIST={}\nCVMFS_TIMEOUT=3\nCVMFS_TIMEOUT_DIRECT=3\n{extra}",
        key.display(),
        dir.join("cache").display(),
        dir.join("no-blacklist").display(),
    );
    std::fs::write(&conf, text).unwrap();
    let _ = fqrn;
    conf
}

fn expected_listing(repo: &FixtureRepo, tag: &str, variant: &str) -> String {
    let text = std::fs::read_to_string(&repo.expected.iter().find(|(t, _)| t == tag).unwrap().1).unwrap();
    text.replace("\t$(TEST_ARCH)/", &format!("\t{}/", variant.split('|').next().unwrap()))
        .replace("\t$(TEST_ARCH:-default_variant)/", &format!("\t{}/", variant.split('|').nth(1).unwrap()))
}

fn mount_fixture(
    repo: &FixtureRepo,
    nginx: &Nginx,
    squid: &Squid,
    extra: &str,
    arch: Option<&str>,
) -> Mounted {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("CVMFS_MAGIC_XATTRS_VISIBILITY=never\n{extra}");
    let conf =
        http_config(dir.path(), &repo.fqrn, &nginx.url("@fqrn@"), &squid.url(), &repo.public_key, &extra);
    mount_with(&repo.fqrn, &conf, dir, &[("TEST_ARCH", arch)])
}

fn listing(mounted: &Mounted) -> String {
    let mut rows = Vec::new();
    walk(&mounted.mountpoint, &mounted.mountpoint, &mut rows);
    render(rows)
}

#[test]
fn fixtures_through_squid_match_their_listings_with_the_variable_set_and_unset() {
    let repo = reference_repo();
    let nginx = Nginx::serve(repo.storage.parent().unwrap());
    let squid = Squid::start();
    let set = mount_fixture(&repo, &nginx, &squid, "", Some("arch_ppc64le"));
    assert_eq!(listing(&set), expected_listing(&repo, "r2", "arch_ppc64le|arch_ppc64le"));
    // Unset: $(TEST_ARCH) expands to nothing, $(TEST_ARCH:-default_variant) to the default.
    let unset = mount_fixture(&repo, &nginx, &squid, "", None);
    assert_eq!(listing(&unset), expected_listing(&repo, "r2", "|default_variant"));
    let r1 = mount_fixture(&repo, &nginx, &squid, "CVMFS_REPOSITORY_TAG=r1\n", Some("arch_ppc64le"));
    assert_eq!(listing(&r1), expected_listing(&repo, "r1", "arch_ppc64le|arch_ppc64le"));
    // Every directory lists without error.
    let status = Command::new("ls")
        .arg("-laR")
        .arg(&set.mountpoint)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn cp_a_and_tar_copy_a_subtree_exactly_with_xattrs() {
    let repo = reference_repo();
    let nginx = Nginx::serve(repo.storage.parent().unwrap());
    let squid = Squid::start();
    let mounted = mount_fixture(&repo, &nginx, &squid, "", Some("arch_ppc64le"));
    let out = tempfile::tempdir().unwrap();
    for subtree in ["attrs", "payload", "hardlinks"] {
        let copy = out.path().join(format!("cp-{subtree}"));
        let cp =
            Command::new("cp").arg("-a").arg(mounted.mountpoint.join(subtree)).arg(&copy).status().unwrap();
        assert!(cp.success(), "cp -a {subtree}");
        let diff =
            Command::new("diff").arg("-r").arg(mounted.mountpoint.join(subtree)).arg(&copy).status().unwrap();
        assert!(diff.success(), "diff -r {subtree}");
    }
    let copied = out.path().join("cp-attrs/dir_with_xattr");
    assert_eq!(xattr(&copied, "user.org.dirattr").unwrap(), b"on a directory");
    let tar = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {} -cf - payload | tar -C {} -xf -",
            mounted.mountpoint.display(),
            out.path().display()
        ))
        .status()
        .unwrap();
    assert!(tar.success());
    let diff = Command::new("diff")
        .arg("-r")
        .arg(mounted.mountpoint.join("payload"))
        .arg(out.path().join("payload"))
        .status()
        .unwrap();
    assert!(diff.success());
}

const FQRN: &str = "live.test.local";

fn publish_tree(base: &Path, files: &HashMap<String, Vec<u8>>, tag: &str, ttl: u64) {
    let source = base.join(format!("tree-{tag}"));
    for (name, content) in files {
        let path = source.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let mut options = PublishOptions::new(FQRN, &base.join("keys"), &base.join("srv").join(FQRN), &source);
    options.tag = Some(tag.into());
    options.ttl = ttl;
    publish(&options).unwrap();
}

fn new_repository() -> tempfile::TempDir {
    let base = tempfile::tempdir().unwrap();
    generate_keys(FQRN, &base.path().join("keys"), cvmfs_publish::publish::unix_now()).unwrap();
    std::fs::create_dir_all(base.path().join("srv")).unwrap();
    base
}

#[test]
fn a_revision_published_while_mounted_appears_and_unmount_leaves_no_process() {
    let base = new_repository();
    let mut files = HashMap::from([("hello.txt".to_string(), b"first".to_vec())]);
    publish_tree(base.path(), &files, "v1", 1);
    let nginx = Nginx::serve(&base.path().join("srv"));
    let dir = tempfile::tempdir().unwrap();
    let key = base.path().join(format!("keys/{FQRN}.pub"));
    let conf =
        http_config(dir.path(), FQRN, &nginx.url("@fqrn@"), "DIRECT", &key, "CVMFS_KCACHE_TIMEOUT=1\n");
    let mut mounted = mount_with(FQRN, &conf, dir, &[]);
    let file = mounted.mountpoint.join("hello.txt");
    assert_eq!(std::fs::read(&file).unwrap(), b"first");
    std::thread::sleep(Duration::from_millis(1100));
    files.insert("hello.txt".into(), b"second revision".to_vec());
    files.insert("new.txt".into(), b"new".to_vec());
    publish_tree(base.path(), &files, "v2", 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read(&file).unwrap() != b"second revision" {
        assert!(Instant::now() < deadline, "the new revision did not appear within 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(std::fs::read(mounted.mountpoint.join("new.txt")).unwrap(), b"new");
    assert_eq!(xattr(&mounted.mountpoint, "user.revision").unwrap(), b"2");
    // Unmount: the daemon exits by itself.
    let status = Command::new("fusermount3").arg("-u").arg(&mounted.mountpoint).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = mounted.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "cvmfs2 still running 10 s after unmount");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn parallel_readers_under_quota_pressure_never_see_a_wrong_byte() {
    let base = new_repository();
    let mut rng = rand::thread_rng();
    let mut files = HashMap::new();
    for i in 0..120 {
        let size = rng.gen_range(64 << 10..512 << 10);
        let content: Vec<u8> = (0..size).map(|_| rng.gen()).collect();
        files.insert(format!("d{}/f{i}.bin", i % 6), content);
    }
    publish_tree(base.path(), &files, "v1", 240);
    let expected: HashMap<String, Vec<u8>> =
        files.iter().map(|(name, content)| (name.clone(), Sha256::digest(content).to_vec())).collect();
    let nginx = Nginx::serve(&base.path().join("srv"));
    let dir = tempfile::tempdir().unwrap();
    let key = base.path().join(format!("keys/{FQRN}.pub"));
    // About 33 MB of content against a 12 MB cache: constant eviction.
    let conf = http_config(
        dir.path(),
        FQRN,
        &nginx.url("@fqrn@"),
        "DIRECT",
        &key,
        "CVMFS_QUOTA_LIMIT=12\nCVMFS_FUSE_PASSTHROUGH=no\n",
    );
    let mounted = mount_with(FQRN, &conf, dir, &[]);
    let seconds: u64 =
        std::env::var("CVMFS_TEST_READER_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let names: Vec<String> = expected.keys().cloned().collect();
    let until = Instant::now() + Duration::from_secs(seconds);
    let reads: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..16)
            .map(|_| {
                let (names, expected, root) = (&names, &expected, &mounted.mountpoint);
                scope.spawn(move || {
                    let mut rng = rand::thread_rng();
                    let mut count = 0u64;
                    while Instant::now() < until {
                        let name = &names[rng.gen_range(0..names.len())];
                        let bytes = std::fs::read(root.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
                        assert_eq!(Sha256::digest(&bytes).to_vec(), expected[name], "{name}: wrong bytes");
                        count += 1;
                    }
                    count
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    assert!(reads > 16, "{reads} reads");
    let cache_size = {
        let socket = mounted._dir.path().join(format!("cache/{FQRN}/cvmfs_io.{FQRN}"));
        let out = Command::new(env!("CARGO_BIN_EXE_cvmfs_talk"))
            .arg("-p")
            .arg(&socket)
            .args(["cache", "size"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(cache_size.starts_with("Current cache size is "), "{cache_size}");
}

#[test]
fn the_legacy_2_1_repository_mounts_after_its_whitelist_is_re_signed() {
    use cvmfs_testkit::fixtures::{legacy_repo, LEGACY_NOW};
    let repo = legacy_repo();
    // Its whitelist expired in 2015; re-sign it with its own master key (what
    // `cvmfs_server resign` does), the rest stays exactly as upstream wrote it.
    let keys_dir = repo.public_key.parent().unwrap();
    let keys = cvmfs_publish::load_keys(&repo.fqrn, keys_dir).unwrap();
    let whitelist = cvmfs_publish::publish::signed_whitelist(
        &keys,
        &repo.fqrn,
        cvmfs_core::Algorithm::Sha1,
        cvmfs_publish::publish::unix_now(),
        30,
    )
    .unwrap();
    // The expected listing: cvmfs-inspect on the original bytes, at a time the old
    // whitelist was valid.
    let cli = cvmfs_tools::cli::Cli {
        repo: repo.storage.display().to_string(),
        fqrn: repo.fqrn.clone(),
        key: repo.public_key.display().to_string(),
        tag: None,
        date: None,
        root_hash: None,
        now: Some(LEGACY_NOW),
        blacklist: None,
        command: cvmfs_tools::cli::Command::Ls { recursive: true, long: true, path: "/".into() },
    };
    let mut expected = Vec::new();
    cvmfs_tools::inspect::run(&cli, &mut expected).unwrap();
    std::fs::write(repo.storage.join(".cvmfswhitelist"), whitelist).unwrap();

    let nginx = Nginx::serve(repo.storage.parent().unwrap());
    let squid = Squid::start();
    let dir = tempfile::tempdir().unwrap();
    let conf = http_config(
        dir.path(),
        &repo.fqrn,
        &nginx.url("@fqrn@"),
        &squid.url(),
        &repo.public_key,
        "CVMFS_MAGIC_XATTRS_VISIBILITY=never\n",
    );
    let mounted = mount_with(&repo.fqrn, &conf, dir, &[]);
    assert_eq!(listing(&mounted), String::from_utf8(expected).unwrap());
}

#[test]
fn uid_and_gid_options_run_the_daemon_unprivileged() {
    use std::os::unix::fs::PermissionsExt;
    let repo = reference_repo();
    let nginx = Nginx::serve(repo.storage.parent().unwrap());
    let dir = tempfile::tempdir().unwrap();
    const NOBODY: u32 = 65534;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let key = dir.path().join("key.pub");
    std::fs::copy(&repo.public_key, &key).unwrap();
    let conf = http_config(dir.path(), &repo.fqrn, &nginx.url("@fqrn@"), "DIRECT", &key, "");
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cvmfs2"))
        .arg("-f")
        .arg("-o")
        .arg(format!("config={},uid={NOBODY},gid={NOBODY},grab_mountpoint", conf.display()))
        .arg(&repo.fqrn)
        .arg(&mountpoint)
        .env("CVMFS_LOG", "warn,fuser=off")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line)
        .unwrap();
    assert!(line.starts_with("CernVM-FS: mounted cvmfs on"), "{line:?}");
    let about = std::fs::read(mountpoint.join("ABOUT.txt"));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let _ = Command::new("fusermount3").arg("-u").arg(&mountpoint).status();
    let _ = child.wait();
    assert_eq!(about.unwrap().len(), 65);
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid_line.split_whitespace().skip(1).all(|u| u == NOBODY.to_string()), "{uid_line}");
    let cache_owner =
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(dir.path().join("cache")).unwrap());
    assert_eq!(cache_owner, NOBODY, "the cache was created by the unprivileged daemon");
}

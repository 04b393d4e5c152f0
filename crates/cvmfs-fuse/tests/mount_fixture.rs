//! A real FUSE mount with our `cvmfs2` of the upstream-written fixture repository
//! (`file://` server URL, real disk cache): the kernel's view of the whole tree —
//! types, modes, sizes, mtimes, content, symlink targets, user xattrs and hard links —
//! equals `expected-r2.tsv` byte for byte; magic xattrs answer; a bad repository name
//! fails with upstream's exit code.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{cvmfs2, mount, user_xattrs, walk, write_config, xattr, Mounted};
use cvmfs_testkit::fixtures::reference_repo;
use cvmfs_tools::listing::render;
use sha2::{Digest, Sha256};

#[test]
fn the_kernel_sees_exactly_the_expected_tree() {
    let repo = reference_repo();
    // Magic xattrs are listed on the root only with the default visibility, so ask for
    // none to compare the repository's own attributes.
    let mounted = mount(&repo, "CVMFS_MAGIC_XATTRS_VISIBILITY=never\n");
    let mut rows = Vec::new();
    walk(&mounted.mountpoint, &mounted.mountpoint, &mut rows);
    let expected =
        std::fs::read_to_string(&repo.expected.iter().find(|(t, _)| t == "r2").unwrap().1).unwrap();
    // The listing shows symlink targets as stored; through the mount, readlink expands
    // variant symlinks with the mount's TEST_ARCH (the kernel does not allow user.*
    // xattrs such as user.rawlink on symlinks, so the raw form is not reachable here).
    let expected = expected
        .replace("\t$(TEST_ARCH)/", "\tarch_ppc64le/")
        .replace("\t$(TEST_ARCH:-default_variant)/", "\tarch_ppc64le/");
    assert!(expected.contains("\tarch_ppc64le/file.txt"), "the fixture has variant symlinks");
    let actual = render(rows);
    if actual != expected {
        let diff: Vec<String> = actual
            .lines()
            .zip(expected.lines())
            .filter(|(a, e)| a != e)
            .take(5)
            .map(|(a, e)| format!("got      {a}\nexpected {e}"))
            .collect();
        panic!(
            "listing differs ({} vs {} lines):\n{}",
            actual.lines().count(),
            expected.lines().count(),
            diff.join("\n")
        );
    }
}

#[test]
fn magic_xattrs_answer_on_the_mount() {
    let repo = reference_repo();
    let mounted = mount(&repo, "");
    let root = &mounted.mountpoint;
    assert_eq!(xattr(root, "user.revision").unwrap(), b"3");
    assert_eq!(xattr(root, "user.fqrn").unwrap(), b"fixture.test.local");
    assert_eq!(xattr(root, "user.root_hash").unwrap(), b"33168bb52dd017fad762f79b5ee71382ca9e3016");
    let file = root.join("payload/random_a.bin");
    let chunks = String::from_utf8(xattr(&file, "user.chunks").unwrap()).unwrap();
    assert_eq!(chunks, "12");
    let list = String::from_utf8(xattr(&file, "user.chunk_list").unwrap()).unwrap();
    assert_eq!(list.lines().count(), 13, "{list}");
    assert!(xattr(root, "user.no_such_attribute").is_none());
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::ENODATA));
    let names = user_xattrs(root);
    assert!(names.iter().any(|(n, _)| n == "user.revision"), "root lists magic attributes");
    assert!(user_xattrs(&root.join("ABOUT.txt")).is_empty(), "other entries list none by default");
}

#[test]
fn a_repository_that_cannot_be_verified_fails_with_upstreams_code() {
    let repo = reference_repo();
    let dir = tempfile::tempdir().unwrap();
    let conf = write_config(dir.path(), &repo, "");
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    let output = cvmfs2()
        .arg("-o")
        .arg(format!("config={}", conf.display()))
        .arg("other.test.local")
        .arg(&mountpoint)
        .env("CVMFS_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(16), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("failed to initialize root file catalog"), "{stderr}");
    let bad_option = cvmfs2().args(["-o", "uid=nobody", "a.b", "/nonexistent"]).output().unwrap();
    assert_eq!(bad_option.status.code(), Some(2));
}

#[test]
fn cvmfs_talk_reaches_the_mount() {
    let repo = reference_repo();
    let mounted = mount(&repo, "");
    let socket = mounted._dir.path().join("cache/fixture.test.local/cvmfs_io.fixture.test.local");
    let talk = |words: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_cvmfs_talk"))
            .arg("-p")
            .arg(&socket)
            .args(words)
            .output()
            .unwrap();
        assert!(out.status.success(), "{words:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(talk(&["revision"]), "3\n");
    assert_eq!(talk(&["mountpoint"]), format!("{}\n", mounted.mountpoint.display()));
    assert_eq!(talk(&["remount"]), "Catalog up to date\n");
    assert_eq!(talk(&["no", "such", "command"]), "unknown command\n");
    std::fs::read(mounted.mountpoint.join("payload/random_b.bin")).unwrap();
    assert!(talk(&["open", "catalogs"]).contains("    -> /payload\n"));
    assert!(talk(&["cache", "list"]).contains("part of /payload/random_b.bin"));
    assert!(talk(&["cache", "size"]).starts_with("Current cache size is "));
    assert_eq!(talk(&["evict", "/payload/random_b.bin"]), "OK\n");
    assert!(!talk(&["cache", "list"]).contains("random_b.bin"));
    // Evicted content is fetched again and still correct.
    let again = std::fs::read(mounted.mountpoint.join("payload/random_b.bin")).unwrap();
    assert_eq!(again.len(), 1_216_032);
    // The attached catalogs are pinned: a cleanup to zero cannot remove them.
    assert_eq!(talk(&["cleanup", "0"]), "Not fully cleaned (there might be pinned chunks)\n");
    assert!(talk(&["cache", "list", "catalogs"]).contains("catalog for /"));
    assert!(!talk(&["cache", "list"]).contains("random_b.bin"));
}

/// `mount.cvmfs` and `auto.cvmfs` are `cvmfs2` called by those names.
/// A directory whose `etc/cvmfs/config.d` configures the fixture (for
/// `CVMFS_CONFIG_ROOT`), with `extra` configuration lines.
fn config_root(repo: &cvmfs_testkit::fixtures::FixtureRepo, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc/cvmfs/config.d");
    std::fs::create_dir_all(&etc).unwrap();
    let conf = write_config(dir.path(), repo, extra);
    std::fs::copy(&conf, etc.join(format!("{}.conf", repo.fqrn))).unwrap();
    dir
}

fn as_named(dir: &Path, name: &str) -> PathBuf {
    let link = dir.join(name);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_cvmfs2"), &link).unwrap();
    link
}

#[test]
fn the_mount_helper_mounts_once_and_autofs_maps_names() {
    let repo = reference_repo();
    let dir = config_root(&repo, "");
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    let helper = as_named(dir.path(), "mount.cvmfs");
    let run = |extra: &[&str]| {
        Command::new(&helper)
            .arg("fixture.test.local")
            .arg(&mountpoint)
            .args(extra)
            .env("CVMFS_CONFIG_ROOT", dir.path())
            .env("CVMFS_LOG", "off")
            .output()
            .unwrap()
    };
    let first = run(&[]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let _unmount = Unmount(mountpoint.clone());
    assert!(mountpoint.join("ABOUT.txt").exists());
    let second = run(&[]);
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("is already mounted on"));
    assert!(run(&["-o", "remount"]).status.success(), "remount of a mounted repository is a no-op");
    let auto = as_named(dir.path(), "auto.cvmfs");
    let answer = Command::new(&auto).arg("atlas.cern.ch").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&answer.stdout), "-fstype=cvmfs :atlas.cern.ch\n");
    assert_eq!(Command::new(&auto).arg("atlas").output().unwrap().status.code(), Some(1));
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3").arg("-u").arg(&self.0).status();
    }
}

fn passthrough_opens(mounted: &Mounted) -> u64 {
    let socket = mounted._dir.path().join("cache/fixture.test.local/cvmfs_io.fixture.test.local");
    let out = Command::new(env!("CARGO_BIN_EXE_cvmfs_talk"))
        .arg("-p")
        .arg(&socket)
        .args(["internal", "affairs"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().find(|l| l.starts_with("cvmfs.n_passthrough_open|")).expect("counter line");
    line.split('|').nth(1).unwrap().parse().unwrap()
}

#[test]
fn passthrough_when_the_kernel_offers_it_and_identical_bytes_either_way() {
    let repo = reference_repo();
    let expected =
        std::fs::read_to_string(&repo.expected.iter().find(|(t, _)| t == "r2").unwrap().1).unwrap();
    let sha_of = |path: &str| {
        let line = expected.lines().find(|l| l.starts_with(&format!("{path}\t"))).unwrap();
        line.split('\t').nth(5).unwrap().to_string()
    };
    for (setting, allowed) in [("yes", true), ("no", false)] {
        let mounted = mount(&repo, &format!("CVMFS_FUSE_PASSTHROUGH={setting}\n"));
        for path in ["/ABOUT.txt", "/payload/random_a.bin", "/new_in_rev2.txt"] {
            let bytes = std::fs::read(mounted.mountpoint.join(&path[1..])).unwrap();
            let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(sha, sha_of(path), "{path} with passthrough={setting}");
        }
        let used = passthrough_opens(&mounted);
        if !allowed {
            assert_eq!(used, 0, "passthrough was switched off");
        }
        // With passthrough allowed, the kernel decides (Linux >= 6.9 and root); the two
        // unchunked files use it when it does, the chunked one never.
        assert!(used <= 2, "{used}");
    }
}

#[test]
fn cvmfs_config_probes_shows_and_stats_a_mount() {
    let repo = reference_repo();
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc/cvmfs/config.d");
    std::fs::create_dir_all(&etc).unwrap();
    let mount_dir = dir.path().join("cvmfs");
    let conf = write_config(dir.path(), &repo, &format!("CVMFS_MOUNT_DIR={}\n", mount_dir.display()));
    std::fs::copy(&conf, etc.join("fixture.test.local.conf")).unwrap();
    std::fs::write(dir.path().join("etc/cvmfs/default.local"), "CVMFS_REPOSITORIES=fixture.test.local\n")
        .unwrap();
    let mountpoint = mount_dir.join("fixture.test.local");
    std::fs::create_dir_all(&mountpoint).unwrap();
    let tool = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cvmfs_config"))
            .args(args)
            .env("CVMFS_CONFIG_ROOT", dir.path())
            .output()
            .unwrap()
    };
    let before = tool(&["probe"]);
    assert_eq!(String::from_utf8_lossy(&before.stdout), "Probing /cvmfs/fixture.test.local... Failed!\n");
    assert!(!before.status.success());
    let helper = as_named(dir.path(), "mount.cvmfs");
    let mounted = Command::new(&helper)
        .arg("fixture.test.local")
        .arg(&mountpoint)
        .env("CVMFS_CONFIG_ROOT", dir.path())
        .env("CVMFS_LOG", "off")
        .output()
        .unwrap();
    assert!(mounted.status.success(), "{}", String::from_utf8_lossy(&mounted.stderr));
    let _unmount = Unmount(mountpoint.clone());
    let probe = tool(&["probe"]);
    assert!(probe.status.success(), "{}", String::from_utf8_lossy(&probe.stdout));
    let stat = String::from_utf8(tool(&["stat", "-v", "fixture.test.local"]).stdout).unwrap();
    assert!(stat.contains("File Catalog Revision: 3"), "{stat}");
    assert!(stat.contains("File Catalog ID: 33168bb52dd017fad762f79b5ee71382ca9e3016"), "{stat}");
    let shown = String::from_utf8(tool(&["showconfig", "fixture.test.local"]).stdout).unwrap();
    assert!(shown.starts_with("CVMFS_REPOSITORY_NAME=fixture.test.local\n"), "{shown}");
    assert!(shown.contains("CVMFS_SERVER_URL=file://"), "{shown}");
    let reload = String::from_utf8(tool(&["reload", "fixture.test.local"]).stdout).unwrap();
    assert_eq!(reload, "fixture.test.local: Catalog up to date\n");
    assert!(String::from_utf8(tool(&["status"]).stdout)
        .unwrap()
        .contains(&format!("fixture.test.local mounted on {}", mountpoint.display())));
}

#[test]
fn the_debug_log_records_the_mount() {
    let repo = reference_repo();
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("debug.log");
    let mounted = mount(&repo, &format!("CVMFS_DEBUGLOG={}\n", log.display()));
    std::fs::read(mounted.mountpoint.join("ABOUT.txt")).unwrap();
    drop(mounted);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("mounted") && text.contains("revision=3"), "{text}");
    assert!(text.contains("DEBUG"), "debug messages go to CVMFS_DEBUGLOG: {text}");
}

#[test]
fn a_killed_daemon_gives_errors_not_hangs_and_the_mountpoint_can_be_reused() {
    let repo = reference_repo();
    let mut mounted = mount(&repo, "");
    let mountpoint = mounted.mountpoint.clone();
    std::fs::read(mountpoint.join("ABOUT.txt")).unwrap();
    mounted.child.kill().unwrap();
    mounted.child.wait().unwrap();
    // Readers get "Transport endpoint is not connected" at once.
    let (tx, rx) = std::sync::mpsc::channel();
    let probe = mountpoint.join("payload/random_a.bin");
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read(&probe).map(|_| ()).map_err(|e| e.raw_os_error()));
    });
    let result = rx.recv_timeout(Duration::from_secs(10)).expect("a read on a dead mount hung");
    assert_eq!(result, Err(Some(libc::ENOTCONN)));
    // A new cvmfs2 on the same mountpoint replaces the stale mount.
    let conf = mounted._dir.path().join("repo.conf");
    let again = cvmfs2()
        .arg("-o")
        .arg(format!("config={}", conf.display()))
        .arg(&repo.fqrn)
        .arg(&mountpoint)
        .env("CVMFS_LOG", "off")
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let _unmount = Unmount(mountpoint.clone());
    assert_eq!(std::fs::read(mountpoint.join("ABOUT.txt")).unwrap().len(), 65);
}

#[test]
fn mount_t_cvmfs_runs_our_helper() {
    // mount(8) runs /sbin/mount.cvmfs; in a private mount namespace we put ours there
    // without touching the machine's /usr/sbin.
    let repo = reference_repo();
    let dir = config_root(&repo, "");
    let sbin = dir.path().join("sbin");
    std::fs::create_dir(&sbin).unwrap();
    for entry in std::fs::read_dir("/usr/sbin").unwrap() {
        let entry = entry.unwrap();
        let _ = std::os::unix::fs::symlink(entry.path(), sbin.join(entry.file_name()));
    }
    let _ = std::fs::remove_file(sbin.join("mount.cvmfs"));
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_cvmfs2"), sbin.join("mount.cvmfs")).unwrap();
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    let script = format!(
        "mount --bind {sbin} /usr/sbin && mount -t cvmfs fixture.test.local {mp} && \
         cat {mp}/ABOUT.txt && grep -c ' {mp} fuse' /proc/mounts; fusermount3 -u {mp}",
        sbin = sbin.display(),
        mp = mountpoint.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("CVMFS_CONFIG_ROOT", dir.path())
        .env("CVMFS_LOG", "off")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("CernVM-FS: mounted cvmfs on"), "{stdout}");
    assert!(stdout.contains("fixture.test.local - small test repository"), "{stdout}");
    assert!(stdout.trim_end().ends_with('1'), "one cvmfs2 mount was listed: {stdout}");
}

//! The file-system API over the real upstream fixture repository, read through a
//! `file://` server URL into a real disk cache: every entry of `expected-<tag>.tsv`
//! (type, mode, size, mtime, content hash, symlink target) is what lookup, getattr,
//! readdir, readlink and read report; HEAD, tags, dates and root hashes; hard links
//! share an inode; rollback protection and offline mounts from the cache.

use std::collections::BTreeMap;
use std::path::Path;

use cvmfs_client::config::{ClientConfig, Parameters};
use cvmfs_client::{ClientError, FileKind, Mount, MountOptions};
use cvmfs_testkit::fixtures::{reference_repo, FixtureRepo, REFERENCE_NOW};
use sha2::{Digest, Sha256};

fn config(repo: &FixtureRepo, cache: &Path, extra: &[(&str, &str)]) -> ClientConfig {
    let mut params = Parameters::default();
    let url = format!("file://{}", repo.storage.display());
    params.set("CVMFS_SERVER_URL", &url, "test");
    params.set("CVMFS_PUBLIC_KEY", &repo.public_key.display().to_string(), "test");
    params.set("CVMFS_CACHE_BASE", &cache.display().to_string(), "test");
    params.set("CVMFS_BLACKLIST", &cache.join("no-blacklist").display().to_string(), "test");
    for (k, v) in extra {
        params.set(k, v, "test");
    }
    ClientConfig::from_parameters(&repo.fqrn, &params).unwrap()
}

fn mount(
    repo: &FixtureRepo,
    cache: &Path,
    extra: &[(&str, &str)],
) -> Result<Mount, cvmfs_client::MountError> {
    let options = MountOptions { clock: Some(Box::new(|| REFERENCE_NOW)), ..MountOptions::default() };
    Mount::new(config(repo, cache, extra), options)
}

/// path → the tsv columns after the path.
fn expected(repo: &FixtureRepo, tag: &str) -> BTreeMap<String, Vec<String>> {
    let file = &repo.expected.iter().find(|(t, _)| t == tag).unwrap().1;
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| {
            let mut cols = l.split('\t').map(String::from);
            (cols.next().unwrap(), cols.collect())
        })
        .collect()
}

/// Walks the whole tree through the API and renders the tsv columns (without xattrs
/// and hard-link groups, which are checked separately).
fn walk(mount: &Mount) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let root = mount.getattr(1).unwrap();
    visit(mount, 1, "", root, &mut out);
    out
}

fn visit(
    mount: &Mount,
    ino: u64,
    path: &str,
    attr: cvmfs_client::Attr,
    out: &mut BTreeMap<String, Vec<String>>,
) {
    let shown = if path.is_empty() { "/".to_string() } else { path.to_string() };
    let (kind, size, sha, target) = match attr.kind {
        FileKind::Directory => ("d", 0, "-".to_string(), "-".to_string()),
        FileKind::Symlink => {
            let raw = mount.entry_of(ino).unwrap().entry.symlink;
            ("l", attr.size, "-".into(), String::from_utf8(raw).unwrap())
        }
        _ => {
            let handle = mount.open(ino).unwrap();
            let bytes = mount.read(handle, 0, attr.size as usize + 10).unwrap();
            mount.release(handle);
            assert_eq!(bytes.len() as u64, attr.size, "{shown}");
            let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
            ("f", attr.size, sha, "-".into())
        }
    };
    let mode = if kind == "l" { 0o777 } else { attr.mode & 0o7777 };
    out.insert(
        shown,
        vec![kind.into(), format!("{mode:04o}"), size.to_string(), attr.mtime.to_string(), sha, target],
    );
    if attr.kind == FileKind::Directory {
        for child in mount.readdir(ino).unwrap() {
            if child.name == b"." || child.name == b".." {
                continue;
            }
            let child_attr = mount.lookup(ino, &child.name).unwrap();
            assert_eq!(child_attr.ino, child.ino, "readdir and lookup agree on the inode");
            let name = String::from_utf8(child.name.clone()).unwrap();
            visit(mount, child_attr.ino, &format!("{path}/{name}"), child_attr, out);
        }
    }
}

fn without_xattrs_and_links(expected: BTreeMap<String, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    expected.into_iter().map(|(p, mut cols)| (p, cols.drain(..6).collect())).collect()
}

#[test]
fn head_and_every_tag_read_exactly_like_the_expected_listing() {
    let repo = reference_repo();
    let cache = tempfile::tempdir().unwrap();
    for (tag, extra) in [
        ("r2", vec![]),
        ("r1", vec![("CVMFS_REPOSITORY_TAG", "r1")]),
        ("r2", vec![("CVMFS_REPOSITORY_TAG", "r2")]),
    ] {
        let mount = mount(&repo, cache.path(), &extra).unwrap();
        assert_eq!(walk(&mount), without_xattrs_and_links(expected(&repo, tag)), "tag {tag} via {extra:?}");
    }
}

#[test]
fn date_and_root_hash_select_revisions() {
    let repo = reference_repo();
    let cache = tempfile::tempdir().unwrap();
    let by_date = mount(&repo, cache.path(), &[("CVMFS_REPOSITORY_DATE", "2026-11-22T10:31:43Z")]).unwrap();
    assert_eq!(by_date.revision().revision(), 2);
    assert_eq!(by_date.revision().tag.as_deref(), Some("r1"));
    let by_hash =
        mount(&repo, cache.path(), &[("CVMFS_ROOT_HASH", "b35f9c77af0148d3c7f565ae51656d9b6232fc22")])
            .unwrap();
    assert_eq!(walk(&by_hash), without_xattrs_and_links(expected(&repo, "r1")));
    assert_eq!(by_hash.check_revision(), cvmfs_client::CheckOutcome::Fixed);
}

#[test]
fn hard_links_share_an_inode_and_errors_map_to_errno() {
    let repo = reference_repo();
    let cache = tempfile::tempdir().unwrap();
    let mount = mount(&repo, cache.path(), &[]).unwrap();
    let listing = expected(&repo, "r2");
    let mut groups: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (path, cols) in &listing {
        if cols[7] != "-" {
            let mut ino = 1;
            for part in path.trim_start_matches('/').split('/') {
                ino = mount.lookup(ino, part.as_bytes()).unwrap().ino;
            }
            groups.entry(cols[7].clone()).or_default().push(ino);
        }
    }
    assert!(!groups.is_empty());
    for inos in groups.values() {
        assert!(inos.len() > 1 && inos.iter().all(|&i| i == inos[0]), "{inos:?}");
    }
    let missing = mount.lookup(1, b"does-not-exist").unwrap_err();
    assert_eq!(missing.errno(), libc::ENOENT);
    let about = mount.lookup(1, b"ABOUT.txt").unwrap();
    assert_eq!(mount.readlink(about.ino).unwrap_err().errno(), libc::EINVAL);
    assert_eq!(mount.readdir(about.ino).unwrap_err().errno(), libc::ENOTDIR);
    assert!(matches!(mount.read(999, 0, 1), Err(ClientError::BadHandle(999))));
}

#[test]
fn variant_symlinks_expand_with_the_mount_variables() {
    let repo = reference_repo();
    let cache = tempfile::tempdir().unwrap();
    let listing = expected(&repo, "r2");
    let (path, cols) = listing.iter().find(|(_, c)| c[5].contains("$(TEST_ARCH")).expect("a variant symlink");
    let mut variables = std::collections::HashMap::new();
    variables.insert("TEST_ARCH".to_string(), "arch_ppc64le".to_string());
    let options =
        MountOptions { clock: Some(Box::new(|| REFERENCE_NOW)), variables, ..MountOptions::default() };
    let mount = Mount::new(config(&repo, cache.path(), &[]), options).unwrap();
    let mut ino = 1;
    for part in path.trim_start_matches('/').split('/') {
        ino = mount.lookup(ino, part.as_bytes()).unwrap().ino;
    }
    let target = String::from_utf8(mount.readlink(ino).unwrap()).unwrap();
    assert!(target.contains("arch_ppc64le"), "{} -> {target} (raw {})", path, cols[5]);
    assert!(!target.contains("$("), "{target}");
}

#[test]
fn a_mount_survives_without_network_from_the_cache() {
    let repo = reference_repo();
    let cache = tempfile::tempdir().unwrap();
    let online = mount(&repo, cache.path(), &[]).unwrap();
    let about = online.lookup(1, b"ABOUT.txt").unwrap();
    let handle = online.open(about.ino).unwrap();
    let content = online.read(handle, 0, 4096).unwrap();
    drop(online);
    // The server disappears.
    std::fs::rename(&repo.storage, repo.storage.with_extension("gone")).unwrap();
    let offline = mount(&repo, cache.path(), &[]).unwrap();
    assert!(offline.is_offline());
    assert_eq!(offline.revision().revision(), 3);
    let about = offline.lookup(1, b"ABOUT.txt").unwrap();
    let handle = offline.open(about.ino).unwrap();
    assert_eq!(offline.read(handle, 0, 4096).unwrap(), content);
    // What was never cached is an I/O error, not a hang or garbage.
    let payload = offline.lookup(1, b"payload").unwrap();
    assert_eq!(offline.readdir(payload.ino).unwrap_err().errno(), libc::EIO);
    assert!(matches!(offline.check_revision(), cvmfs_client::CheckOutcome::Failed(_)));
}

#[test]
fn without_a_cache_and_without_a_server_the_mount_fails_clearly() {
    let repo = reference_repo();
    let cache = tempfile::tempdir().unwrap();
    std::fs::rename(&repo.storage, repo.storage.with_extension("gone")).unwrap();
    let error = mount(&repo, cache.path(), &[]).unwrap_err().to_string();
    assert!(error.contains("failed to initialize root file catalog"), "{error}");
}

#[test]
fn an_open_file_keeps_its_bytes_across_a_revision_switch() {
    let repo = reference_repo();
    let cache = tempfile::tempdir().unwrap();
    let mount = mount(&repo, cache.path(), &[]).unwrap();
    let about = mount.lookup(1, b"ABOUT.txt").unwrap();
    let handle = mount.open(about.ino).unwrap();
    let head_bytes = mount.read(handle, 0, 4096).unwrap();
    let generation = mount.generation();
    let r1 = cvmfs_core::ContentHash::parse("b35f9c77af0148d3c7f565ae51656d9b6232fc22").unwrap();
    mount.chroot(r1).unwrap();
    assert_eq!(mount.revision().revision(), 2);
    assert!(mount.generation() > generation, "front ends are told to invalidate");
    // The handle opened before the switch still reads the old content...
    assert_eq!(mount.read(handle, 0, 4096).unwrap(), head_bytes);
    // ...the inode number is unchanged, and a new open sees the new revision.
    let again = mount.lookup(1, b"ABOUT.txt").unwrap();
    assert_eq!(again.ino, about.ino);
    let fresh = mount.open(again.ino).unwrap();
    let r1_bytes = mount.read(fresh, 0, 4096).unwrap();
    assert_ne!(r1_bytes, head_bytes);
    assert_eq!(r1_bytes.len() as u64, again.size);
    // Entries only in the new revision are gone, those only in the old one are back.
    assert_eq!(mount.lookup(1, b"new_in_rev2.txt").unwrap_err().errno(), libc::ENOENT);
}

#[test]
fn a_rollback_to_an_older_manifest_is_refused_and_the_newer_revision_served() {
    let repo = reference_repo();
    let cache = tempfile::tempdir().unwrap();
    drop(mount(&repo, cache.path(), &[]).unwrap());
    // Pretend an earlier mount had seen a newer publication (breadcrumb timestamp in
    // the future of this manifest): the server's manifest is now a rollback.
    let crumb = cache.path().join("fixture.test.local/cvmfschecksum.fixture.test.local");
    std::fs::write(&crumb, "33168bb52dd017fad762f79b5ee71382ca9e3016T1895343504R3").unwrap();
    let mount = mount(&repo, cache.path(), &[]).unwrap();
    assert!(mount.is_offline(), "the outdated manifest is not used");
    assert_eq!(mount.revision().revision(), 3);
    match mount.check_revision() {
        cvmfs_client::CheckOutcome::Failed(reason) => assert!(reason.contains("older"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_damaged_object_in_the_cache_is_detected_evicted_and_fetched_again() {
    let repo = reference_repo();
    let cache = tempfile::tempdir().unwrap();
    let good = {
        let mount = mount(&repo, cache.path(), &[]).unwrap();
        let about = mount.lookup(1, b"ABOUT.txt").unwrap();
        let handle = mount.open(about.ino).unwrap();
        mount.read(handle, 0, 4096).unwrap()
    };
    // Flip a byte of the cached (decompressed) copy, as a failing disk would.
    let listing = expected(&repo, "r2");
    let about_sha = &listing["/ABOUT.txt"][4];
    let mut damaged = 0;
    for prefix in std::fs::read_dir(cache.path().join("fixture.test.local")).unwrap() {
        let prefix = prefix.unwrap().path();
        if !prefix.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&prefix).unwrap() {
            let file = file.unwrap().path();
            let bytes = std::fs::read(&file).unwrap();
            let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
            if &sha == about_sha {
                let mut bytes = bytes;
                bytes[10] ^= 0x20;
                std::fs::write(&file, bytes).unwrap();
                damaged += 1;
            }
        }
    }
    assert_eq!(damaged, 1, "the cached copy of ABOUT.txt was found");
    let mount = mount(&repo, cache.path(), &[]).unwrap();
    let about = mount.lookup(1, b"ABOUT.txt").unwrap();
    let handle = mount.open(about.ino).unwrap();
    assert_eq!(mount.read(handle, 0, 4096).unwrap(), good, "the damaged copy was not served");
}

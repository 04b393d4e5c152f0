//! The upstream-written fixture, extracted tag by tag with the core reader (contents,
//! modes, mtimes, symlinks, hardlinks, xattrs, `.cvmfscatalog` markers) and published
//! again with our writer into one storage directory (r1, then r2 incrementally): the
//! listings of our repository equal the fixture's `expected-<tag>.tsv` (root mtime
//! aside), `cvmfs-inspect` verifies every revision, and the catalog layout, counters
//! and chunk boundaries are the ones upstream wrote.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{inspect, keys_dir, open, set_mtime, set_xattr, user_xattrs_supported, Choice, ReadBack, FQRN};
use cvmfs_core::catalog::{Counters, TreeEntry};
use cvmfs_core::path::RepoPath;
use cvmfs_publish::publish::unix_now;
use cvmfs_publish::{publish, ChunkSizes, PublishOptions};
use cvmfs_testkit::fixtures::{reference_repo, FixtureRepo, REFERENCE_NOW};

/// Writes the tree of a revision into `into` (which must exist and be empty).
fn materialize(read: &ReadBack, into: &Path) {
    let entries = read.entries();
    let mut first_links: HashMap<(String, u32), PathBuf> = HashMap::new();
    for entry in &entries {
        let target = local_path(into, &entry.path);
        let e = &entry.entry;
        if e.is_directory() {
            std::fs::create_dir_all(&target).unwrap();
        } else if e.is_symlink() {
            std::os::unix::fs::symlink(
                std::ffi::OsStr::new(&String::from_utf8(e.symlink.clone()).unwrap()),
                &target,
            )
            .unwrap();
        } else {
            let group = (entry.catalog.hash.to_string(), e.hardlink_group());
            match first_links.get(&group) {
                Some(first) if group.1 != 0 => std::fs::hard_link(first, &target).unwrap(),
                _ => {
                    std::fs::write(&target, read.content(entry)).unwrap();
                    first_links.insert(group, target.clone());
                }
            }
        }
        copy_xattrs(entry, &target);
    }
    // Modes and mtimes last, children before their directories.
    for entry in entries.iter().rev() {
        let target = local_path(into, &entry.path);
        if !entry.entry.is_symlink() {
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(entry.entry.mode & 0o7777))
                .unwrap();
        }
        set_mtime(&target, entry.entry.mtime);
    }
}

fn local_path(root: &Path, path: &RepoPath) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    match path.as_bytes().strip_prefix(b"/") {
        Some(rest) => root.join(std::ffi::OsStr::from_bytes(rest)),
        None => root.to_path_buf(),
    }
}

fn copy_xattrs(entry: &TreeEntry, target: &Path) {
    if entry.entry.is_symlink() || !entry.entry.has_xattrs || !user_xattrs_supported() {
        return;
    }
    for (name, value) in entry.xattrs().unwrap().iter() {
        set_xattr(target, std::str::from_utf8(name).unwrap(), value).unwrap();
    }
}

fn expected(repo: &FixtureRepo, tag: &str) -> String {
    let file = repo.expected.iter().find(|(t, _)| t == tag).map(|(_, f)| f.clone()).unwrap();
    std::fs::read_to_string(file).unwrap()
}

/// Blanks the root directory's mtime (the first line is always `/`).
fn without_root_mtime(listing: &str) -> String {
    let mut lines: Vec<String> = listing.lines().map(String::from).collect();
    let mut fields: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(fields[0], "/");
    fields[4] = "*";
    lines[0] = fields.join("\t");
    lines.join("\n") + "\n"
}

/// Drops xattr columns when the file system cannot hold user xattrs.
fn comparable(listing: &str) -> String {
    let listing = without_root_mtime(listing);
    if user_xattrs_supported() {
        return listing;
    }
    listing
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split('\t').collect();
            f[7] = "-";
            f.join("\t") + "\n"
        })
        .collect()
}

/// Counters of every catalog of a revision, by mountpoint.
fn counters_by_mountpoint(read: &ReadBack) -> Vec<(String, Counters)> {
    read.entries();
    let mut all: Vec<(String, Counters)> = read
        .tree
        .loaded()
        .iter()
        .map(|m| (m.mountpoint.to_string_lossy(), m.catalog.counters().unwrap()))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// (offset, size) of every chunk of every chunked file, by path. (The chunk hashes
/// differ from upstream's: our zlib emits other, equally valid, compressed bytes.)
fn chunk_layout(read: &ReadBack) -> Vec<(String, Vec<(u64, u64)>)> {
    let mut layout: Vec<(String, Vec<(u64, u64)>)> = read
        .entries()
        .iter()
        .filter(|e| e.entry.is_chunked())
        .map(|e| {
            let chunks = e.chunks().unwrap().iter().map(|c| (c.offset, c.size)).collect();
            (e.path.to_string_lossy(), chunks)
        })
        .collect();
    layout.sort();
    layout
}

#[test]
fn fixture_tags_republished_incrementally_list_as_expected() {
    let fixture = reference_repo();
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("storage");
    let public_key = keys_dir().join(format!("{FQRN}.pub"));
    let mut fixture_counters = Vec::new();
    let mut fixture_chunks = Vec::new();
    for (index, tag) in ["r1", "r2"].into_iter().enumerate() {
        let original = open(
            &fixture.storage,
            &fixture.fqrn,
            &fixture.public_key,
            REFERENCE_NOW,
            Choice::Tag(tag.into()),
        );
        fixture_counters.push(counters_by_mountpoint(&original));
        fixture_chunks.push(chunk_layout(&original));
        let tree = work.path().join(format!("tree-{tag}"));
        std::fs::create_dir(&tree).unwrap();
        materialize(&original, &tree);
        let mut options = PublishOptions::new(FQRN, keys_dir(), &storage, &tree);
        options.tag = Some(tag.into());
        options.chunking = Some(ChunkSizes::new(65536, 131072, 262144).unwrap());
        let report = publish(&options).unwrap();
        assert_eq!(report.revision, index as u64 + 1);
        if index == 1 {
            assert!(report.objects.reused > 100, "r2 shares most objects with r1: {report:?}");
        }
    }
    let now = unix_now() + 60;
    for (index, tag) in ["r1", "r2"].into_iter().enumerate() {
        let ours = open(&storage, FQRN, &public_key, now, Choice::Tag(tag.into()));
        assert_eq!(comparable(&ours.listing()), comparable(&expected(&fixture, tag)), "listing of tag {tag}");
        assert_eq!(counters_by_mountpoint(&ours), fixture_counters[index], "catalog counters of {tag}");
        assert_eq!(chunk_layout(&ours), fixture_chunks[index], "chunk boundaries of {tag}");
        let key = public_key.display().to_string();
        let args = ["--repo", storage.to_str().unwrap(), "--fqrn", FQRN, "--key", &key, "--tag", tag];
        let verified = inspect(&[&args[..], &["verify"]].concat()).unwrap();
        assert!(verified.starts_with("OK: "), "{verified}");
        let listed = inspect(&[&args[..], &["ls", "-R", "-l", "/"]].concat()).unwrap();
        assert_eq!(
            comparable(&listed),
            comparable(&expected(&fixture, tag)),
            "cvmfs-inspect listing of {tag}"
        );
    }
    let head = open(&storage, FQRN, &public_key, now, Choice::Head);
    assert_eq!(comparable(&head.listing()), comparable(&expected(&fixture, "r2")));
}

#[test]
fn publishing_on_top_of_an_upstream_repository_continues_its_history() {
    let fixture = reference_repo();
    let keys = tempfile::tempdir().unwrap();
    cvmfs_publish::generate_keys(&fixture.fqrn, keys.path(), unix_now()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("hello.txt"), "hello\n").unwrap();
    let mut options = PublishOptions::new(&fixture.fqrn, keys.path(), &fixture.storage, &tree);
    options.tag = Some("ours".into());
    let report = publish(&options).unwrap();
    assert_eq!(report.revision, 4, "upstream's HEAD was revision 3");
    let public_key = keys.path().join(format!("{}.pub", fixture.fqrn));
    let now = unix_now() + 60;
    let head = open(&fixture.storage, &fixture.fqrn, &public_key, now, Choice::Head);
    assert_eq!(head.tree.root().catalog.properties().previous_revision.unwrap().to_string(), R2_ROOT);
    for tag in ["r1", "r2"] {
        let old = open(&fixture.storage, &fixture.fqrn, &public_key, now, Choice::Tag(tag.into()));
        assert_eq!(comparable(&old.listing()), comparable(&expected(&fixture, tag)), "upstream tag {tag}");
    }
    let history = common::open_history(&fixture.storage, head_history(&fixture.storage));
    let names: Vec<String> = history.tags().unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["ours", "trunk", "r2", "trunk-previous", "r1", "generic-2026-11-22T10:31:42Z"]);
}

const R2_ROOT: &str = "33168bb52dd017fad762f79b5ee71382ca9e3016";

fn head_history(storage: &Path) -> cvmfs_core::ContentHash {
    let raw = std::fs::read(storage.join(".cvmfspublished")).unwrap();
    cvmfs_core::manifest::Manifest::parse(&raw).unwrap().history.unwrap()
}

//! Catalogs of the real upstream-written fixture repositories: every catalog opens, the
//! whole tree of each tag walks through `CatalogTree` and matches expected-<tag>.tsv,
//! chunk lists, counters and the legacy repository's spec 12.6 rows.

mod catalog_common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use catalog_common::{hash, StorageLoader};
use cvmfs_core::catalog::tree::MountKind;
use cvmfs_core::catalog::{Catalog, CatalogTree, EntryKind, TreeEntry};
use cvmfs_core::path::RepoPath;
use cvmfs_core::Algorithm;
use cvmfs_testkit::fixtures::{legacy_repo, reference_repo};

const R1_ROOT: &str = "b35f9c77af0148d3c7f565ae51656d9b6232fc22";
const R2_ROOT: &str = "33168bb52dd017fad762f79b5ee71382ca9e3016";
const LEGACY_ROOT: &str = "6ed3d49a5c64f21f36936ab350d49aaf57585b9a";

fn path(text: &str) -> RepoPath {
    RepoPath::parse(text.as_bytes()).unwrap()
}

/// Every catalog object in the storage directory.
fn all_catalog_hashes(storage: &std::path::Path) -> Vec<cvmfs_core::ContentHash> {
    let mut out = Vec::new();
    for prefix in std::fs::read_dir(storage.join("data")).unwrap() {
        let prefix = prefix.unwrap();
        if !prefix.file_type().unwrap().is_dir() {
            continue;
        }
        for object in std::fs::read_dir(prefix.path()).unwrap() {
            let name = object.unwrap().file_name().into_string().unwrap();
            if let Some(rest) = name.strip_suffix('C') {
                out.push(hash(&format!("{}{}", prefix.file_name().to_str().unwrap(), rest)));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_catalog_of_both_repositories_opens() {
    for (repo, expected_count) in [(reference_repo(), 11), (legacy_repo(), 9)] {
        let loader = StorageLoader::new(&repo.storage);
        let hashes = all_catalog_hashes(&repo.storage);
        assert_eq!(hashes.len(), expected_count);
        for h in hashes {
            let catalog = loader.open(&h).unwrap_or_else(|e| panic!("{h}: {e}"));
            let root = catalog.root_prefix().clone();
            let root_entry = catalog.lookup(&root).unwrap().unwrap_or_else(|| panic!("{h}: no root entry"));
            assert!(root_entry.is_directory());
            assert_eq!(root_entry.is_nested_root(), !root.is_root(), "{h}");
            catalog.list(&root).unwrap();
            catalog.counters().unwrap();
            catalog.max_rowid().unwrap();
            for nested in catalog.nested_refs() {
                assert!(nested.hash.is_some());
            }
        }
    }
}

#[test]
fn reference_properties() {
    let repo = reference_repo();
    let loader = StorageLoader::new(&repo.storage);
    let root = loader.open(&hash(R2_ROOT)).unwrap();
    let props = root.properties();
    assert_eq!(root.schema().revision, 7);
    assert!(root.schema().is_2_5());
    assert_eq!(props.revision, 3);
    assert_eq!(props.ttl_seconds, 240);
    assert_eq!(props.last_modified, Some(1_795_343_504));
    assert_eq!(props.previous_revision, Some(hash(R1_ROOT)));
    assert!(props.root_prefix.is_root());
    let nested: BTreeMap<String, String> =
        root.nested_refs().iter().map(|n| (n.path.to_string(), n.hash.unwrap().to_string())).collect();
    assert_eq!(nested.get("/orchard").unwrap(), "2b3e20b40ce2ef80ced5b4100d069619e9c67738");
    assert_eq!(nested.len(), 3);
    let orchard = loader.open(&hash("2b3e20b40ce2ef80ced5b4100d069619e9c67738")).unwrap();
    assert_eq!(orchard.root_prefix(), &path("/orchard"));
    assert_eq!(orchard.nested_refs()[0].size, Some(19456));
}

/// One line of expected-<tag>.tsv.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    kind: String,
    mode: String,
    size: u64,
    mtime: i64,
    target: String,
    xattrs: String,
    group: String,
}

fn read_expected(file: &std::path::Path) -> BTreeMap<String, Expected> {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 9, "{line}");
            let entry = Expected {
                kind: f[1].into(),
                mode: f[2].into(),
                size: f[3].parse().unwrap(),
                mtime: f[4].parse().unwrap(),
                target: f[6].into(),
                xattrs: f[7].into(),
                group: f[8].into(),
            };
            (f[0].to_string(), entry)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What our reader says about an entry, in the TSV's terms.
fn observed(e: &TreeEntry) -> Expected {
    let entry = &e.entry;
    let kind = match entry.kind {
        EntryKind::Directory => "d",
        EntryKind::Regular => "f",
        EntryKind::Symlink => "l",
        other => panic!("unexpected kind {other:?}"),
    };
    let xattrs = e.xattrs().unwrap();
    let user: Vec<String> = xattrs
        .iter()
        .filter(|(k, _)| k.starts_with(b"user."))
        .map(|(k, v)| format!("{}={}", String::from_utf8(k.to_vec()).unwrap(), hex(v)))
        .collect();
    assert_eq!(entry.has_xattrs, !xattrs.is_empty(), "{}", e.path);
    Expected {
        kind: kind.into(),
        mode: format!("{:04o}", entry.mode & 0o7777),
        size: if entry.is_directory() { 0 } else { entry.size },
        mtime: entry.mtime,
        target: if entry.is_symlink() {
            String::from_utf8(entry.symlink.clone()).unwrap()
        } else {
            "-".into()
        },
        xattrs: if user.is_empty() { "-".into() } else { user.join(",") },
        group: "-".into(),
    }
}

/// Walks the whole tree (lookups and listings), returning every entry by path.
fn walk(tree: &CatalogTree<StorageLoader>) -> BTreeMap<String, TreeEntry> {
    let mut out = BTreeMap::new();
    let root = tree.lookup(&RepoPath::root()).unwrap().unwrap();
    let mut pending = vec![root];
    while let Some(item) = pending.pop() {
        if item.entry.is_directory() {
            for child in tree.list(&item.path).unwrap() {
                // A lookup must agree with the listing that produced the entry.
                let looked_up = tree.lookup(&child.path).unwrap().unwrap();
                assert_eq!(looked_up.entry, child.entry, "{}", child.path);
                pending.push(child);
            }
        }
        out.insert(item.path.to_string(), item);
    }
    out
}

fn compare_with_tsv(tag: &str, root_hash: &str, expected_catalogs: usize) {
    let repo = reference_repo();
    let tsv = repo.expected.iter().find(|(t, _)| t == tag).unwrap().1.clone();
    let expected = read_expected(&tsv);
    let tree = CatalogTree::new(StorageLoader::new(&repo.storage), hash(root_hash)).unwrap();
    let walked = walk(&tree);
    assert_eq!(walked.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for (p, e) in &walked {
        let want = expected.get(p).unwrap();
        let mut got = observed(e);
        got.group = want.group.clone(); // compared as a partition below
        assert_eq!(&got, want, "{p}");
    }
    assert_eq!(hardlink_partition_observed(&walked), hardlink_partition_expected(&expected));
    assert_eq!(tree.loaded().len(), expected_catalogs);
    assert_eq!(tree.loader().loads.load(Ordering::SeqCst), expected_catalogs, "each catalog loaded once");
}

fn hardlink_partition_observed(walked: &BTreeMap<String, TreeEntry>) -> BTreeSet<BTreeSet<String>> {
    let mut groups: BTreeMap<(String, u32), BTreeSet<String>> = BTreeMap::new();
    for (p, e) in walked {
        if e.entry.hardlink_group() != 0 {
            let scope = e.catalog.mountpoint.to_string();
            groups.entry((scope, e.entry.hardlink_group())).or_default().insert(p.clone());
            assert!(e.entry.linkcount() >= 2, "{p}");
        }
    }
    groups.into_values().collect()
}

fn hardlink_partition_expected(expected: &BTreeMap<String, Expected>) -> BTreeSet<BTreeSet<String>> {
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (p, e) in expected.iter().filter(|(_, e)| e.group != "-") {
        groups.entry(e.group.clone()).or_default().insert(p.clone());
    }
    groups.into_values().collect()
}

#[test]
fn r1_tree_matches_expected_listing() {
    compare_with_tsv("r1", R1_ROOT, 4);
}

#[test]
fn r2_tree_matches_expected_listing() {
    compare_with_tsv("r2", R2_ROOT, 5);
}

#[test]
fn chunk_lists_of_chunked_files() {
    let repo = reference_repo();
    for (root, files) in [
        (
            R1_ROOT,
            vec![
                ("random_a.bin", 1_543_214, 12, 12),
                ("random_b.bin", 1_216_032, 9, 9),
                ("zeros_2MiB.bin", 2_097_152, 8, 1),
            ],
        ),
        (
            R2_ROOT,
            vec![
                ("random_a.bin", 1_543_214, 12, 12),
                ("random_b.bin", 1_216_032, 9, 9),
                ("random_c_rev2.bin", 731_922, 6, 6),
                ("zeros_2MiB.bin", 2_097_152, 8, 1),
            ],
        ),
    ] {
        let tree = CatalogTree::new(StorageLoader::new(&repo.storage), hash(root)).unwrap();
        let chunked: Vec<TreeEntry> =
            tree.list(&path("/payload")).unwrap().into_iter().filter(|e| e.entry.is_chunked()).collect();
        assert_eq!(chunked.len(), files.len());
        for (name, size, count, distinct) in files {
            let e = tree.lookup(&path(&format!("/payload/{name}"))).unwrap().unwrap();
            assert!(e.entry.is_chunked() && e.entry.content_hash.is_none(), "{name}");
            assert_eq!(e.entry.size, size);
            assert_eq!(e.catalog.mountpoint, path("/payload"));
            let chunks = e.chunks().unwrap();
            assert_eq!(chunks.len(), count, "{name}");
            let objects: BTreeSet<_> = chunks.iter().map(|c| c.hash).collect();
            assert_eq!(objects.len(), distinct, "{name}");
            assert_eq!(chunks.iter().map(|c| c.size).sum::<u64>(), size);
            for chunk in &chunks {
                assert_eq!(chunk.hash.algorithm(), Algorithm::Sha1);
                assert!(
                    repo.storage.join(chunk.object_id().data_path()).exists(),
                    "{name} chunk {}",
                    chunk.offset
                );
            }
        }
        let small = tree.lookup(&path("/payload/small_not_chunked.txt")).unwrap().unwrap();
        assert!(small.chunks().unwrap().is_empty());
        let object = small.entry.object_id().unwrap();
        assert!(repo.storage.join(object.data_path()).exists());
    }
}

#[test]
fn r2_root_counters_match_readme() {
    let repo = reference_repo();
    let root = StorageLoader::new(&repo.storage).open(&hash(R2_ROOT)).unwrap();
    let c = root.counters().unwrap();
    let total = |name: &str| c.self_.get(name).unwrap() + c.subtree.get(name).unwrap();
    for (name, value) in [
        ("regular", 160),
        ("dir", 51),
        ("symlink", 8),
        ("chunked", 4),
        ("chunks", 35),
        ("file_size", 6_554_950),
        ("chunked_size", 5_588_320),
        ("nested", 4),
        ("xattr", 2),
    ] {
        assert_eq!(total(name), value, "{name}");
    }
    assert_eq!(c.get("self_nested"), Some(3));
    assert_eq!(c.all_inodes(), 160 + 51 + 8);
}

#[test]
fn mountpoints_are_served_by_the_parent_and_listed_from_the_child() {
    let repo = reference_repo();
    let tree = CatalogTree::new(StorageLoader::new(&repo.storage), hash(R2_ROOT)).unwrap();
    let mp = tree.lookup(&path("/orchard")).unwrap().unwrap();
    assert!(mp.entry.is_nested_mountpoint());
    assert_eq!(mp.catalog.kind, MountKind::Root);
    assert_eq!(tree.loaded().len(), 1, "looking up a mountpoint loads nothing");
    let listing = tree.list(&path("/orchard")).unwrap();
    assert!(listing.iter().all(|e| e.catalog.mountpoint == path("/orchard")));
    assert_eq!(tree.loaded().len(), 2);
    // Still the parent's entry once the child is loaded.
    let again = tree.lookup(&path("/orchard")).unwrap().unwrap();
    assert!(again.entry.is_nested_mountpoint());
    // Two levels down in one lookup.
    let deep = tree.lookup(&path("/orchard/grp3/leaf0")).unwrap().unwrap();
    assert_eq!(deep.catalog.mountpoint, path("/orchard/grp3"));
    assert_eq!(deep.catalog.depth(), 2);
    assert!(tree.lookup(&path("/orchard/grp3/nope")).unwrap().is_none());
    assert!(tree.lookup(&path("/nope/deeper")).unwrap().is_none());
    assert!(tree.list(&path("/nope")).unwrap().is_empty());
}

#[test]
fn variant_symlinks_of_the_fixture_expand() {
    let repo = reference_repo();
    let tree = CatalogTree::new(StorageLoader::new(&repo.storage), hash(R2_ROOT)).unwrap();
    let e = tree.lookup(&path("/sym/variant_with_default")).unwrap().unwrap();
    assert_eq!(e.entry.symlink, b"$(TEST_ARCH:-default_variant)/file.txt");
    let none = |_: &[u8]| None::<&[u8]>;
    assert_eq!(&*e.entry.expanded_symlink(none), b"default_variant/file.txt");
    let arch = |name: &[u8]| (name == b"TEST_ARCH").then_some(&b"arch_ppc64le"[..]);
    assert_eq!(&*e.entry.expanded_symlink(arch), b"arch_ppc64le/file.txt");
}

#[test]
fn tree_is_shared_between_threads() {
    let repo = reference_repo();
    let tree = Arc::new(CatalogTree::new(StorageLoader::new(&repo.storage), hash(R2_ROOT)).unwrap());
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let tree = Arc::clone(&tree);
            std::thread::spawn(move || {
                for p in [
                    "/orchard/grp3/leaf0",
                    "/payload/random_a.bin",
                    "/levels/depth_1/depth_2/depth_3/depth_4/top.txt",
                ] {
                    let _ = tree.lookup(&path(p)).unwrap();
                }
                tree.list(&path("/orchard/grp1")).unwrap().len()
            })
        })
        .collect();
    let counts: BTreeSet<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(counts.len(), 1);
    assert_eq!(tree.loaded().len(), 5);
    assert!(tree.loader().loads.load(Ordering::SeqCst) >= 5);
}

#[test]
fn legacy_repository_rows_match_spec_12_6() {
    let repo = legacy_repo();
    let tree = CatalogTree::new(StorageLoader::new(&repo.storage), hash(LEGACY_ROOT)).unwrap();
    let root_catalog: &Catalog = &tree.root().catalog;
    assert_eq!(root_catalog.schema().revision, 2);
    assert_eq!(root_catalog.properties().ttl_seconds, 240);
    assert_eq!(root_catalog.properties().last_modified, Some(1_445_428_515));
    let c = root_catalog.counters().unwrap();
    assert_eq!((c.self_.dir, c.self_.regular, c.self_.nested), (4, 6, 3));
    assert_eq!((c.subtree.regular, c.subtree.symlink, c.subtree.dir), (39, 9, 12));
    let root = tree.lookup(&RepoPath::root()).unwrap().unwrap().entry;
    assert_eq!(
        (root.linkcount(), root.mode, root.mtime, root.flags, root.uid),
        (5, 0o40755, 1_445_428_513, 1, 1000)
    );
    assert_eq!(root.parent_key, cvmfs_core::PathKey::ROOT_PARENT);
    let mp = tree.lookup(&path("/needs_migration")).unwrap().unwrap().entry;
    assert_eq!((mp.flags, mp.mode, mp.linkcount()), (3, 16893, 4));
    let foo = tree.lookup(&path("/foo")).unwrap().unwrap().entry;
    assert_eq!((foo.hardlink_group(), foo.linkcount(), foo.size, foo.flags), (1, 2, 4, 4));
    assert!(foo.content_hash.unwrap().hex().starts_with("d85ab7e8"));
    let partner = tree.lookup(&path("/hardlink_foo")).unwrap().unwrap().entry;
    assert_eq!(partner.hardlinks, foo.hardlinks);
    // Walk everything, including three nesting levels.
    let mut count = 0;
    let mut pending = vec![RepoPath::root()];
    while let Some(dir) = pending.pop() {
        for child in tree.list(&dir).unwrap() {
            count += 1;
            if child.entry.is_directory() {
                pending.push(child.path.clone());
            }
            if child.entry.is_symlink() {
                assert_eq!(child.entry.size, child.entry.symlink.len() as u64);
            }
        }
    }
    assert!(count >= 39 + 9, "{count}");
    let symlinks_in_group: Vec<_> = tree
        .list(&path("/needs_migration"))
        .unwrap()
        .into_iter()
        .filter(|e| e.entry.is_symlink() && e.entry.hardlink_group() == 1)
        .collect();
    assert_eq!(symlinks_in_group.len(), 3);
    assert!(symlinks_in_group.iter().all(|e| e.entry.linkcount() == 3));
    assert_eq!(tree.loaded().len(), 7, "root + 6 nested catalogs");
}

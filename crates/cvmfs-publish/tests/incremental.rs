//! Incremental publishing and atomicity: a second revision writes only new objects and
//! the changed catalogs; every older revision stays readable by tag, date and root hash;
//! a failed or killed publish leaves the served revision intact; the CLI works end to
//! end.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{inspect, keys_dir, open, open_history, tree_listing, verify_all_objects, Choice, FQRN};
use cvmfs_publish::publish::unix_now;
use cvmfs_publish::{publish, PublishError, PublishOptions};

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// `/a` and `/b` are nested catalogs; `/top.txt` lives in the root catalog.
fn first_tree(root: &Path) {
    write(&root.join("top.txt"), "top\n");
    write(&root.join("a/.cvmfscatalog"), "");
    write(&root.join("a/one.txt"), "one\n");
    write(&root.join("a/deep/two.txt"), "two\n");
    write(&root.join("b/.cvmfscatalog"), "");
    write(&root.join("b/three.txt"), "three\n");
    std::os::unix::fs::symlink("$(ARCH:-x86_64)/lib", root.join("b/variant")).unwrap();
}

fn objects(storage: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for dir in std::fs::read_dir(storage.join("data")).unwrap() {
        let dir = dir.unwrap();
        if dir.file_name() == "txn" {
            continue;
        }
        for file in std::fs::read_dir(dir.path()).unwrap() {
            names.insert(format!(
                "{}/{}",
                dir.file_name().to_string_lossy(),
                file.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    names
}

fn options(storage: &Path, source: &Path, tag: &str, now: u64) -> PublishOptions {
    let mut options = PublishOptions::new(FQRN, keys_dir(), storage, source);
    options.tag = Some(tag.into());
    options.now = Some(now);
    options
}

fn public_key() -> std::path::PathBuf {
    keys_dir().join(format!("{FQRN}.pub"))
}

#[test]
fn second_revision_writes_only_what_changed_and_old_ones_stay_readable() {
    let work = tempfile::tempdir().unwrap();
    let (source, storage) = (work.path().join("src"), work.path().join("storage"));
    first_tree(&source);
    let t1 = unix_now() - 100;
    let first = publish(&options(&storage, &source, "v1", t1)).unwrap();
    assert_eq!((first.revision, first.build.catalogs_written), (1, 3));
    let v1_listing = tree_listing(&source);
    let before = objects(&storage);

    write(&source.join("a/one.txt"), "one, changed\n");
    let second = publish(&options(&storage, &source, "v2", t1 + 10)).unwrap();
    assert_eq!(second.revision, 2);
    assert_eq!((second.build.catalogs_written, second.build.catalogs_reused), (2, 1), "/b is unchanged");
    let after = objects(&storage);
    assert!(before.is_subset(&after), "no object removed or renamed");
    let new: Vec<&String> = after.difference(&before).collect();
    let suffixes: String =
        new.iter().map(|n| n.chars().last().filter(|c| c.is_ascii_uppercase()).unwrap_or('f')).collect();
    let mut sorted: Vec<char> = suffixes.chars().collect();
    sorted.sort();
    assert_eq!(sorted, ['C', 'C', 'H', 'f'], "new objects: {new:?}");
    assert_eq!(second.objects.written, 4);

    let now = unix_now() + 60;
    let key = public_key();
    let head = open(&storage, FQRN, &key, now, Choice::Head);
    assert_eq!(head.listing(), tree_listing(&source));
    let by_tag = open(&storage, FQRN, &key, now, Choice::Tag("v1".into()));
    assert_eq!(by_tag.listing(), v1_listing);
    assert_eq!(open(&storage, FQRN, &key, now, Choice::RootHash(first.root_hash)).listing(), v1_listing);
    let history = open_history(&storage, head_history(&storage));
    let at_t1 = history.tag_at((t1 + 5) as i64).unwrap().unwrap();
    assert_eq!((at_t1.hash, at_t1.revision), (first.root_hash, 1), "date lookup finds v1");
    assert_eq!(history.tag("trunk-previous").unwrap().unwrap().hash, first.root_hash);
    assert_eq!(history.tag("trunk").unwrap().unwrap().hash, second.root_hash);
    let nested_b = head.tree.catalog_for(&cvmfs_core::path::RepoPath::parse(b"/b").unwrap()).unwrap();
    assert_eq!(nested_b.catalog.revision(), 1, "the unchanged catalog keeps its revision");
    let nested_a = head.tree.catalog_for(&cvmfs_core::path::RepoPath::parse(b"/a").unwrap()).unwrap();
    assert_eq!(nested_a.catalog.revision(), 2);
    assert!(nested_a.catalog.properties().previous_revision.is_some());
    verify_all_objects(&storage);
    let key_text = key.display().to_string();
    let date = (t1 + 5).to_string();
    let old = inspect(&[
        "--repo",
        storage.to_str().unwrap(),
        "--fqrn",
        FQRN,
        "--key",
        &key_text,
        "--date",
        &date,
        "verify",
    ])
    .unwrap();
    assert!(old.contains("revision 1 "), "{old}");
}

fn head_history(storage: &Path) -> cvmfs_core::ContentHash {
    let raw = std::fs::read(storage.join(".cvmfspublished")).unwrap();
    cvmfs_core::manifest::Manifest::parse(&raw).unwrap().history.unwrap()
}

#[test]
fn failed_publish_leaves_the_served_revision() {
    let work = tempfile::tempdir().unwrap();
    let (source, storage) = (work.path().join("src"), work.path().join("storage"));
    first_tree(&source);
    publish(&options(&storage, &source, "v1", unix_now())).unwrap();
    let manifest = std::fs::read(storage.join(".cvmfspublished")).unwrap();
    let whitelist = std::fs::read(storage.join(".cvmfswhitelist")).unwrap();

    write(&source.join("later.txt"), "later\n");
    let again = publish(&options(&storage, &source, "v1", unix_now()));
    assert!(matches!(again, Err(PublishError::TagExists(_))), "{again:?}");
    let reserved = publish(&options(&storage, &source, "trunk", unix_now()));
    assert!(matches!(reserved, Err(PublishError::TagExists(_))), "{reserved:?}");
    let missing = publish(&options(&storage, &work.path().join("nope"), "v2", unix_now()));
    assert!(missing.is_err());
    let inside = publish(&options(&source.join("new-storage"), &source, "v2", unix_now()));
    assert!(matches!(inside, Err(PublishError::Source { .. })), "{inside:?}");
    assert!(!source.join("new-storage").exists());
    let mut other_name = options(&storage, &source, "v2", unix_now());
    other_name.fqrn = "other.name".into();
    assert!(publish(&other_name).is_err(), "keys of another repository are missing");
    assert_eq!(std::fs::read(storage.join(".cvmfspublished")).unwrap(), manifest);
    assert_eq!(std::fs::read(storage.join(".cvmfswhitelist")).unwrap(), whitelist);
    let leftovers: Vec<_> =
        std::fs::read_dir(storage.join("data/txn")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, [".lock"], "scratch files removed");
}

#[test]
fn killed_publish_leaves_the_served_revision() {
    let work = tempfile::tempdir().unwrap();
    let (source, storage) = (work.path().join("src"), work.path().join("storage"));
    first_tree(&source);
    publish(&options(&storage, &source, "v1", unix_now())).unwrap();
    let v1_listing = tree_listing(&source);
    let manifest = std::fs::read(storage.join(".cvmfspublished")).unwrap();
    let mut noise = vec![0u8; 96 << 20];
    let mut state = 0x9e3779b97f4a7c15u64;
    for byte in noise.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    std::fs::write(source.join("big.bin"), &noise).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cvmfs-publish"))
        .args(["publish", "--fqrn", FQRN, "--tag", "v2"])
        .arg("--keys")
        .arg(keys_dir())
        .arg("--storage")
        .arg(&storage)
        .arg("--source")
        .arg(&source)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let _ = child.kill();
    let status = child.wait().unwrap();
    let now = unix_now() + 60;
    let head = open(&storage, FQRN, &public_key(), now, Choice::Head);
    if std::fs::read(storage.join(".cvmfspublished")).unwrap() == manifest {
        assert!(!status.success());
        assert_eq!(head.listing(), v1_listing, "the killed publish changed nothing visible");
    } else {
        eprintln!("note: the publish finished within 300 ms; checking the new revision instead");
        assert_eq!(head.revision, 2);
    }
    let retried = publish(&options(&storage, &source, "v3", unix_now())).unwrap();
    assert_eq!(open(&storage, FQRN, &public_key(), now, Choice::Head).root_hash, retried.root_hash);
    assert_eq!(open(&storage, FQRN, &public_key(), now, Choice::Tag("v1".into())).listing(), v1_listing);
}

#[test]
fn cli_keygen_and_publish() {
    let work = tempfile::tempdir().unwrap();
    let (source, storage, keys) =
        (work.path().join("src"), work.path().join("storage"), work.path().join("keys"));
    first_tree(&source);
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_cvmfs-publish")).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["keygen", "--fqrn", "cli.test", "--out", keys.to_str().unwrap()]);
    for name in ["cli.test.pub", "cli.test.crt", "cli.test.key", "cli.test.masterkey"] {
        assert!(keys.join(name).is_file(), "{name}");
    }
    let meta = work.path().join("meta.json");
    std::fs::write(&meta, "{\"administrator\": \"test\"}\n").unwrap();
    let out = run(&[
        "publish",
        "--fqrn",
        "cli.test",
        "--keys",
        keys.to_str().unwrap(),
        "--storage",
        storage.to_str().unwrap(),
        "--source",
        source.to_str().unwrap(),
        "--tag",
        "first",
        "--hash",
        "shake128",
        "--compression",
        "none",
        "--chunk-sizes",
        "1024,2048,4096",
        "--whitelist-days",
        "3",
        "--meta-info",
        meta.to_str().unwrap(),
    ]);
    assert!(out.contains("revision 1 of cli.test published, tag first"), "{out}");
    assert!(!storage.join("cli.test.key").exists() && !storage.join("cli.test.masterkey").exists());
    let key = keys.join("cli.test.pub");
    let read = open(&storage, "cli.test", &key, unix_now() + 60, Choice::Head);
    assert_eq!(read.listing(), tree_listing(&source));
    assert_eq!(read.root_hash.algorithm(), cvmfs_core::Algorithm::Shake128);
    let whitelist = std::fs::read(storage.join(".cvmfswhitelist")).unwrap();
    let expiry = cvmfs_core::whitelist::Whitelist::parse(&whitelist, "cli.test", unix_now()).unwrap().expiry;
    assert!(
        expiry.unix_start() <= (unix_now() + 3 * 86_400) as i64
            && expiry.unix_start() > (unix_now() + 2 * 86_400) as i64
    );
    let info = inspect(&[
        "--repo",
        storage.to_str().unwrap(),
        "--fqrn",
        "cli.test",
        "--key",
        key.to_str().unwrap(),
        "info",
    ])
    .unwrap();
    assert!(info.contains("shake128"), "{info}");
    let raw = std::fs::read(storage.join(".cvmfspublished")).unwrap();
    let manifest = cvmfs_core::manifest::Manifest::parse(&raw).unwrap();
    let meta_object = common::read_object(
        &storage,
        manifest.meta_info.unwrap(),
        cvmfs_core::ObjectKind::MetaInfo,
        cvmfs_core::Compression::Zlib,
    )
    .unwrap();
    assert_eq!(meta_object, std::fs::read(&meta).unwrap());
    let bad = Command::new(env!("CARGO_BIN_EXE_cvmfs-publish"))
        .args([
            "publish",
            "--fqrn",
            "cli.test",
            "--keys",
            "/nonexistent",
            "--storage",
            "/tmp/x",
            "--source",
            "/tmp/y",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

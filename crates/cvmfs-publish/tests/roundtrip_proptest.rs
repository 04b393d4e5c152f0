//! Round trip: generated trees (names, sizes, modes, mtimes, symlinks incl. variant
//! symlinks, hardlinks, xattrs, nested `.cvmfscatalog` markers) are published for every
//! hash algorithm and both compressions, then read back with `cvmfs-core` alone
//! (manifest, certificate and whitelist verified with the written keys, catalogs through
//! `CatalogTree`, every object hash-checked): the listing equals the one of the source
//! tree, and `cvmfs-inspect verify` passes.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{
    inspect, keys_dir, open, set_mtime, set_xattr, tree_listing, user_xattrs_supported, verify_all_objects,
    Choice, FQRN,
};
use cvmfs_core::{Algorithm, Compression};
use cvmfs_publish::publish::unix_now;
use cvmfs_publish::{publish, ChunkSizes, PublishOptions};
use proptest::prelude::*;

type Xattrs = Vec<(String, Vec<u8>)>;

#[derive(Debug, Clone)]
enum Node {
    File { content: Content, mode: u32, mtime: i64, xattrs: Xattrs, extra_links: u8 },
    Symlink { target: String, mtime: i64 },
    Dir { children: BTreeMap<String, Node>, marker: bool, mode: u32, mtime: i64, xattrs: Xattrs },
}

/// File content described compactly: a length and either a pattern or noise.
#[derive(Debug, Clone)]
struct Content {
    len: usize,
    seed: u64,
    noise: bool,
}

impl Content {
    fn bytes(&self) -> Vec<u8> {
        let mut state = self.seed | 1;
        (0..self.len)
            .map(|i| {
                if self.noise {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                } else {
                    (i % 7) as u8 + b'a'
                }
            })
            .collect()
    }
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _é中-]{1,10}"
}

fn xattrs() -> BoxedStrategy<Xattrs> {
    if user_xattrs_supported() {
        prop::collection::vec(("user\\.[a-z]{1,8}", prop::collection::vec(any::<u8>(), 0..40)), 0..3).boxed()
    } else {
        Just(Vec::new()).boxed()
    }
}

fn mtime() -> impl Strategy<Value = i64> {
    0i64..5_000_000_000
}

fn content() -> impl Strategy<Value = Content> {
    prop_oneof![
        3 => (0usize..600, any::<u64>(), any::<bool>()).prop_map(|(len, seed, noise)| Content { len, seed, noise }),
        1 => (0usize..30_000, any::<u64>(), any::<bool>()).prop_map(|(len, seed, noise)| Content { len, seed, noise }),
    ]
}

fn leaf() -> impl Strategy<Value = Node> {
    let modes = prop::sample::select(vec![0o644u32, 0o600, 0o755, 0o640, 0o444]);
    let links = prop_oneof![3 => Just(0u8), 1 => 1u8..3];
    let file = (content(), modes, mtime(), xattrs(), links).prop_map(
        |(content, mode, mtime, xattrs, extra_links)| Node::File {
            content,
            mode,
            mtime,
            xattrs,
            extra_links,
        },
    );
    let target =
        prop_oneof!["[a-z/.]{1,20}", "\\$\\([A-Z_]{1,6}\\)/[a-z]{1,5}", "\\$\\([A-Z]{1,4}:-[a-z]{1,4}\\)x"];
    let symlink = (target, mtime()).prop_map(|(target, mtime)| Node::Symlink { target, mtime });
    prop_oneof![4 => file, 1 => symlink]
}

fn dir(children: BoxedStrategy<BTreeMap<String, Node>>) -> impl Strategy<Value = Node> {
    let modes = prop::sample::select(vec![0o755u32, 0o700, 0o750]);
    (children, prop::bool::weighted(0.3), modes, mtime(), xattrs()).prop_map(
        |(children, marker, mode, mtime, xattrs)| Node::Dir { children, marker, mode, mtime, xattrs },
    )
}

fn tree() -> impl Strategy<Value = Node> {
    let nested = leaf()
        .prop_recursive(3, 40, 6, |inner| dir(prop::collection::btree_map(name(), inner, 0..6).boxed()));
    dir(prop::collection::btree_map(name(), nested, 0..8).boxed())
}

/// Creates `node` at `path`; modes and mtimes are set after the content (and, for
/// directories, after the children).
fn write_node(path: &Path, node: &Node) {
    match node {
        Node::File { content, mode, mtime, xattrs, extra_links } => {
            std::fs::write(path, content.bytes()).unwrap();
            apply(path, xattrs, Some(*mode), *mtime);
            for link in 0..*extra_links {
                let mut name = path.file_name().unwrap().to_os_string();
                name.push(format!(".l{link}"));
                std::fs::hard_link(path, path.with_file_name(name)).unwrap();
            }
        }
        Node::Symlink { target, mtime } => {
            std::os::unix::fs::symlink(target, path).unwrap();
            set_mtime(path, *mtime);
        }
        Node::Dir { children, marker, mode, mtime, xattrs } => {
            if !path.exists() {
                std::fs::create_dir(path).unwrap();
            }
            for (name, child) in children {
                write_node(&path.join(name), child);
            }
            if *marker {
                let file = path.join(".cvmfscatalog");
                std::fs::write(&file, b"").unwrap();
                set_mtime(&file, *mtime);
            }
            apply(path, xattrs, Some(*mode), *mtime);
        }
    }
}

fn apply(path: &Path, xattrs: &Xattrs, mode: Option<u32>, mtime: i64) {
    for (name, value) in xattrs {
        set_xattr(path, name, value).unwrap();
    }
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    set_mtime(path, mtime);
}

fn round_trip(root: &Node, algorithm: Algorithm, compression: Compression) -> Result<(), TestCaseError> {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    write_node(&source, root);
    let storage = work.path().join("storage");
    let mut options = PublishOptions::new(FQRN, keys_dir(), &storage, &source);
    options.algorithm = algorithm;
    options.compression = compression;
    options.chunking = Some(ChunkSizes::new(1024, 2048, 4096).unwrap());
    let report = publish(&options).map_err(|e| TestCaseError::fail(e.to_string()))?;
    if std::env::var_os("ROUNDTRIP_DEBUG").is_some() {
        eprintln!("{report:?}");
    }
    let public_key = keys_dir().join(format!("{FQRN}.pub"));
    let read = open(&storage, FQRN, &public_key, unix_now() + 60, Choice::Head);
    prop_assert_eq!(read.listing(), tree_listing(&source));
    prop_assert!(verify_all_objects(&storage) > 0);
    let key = public_key.display().to_string();
    let verified = inspect(&["--repo", storage.to_str().unwrap(), "--fqrn", FQRN, "--key", &key, "verify"])
        .map_err(TestCaseError::fail)?;
    prop_assert!(verified.starts_with("OK: "), "{}", verified);
    Ok(())
}

macro_rules! round_trip_test {
    ($name:ident, $algorithm:expr, $compression:expr) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: 8, max_shrink_iters: 64, ..ProptestConfig::default() })]
            #[test]
            fn $name(root in tree()) {
                round_trip(&root, $algorithm, $compression)?;
            }
        }
    };
}

round_trip_test!(sha1_zlib, Algorithm::Sha1, Compression::Zlib);
round_trip_test!(sha1_none, Algorithm::Sha1, Compression::None);
round_trip_test!(rmd160_zlib, Algorithm::Rmd160, Compression::Zlib);
round_trip_test!(rmd160_none, Algorithm::Rmd160, Compression::None);
round_trip_test!(shake128_zlib, Algorithm::Shake128, Compression::Zlib);
round_trip_test!(shake128_none, Algorithm::Shake128, Compression::None);

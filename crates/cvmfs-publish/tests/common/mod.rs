//! Shared by the writer's tests: keys generated once per test binary, a reader that
//! verifies a published repository with `cvmfs-core` alone (trust chain, catalogs,
//! every object's hash) and renders it in the `expected-*.tsv` format, the same listing
//! computed from a directory tree, and file-system helpers (xattrs, mtimes).
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use cvmfs_core::blacklist::Blacklist;
use cvmfs_core::catalog::tree::LoadError;
use cvmfs_core::catalog::{Catalog, CatalogLoader, CatalogTree, EntryKind, TreeEntry};
use cvmfs_core::history::History;
use cvmfs_core::path::RepoPath;
use cvmfs_core::signature::KeyRing;
use cvmfs_core::trust::{verify_manifest, LocalStorage, TrustContext};
use cvmfs_core::verify::read_verified_to_vec;
use cvmfs_core::{Compression, ContentHash, ObjectId, ObjectKind};
use cvmfs_tools::listing::{render, Kind, Row};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

pub const FQRN: &str = "writer.test.local";

/// A key directory for [`FQRN`], generated once per test binary.
pub fn keys_dir() -> &'static Path {
    static KEYS: OnceLock<TempDir> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        cvmfs_publish::generate_keys(FQRN, dir.path(), cvmfs_publish::publish::unix_now()).unwrap();
        dir
    })
    .path()
}

/// Which revision to read.
#[derive(Debug, Clone)]
pub enum Choice {
    Head,
    Tag(String),
    RootHash(ContentHash),
}

/// Loads catalogs from `<storage>/data/xx/...C`: verify, inflate into a temp file, open.
pub struct StorageLoader {
    pub storage: PathBuf,
    pub tmp: TempDir,
    pub loads: AtomicUsize,
}

impl StorageLoader {
    pub fn new(storage: &Path) -> StorageLoader {
        StorageLoader {
            storage: storage.to_path_buf(),
            tmp: tempfile::tempdir().unwrap(),
            loads: AtomicUsize::new(0),
        }
    }
}

impl CatalogLoader for StorageLoader {
    fn load(&self, hash: &ContentHash, _mountpoint: &RepoPath) -> Result<Arc<Catalog>, LoadError> {
        let n = self.loads.fetch_add(1, Ordering::SeqCst);
        let inflated = read_object(&self.storage, *hash, ObjectKind::Catalog, Compression::Zlib)?;
        let file = self.tmp.path().join(format!("{}-{n}.sqlite", hash.hex()));
        std::fs::write(&file, inflated)?;
        Ok(Arc::new(Catalog::open(&file)?))
    }
}

/// Reads and verifies one stored object.
pub fn read_object(
    storage: &Path,
    hash: ContentHash,
    kind: ObjectKind,
    compression: Compression,
) -> Result<Vec<u8>, LoadError> {
    let object = ObjectId::new(hash, kind);
    let stored = std::fs::read(storage.join(object.data_path()))?;
    Ok(read_verified_to_vec(&stored, hash, compression, 1 << 32)?)
}

/// A verified repository revision.
pub struct ReadBack {
    pub tree: CatalogTree<StorageLoader>,
    pub storage: PathBuf,
    pub revision: u64,
    pub root_hash: ContentHash,
}

/// Verifies the manifest (certificate, signature, whitelist with the master key in
/// `public_key`) and opens the chosen revision.
pub fn open(storage: &Path, fqrn: &str, public_key: &Path, now: u64, choice: Choice) -> ReadBack {
    let mut keys = KeyRing::new();
    keys.load_file(public_key).unwrap();
    let blacklist = Blacklist::new();
    let ctx = TrustContext {
        fqrn,
        keys: &keys,
        blacklist: &blacklist,
        now,
        minimum_timestamp: 0,
        base_root_hash: None,
    };
    let local = LocalStorage::new(storage);
    let verified = verify_manifest(&local.read_manifest().unwrap(), &ctx, &local).expect("manifest verifies");
    let manifest = verified.manifest;
    let (root_hash, revision) = match choice {
        Choice::Head => (manifest.catalog_hash, manifest.revision),
        Choice::RootHash(hash) => (hash, 0),
        Choice::Tag(name) => {
            let history = open_history(storage, manifest.history.expect("history"));
            let tag = history.tag(&name).unwrap().unwrap_or_else(|| panic!("tag {name}"));
            (tag.hash, tag.revision)
        }
    };
    let tree = CatalogTree::new(StorageLoader::new(storage), root_hash).expect("root catalog");
    let revision = if revision == 0 { tree.root().catalog.revision() } else { revision };
    ReadBack { tree, storage: storage.to_path_buf(), revision, root_hash }
}

/// The inflated history database of a repository (kept alive by a leaked temp dir).
pub fn open_history(storage: &Path, hash: ContentHash) -> History {
    let bytes = read_object(storage, hash, ObjectKind::History, Compression::Zlib).unwrap();
    let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
    let file = dir.path().join("history.db");
    std::fs::write(&file, bytes).unwrap();
    History::open(&file).unwrap()
}

impl ReadBack {
    /// Every entry, depth first.
    pub fn entries(&self) -> Vec<TreeEntry> {
        let root = self.tree.lookup(&RepoPath::root()).unwrap().expect("root entry");
        let mut out = vec![root];
        self.collect(&RepoPath::root(), &mut out);
        out
    }

    fn collect(&self, dir: &RepoPath, out: &mut Vec<TreeEntry>) {
        for child in self.tree.list(dir).unwrap() {
            let descend = child.entry.is_directory();
            let path = child.path.clone();
            out.push(child);
            if descend {
                self.collect(&path, out);
            }
        }
    }

    /// The content of a regular file, every object hash-checked; chunks must tile it.
    pub fn content(&self, entry: &TreeEntry) -> Vec<u8> {
        let e = &entry.entry;
        if !e.is_chunked() {
            let id = e.object_id().expect("unchunked file has a hash");
            return read_object(&self.storage, id.hash, ObjectKind::File, e.compression).unwrap();
        }
        let mut out = Vec::new();
        for chunk in entry.chunks().unwrap() {
            assert_eq!(chunk.offset, out.len() as u64, "chunks tile the file");
            let bytes = read_object(&self.storage, chunk.hash, ObjectKind::Partial, e.compression).unwrap();
            assert_eq!(bytes.len() as u64, chunk.size);
            out.extend_from_slice(&bytes);
        }
        assert_eq!(out.len() as u64, e.size);
        out
    }

    /// The listing in the `expected-*.tsv` format.
    pub fn listing(&self) -> String {
        let rows = self.entries().iter().map(|e| self.row(e)).collect();
        render(rows)
    }

    fn row(&self, entry: &TreeEntry) -> Row {
        let e = &entry.entry;
        let kind = match e.kind {
            EntryKind::Directory => Kind::Directory,
            EntryKind::Regular => Kind::File,
            EntryKind::Symlink => Kind::Symlink,
            _ => Kind::Special,
        };
        let xattrs = entry
            .xattrs()
            .unwrap()
            .iter()
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v.to_vec()))
            .collect();
        let identity = u64::from_le_bytes(entry.catalog.hash.digest()[..8].try_into().unwrap());
        Row {
            path: display(&entry.path),
            kind,
            permissions: e.mode & 0o7777,
            size: e.size,
            mtime: e.mtime,
            sha256: e.is_regular().then(|| sha256_hex(&self.content(entry))),
            symlink: e.is_symlink().then(|| String::from_utf8_lossy(&e.symlink).into_owned()),
            xattrs,
            hardlink_key: (e.hardlink_group() != 0).then(|| (identity, e.hardlink_group())),
        }
    }
}

fn display(path: &RepoPath) -> String {
    if path.is_root() {
        "/".into()
    } else {
        path.to_string_lossy()
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The listing of a directory tree on disk, with the writer's hardlink rule (regular
/// files of one directory sharing an inode form a group).
pub fn tree_listing(root: &Path) -> String {
    let mut rows = Vec::new();
    let mut next_dir = 0u64;
    tree_rows(root, "", &mut rows, &mut next_dir);
    render(rows)
}

fn tree_rows(path: &Path, display_path: &str, rows: &mut Vec<Row>, next_dir: &mut u64) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    let file_type = meta.file_type();
    let kind = if file_type.is_dir() {
        Kind::Directory
    } else if file_type.is_file() {
        Kind::File
    } else if file_type.is_symlink() {
        Kind::Symlink
    } else {
        Kind::Special
    };
    let symlink = file_type.is_symlink().then(|| {
        String::from_utf8_lossy(std::fs::read_link(path).unwrap().as_os_str().as_bytes()).into_owned()
    });
    rows.push(Row {
        path: if display_path.is_empty() { "/".into() } else { display_path.into() },
        kind,
        permissions: meta.mode() & 0o7777,
        size: symlink.as_ref().map_or(meta.size(), |s| s.len() as u64),
        mtime: meta.mtime(),
        sha256: file_type.is_file().then(|| sha256_hex(&std::fs::read(path).unwrap())),
        symlink,
        xattrs: list_xattrs(path),
        hardlink_key: None,
    });
    if !file_type.is_dir() {
        return;
    }
    *next_dir += 1;
    let dir_id = *next_dir;
    let mut names: Vec<_> = std::fs::read_dir(path).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let start = rows.len();
    let mut inodes: HashMap<u64, Vec<usize>> = HashMap::new();
    for name in names {
        let child = path.join(&name);
        let child_display = format!("{display_path}/{}", String::from_utf8_lossy(name.as_bytes()));
        let child_meta = std::fs::symlink_metadata(&child).unwrap();
        if child_meta.file_type().is_file() && child_meta.nlink() > 1 {
            inodes.entry(child_meta.ino()).or_default().push(rows.len());
        }
        tree_rows(&child, &child_display, rows, next_dir);
    }
    for (inode, members) in inodes {
        if members.len() > 1 {
            for index in members {
                assert!(index >= start);
                rows[index].hardlink_key = Some((dir_id, inode as u32));
            }
        }
    }
}

/// All extended attributes of `path` (not following symlinks).
pub fn list_xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 65536];
    // SAFETY: valid buffer and NUL-terminated path.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Vec::new();
    }
    names.truncate(n as usize);
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).unwrap();
        let mut value = vec![0u8; 65536];
        // SAFETY: valid buffers and NUL-terminated strings.
        let got =
            unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
        if got >= 0 {
            value.truncate(got as usize);
            out.push((String::from_utf8_lossy(name).into_owned(), value));
        }
    }
    out
}

/// Sets an extended attribute (not following symlinks).
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let cname = CString::new(name).unwrap();
    // SAFETY: valid buffers and NUL-terminated strings.
    let rc = unsafe { libc::lsetxattr(c.as_ptr(), cname.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether the file system under the temp directory takes `user.*` attributes.
pub fn user_xattrs_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("probe");
        std::fs::write(&file, b"").unwrap();
        let ok = set_xattr(&file, "user.probe", b"1").is_ok();
        if !ok {
            eprintln!("note: the temp file system does not support user xattrs; xattr checks are skipped");
        }
        ok
    })
}

/// Sets the mtime (seconds) of `path` without following symlinks.
pub fn set_mtime(path: &Path, seconds: i64) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let times = [
        libc::timespec { tv_sec: seconds as libc::time_t, tv_nsec: 0 },
        libc::timespec { tv_sec: seconds as libc::time_t, tv_nsec: 0 },
    ];
    // SAFETY: valid path and a two-element timespec array.
    let rc =
        unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    assert_eq!(rc, 0, "utimensat {}: {}", path.display(), std::io::Error::last_os_error());
}

/// Runs `cvmfs-inspect` (the library behind the binary) and returns its output.
pub fn inspect(args: &[&str]) -> Result<String, String> {
    use clap::Parser;
    let cli =
        cvmfs_tools::cli::Cli::try_parse_from(std::iter::once("cvmfs-inspect").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    cvmfs_tools::inspect::run(&cli, &mut out).map_err(|e| e.to_string())?;
    Ok(String::from_utf8(out).unwrap())
}

/// Checks that every object below `data/` is named by the hash of its stored bytes;
/// returns how many objects there are.
pub fn verify_all_objects(storage: &Path) -> usize {
    let mut count = 0;
    for dir in std::fs::read_dir(storage.join("data")).unwrap() {
        let dir = dir.unwrap();
        let prefix = dir.file_name().to_string_lossy().into_owned();
        if prefix == "txn" {
            continue;
        }
        for file in std::fs::read_dir(dir.path()).unwrap() {
            let file = file.unwrap();
            let name = format!("{prefix}/{}", file.file_name().to_string_lossy());
            let id = ObjectId::from_data_path(&name).unwrap_or_else(|| panic!("not an object name: {name}"));
            let stored = std::fs::read(file.path()).unwrap();
            assert_eq!(ContentHash::of(id.hash.algorithm(), &stored), id.hash, "object {name}");
            count += 1;
        }
    }
    count
}

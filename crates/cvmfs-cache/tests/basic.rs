//! Behaviour of one cache directory: transactions, quota, pins, eviction, repair.

use std::fs;
use std::io::Write;

use cvmfs_cache::{Cache, CacheConfig, CacheError, Evicted, QuotaLimit};
use cvmfs_core::compression::{deflate, Compression};
use cvmfs_core::verify::VerifyingWriter;
use cvmfs_core::{Algorithm, ContentHash, ObjectId, ObjectKind};

fn object(content: &[u8]) -> ObjectId {
    ObjectId::new(ContentHash::of(Algorithm::Sha1, content), ObjectKind::File)
}

fn content(n: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(n * 7919) as u8).collect()
}

fn cache_with(dir: &std::path::Path, quota: QuotaLimit) -> Cache {
    Cache::new(CacheConfig::new(dir).with_quota(quota)).unwrap()
}

fn insert(cache: &Cache, bytes: &[u8]) -> ObjectId {
    let id = object(bytes);
    let mut txn = cache.start_txn(id, Some(bytes.len() as u64)).unwrap();
    txn.write_all(bytes).unwrap();
    let stored = txn.commit().unwrap();
    assert_eq!(stored.read_to_vec().unwrap(), bytes);
    id
}

fn read(cache: &Cache, id: &ObjectId) -> Option<Vec<u8>> {
    cache.open(id).unwrap().map(|o| o.read_to_vec().unwrap())
}

#[test]
fn committed_objects_are_visible_and_uncommitted_ones_are_not() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = cache_with(tmp.path(), QuotaLimit::Unlimited);
    let bytes = content(1, 100_000);
    let id = object(&bytes);
    let mut txn = cache.start_txn(id, None).unwrap();
    txn.write_all(&bytes).unwrap();
    assert!(cache.open(&id).unwrap().is_none(), "not visible before commit");
    drop(txn);
    assert!(cache.open(&id).unwrap().is_none(), "abort leaves nothing");
    assert_eq!(fs::read_dir(tmp.path().join("txn")).unwrap().count(), 0, "temporary file removed");

    insert(&cache, &bytes);
    let on_disk = tmp.path().join(id.cache_path());
    assert_eq!(fs::read(&on_disk).unwrap(), bytes, "stored decompressed under its cache path");
    let hit = cache.open(&id).unwrap().unwrap();
    assert_eq!(hit.size(), bytes.len() as u64);
    let mut middle = vec![0u8; 10];
    hit.read_exact_at(&mut middle, 500).unwrap();
    assert_eq!(middle, bytes[500..510]);
    assert_eq!(&hit.mmap().unwrap()[..], &bytes[..]);
    assert_eq!(hit.content_hash(Algorithm::Sha1).unwrap(), id.hash);
    assert_eq!(cache.size().unwrap(), bytes.len() as u64);
}

#[test]
fn verifying_writer_feeds_a_transaction() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = cache_with(tmp.path(), QuotaLimit::Unlimited);
    let plain = content(2, 50_000);
    let served = deflate(&plain);
    let id = ObjectId::new(ContentHash::of(Algorithm::Rmd160, &served), ObjectKind::Catalog);
    let txn = cache.start_txn(id, None).unwrap();
    let mut writer = VerifyingWriter::new(id.hash, Compression::Zlib, txn, u64::MAX);
    for piece in served.chunks(1000) {
        writer.write_raw(piece).unwrap();
    }
    let stored = writer.finish().unwrap().commit_pinned().unwrap();
    assert_eq!(stored.read_to_vec().unwrap(), plain);
    let listed = cache.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].catalog && listed[0].pinned);
    assert_eq!(cache.cleanup(0).unwrap().evicted, 0, "pinned catalog stays");
    assert!(cache.unpin(&id));
    assert_eq!(cache.cleanup(0).unwrap().evicted, 1);

    // A bad hash: the transaction is dropped, nothing becomes visible.
    let wrong = ObjectId::new(ContentHash::of(Algorithm::Sha1, b"other"), ObjectKind::File);
    let mut writer =
        VerifyingWriter::new(wrong.hash, Compression::Zlib, cache.start_txn(wrong, None).unwrap(), u64::MAX);
    writer.write_raw(&served).unwrap();
    assert!(writer.finish().is_err());
    assert!(cache.open(&wrong).unwrap().is_none());
    assert_eq!(fs::read_dir(tmp.path().join("txn")).unwrap().count(), 0);
}

#[test]
fn sizes_are_enforced() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = cache_with(tmp.path(), QuotaLimit::Bytes(1 << 20));
    let bytes = content(3, 1000);
    let id = object(&bytes);
    let mut txn = cache.start_txn(id, Some(999)).unwrap();
    assert_eq!(txn.write_all(&bytes).unwrap_err().raw_os_error(), Some(libc::EFBIG));
    drop(txn);
    let mut txn = cache.start_txn(id, Some(1001)).unwrap();
    txn.write_all(&bytes).unwrap();
    assert!(matches!(txn.commit(), Err(CacheError::SizeMismatch { expected: 1001, actual: 1000, .. })));
    assert!(matches!(cache.start_txn(id, Some(600_000)), Err(CacheError::TooLarge { max: 524_288, .. })));
    let big = content(4, 600_000);
    let mut txn = cache.start_txn(object(&big), None).unwrap();
    assert!(txn.write_all(&big).is_err(), "unknown size still capped at half the quota");
    drop(txn);
    assert!(cache.open(&id).unwrap().is_none());
    assert_eq!(fs::read_dir(tmp.path().join("txn")).unwrap().count(), 0);
}

#[test]
fn exceeding_the_limit_cleans_down_to_half_in_lru_order() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = cache_with(tmp.path(), QuotaLimit::Bytes(100_000));
    let ids: Vec<ObjectId> = (0..10).map(|n| insert(&cache, &content(n, 10_000))).collect();
    assert_eq!(cache.size().unwrap(), 100_000, "exactly at the limit: nothing evicted yet");
    // Touch the oldest so that it becomes the most recently used.
    assert!(read(&cache, &ids[0]).is_some());
    cache.flush().unwrap();
    let newcomer = insert(&cache, &content(100, 10_000));
    let size = cache.size().unwrap();
    assert!(size <= 60_000, "cleaned to half, then inserted: {size}");
    assert_eq!(read(&cache, &ids[0]), Some(content(0, 10_000)), "recently used survives");
    assert_eq!(read(&cache, &newcomer), Some(content(100, 10_000)));
    assert!(read(&cache, &ids[1]).is_none(), "least recently used went first");
    let listed: u64 = cache.list().unwrap().iter().map(|e| e.size).sum();
    assert_eq!(listed, size);
}

#[test]
fn pins_survive_cleanup_in_this_and_other_handles_and_have_a_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let a = cache_with(tmp.path(), QuotaLimit::Bytes(100_000));
    let b = cache_with(tmp.path(), QuotaLimit::Bytes(100_000));
    let pinned = insert(&a, &content(1, 20_000));
    let loose = insert(&a, &content(2, 20_000));
    assert!(a.pin(&pinned).unwrap());
    let report = b.cleanup(0).unwrap();
    assert_eq!((report.evicted, report.skipped_pinned, report.complete), (1, 1, false));
    assert_eq!(read(&b, &pinned), Some(content(1, 20_000)), "pinned by another handle: kept");
    assert!(read(&b, &loose).is_none());
    assert_eq!(b.evict(&pinned).unwrap(), Evicted::Pinned);

    let second = insert(&a, &content(3, 20_000));
    assert!(a.pin(&second).unwrap());
    let third = insert(&a, &content(4, 20_000));
    assert!(matches!(a.pin(&third), Err(CacheError::PinBudget { pinned: 40_000, budget: 50_000, .. })));
    assert!(!a.pin(&object(b"not cached")).unwrap());

    assert!(a.pin(&pinned).unwrap(), "pins count references");
    assert!(a.unpin(&pinned));
    assert_eq!(b.cleanup(0).unwrap().skipped_pinned, 2);
    assert!(a.unpin(&pinned) && a.unpin(&second));
    assert!(!a.unpin(&second));
    assert!(b.cleanup(0).unwrap().complete);
    assert_eq!(b.size().unwrap(), 0);
    assert_eq!(a.size().unwrap(), 0, "one gauge for both handles");
}

#[test]
fn evict_and_evict_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = cache_with(tmp.path(), QuotaLimit::Unlimited);
    let id = insert(&cache, &content(5, 3000));
    assert_eq!(cache.evict(&id).unwrap(), Evicted::Removed { bytes: 3000 });
    assert_eq!(cache.evict(&id).unwrap(), Evicted::NotCached);
    assert!(read(&cache, &id).is_none());

    let id = insert(&cache, &content(6, 3000));
    fs::write(tmp.path().join(id.cache_path()), b"garbage").unwrap();
    let seen = cache.open(&id).unwrap().unwrap();
    assert_ne!(seen.content_hash(Algorithm::Sha1).unwrap(), id.hash);
    cache.evict_corrupt(&id).unwrap();
    assert!(cache.open(&id).unwrap().is_none());
    assert_eq!(cache.size().unwrap(), 0);
    insert(&cache, &content(6, 3000));
    assert_eq!(read(&cache, &id), Some(content(6, 3000)));
}

#[test]
fn database_is_rebuilt_when_missing_or_corrupt_and_repaired_on_demand() {
    let tmp = tempfile::tempdir().unwrap();
    let ids: Vec<ObjectId> = {
        let cache = cache_with(tmp.path(), QuotaLimit::Unlimited);
        (0..5).map(|n| insert(&cache, &content(n, 1000 + n as usize))).collect()
    };
    let expected: u64 = (0..5).map(|n| 1000 + n as u64).sum();
    for damage in ["delete", "garble"] {
        for suffix in ["", "-wal", "-shm"] {
            let _ = fs::remove_file(tmp.path().join(format!("cachedb{suffix}")));
        }
        if damage == "garble" {
            fs::write(tmp.path().join("cachedb"), vec![0x5a; 8192]).unwrap();
        }
        let cache = cache_with(tmp.path(), QuotaLimit::Unlimited);
        assert_eq!(cache.size().unwrap(), expected, "{damage}");
        let listed = cache.list().unwrap();
        assert_eq!(listed.len(), 5);
        assert!(listed.iter().all(|e| e.description == "unknown (automatic rebuild)"));
    }
    let cache = cache_with(tmp.path(), QuotaLimit::Unlimited);
    fs::remove_file(tmp.path().join(ids[0].cache_path())).unwrap();
    let stray = content(77, 500);
    let stray_id = object(&stray);
    fs::write(tmp.path().join(stray_id.cache_path()), &stray).unwrap();
    fs::write(tmp.path().join("00/not-a-hash"), b"x").unwrap();
    let report = cache.repair().unwrap();
    assert_eq!((report.added, report.removed), (1, 1));
    assert_eq!(cache.size().unwrap(), expected - 1000 + 500);
}

#[test]
fn committing_existing_content_keeps_one_copy_and_counts_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let a = cache_with(tmp.path(), QuotaLimit::Unlimited);
    let b = cache_with(tmp.path(), QuotaLimit::Unlimited);
    let bytes = content(9, 5000);
    let id = object(&bytes);
    let mut first = a.start_txn(id, None).unwrap();
    let mut second = b.start_txn(id, None).unwrap();
    first.write_all(&bytes).unwrap();
    second.write_all(&bytes).unwrap();
    first.commit().unwrap();
    assert_eq!(second.commit().unwrap().read_to_vec().unwrap(), bytes);
    assert_eq!(a.size().unwrap(), 5000);
    assert_eq!(b.list().unwrap().len(), 1);
}

#[test]
fn breadcrumbs_live_in_the_cache_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = cache_with(tmp.path(), QuotaLimit::Unlimited);
    cache.write_breadcrumb("atlas.cern.ch", b"abcT1R2").unwrap();
    assert_eq!(cache.read_breadcrumb("atlas.cern.ch").unwrap().as_deref(), Some(&b"abcT1R2"[..]));
    assert_eq!(fs::read(tmp.path().join("cvmfschecksum.atlas.cern.ch")).unwrap(), b"abcT1R2");
    assert_eq!(cache.read_breadcrumb("lhcb.cern.ch").unwrap(), None);
    let crumb = cvmfs_core::breadcrumb::Breadcrumb {
        catalog_hash: ContentHash::of(Algorithm::Rmd160, b"root catalog"),
        timestamp: 1445428515,
        revision: 2,
    };
    cache.write_breadcrumb("lhcb.cern.ch", crumb.to_string().as_bytes()).unwrap();
    let raw = cache.read_breadcrumb("lhcb.cern.ch").unwrap().unwrap();
    assert_eq!(cvmfs_core::breadcrumb::Breadcrumb::parse(&raw), Ok(crumb));
}

#[test]
fn unwritable_directory_is_reported_for_the_admin() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    fs::write(&file, b"").unwrap();
    let err = Cache::new(CacheConfig::new(file.join("cache"))).err().unwrap();
    assert!(matches!(err, CacheError::Directory { .. }));
    assert!(err.to_string().contains("CVMFS_CACHE_BASE"), "{err}");
}

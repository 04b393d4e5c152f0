//! Tampering with a real repository: one flipped byte in an object, a chunk, a catalog,
//! the manifest, the whitelist or the certificate; a wrong key; an expired whitelist; a
//! manifest for another repository. Each is refused with its own error, and no byte
//! that failed verification ever reaches the output.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{flip_middle_byte, inspect, reference_args as args};
use cvmfs_core::blacklist::Blacklist;
use cvmfs_core::path::RepoPath;
use cvmfs_core::repository::{ContentPiece, OpenOptions, Repository, RevisionChoice};
use cvmfs_core::signature::KeyRing;
use cvmfs_testkit::fixtures::{legacy_repo, reference_repo, FixtureRepo, REFERENCE_NOW};
use cvmfs_tools::source::DirSource;

const R2_ROOT: &str = "33168bb52dd017fad762f79b5ee71382ca9e3016";
const PAYLOAD_R2_CATALOG: &str = "e70e570ea74f7e822e52227ab1715bea241931ad";
const CERTIFICATE: &str = "7379c3fe8847a8eb1f19564e441f41eb05d96cd9";

fn object_file(storage: &Path, hex: &str, suffix: &str) -> std::path::PathBuf {
    storage.join("data").join(&hex[..2]).join(format!("{}{suffix}", &hex[2..]))
}

/// The objects of `path` at HEAD, read with the library before any tampering.
fn pieces(repo: &FixtureRepo, path: &str) -> Vec<ContentPiece> {
    let scratch = tempfile::tempdir().unwrap();
    let options = OpenOptions {
        fqrn: repo.fqrn.clone(),
        keys: KeyRing::from_path_list(&repo.public_key.display().to_string()).unwrap(),
        blacklist: Blacklist::new(),
        now: REFERENCE_NOW,
        minimum_timestamp: 0,
        revision: RevisionChoice::Head,
        scratch: scratch.path().to_path_buf(),
    };
    let repository = Repository::open(Arc::new(DirSource { root: repo.storage.clone() }), &options).unwrap();
    let entry = repository.stat(&RepoPath::parse(path.as_bytes()).unwrap()).unwrap();
    repository.content_pieces(&entry).unwrap()
}

fn assert_mentions(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "expected {needle:?} in: {text}");
    }
}

#[test]
fn a_flipped_byte_in_a_file_object_is_refused_and_nothing_is_printed() {
    let repo = reference_repo();
    let piece = pieces(&repo, "/ABOUT.txt")[0];
    flip_middle_byte(&repo.storage.join(piece.id.data_path()));
    let run = inspect(&args(&repo), &["cat", "/ABOUT.txt"]);
    assert!(run.output.stdout.is_empty(), "bytes of a corrupt object were printed");
    let error = run.failure();
    assert_mentions(&error, &["file object", &piece.id.hash.hex(), "fails verification", "data/"]);
    let verify = inspect(&args(&repo), &["verify"]).failure();
    assert_mentions(&verify, &[&piece.id.hash.hex(), "fails verification"]);
    // Other files are unaffected.
    inspect(&args(&repo), &["cat", "/payload/random_b.bin"]).success_bytes();
}

#[test]
fn a_flipped_chunk_stops_the_output_before_its_first_byte() {
    let repo = reference_repo();
    let good = inspect(&args(&repo), &["cat", "/payload/random_b.bin"]).success_bytes();
    let all = pieces(&repo, "/payload/random_b.bin");
    let victim = all[4];
    flip_middle_byte(&repo.storage.join(victim.id.data_path()));
    let run = inspect(&args(&repo), &["cat", "/payload/random_b.bin"]);
    let printed = run.output.stdout.clone();
    let error = run.failure();
    assert_mentions(&error, &[&victim.id.hash.hex(), "fails verification"]);
    assert_eq!(printed.len() as u64, victim.offset, "exactly the chunks before the bad one are printed");
    assert_eq!(printed[..], good[..printed.len()], "printed bytes are the true content");
}

#[test]
fn a_flipped_byte_in_a_nested_catalog_is_refused_when_it_is_needed() {
    let repo = reference_repo();
    flip_middle_byte(&object_file(&repo.storage, PAYLOAD_R2_CATALOG, "C"));
    // The root catalog alone still answers for everything outside /payload.
    inspect(&args(&repo), &["cat", "/ABOUT.txt"]).success_bytes();
    let error = inspect(&args(&repo), &["ls", "/payload"]).failure();
    assert_mentions(&error, &["catalog", PAYLOAD_R2_CATALOG, "/payload", "fails verification"]);
    let verify = inspect(&args(&repo), &["verify"]).failure();
    assert_mentions(&verify, &[PAYLOAD_R2_CATALOG]);
}

#[test]
fn a_flipped_byte_in_the_root_catalog_is_refused() {
    let repo = reference_repo();
    flip_middle_byte(&object_file(&repo.storage, R2_ROOT, "C"));
    let error = inspect(&args(&repo), &["ls", "/"]).failure();
    assert_mentions(&error, &["catalog", R2_ROOT, "fails verification"]);
}

#[test]
fn an_altered_manifest_is_refused() {
    let repo = reference_repo();
    let file = repo.storage.join(".cvmfspublished");
    let original = std::fs::read(&file).unwrap();
    let text = String::from_utf8_lossy(&original).into_owned();
    // A consistent-looking change of the letter: TTL 240 -> 999.
    std::fs::write(&file, text.replacen("\nD240\n", "\nD999\n", 1).into_bytes()).unwrap();
    let error = inspect(&args(&repo), &["info"]).failure();
    assert_mentions(&error, &["manifest signature is invalid", "altered"]);
    // A flipped byte in the signature itself.
    let mut bytes = original.clone();
    let last = bytes.len() - 10;
    bytes[last] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();
    let error = inspect(&args(&repo), &["info"]).failure();
    assert_mentions(&error, &["manifest signature is invalid"]);
}

#[test]
fn an_altered_whitelist_is_refused() {
    let repo = reference_repo();
    let file = repo.storage.join(".cvmfswhitelist");
    let text = std::fs::read(&file).unwrap();
    let altered = String::from_utf8_lossy(&text).replacen("E2027", "E2029", 1);
    std::fs::write(&file, altered.as_bytes()).unwrap();
    let error = inspect(&args(&repo), &["info"]).failure();
    assert_mentions(&error, &["whitelist"]);
    assert!(error.contains("altered") || error.contains("signature"), "{error}");
}

#[test]
fn a_flipped_byte_in_the_certificate_is_refused() {
    let repo = reference_repo();
    flip_middle_byte(&object_file(&repo.storage, CERTIFICATE, "X"));
    let error = inspect(&args(&repo), &["info"]).failure();
    assert_mentions(&error, &["certificate object", CERTIFICATE, "corrupt"]);
}

#[test]
fn a_wrong_master_key_is_refused() {
    let repo = reference_repo();
    let other = legacy_repo();
    let mut a = args(&repo);
    a[5] = other.public_key.display().to_string();
    let error = inspect(&a, &["info"]).failure();
    assert_mentions(&error, &["whitelist signature does not verify", "master public key"]);
}

#[test]
fn an_expired_whitelist_is_refused() {
    let repo = reference_repo();
    let mut a = args(&repo);
    // 2027-11-22 10:00:00 UTC (1826877600) starts the expiry hour: from then on it is expired.
    a[7] = "1826877600".into();
    let error = inspect(&a, &["info"]).failure();
    assert_mentions(&error, &["whitelist expired at 2027-11-22 10:00"]);
    a[7] = "1826877599".into();
    inspect(&a, &["info"]).success();
}

#[test]
fn a_manifest_for_another_repository_is_refused() {
    let repo = reference_repo();
    let mut a = args(&repo);
    a[3] = "other.test.local".into();
    let error = inspect(&a, &["info"]).failure();
    assert_mentions(&error, &["manifest is for repository 'fixture.test.local', not 'other.test.local'"]);
}

#[test]
fn a_blacklisted_certificate_and_revision_are_refused() {
    let repo = reference_repo();
    let dir = tempfile::tempdir().unwrap();
    let blacklist = dir.path().join("blacklist");
    std::fs::write(&blacklist, "0D:64:D1:65:BB:92:F4:66:FE:93:E1:0A:0E:22:69:BB:C2:D3:9D:7F\n").unwrap();
    let mut a = args(&repo);
    a.extend(["--blacklist".to_string(), blacklist.display().to_string()]);
    assert_mentions(&inspect(&a, &["info"]).failure(), &["blacklisted"]);
    std::fs::write(&blacklist, "<fixture.test.local 4\n").unwrap();
    assert_mentions(&inspect(&a, &["info"]).failure(), &["revision 3 of fixture.test.local is blacklisted"]);
}

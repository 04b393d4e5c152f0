//! `cvmfs-inspect` against the real upstream-written fixture repositories: every
//! `expected-<tag>.tsv` reproduced byte for byte, revision selection by tag, date and root
//! hash, `verify`, chunked `cat`, the legacy 2.1 repository, and reading over HTTP.

mod common;

use common::{inspect, reference_args, serve_directory};
use cvmfs_testkit::fixtures::{legacy_repo, reference_repo, LEGACY_NOW};

const R1_ROOT: &str = "b35f9c77af0148d3c7f565ae51656d9b6232fc22";
const R1_TIMESTAMP: u64 = 1_795_343_503;

fn expected(repo: &cvmfs_testkit::fixtures::FixtureRepo, tag: &str) -> String {
    let file = repo.expected.iter().find(|(t, _)| t == tag).map(|(_, f)| f.clone()).expect("expected tsv");
    std::fs::read_to_string(file).unwrap()
}

#[test]
fn every_expected_listing_is_reproduced_for_every_tag() {
    let repo = reference_repo();
    assert_eq!(repo.expected.len(), 2, "the reference fixture has tags r1 and r2");
    for (tag, _) in &repo.expected {
        let out = inspect(&reference_args(&repo), &["--tag", tag, "ls", "-R", "-l", "/"]).success();
        assert_eq!(out, expected(&repo, tag), "listing of tag {tag}");
    }
}

#[test]
fn head_date_and_root_hash_select_the_right_revision() {
    let repo = reference_repo();
    let args = reference_args(&repo);
    assert_eq!(inspect(&args, &["ls", "-R", "-l", "/"]).success(), expected(&repo, "r2"));
    let date = R1_TIMESTAMP.to_string();
    assert_eq!(inspect(&args, &["--date", &date, "ls", "-R", "-l", "/"]).success(), expected(&repo, "r1"));
    assert_eq!(
        inspect(&args, &["--root-hash", R1_ROOT, "ls", "-R", "-l", "/"]).success(),
        expected(&repo, "r1")
    );
    let before_everything = inspect(&args, &["--date", "1000", "ls", "/"]).failure();
    assert!(before_everything.contains("no tag at or before unix time 1000"), "{before_everything}");
    let missing = inspect(&args, &["--tag", "nope", "ls", "/"]).failure();
    assert!(missing.contains("tag 'nope' does not exist"), "{missing}");
}

#[test]
fn verify_passes_on_every_tag() {
    let repo = reference_repo();
    for tag in ["r1", "r2"] {
        let out = inspect(&reference_args(&repo), &["--tag", tag, "verify"]).success();
        assert!(out.starts_with("OK: "), "{out}");
    }
    let head = inspect(&reference_args(&repo), &["verify"]).success();
    assert!(head.contains("5 catalogs"), "{head}");
}

#[test]
fn cat_reassembles_chunked_files_exactly() {
    let repo = reference_repo();
    let listing = expected(&repo, "r2");
    for path in
        ["/payload/random_a.bin", "/payload/zeros_2MiB.bin", "/payload/random_c_rev2.bin", "/ABOUT.txt"]
    {
        let bytes = inspect(&reference_args(&repo), &["cat", path]).success_bytes();
        let line = listing.lines().find(|l| l.split('\t').next() == Some(path)).unwrap();
        let columns: Vec<&str> = line.split('\t').collect();
        assert_eq!(bytes.len().to_string(), columns[3], "{path} size");
        assert_eq!(common::sha256_hex(&bytes), columns[5], "{path} content");
    }
}

#[test]
fn info_and_tags_show_the_trust_chain_and_history() {
    let repo = reference_repo();
    let info = inspect(&reference_args(&repo), &["info"]).success();
    for needle in [
        "repository:        fixture.test.local",
        "0D:64:D1:65:BB:92:F4:66:FE:93:E1:0A:0E:22:69:BB:C2:D3:9D:7F",
        "expires 2027-11-22 10:00",
        "tags:              5",
    ] {
        assert!(info.contains(needle), "missing {needle:?} in\n{info}");
    }
    let tags = inspect(&reference_args(&repo), &["tags"]).success();
    let names: Vec<&str> = tags.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(names, ["r2", "trunk", "r1", "trunk-previous", "generic-2026-11-22T10:31:42Z"]);
}

#[test]
fn the_legacy_2_1_repository_opens_lists_and_verifies() {
    let repo = legacy_repo();
    let mut args = reference_args(&repo);
    let now_at = args.iter().position(|a| a == "--now").unwrap() + 1;
    args[now_at] = LEGACY_NOW.to_string();
    let listing = inspect(&args, &["ls", "-R", "-l", "/"]).success();
    assert_eq!(listing.lines().count(), 64, "{listing}");
    assert!(listing.lines().any(|l| l.starts_with("/foo\tf\t0664\t4\t1445428515\t")), "{listing}");
    // Hardlink groups of the 2.1 schema are recognised.
    assert!(listing.lines().any(|l| l.starts_with("/hardlink_foo\t") && l.ends_with("\t3")), "{listing}");
    let verify = inspect(&args, &["verify"]).success();
    assert!(verify.starts_with("OK: revision 2"), "{verify}");
    let tags = inspect(&args, &["tags"]).success();
    assert_eq!(tags.lines().count(), 4, "{tags}");
}

#[test]
fn a_repository_is_read_over_http() {
    let repo = reference_repo();
    let server = serve_directory(&repo.storage);
    let mut args = reference_args(&repo);
    args[1] = format!("http://{}/cvmfs/fixture.test.local", server.address);
    assert_eq!(inspect(&args, &["ls", "-R", "-l", "/"]).success(), expected(&repo, "r2"));
    let missing = {
        let mut a = args.clone();
        a[1] = format!("http://{}/cvmfs/other.test.local", server.address);
        inspect(&a, &["info"]).failure()
    };
    assert!(missing.contains("/cvmfs/other.test.local/.cvmfspublished: not found"), "{missing}");
}

//! The repositories in `fixtures/` (copied from upstream-written test data), unpacked
//! into a fresh temporary directory per test so tests may tamper with their copy.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// The root of this workspace (the directory holding `fixtures/`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().nth(2).expect("crates/<name> lies two levels below the root").to_path_buf()
}

/// `fixtures/` of this workspace.
pub fn fixtures_dir() -> PathBuf {
    workspace_root().join("fixtures")
}

/// One unpacked fixture repository.
pub struct FixtureRepo {
    /// Keeps the unpacked files alive; removed on drop.
    pub tmp: TempDir,
    /// The fully qualified repository name.
    pub fqrn: String,
    /// The directory served as `<server>/cvmfs/<fqrn>` (holds `.cvmfspublished`, `data/`).
    pub storage: PathBuf,
    /// The repository master public key (PEM) that verifies the whitelist.
    pub public_key: PathBuf,
    /// `(tag, expected-<tag>.tsv)` listings, where the fixture has them.
    pub expected: Vec<(String, PathBuf)>,
}

/// `fixture.test.local`: written by the upstream 2.12 server tools, tags `r1` and `r2`.
/// Its whitelist expires on 2027-11-22 10:31:44 UTC.
pub fn reference_repo() -> FixtureRepo {
    let src = fixtures_dir().join("reference/fixture.test.local");
    let tmp = tempfile::tempdir().expect("temporary directory");
    let storage = tmp.path().join("fixture.test.local");
    std::fs::create_dir_all(&storage).expect("create storage dir");
    untar(&src.join("storage.tar.gz"), &storage);
    let expected =
        ["r1", "r2"].iter().map(|tag| (tag.to_string(), src.join(format!("expected-{tag}.tsv")))).collect();
    FixtureRepo {
        fqrn: "fixture.test.local".into(),
        storage,
        public_key: src.join("fixture.test.local.pub"),
        expected,
        tmp,
    }
}

/// `legacy_aufs.cern.ch`: a 2.1-era repository (catalog schema 2.5 revision 2) from the
/// upstream test suite. Its whitelist expired on 2015-11-20 11:00 UTC: verify with a
/// "now" before that, e.g. [`LEGACY_NOW`].
pub fn legacy_repo() -> FixtureRepo {
    let src = fixtures_dir().join("upstream/legacy_aufs_repo_21");
    let tmp = tempfile::tempdir().expect("temporary directory");
    untar(&src.join("legacy_aufs_repo.tar.gz"), tmp.path());
    untar(&src.join("keys.tar.gz"), tmp.path());
    FixtureRepo {
        fqrn: "legacy_aufs.cern.ch".into(),
        storage: tmp.path().join("srv/cvmfs/legacy_aufs.cern.ch"),
        public_key: tmp.path().join("etc/cvmfs/keys/legacy_aufs.cern.ch.pub"),
        expected: Vec::new(),
        tmp,
    }
}

/// A unix time at which the legacy repository's whitelist was valid (2015-11-01).
pub const LEGACY_NOW: u64 = 1_446_336_000;

/// A unix time at which the reference repository's whitelist is valid (2026-12-01).
pub const REFERENCE_NOW: u64 = 1_796_083_200;

fn untar(archive: &Path, into: &Path) {
    let status = Command::new("tar").arg("xzf").arg(archive).arg("-C").arg(into).status().expect("run tar");
    assert!(status.success(), "tar xzf {} failed", archive.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_unpack() {
        let repo = reference_repo();
        assert!(repo.storage.join(".cvmfspublished").is_file());
        assert!(repo.public_key.is_file());
        let legacy = legacy_repo();
        assert!(legacy.storage.join(".cvmfswhitelist").is_file());
        assert!(legacy.public_key.is_file());
    }
}

//! End-to-end trust chain on the real upstream-written fixture repositories: both verify,
//! and every kind of tampering is refused with its own error.

use cvmfs_core::blacklist::Blacklist;
use cvmfs_core::certificate::Certificate;
use cvmfs_core::hash::{Algorithm, ContentHash};
use cvmfs_core::letter::{assemble, SignedLetter};
use cvmfs_core::signature::{sign_whitelist_hash_line, KeyRing};
use cvmfs_core::trust::{
    check_revision_blacklist, verify_manifest, LocalStorage, Proof, TrustContext, TrustError,
    VerifiedManifest,
};
use cvmfs_core::verify::VerifyError;
use cvmfs_core::whitelist::{Whitelist, WhitelistError};
use cvmfs_testkit::fixtures::{legacy_repo, reference_repo, FixtureRepo, LEGACY_NOW, REFERENCE_NOW};

/// 2027-11-22 10:00:00 UTC: the reference whitelist (E20271122103144) expires here.
const REFERENCE_EXPIRY: u64 = 1_826_877_600;
const REFERENCE_CERT_FINGERPRINT: &str = "0D:64:D1:65:BB:92:F4:66:FE:93:E1:0A:0E:22:69:BB:C2:D3:9D:7F";
const REFERENCE_CERT_OBJECT: &str = "data/73/79c3fe8847a8eb1f19564e441f41eb05d96cd9X";

struct Setup {
    repo: FixtureRepo,
    keys: KeyRing,
    blacklist: Blacklist,
    now: u64,
    fqrn: String,
    minimum_timestamp: u64,
    base_root_hash: Option<ContentHash>,
}

impl Setup {
    fn new(repo: FixtureRepo, now: u64) -> Setup {
        let keys = KeyRing::from_path_list(&repo.public_key.display().to_string()).unwrap();
        let fqrn = repo.fqrn.clone();
        Setup {
            repo,
            keys,
            blacklist: Blacklist::new(),
            now,
            fqrn,
            minimum_timestamp: 0,
            base_root_hash: None,
        }
    }

    fn reference() -> Setup {
        Setup::new(reference_repo(), REFERENCE_NOW)
    }

    fn legacy() -> Setup {
        Setup::new(legacy_repo(), LEGACY_NOW)
    }

    fn storage(&self) -> LocalStorage {
        LocalStorage::new(&self.repo.storage)
    }

    fn manifest(&self) -> Vec<u8> {
        self.storage().read_manifest().unwrap()
    }

    fn file(&self, relative: &str) -> Vec<u8> {
        std::fs::read(self.repo.storage.join(relative)).unwrap()
    }

    fn write(&self, relative: &str, bytes: &[u8]) {
        std::fs::write(self.repo.storage.join(relative), bytes).unwrap();
    }

    fn verify(&self, raw: &[u8]) -> Result<VerifiedManifest, TrustError> {
        let ctx = TrustContext {
            fqrn: &self.fqrn,
            keys: &self.keys,
            blacklist: &self.blacklist,
            now: self.now,
            minimum_timestamp: self.minimum_timestamp,
            base_root_hash: self.base_root_hash,
        };
        verify_manifest(raw, &ctx, &self.storage())
    }

    fn verify_published(&self) -> Result<VerifiedManifest, TrustError> {
        self.verify(&self.manifest())
    }
}

/// `bytes` with the first occurrence of `from` replaced by `to` (same length).
fn replaced(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = bytes.windows(from.len()).position(|w| w == from).expect("pattern present");
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

fn flipped(bytes: &[u8], index: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[index] ^= 0x01;
    out
}

fn bad_signature_reason(result: Result<VerifiedManifest, TrustError>) -> String {
    match result {
        Err(TrustError::BadSignature { reason }) => reason,
        other => panic!("expected BadSignature, got {other:?}"),
    }
}

#[test]
fn reference_manifest_verifies_end_to_end() {
    let setup = Setup::reference();
    let verified = setup.verify_published().unwrap();
    let m = &verified.manifest;
    assert_eq!(m.catalog_hash.to_string(), "33168bb52dd017fad762f79b5ee71382ca9e3016");
    assert_eq!((m.revision, m.publish_timestamp, m.catalog_size), (3, 1795343504, 29696));
    let Proof::Signed { certificate, whitelist, certificate_pem } = &verified.proof else {
        panic!("expected a full verification")
    };
    assert!(certificate_pem.starts_with(b"-----BEGIN CERTIFICATE-----"));
    assert_eq!(certificate.fingerprint(Algorithm::Sha1).fingerprint(), REFERENCE_CERT_FINGERPRINT);
    assert_eq!(whitelist.expiry.to_string(), "2027-11-22 10:00");
    assert_eq!(whitelist.repository_name, "fixture.test.local");
}

#[test]
fn legacy_manifest_verifies_end_to_end() {
    let setup = Setup::legacy();
    let verified = setup.verify_published().unwrap();
    assert_eq!(verified.manifest.catalog_hash.to_string(), "6ed3d49a5c64f21f36936ab350d49aaf57585b9a");
    let Proof::Signed { certificate, .. } = &verified.proof else { panic!("expected a full verification") };
    assert_eq!(
        certificate.fingerprint(Algorithm::Sha1).fingerprint(),
        "93:AB:A3:C4:89:BE:F9:B7:3E:90:8F:42:C1:8A:EF:12:BB:05:C4:15"
    );
}

#[test]
fn flipped_byte_in_manifest_letter_is_refused() {
    let setup = Setup::reference();
    let tampered = replaced(&setup.manifest(), b"\nB29696\n", b"\nB29697\n");
    let result = setup.verify(&tampered);
    assert!(result.as_ref().is_err_and(TrustError::retry_on_other_host));
    let reason = bad_signature_reason(result);
    assert!(reason.contains("hash line says de887ad10b76afc96e3c91cae95d63eac1842d1a"), "{reason}");
}

#[test]
fn altered_letter_with_recomputed_hash_line_fails_rsa() {
    let setup = Setup::reference();
    let raw = setup.manifest();
    let parts = SignedLetter::split(&raw).unwrap();
    let letter = replaced(parts.letter, b"\nS3\n", b"\nS9\n");
    let rehashed = assemble(&letter, &ContentHash::of(Algorithm::Sha1, &letter), parts.signature);
    let reason = bad_signature_reason(setup.verify(&rehashed));
    assert!(reason.contains("RSA/SHA-1 verification"), "{reason}");
}

#[test]
fn flipped_byte_in_hash_line_is_refused() {
    let setup = Setup::reference();
    let tampered = replaced(&setup.manifest(), b"\n--\nde88", b"\n--\nde89");
    let reason = bad_signature_reason(setup.verify(&tampered));
    assert!(reason.contains("hashes to de887ad10b76afc96e3c91cae95d63eac1842d1a"), "{reason}");
}

#[test]
fn flipped_byte_in_manifest_signature_is_refused() {
    let setup = Setup::reference();
    let raw = setup.manifest();
    for index in [raw.len() - 1, raw.len() - 128, raw.len() - 256] {
        let reason = bad_signature_reason(setup.verify(&flipped(&raw, index)));
        assert!(reason.contains("RSA/SHA-1 verification"), "{reason}");
    }
    let truncated = &raw[..raw.len() - 1];
    bad_signature_reason(setup.verify(truncated));
}

#[test]
fn flipped_byte_in_whitelist_is_refused() {
    let setup = Setup::reference();
    let whitelist = setup.file(".cvmfswhitelist");
    let in_fingerprint = replaced(&whitelist, b"\n0D:64", b"\n0D:65");
    setup.write(".cvmfswhitelist", &in_fingerprint);
    match setup.verify_published() {
        Err(TrustError::Whitelist(WhitelistError::BadSignature { keys: 1, reason })) => {
            assert!(reason.contains("hash line says 36104eeb14dd6c65cb082de5880bd71c0c44ef06"), "{reason}")
        }
        other => panic!("expected a whitelist BadSignature, got {other:?}"),
    }
    setup.write(".cvmfswhitelist", &flipped(&whitelist, whitelist.len() - 1));
    match setup.verify_published() {
        Err(TrustError::Whitelist(WhitelistError::BadSignature { reason, .. })) => {
            assert!(reason.contains("no key recovers"), "{reason}")
        }
        other => panic!("expected a whitelist BadSignature, got {other:?}"),
    }
    setup.write(".cvmfswhitelist", &replaced(&whitelist, b"\nE2027", b"\nE20x7"));
    assert!(matches!(setup.verify_published(), Err(TrustError::Whitelist(WhitelistError::Malformed(_)))));
}

#[test]
fn flipped_byte_in_certificate_object_is_refused() {
    let setup = Setup::reference();
    let stored = setup.file(REFERENCE_CERT_OBJECT);
    setup.write(REFERENCE_CERT_OBJECT, &flipped(&stored, 100));
    match setup.verify_published() {
        // Inflating may stumble before the hash is known; either way the data is bad.
        Err(TrustError::CertificateObject { id, source }) => {
            assert!(source.is_bad_data(), "{source}");
            assert_eq!(id.data_path(), REFERENCE_CERT_OBJECT);
        }
        other => panic!("expected a corrupt certificate object, got {other:?}"),
    }
    // A valid zlib stream of other content: the hash check catches it.
    setup.write(REFERENCE_CERT_OBJECT, &cvmfs_core::compression::deflate(b"-----BEGIN CERTIFICATE-----"));
    match setup.verify_published() {
        Err(TrustError::CertificateObject { source: VerifyError::HashMismatch { expected, .. }, .. }) => {
            assert_eq!(expected.to_string(), "7379c3fe8847a8eb1f19564e441f41eb05d96cd9")
        }
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    std::fs::remove_file(setup.repo.storage.join(REFERENCE_CERT_OBJECT)).unwrap();
    match setup.verify_published() {
        Err(TrustError::Load { what, .. }) => assert!(what.starts_with("certificate"), "{what}"),
        other => panic!("expected a load failure, got {other:?}"),
    }
}

#[test]
fn another_certificate_cannot_sign_the_manifest() {
    // The legacy certificate parses fine, but did not sign the reference manifest.
    let legacy = Setup::legacy();
    let legacy_pem = cvmfs_core::compression::inflate(
        &legacy.file("data/65/133968f581abad1e75489c92a634e44929cbd7X"),
        1 << 20,
    )
    .unwrap();
    struct OtherCertificate<'a>(LocalStorage, &'a [u8]);
    impl cvmfs_core::trust::TrustSource for OtherCertificate<'_> {
        fn fetch_object(
            &self,
            id: &cvmfs_core::ObjectId,
            alt: bool,
        ) -> Result<Vec<u8>, cvmfs_core::trust::SourceError> {
            self.0.fetch_object(id, alt)
        }
        fn fetch_whitelist(&self) -> Result<Vec<u8>, cvmfs_core::trust::SourceError> {
            self.0.fetch_whitelist()
        }
        fn cached_certificate(&self, _id: &cvmfs_core::ObjectId) -> Option<Vec<u8>> {
            Some(self.1.to_vec())
        }
    }
    let setup = Setup::reference();
    let ctx = TrustContext {
        fqrn: "fixture.test.local",
        keys: &setup.keys,
        blacklist: &setup.blacklist,
        now: REFERENCE_NOW,
        minimum_timestamp: 0,
        base_root_hash: None,
    };
    let source = OtherCertificate(setup.storage(), &legacy_pem);
    let reason = bad_signature_reason(verify_manifest(&setup.manifest(), &ctx, &source));
    assert!(reason.contains("CN=legacy_aufs.cern.ch"), "{reason}");
    let source =
        OtherCertificate(setup.storage(), b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    assert!(matches!(
        verify_manifest(&setup.manifest(), &ctx, &source),
        Err(TrustError::BadCertificate { .. })
    ));
}

#[test]
fn wrong_master_key_is_refused() {
    let mut setup = Setup::reference();
    let legacy = legacy_repo();
    setup.keys = KeyRing::from_path_list(&legacy.public_key.display().to_string()).unwrap();
    assert!(matches!(
        setup.verify_published(),
        Err(TrustError::Whitelist(WhitelistError::BadSignature { keys: 1, .. }))
    ));
    // Any one good key among several is enough.
    let list = format!("{}:{}", legacy.public_key.display(), setup.repo.public_key.display());
    setup.keys = KeyRing::from_path_list(&list).unwrap();
    assert!(setup.verify_published().is_ok());
    setup.keys = KeyRing::new();
    let err = setup.verify_published().unwrap_err();
    assert!(err.to_string().contains("no master public key"), "{err}");
}

#[test]
fn expired_whitelist_is_refused_at_hour_granularity() {
    let mut setup = Setup::reference();
    setup.now = REFERENCE_EXPIRY - 1;
    assert!(setup.verify_published().is_ok());
    // The E line says 10:31:44, but minutes are ignored: from 10:00:00 on it has expired.
    setup.now = REFERENCE_EXPIRY;
    match setup.verify_published() {
        Err(TrustError::Whitelist(WhitelistError::Expired { expiry })) => {
            assert_eq!(expiry.to_string(), "2027-11-22 10:00")
        }
        other => panic!("expected Expired, got {other:?}"),
    }
    setup.now = REFERENCE_EXPIRY + 365 * 86_400;
    assert!(matches!(setup.verify_published(), Err(TrustError::Whitelist(WhitelistError::Expired { .. }))));
    let mut legacy = Setup::legacy();
    legacy.now = 1_448_017_200; // 2015-11-20 11:00 UTC
    assert!(matches!(legacy.verify_published(), Err(TrustError::Whitelist(WhitelistError::Expired { .. }))));
}

#[test]
fn manifest_for_another_repository_is_refused() {
    let mut setup = Setup::reference();
    setup.fqrn = "other.test.local".into();
    match setup.verify_published() {
        Err(TrustError::NameMismatch { expected, found }) => {
            assert_eq!((expected.as_str(), found.as_str()), ("other.test.local", "fixture.test.local"))
        }
        other => panic!("expected NameMismatch, got {other:?}"),
    }
    // The manifest check comes first; the whitelist name is checked as well.
    let setup = Setup::reference();
    let whitelist = setup.file(".cvmfswhitelist");
    setup.write(".cvmfswhitelist", &replaced(&whitelist, b"Nfixture.test", b"Nfixture.tost"));
    match setup.verify_published() {
        Err(TrustError::Whitelist(WhitelistError::NameMismatch { found, .. })) => {
            assert_eq!(found, "fixture.tost.local")
        }
        other => panic!("expected a whitelist NameMismatch, got {other:?}"),
    }
}

#[test]
fn blacklisted_certificate_is_refused() {
    let mut setup = Setup::reference();
    setup.blacklist =
        Blacklist::parse(format!("# revoked\n{REFERENCE_CERT_FINGERPRINT} key leak\n").as_bytes());
    match setup.verify_published() {
        Err(err @ TrustError::Blacklisted { .. }) => {
            assert!(!err.retry_on_other_host());
            let TrustError::Blacklisted { fingerprint, subject } = err else { unreachable!() };
            assert_eq!(fingerprint, REFERENCE_CERT_FINGERPRINT);
            assert!(subject.contains("fixture.test.local"), "{subject}");
        }
        other => panic!("expected Blacklisted, got {other:?}"),
    }
    // A fingerprint under another algorithm matches too.
    let certificate = Certificate::from_pem(
        &cvmfs_core::compression::inflate(&setup.file(REFERENCE_CERT_OBJECT), 1 << 20).unwrap(),
    )
    .unwrap();
    let shake = certificate.fingerprint(Algorithm::Shake128).fingerprint();
    setup.blacklist = Blacklist::parse(shake.as_bytes());
    assert!(matches!(setup.verify_published(), Err(TrustError::Blacklisted { .. })));
    // An unrelated fingerprint does not.
    setup.blacklist = Blacklist::parse(b"93:AB:A3:C4:89:BE:F9:B7:3E:90:8F:42:C1:8A:EF:12:BB:05:C4:15\n");
    assert!(setup.verify_published().is_ok());
}

#[test]
fn revision_blacklist_refuses_older_revisions() {
    let setup = Setup::reference();
    let manifest = setup.verify_published().unwrap().manifest;
    let blacklist = Blacklist::parse(b"<fixture.test.local 4\n");
    match check_revision_blacklist(&blacklist, "fixture.test.local", manifest.revision) {
        Err(TrustError::RevisionBlacklisted { revision: 3, floor: 4, fqrn }) => {
            assert_eq!(fqrn, "fixture.test.local")
        }
        other => panic!("expected RevisionBlacklisted, got {other:?}"),
    }
    let at_floor = Blacklist::parse(b"<fixture.test.local\t3");
    assert!(check_revision_blacklist(&at_floor, "fixture.test.local", manifest.revision).is_ok());
    let other_repo = Blacklist::parse(b"<other.test.local 100");
    assert!(check_revision_blacklist(&other_repo, "fixture.test.local", manifest.revision).is_ok());
    let trailing = Blacklist::parse(b"<fixture.test.local 4 ");
    assert!(check_revision_blacklist(&trailing, "fixture.test.local", manifest.revision).is_ok());
}

#[test]
fn early_checks_run_in_upstream_order() {
    let mut setup = Setup::reference();
    let raw = setup.manifest();
    let no_revision = replaced(&raw, b"\nS3\n", b"\nQ3\n");
    assert!(matches!(
        setup.verify(&no_revision),
        Err(TrustError::Incomplete(cvmfs_core::manifest::ManifestError::Incomplete('S')))
    ));
    let other_root = replaced(&raw, b"Rd41d8", b"Rd41d9");
    assert!(matches!(setup.verify(&other_root), Err(TrustError::RootMismatch { .. })));
    setup.minimum_timestamp = 1_795_343_505;
    match setup.verify(&raw) {
        Err(TrustError::Outdated { timestamp, minimum }) => {
            assert_eq!((timestamp, minimum), (1_795_343_504, 1_795_343_505))
        }
        other => panic!("expected Outdated, got {other:?}"),
    }
    setup.minimum_timestamp = 1_795_343_504;
    assert!(setup.verify(&raw).is_ok());
    // Name before root path: both wrong reports the name.
    setup.fqrn = "x".into();
    assert!(matches!(setup.verify(&other_root), Err(TrustError::NameMismatch { .. })));
}

#[test]
fn known_root_hash_takes_the_shortcut() {
    let mut setup = Setup::reference();
    setup.base_root_hash = Some(ContentHash::parse("33168bb52dd017fad762f79b5ee71382ca9e3016").unwrap());
    setup.now = REFERENCE_EXPIRY + 1; // whitelist expiry does not matter then
    let raw = setup.manifest();
    let bad_signature = flipped(&raw, raw.len() - 1);
    assert!(matches!(setup.verify(&bad_signature).unwrap().proof, Proof::Shortcut));
    setup.base_root_hash = Some(ContentHash::parse("b35f9c77af0148d3c7f565ae51656d9b6232fc22").unwrap());
    assert!(matches!(setup.verify(&raw), Err(TrustError::Whitelist(WhitelistError::Expired { .. }))));
}

/// A master key made here signs whitelists the fixture's certificate is (or is not) in.
mod own_master_key {
    use super::*;
    use rsa::RsaPrivateKey;

    fn master_key() -> RsaPrivateKey {
        RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap()
    }

    fn signed_whitelist(key: &RsaPrivateKey, letter: &str) -> Vec<u8> {
        let hash = ContentHash::of(Algorithm::Sha1, letter.as_bytes());
        let signature = sign_whitelist_hash_line(key, hash.to_string().as_bytes()).unwrap();
        assemble(letter.as_bytes(), &hash, &signature)
    }

    fn ring(key: &RsaPrivateKey) -> KeyRing {
        let mut ring = KeyRing::new();
        ring.add("test master key", key.to_public_key());
        ring
    }

    #[test]
    fn exported_and_signed_whitelist_verifies() {
        let key = master_key();
        let mut setup = Setup::reference();
        setup.keys = ring(&key);
        let fingerprint = ContentHash::parse_fingerprint(REFERENCE_CERT_FINGERPRINT).unwrap();
        let letter = Whitelist::export(
            REFERENCE_NOW,
            REFERENCE_NOW + 30 * 86_400,
            "fixture.test.local",
            &[fingerprint],
        );
        setup.write(".cvmfswhitelist", &signed_whitelist(&key, &letter));
        let verified = setup.verify_published().unwrap();
        let Proof::Signed { whitelist, .. } = verified.proof else { panic!("expected full verification") };
        assert_eq!(whitelist.fingerprints, vec![fingerprint]);
    }

    #[test]
    fn unlisted_certificate_is_refused() {
        let key = master_key();
        let mut setup = Setup::reference();
        setup.keys = ring(&key);
        let other = ContentHash::of(Algorithm::Sha1, b"another certificate");
        let letter = Whitelist::export(REFERENCE_NOW, REFERENCE_NOW + 86_400, "fixture.test.local", &[other]);
        setup.write(".cvmfswhitelist", &signed_whitelist(&key, &letter));
        match setup.verify_published() {
            Err(TrustError::NotListed { fingerprint, .. }) => {
                assert_eq!(fingerprint, REFERENCE_CERT_FINGERPRINT)
            }
            other => panic!("expected NotListed, got {other:?}"),
        }
    }

    #[test]
    fn pkcs7_and_ca_chain_whitelists_are_refused() {
        let key = master_key();
        let mut setup = Setup::reference();
        setup.keys = ring(&key);
        let fingerprint = ContentHash::parse_fingerprint(REFERENCE_CERT_FINGERPRINT).unwrap();
        let plain =
            Whitelist::export(REFERENCE_NOW, REFERENCE_NOW + 86_400, "fixture.test.local", &[fingerprint]);
        for (mode_line, mode) in [("Vpkcs7\n", "PKCS#7 (Vpkcs7)"), ("Wcachain\n", "CA chain (Wcachain)")] {
            let letter = plain.replacen("local\n", &format!("local\n{mode_line}"), 1);
            setup.write(".cvmfswhitelist", &signed_whitelist(&key, &letter));
            match setup.verify_published() {
                Err(TrustError::Whitelist(WhitelistError::Unsupported { mode: found })) => {
                    assert_eq!(found, mode)
                }
                other => panic!("expected Unsupported, got {other:?}"),
            }
        }
    }
}

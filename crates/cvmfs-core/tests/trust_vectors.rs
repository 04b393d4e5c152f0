//! The byte-level vectors of spec 12.3, 12.4 and section 4, checked on the fixture files,
//! and byte-exact export of an upstream-written manifest.

use cvmfs_core::certificate::Certificate;
use cvmfs_core::compression::inflate;
use cvmfs_core::hash::Algorithm;
use cvmfs_core::letter::SignedLetter;
use cvmfs_core::manifest::Manifest;
use cvmfs_core::signature::{parse_public_key_pem, KeyRing};
use cvmfs_core::whitelist::Whitelist;
use cvmfs_testkit::fixtures::{legacy_repo, reference_repo, LEGACY_NOW, REFERENCE_NOW};
use rsa::traits::PublicKeyParts;
use rsa::BigUint;

#[test]
fn legacy_manifest_vector_12_3() {
    let repo = legacy_repo();
    let raw = std::fs::read(repo.storage.join(".cvmfspublished")).unwrap();
    assert_eq!(raw.len(), 512);
    let parts = SignedLetter::split(&raw).unwrap();
    assert_eq!(parts.letter.len(), 212);
    assert_eq!(parts.hash_line, b"a7c0345bd49103a80f2341c0319e020d1acf454b");
    assert_eq!(parts.signature.len(), 256);
    assert_eq!(&parts.signature[..8], &[0x25, 0x2b, 0x8d, 0x17, 0xc9, 0xd5, 0xf1, 0xc3]);
    assert_eq!(parts.check_hash().unwrap().to_string(), "a7c0345bd49103a80f2341c0319e020d1acf454b");

    let stored = std::fs::read(repo.storage.join("data/65/133968f581abad1e75489c92a634e44929cbd7X")).unwrap();
    assert_eq!(stored.len(), 830);
    assert_eq!(&stored[..2], &[0x78, 0x9c]);
    let pem = inflate(&stored, 1 << 20).unwrap();
    assert_eq!(pem.len(), 1078);
    let certificate = Certificate::from_pem(&pem).unwrap();
    assert!(certificate.verifies_manifest(parts.hash_line, parts.signature));
    assert!(!certificate.verifies_manifest(b"a7c0345bd49103a80f2341c0319e020d1acf454c", parts.signature));
}

#[test]
fn legacy_whitelist_vector_12_4() {
    let repo = legacy_repo();
    let raw = std::fs::read(repo.storage.join(".cvmfswhitelist")).unwrap();
    assert_eq!(raw.len(), 412);
    let parts = SignedLetter::split(&raw).unwrap();
    assert_eq!(parts.letter.len(), 112);
    assert_eq!(parts.hash_line, b"929b0716d322e6b740352c7e67da1058454cc4d2");
    assert_eq!(parts.signature.len(), 256);

    // sig^e mod n = 00 01 FF×213 00 ‖ the 40 ASCII hash bytes (no DigestInfo).
    let key = parse_public_key_pem(&std::fs::read(&repo.public_key).unwrap(), "legacy").unwrap();
    let recovered = BigUint::from_bytes_be(parts.signature).modpow(key.e(), key.n()).to_bytes_be();
    let mut expected = vec![0x01];
    expected.extend([0xff; 213]);
    expected.push(0x00);
    expected.extend_from_slice(parts.hash_line);
    assert_eq!(recovered, expected);

    let ring = KeyRing::from_path_list(&repo.public_key.display().to_string()).unwrap();
    let whitelist = Whitelist::verify(&raw, "legacy_aufs.cern.ch", LEGACY_NOW, &ring).unwrap();
    assert_eq!(whitelist.created, "20151021115513");
    assert_eq!(
        whitelist.fingerprints[0].fingerprint(),
        "93:AB:A3:C4:89:BE:F9:B7:3E:90:8F:42:C1:8A:EF:12:BB:05:C4:15"
    );
}

#[test]
fn legacy_certificate_fingerprint_is_hash_of_der() {
    let repo = legacy_repo();
    let stored = std::fs::read(repo.storage.join("data/65/133968f581abad1e75489c92a634e44929cbd7X")).unwrap();
    let certificate = Certificate::from_pem(&inflate(&stored, 1 << 20).unwrap()).unwrap();
    assert_eq!(
        certificate.fingerprint(Algorithm::Sha1).fingerprint(),
        "93:AB:A3:C4:89:BE:F9:B7:3E:90:8F:42:C1:8A:EF:12:BB:05:C4:15"
    );
    assert_eq!(certificate.public_key().size(), 256);
    assert!(certificate.subject().contains("CN=legacy_aufs.cern.ch"), "{}", certificate.subject());
    // Not the hash of the PEM, not the object hash.
    let pem_hash = cvmfs_core::ContentHash::of(Algorithm::Sha1, &inflate(&stored, 1 << 20).unwrap());
    assert_ne!(pem_hash, certificate.fingerprint(Algorithm::Sha1));
}

#[test]
fn reference_manifest_exports_byte_for_byte() {
    let repo = reference_repo();
    let raw = std::fs::read(repo.storage.join(".cvmfspublished")).unwrap();
    let parts = SignedLetter::split(&raw).unwrap();
    let manifest = Manifest::parse(&raw).unwrap();
    assert_eq!(manifest.export().as_bytes(), parts.letter);
    assert_eq!(manifest.letter_hash(parts.letter).to_string().as_bytes(), parts.hash_line);
    assert_eq!(manifest.reflog_hash.unwrap().to_string(), "2a4b945161d00549979b94fb83cb1f7bf61d2e62");
    assert_eq!(manifest.meta_info.unwrap().to_string(), "85e4f386da0d5d77c7f66cf2f58e10951f24b653");
}

#[test]
fn reference_whitelist_exports_byte_for_byte() {
    let repo = reference_repo();
    let raw = std::fs::read(repo.storage.join(".cvmfswhitelist")).unwrap();
    let parts = SignedLetter::split(&raw).unwrap();
    let ring = KeyRing::from_path_list(&repo.public_key.display().to_string()).unwrap();
    let whitelist = Whitelist::verify(&raw, "fixture.test.local", REFERENCE_NOW, &ring).unwrap();
    // 2026-11-22 10:31:44 UTC and 365 days later.
    let created = 1_795_343_504;
    let letter =
        Whitelist::export(created, created + 365 * 86_400, "fixture.test.local", &whitelist.fingerprints);
    assert_eq!(letter.as_bytes(), parts.letter);
}

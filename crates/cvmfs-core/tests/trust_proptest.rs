//! Every trust-chain parser takes arbitrary bytes without panicking, and the text forms
//! round-trip.

use cvmfs_core::blacklist::Blacklist;
use cvmfs_core::breadcrumb::Breadcrumb;
use cvmfs_core::certificate::Certificate;
use cvmfs_core::hash::{Algorithm, ContentHash};
use cvmfs_core::letter::{assemble, parse_keyvals, SignedLetter};
use cvmfs_core::manifest::Manifest;
use cvmfs_core::signature::{parse_public_key_pem, KeyRing};
use cvmfs_core::trust::{verify_manifest, LocalStorage, TrustContext};
use cvmfs_core::whitelist::{civil_from_days, days_from_civil, whitelist_timestamp, Whitelist};
use proptest::prelude::*;

/// Bytes biased towards the structure the parsers look for.
fn structured_bytes() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop_oneof![
        Just(b"\n".to_vec()),
        Just(b"--\n".to_vec()),
        Just(b"\n--\n".to_vec()),
        Just(b"C".to_vec()),
        Just(b"Rd41d8cd98f00b204e9800998ecf8427e\n".to_vec()),
        Just(b"Cda39a3ee5e6b4b0d3255bfef95601890afd80709\n".to_vec()),
        Just(b"D240\nS3\nNabc\n".to_vec()),
        Just(b"20151021115513\nE20991120115513\nNabc\n".to_vec()),
        Just(b"93:AB:A3:C4:89:BE:F9:B7:3E:90:8F:42:C1:8A:EF:12:BB:05:C4:15\n".to_vec()),
        Just(b"<abc 5\n".to_vec()),
        Just(b"-----BEGIN CERTIFICATE-----\n".to_vec()),
        Just(b"-----END CERTIFICATE-----\n".to_vec()),
        Just(b"Vpkcs7\nWcachain\n".to_vec()),
        Just(b"T".to_vec()),
        Just(b"R".to_vec()),
        prop::collection::vec(any::<u8>(), 0..40),
    ];
    prop::collection::vec(pieces, 0..12).prop_map(|v| v.concat())
}

fn any_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..600), structured_bytes()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn letter_parsers_never_panic(bytes in any_input()) {
        let _ = parse_keyvals(&bytes);
        if let Ok(parts) = SignedLetter::split(&bytes) {
            prop_assert!(parts.letter.ends_with(b"\n"));
            prop_assert!(parts.letter.len() + parts.hash_line.len() + parts.signature.len() + 4 == bytes.len());
            let _ = parts.check_hash();
        }
    }

    #[test]
    fn manifest_parser_never_panics_and_export_reparses(bytes in any_input()) {
        if let Ok(manifest) = Manifest::parse(&bytes) {
            let exported = manifest.export();
            let again = Manifest::parse(exported.as_bytes());
            // N may hold a newline-free value that survives; everything round-trips.
            prop_assert_eq!(again.as_ref().map(Manifest::export).ok(), Some(exported));
        }
    }

    #[test]
    fn whitelist_parser_never_panics(bytes in any_input(), now in any::<u64>()) {
        let _ = Whitelist::parse(&bytes, "abc", now);
        let _ = Whitelist::parse(&bytes, "", now);
        let _ = Whitelist::verify(&bytes, "abc", now, &KeyRing::new());
    }

    #[test]
    fn certificate_and_key_parsers_never_panic(bytes in any_input()) {
        let _ = Certificate::from_pem(&bytes);
        let _ = Certificate::from_der(bytes.clone());
        let _ = parse_public_key_pem(&bytes, "fuzz");
    }

    #[test]
    fn blacklist_parser_never_panics(bytes in any_input(), revision in any::<u64>()) {
        let blacklist = Blacklist::parse(&bytes);
        let _ = blacklist.revision_floor("abc", revision);
        let _ = blacklist.revision_floor("", revision);
    }

    #[test]
    fn breadcrumb_parser_never_panics(bytes in any_input()) {
        if let Ok(crumb) = Breadcrumb::parse(&bytes) {
            prop_assert!(crumb.timestamp > 0);
        }
    }

    #[test]
    fn breadcrumbs_round_trip(digest in prop::array::uniform20(1u8..), timestamp in 1u64.., revision in 0..u64::MAX) {
        for algorithm in Algorithm::CONTENT {
            let crumb = Breadcrumb {
                catalog_hash: ContentHash::from_digest(algorithm, &digest).unwrap(),
                timestamp,
                revision,
            };
            prop_assert_eq!(Breadcrumb::parse(crumb.to_string().as_bytes()), Ok(crumb));
        }
    }

    #[test]
    fn civil_dates_round_trip(seconds in 0u64..253_402_300_799) {
        let text = whitelist_timestamp(seconds);
        prop_assert_eq!(text.len(), 14);
        let days = i64::try_from(seconds / 86_400).unwrap();
        let (y, m, d) = civil_from_days(days);
        prop_assert_eq!(days_from_civil(y, m, d), days);
        prop_assert_eq!(&text[..8], format!("{y:04}{m:02}{d:02}"));
    }

    #[test]
    fn whole_chain_never_panics_on_hostile_storage(manifest in any_input(), whitelist in any_input()) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".cvmfswhitelist"), &whitelist).unwrap();
        let keys = KeyRing::new();
        let blacklist = Blacklist::new();
        let ctx = TrustContext { fqrn: "abc", keys: &keys, blacklist: &blacklist, now: 0, minimum_timestamp: 0, base_root_hash: None };
        let _ = verify_manifest(&manifest, &ctx, &LocalStorage::new(dir.path()));
        let hash = ContentHash::of(Algorithm::Sha1, &manifest);
        let _ = verify_manifest(&assemble(&manifest, &hash, &whitelist), &ctx, &LocalStorage::new(dir.path()));
    }
}

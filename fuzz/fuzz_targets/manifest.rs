#![no_main]
//! Fuzzes the manifest envelope and letter: split, hash check, key/value parse, parse,
//! and export of whatever parsed (which must parse again).
use cvmfs_core::letter::{parse_keyvals, SignedLetter};
use cvmfs_core::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_keyvals(data);
    if let Ok(parts) = SignedLetter::split(data) {
        let _ = parts.check_hash();
    }
    if let Ok(manifest) = Manifest::parse(data) {
        let exported = manifest.export();
        let again = Manifest::parse(exported.as_bytes()).expect("an exported manifest parses");
        assert_eq!(again.export(), exported);
        let _ = manifest.letter_hash(exported.as_bytes());
    }
});

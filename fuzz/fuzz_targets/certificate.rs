#![no_main]
//! Fuzzes certificate reading (PEM and DER) and public-key PEM parsing.
use cvmfs_core::certificate::Certificate;
use cvmfs_core::hash::Algorithm;
use cvmfs_core::signature::parse_public_key_pem;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(certificate) = Certificate::from_pem(data) {
        let _ = certificate.fingerprint(Algorithm::Sha1);
        let _ = certificate.verifies_manifest(b"da39a3ee5e6b4b0d3255bfef95601890afd80709", data);
    }
    let _ = Certificate::from_der(data.to_vec());
    let _ = parse_public_key_pem(data, "fuzz");
});

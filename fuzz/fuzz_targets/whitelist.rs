#![no_main]
//! Fuzzes whitelist parsing (with and without a name check, at several clocks) and the
//! signature path with an empty key ring.
use cvmfs_core::signature::KeyRing;
use cvmfs_core::whitelist::Whitelist;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for now in [0, 1_700_000_000, u64::MAX] {
        let _ = Whitelist::parse(data, "abc", now);
        let _ = Whitelist::parse(data, "", now);
    }
    let _ = Whitelist::verify(data, "abc", 0, &KeyRing::new());
});

#![no_main]
//! Fuzzes blacklist parsing and the revision rule (also the breadcrumb, another small
//! line format of the trust chain).
use cvmfs_core::blacklist::Blacklist;
use cvmfs_core::breadcrumb::Breadcrumb;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut blacklist = Blacklist::parse(data);
    for revision in [0, 5, u64::MAX] {
        let _ = blacklist.revision_floor("abc", revision);
        let _ = blacklist.revision_floor("", revision);
    }
    blacklist.merge(Blacklist::parse(data));
    if let Ok(crumb) = Breadcrumb::parse(data) {
        assert_eq!(Breadcrumb::parse(crumb.to_string().as_bytes()), Ok(crumb));
    }
});

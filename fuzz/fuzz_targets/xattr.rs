#![no_main]
//! Fuzzes xattr blobs: parsing never panics, whatever parses serializes and parses back
//! to the same list, and lists built through `set` always round-trip.
use cvmfs_core::xattr::XattrList;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(list) = XattrList::parse(data) {
        let again = XattrList::parse(&list.serialize()).expect("a serialized list parses");
        assert_eq!(again, list);
    }
    // Build a list from the input: alternating key/value pieces split at 0xff bytes.
    let mut list = XattrList::new();
    let mut pieces = data.split(|&b| b == 0xff);
    while let (Some(key), Some(value)) = (pieces.next(), pieces.next()) {
        let _ = list.set(key, value);
    }
    let blob = list.serialize();
    assert_eq!(XattrList::parse(&blob).expect("a built list parses"), list);
});

#![no_main]
//! Fuzzes variant-symlink expansion. Invariants: text without `$` is unchanged, and
//! with no variable defined the result is never longer than the input (a reference
//! becomes its default, which is part of its own text).
use cvmfs_core::variant::expand;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (selector, raw) = data.split_first().map(|(s, r)| (*s, r)).unwrap_or((0, data));
    let undefined = expand(raw, |_: &[u8]| None::<&[u8]>);
    assert!(undefined.len() <= raw.len());
    if !raw.contains(&b'$') {
        assert_eq!(&*undefined, raw);
    }
    // Some variables defined, chosen by the first byte.
    let value: &[u8] = if selector & 1 == 0 { b"" } else { b"$(recursion)" };
    let out = expand(raw, |name: &[u8]| (name.first().copied().unwrap_or(0) & 1 == selector & 1).then_some(value));
    let _ = out;
});

#![no_main]
//! PLACEHOLDER: filled in by the issue that owns this parser.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = data;
});

#![no_main]
//! Fuzzes the history reader (arbitrary bytes opened as SQLite) and the date parser.
use cvmfs_core::history::{parse_date, History};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_date(text);
    }
    let Ok(mut tmp) = tempfile::NamedTempFile::new() else { return };
    if std::io::Write::write_all(&mut tmp, data).is_err() {
        return;
    }
    if let Ok(history) = History::open(tmp.path()) {
        let _ = history.tags();
        let _ = history.tag("trunk");
        let _ = history.tag_at(i64::MAX);
        let _ = history.tag_at(0);
        let _ = history.tag_at_date("2026-11-22T10:31:44Z");
    }
});

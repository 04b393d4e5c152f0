//! History databases of the fixture repositories (revision 3 and revision 2).

mod catalog_common;

use catalog_common::{hash, read_object};
use cvmfs_core::history::{parse_date, History, HistoryError};
use cvmfs_core::ObjectKind;
use cvmfs_testkit::fixtures::{legacy_repo, reference_repo};

fn open_history(storage: &std::path::Path, hex: &str, dir: &tempfile::TempDir) -> History {
    let bytes = read_object(storage, &hash(hex), ObjectKind::History);
    let file = dir.path().join(format!("{hex}.sqlite"));
    std::fs::write(&file, bytes).unwrap();
    History::open(&file).unwrap()
}

#[test]
fn reference_history_tags() {
    let repo = reference_repo();
    let dir = tempfile::tempdir().unwrap();
    let history = open_history(&repo.storage, "7e3cbce2327b6b3c67a8e688f67fba35d8a18616", &dir);
    assert_eq!(history.schema_revision(), 3);
    assert_eq!(history.fqrn(), Some("fixture.test.local"));
    let tags = history.tags().unwrap();
    let names: Vec<&str> = tags.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["r2", "trunk", "r1", "trunk-previous", "generic-2026-11-22T10:31:42Z"]);
    let r1 = history.tag("r1").unwrap().unwrap();
    assert_eq!(r1.hash, hash("b35f9c77af0148d3c7f565ae51656d9b6232fc22"));
    assert_eq!((r1.revision, r1.timestamp, r1.size), (2, 1_795_343_503, Some(28672)));
    assert_eq!(r1.description, "revision 1: full content");
    assert_eq!(r1.branch, "");
    assert!(history.tag("nope").unwrap().is_none());
    let at_r2 = history.tag_at_date("2026-11-22T10:31:44Z").unwrap().unwrap();
    assert_eq!(at_r2.hash, hash("33168bb52dd017fad762f79b5ee71382ca9e3016"));
    let before_r2 = history.tag_at_date("2026-11-22T10:31:43Z").unwrap().unwrap();
    assert_eq!(before_r2.hash, hash("b35f9c77af0148d3c7f565ae51656d9b6232fc22"));
    let first = history.tag_at(1_795_343_502).unwrap().unwrap();
    assert_eq!(first.revision, 1);
    assert!(history.tag_at(1_795_343_501).unwrap().is_none());
    assert!(matches!(history.tag_at_date("yesterday"), Err(HistoryError::BadDate(_))));
    assert_eq!(parse_date("2026-11-22T10:31:42Z").unwrap(), 1_795_343_502);
}

#[test]
fn legacy_history_without_branches() {
    let repo = legacy_repo();
    let dir = tempfile::tempdir().unwrap();
    let history = open_history(&repo.storage, "365d5083b27d67e2caeff6d66e5fe3f2d104a6bd", &dir);
    assert_eq!(history.schema_revision(), 2);
    assert_eq!(history.tags().unwrap().len(), 4);
    let trunk = history.tag("trunk").unwrap().unwrap();
    assert_eq!(trunk.hash, hash("6ed3d49a5c64f21f36936ab350d49aaf57585b9a"));
    assert_eq!(trunk.size, Some(14336));
    let at = history.tag_at_date("2015-10-21T11:55:14Z").unwrap().unwrap();
    assert_eq!(at.hash, hash("e6ceff5bfeded1ddc5d21dd0ce32aca99013e31e"));
}

#[test]
fn hostile_history_databases() {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str, sql: &str| {
        let file = dir.path().join(name);
        let conn = rusqlite::Connection::open(&file).unwrap();
        conn.execute_batch(sql).unwrap();
        file
    };
    let base = "CREATE TABLE properties (key TEXT, value TEXT, CONSTRAINT pk_properties PRIMARY KEY (key));\
                CREATE TABLE tags (name TEXT, hash TEXT, revision INTEGER, timestamp INTEGER, channel INTEGER, \
                description TEXT, size INTEGER, branch TEXT, CONSTRAINT pk_tags PRIMARY KEY (name));";
    let wrong_schema = make("schema.db", &format!("{base} INSERT INTO properties VALUES ('schema', '2.0');"));
    assert!(matches!(History::open(&wrong_schema), Err(HistoryError::UnsupportedSchema { .. })));
    let future = make(
        "future.db",
        &format!("{base} INSERT INTO properties VALUES ('schema', '1.0'), ('schema_revision', '9');"),
    );
    assert!(matches!(History::open(&future), Err(HistoryError::UnsupportedSchema { .. })));
    let bad_rows = make(
        "rows.db",
        &format!(
            "{base} INSERT INTO properties VALUES ('schema', '1.0'), ('schema_revision', '3');\
             INSERT INTO tags VALUES ('bad', 'zz', 1, 1, 0, '', 0, ''), ('neg', '{}', -1, 1, 0, '', 0, '');",
            "00".repeat(20)
        ),
    );
    let history = History::open(&bad_rows).unwrap();
    assert!(matches!(history.tag("bad"), Err(HistoryError::BadTag { .. })));
    assert!(matches!(history.tag("neg"), Err(HistoryError::BadTag { .. })));
    assert!(history.tags().is_err());
    let missing_column = make(
        "nobranch.db",
        "CREATE TABLE properties (key TEXT, value TEXT); CREATE TABLE tags (name TEXT, hash TEXT);\
         INSERT INTO properties VALUES ('schema', '1.0'), ('schema_revision', '3');",
    );
    assert!(matches!(History::open(&missing_column), Err(HistoryError::Sqlite(_))));
}

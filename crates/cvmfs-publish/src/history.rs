//! The history database of a new revision (`swissknife_history.cc` rules): the previous
//! database extended by the tag of this publish, with the automatic tags moved along:
//! `trunk` (description "current HEAD") names the new revision and `trunk-previous`
//! ("default undo target") the revision `trunk` named before. A publish without a tag
//! name gets `generic-<UTC ISO time>` with an empty description, as upstream's
//! automatic tagging does. `previous_revision` holds the previous database's hash
//! (zeros for the first one).

use std::path::{Path, PathBuf};

use cvmfs_core::history::create_empty_history;
use cvmfs_core::whitelist::whitelist_timestamp;
use cvmfs_core::ContentHash;
use rusqlite::{params, Connection, OptionalExtension};

use crate::catalog::PAGE_SIZE;
use crate::error::{IoContext, PublishError, SqlContext};

/// The tag naming the newest revision.
pub const HEAD_TAG: &str = "trunk";
/// The tag naming the revision before it.
pub const PREVIOUS_HEAD_TAG: &str = "trunk-previous";
const HEAD_DESCRIPTION: &str = "current HEAD";
const PREVIOUS_HEAD_DESCRIPTION: &str = "default undo target";

/// One row of the `tags` table (on the default branch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRow {
    pub name: String,
    pub hash: ContentHash,
    pub revision: u64,
    pub timestamp: u64,
    pub description: String,
    /// Uncompressed size of the root catalog.
    pub size: u64,
}

/// The automatic tag name of a publish at `timestamp`: `generic-YYYY-MM-DDTHH:MM:SSZ`.
pub fn generic_tag_name(timestamp: u64) -> String {
    let t = whitelist_timestamp(timestamp);
    format!("generic-{}-{}-{}T{}:{}:{}Z", &t[0..4], &t[4..6], &t[6..8], &t[8..10], &t[10..12], &t[12..14])
}

/// Refuses names upstream could not round-trip and the reserved automatic names.
pub fn check_tag_name(name: &str) -> Result<(), PublishError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(PublishError::BadTag(name.to_string()));
    }
    if name == HEAD_TAG || name == PREVIOUS_HEAD_TAG {
        return Err(PublishError::TagExists(name.to_string()));
    }
    Ok(())
}

/// Whether the (inflated) history database `file` has a tag `name`.
pub fn has_tag(file: &Path, name: &str) -> Result<bool, PublishError> {
    let conn = Connection::open(file).sql("opening the previous history")?;
    let found: Option<String> = conn
        .query_row("SELECT name FROM tags WHERE name = ?1", [name], |r| r.get(0))
        .optional()
        .sql("looking up a tag")?;
    Ok(found.is_some())
}

/// Writes the new history database into `target`, starting from `previous` (an inflated
/// database) or from an empty one.
pub fn write_history(
    previous: Option<&Path>,
    previous_hash: ContentHash,
    target: &Path,
    fqrn: &str,
    tag: &TagRow,
) -> Result<PathBuf, PublishError> {
    let _ = std::fs::remove_file(target);
    let conn = match previous {
        Some(file) => {
            std::fs::copy(file, target).io("copying the history to", target)?;
            Connection::open(target).sql("opening the history")?
        }
        None => {
            let conn = Connection::open(target).sql("creating the history")?;
            conn.execute_batch(&format!("PRAGMA page_size={PAGE_SIZE};")).sql("setting up the history")?;
            create_empty_history(&conn, fqrn).sql("creating the history schema")?;
            conn
        }
    };
    conn.execute_batch("BEGIN").sql("starting a history transaction")?;
    insert_tag(&conn, tag)?;
    move_head_tags(&conn, tag)?;
    conn.execute(
        "INSERT OR REPLACE INTO properties (key, value) VALUES ('previous_revision', ?1)",
        [previous_hash.to_string()],
    )
    .sql("writing the history's previous_revision")?;
    conn.execute_batch("COMMIT").sql("committing the history")?;
    conn.close().map_err(|(_, source)| PublishError::Sqlite { what: "closing the history", source })?;
    Ok(target.to_path_buf())
}

fn insert_tag(conn: &Connection, tag: &TagRow) -> Result<(), PublishError> {
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    conn.execute(
        "INSERT INTO tags (name, hash, revision, timestamp, channel, description, size, branch) \
         VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, '')",
        params![
            tag.name,
            tag.hash.to_string(),
            clamp(tag.revision),
            clamp(tag.timestamp),
            tag.description,
            clamp(tag.size)
        ],
    )
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
            PublishError::TagExists(tag.name.clone())
        }
        other => PublishError::Sqlite { what: "inserting a tag", source: other },
    })?;
    Ok(())
}

/// `UpdateUndoTags`: drop `trunk-previous`, rename `trunk` to it, point `trunk` at the
/// new revision.
fn move_head_tags(conn: &Connection, head: &TagRow) -> Result<(), PublishError> {
    conn.execute("DELETE FROM tags WHERE name = ?1", [PREVIOUS_HEAD_TAG]).sql("removing trunk-previous")?;
    conn.execute(
        "UPDATE tags SET name = ?1, description = ?2 WHERE name = ?3",
        params![PREVIOUS_HEAD_TAG, PREVIOUS_HEAD_DESCRIPTION, HEAD_TAG],
    )
    .sql("moving trunk to trunk-previous")?;
    let trunk = TagRow { name: HEAD_TAG.into(), description: HEAD_DESCRIPTION.into(), ..head.clone() };
    insert_tag(conn, &trunk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cvmfs_core::history::History;
    use cvmfs_core::Algorithm;

    #[test]
    fn generic_names_are_iso_utc() {
        assert_eq!(generic_tag_name(1_795_343_502), "generic-2026-11-22T10:31:42Z");
    }

    #[test]
    fn head_tags_move_along() {
        let dir = tempfile::tempdir().unwrap();
        let hash = |s: &[u8]| ContentHash::of(Algorithm::Sha1, s);
        let tag = |name: &str, revision: u64| TagRow {
            name: name.into(),
            hash: hash(name.as_bytes()),
            revision,
            timestamp: 100 + revision,
            description: String::new(),
            size: 4096,
        };
        let null = ContentHash::null(Algorithm::Sha1);
        let first = write_history(None, null, &dir.path().join("h1"), "x.test", &tag("a", 1)).unwrap();
        let second =
            write_history(Some(&first), hash(b"h1"), &dir.path().join("h2"), "x.test", &tag("b", 2)).unwrap();
        assert!(has_tag(&second, "a").unwrap());
        let err = write_history(Some(&second), hash(b"h2"), &dir.path().join("h3"), "x.test", &tag("a", 3));
        assert!(matches!(err, Err(PublishError::TagExists(_))));
        let history = History::open(&second).unwrap();
        let names: Vec<(String, u64)> =
            history.tags().unwrap().into_iter().map(|t| (t.name, t.revision)).collect();
        assert_eq!(
            names,
            [("b".into(), 2), ("trunk".into(), 2), ("a".into(), 1), ("trunk-previous".into(), 1)]
        );
        assert_eq!(history.tag("trunk-previous").unwrap().unwrap().description, "default undo target");
        assert!(
            check_tag_name("trunk").is_err()
                && check_tag_name("a b").is_err()
                && check_tag_name("v1").is_ok()
        );
    }
}

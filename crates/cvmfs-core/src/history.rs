//! The history database (`H` objects, spec 7, `history_sql.cc`): named tags pointing at
//! root catalogs, for mounting a tag (`CVMFS_REPOSITORY_TAG`) or a date
//! (`CVMFS_REPOSITORY_DATE`).
//!
//! The caller hands in the path of an already verified and inflated SQLite file.
//! Accepted: schema 1.0 with revisions 0..3 (upstream accepts any revision of 1.0 and
//! reads unknown ones like 3; we refuse revisions we do not know).
//!
//! Date lookups: upstream's query needs the `branch` column, which only revision 3 has,
//! so upstream fails on older databases. Before revision 3 there were no branches, so
//! every tag is on the default branch: we run the same query without the branch
//! condition.
//!
//! Writers get the schema itself ([`HISTORY_DDL`], [`create_empty_history`]); what
//! tags to write is their business.
//!
//! What it is not for: writing tags, the recycle bin, branches beyond the default one.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, Row};
use thiserror::Error;

use crate::hash::ContentHash;

/// Newest history schema revision this reader knows.
pub const LATEST_HISTORY_REVISION: u32 = 3;

#[derive(Debug, Error)]
pub enum HistoryError {
    #[error("history database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "history schema {schema:?} revision {revision:?} is not supported (accepted: 1.0, revisions 0..3)"
    )]
    UnsupportedSchema { schema: String, revision: String },
    #[error("history tag {name:?}: {problem}")]
    BadTag { name: String, problem: String },
    #[error("date {0:?} is not of the form YYYY-MM-DDTHH:MM:SSZ")]
    BadDate(String),
}

/// One row of `tags`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub name: String,
    /// Root catalog hash (suffix `C` implied).
    pub hash: ContentHash,
    pub revision: u64,
    /// Unix seconds.
    pub timestamp: i64,
    pub description: String,
    /// Inflated root catalog size (revision >= 1).
    pub size: Option<u64>,
    /// `""` = the default branch.
    pub branch: String,
}

/// An opened history database.
pub struct History {
    conn: Mutex<Connection>,
    revision: u32,
    fqrn: Option<String>,
    fields: &'static str,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").field("revision", &self.revision).field("fqrn", &self.fqrn).finish()
    }
}

impl History {
    /// Opens a verified, inflated history database read-only.
    pub fn open(file: &Path) -> Result<History, HistoryError> {
        let conn = Connection::open_with_flags(
            file,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch("PRAGMA query_only=1; PRAGMA trusted_schema=OFF;")?;
        let schema = property(&conn, "schema")?;
        let revision_text = property(&conn, "schema_revision")?;
        let revision = check_schema(schema.as_deref(), revision_text.as_deref())?;
        let fqrn = property(&conn, "fqrn")?;
        let fields = match revision {
            0 => "name, hash, revision, timestamp, description, NULL, ''",
            1 | 2 => "name, hash, revision, timestamp, description, size, ''",
            _ => "name, hash, revision, timestamp, description, size, branch",
        };
        // Preparing once turns a missing column into an error at open.
        conn.prepare(&format!("SELECT {fields} FROM tags LIMIT 0"))?;
        Ok(History { conn: Mutex::new(conn), revision, fqrn, fields })
    }

    pub fn schema_revision(&self) -> u32 {
        self.revision
    }

    /// The repository name recorded in the database.
    pub fn fqrn(&self) -> Option<&str> {
        self.fqrn.as_deref()
    }

    /// Every tag, newest revision first (ties by name).
    pub fn tags(&self) -> Result<Vec<Tag>, HistoryError> {
        self.query(&format!("SELECT {} FROM tags ORDER BY revision DESC, name ASC", self.fields), &[])
    }

    /// The tag called `name`.
    pub fn tag(&self, name: &str) -> Result<Option<Tag>, HistoryError> {
        let sql = format!("SELECT {} FROM tags WHERE name = ?1", self.fields);
        Ok(self.query(&sql, &[&name])?.into_iter().next())
    }

    /// The newest default-branch tag whose timestamp is at or before `timestamp`.
    pub fn tag_at(&self, timestamp: i64) -> Result<Option<Tag>, HistoryError> {
        let branch_condition = if self.revision >= 3 { "branch = '' AND " } else { "" };
        let sql = format!(
            "SELECT {} FROM tags WHERE {branch_condition}timestamp <= ?1 ORDER BY revision DESC LIMIT 1",
            self.fields
        );
        Ok(self.query(&sql, &[&timestamp])?.into_iter().next())
    }

    /// [`History::tag_at`] for a `YYYY-MM-DDTHH:MM:SSZ` date.
    pub fn tag_at_date(&self, date: &str) -> Result<Option<Tag>, HistoryError> {
        self.tag_at(parse_date(date)?)
    }

    fn query(&self, sql: &str, params: &[&dyn rusqlite::ToSql]) -> Result<Vec<Tag>, HistoryError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query(params)?;
        let mut tags = Vec::new();
        while let Some(row) = rows.next()? {
            tags.push(decode_tag(row)?);
        }
        Ok(tags)
    }
}

fn property(conn: &Connection, key: &str) -> Result<Option<String>, HistoryError> {
    let mut stmt = conn.prepare("SELECT value FROM properties WHERE key = ?1")?;
    let mut rows = stmt.query([key])?;
    let Some(row) = rows.next()? else { return Ok(None) };
    Ok(match row.get_ref(0)? {
        ValueRef::Null => None,
        ValueRef::Integer(v) => Some(v.to_string()),
        ValueRef::Real(v) => Some(v.to_string()),
        ValueRef::Text(b) | ValueRef::Blob(b) => Some(String::from_utf8_lossy(b).into_owned()),
    })
}

fn check_schema(schema: Option<&str>, revision: Option<&str>) -> Result<u32, HistoryError> {
    let unsupported = || HistoryError::UnsupportedSchema {
        schema: schema.unwrap_or("").to_string(),
        revision: revision.unwrap_or("").to_string(),
    };
    // A missing `schema` reads as 1.0, as in upstream's generic database layer.
    let version: f64 = match schema {
        None => 1.0,
        Some(text) => text.trim().parse().map_err(|_| unsupported())?,
    };
    let revision: u32 = match revision {
        None => 0,
        Some(text) => text.trim().parse().map_err(|_| unsupported())?,
    };
    if (version - 1.0).abs() >= 0.0005 || revision > LATEST_HISTORY_REVISION {
        return Err(unsupported());
    }
    Ok(revision)
}

fn decode_tag(row: &Row<'_>) -> Result<Tag, HistoryError> {
    let text = |idx: usize| -> Result<String, HistoryError> {
        Ok(match row.get_ref(idx)? {
            ValueRef::Text(b) | ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
            ValueRef::Integer(v) => v.to_string(),
            _ => String::new(),
        })
    };
    let name = text(0)?;
    let bad = |problem: String| HistoryError::BadTag { name: name.clone(), problem };
    let hash_text = text(1)?;
    let hash = ContentHash::parse_content(&hash_text).map_err(|e| bad(e.to_string()))?;
    let integer = |idx: usize, column: &str| -> Result<Option<i64>, HistoryError> {
        match row.get_ref(idx)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(v) => Ok(Some(v)),
            _ => Err(bad(format!("{column} is not an integer"))),
        }
    };
    let revision = integer(2, "revision")?.unwrap_or(0);
    let revision = u64::try_from(revision).map_err(|_| bad(format!("negative revision {revision}")))?;
    let size = integer(5, "size")?
        .map(|s| u64::try_from(s).map_err(|_| bad(format!("negative size {s}"))))
        .transpose()?;
    Ok(Tag {
        hash,
        revision,
        timestamp: integer(3, "timestamp")?.unwrap_or(0),
        description: text(4)?,
        size,
        branch: text(6)?,
        name: name.clone(),
    })
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (exactly 20 characters, UTC) to Unix seconds.
/// Out-of-range fields are refused (upstream's `strptime`+`timegm` would roll
/// `02-31` over into March); second 60 is accepted as upstream's parser does.
pub fn parse_date(text: &str) -> Result<i64, HistoryError> {
    let bad = || HistoryError::BadDate(text.to_string());
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 20
        && bytes.iter().enumerate().all(|(i, &b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(bad());
    }
    let field = |from: usize, to: usize| -> Result<i64, HistoryError> {
        text.get(from..to).and_then(|s| s.parse::<i64>().ok()).ok_or_else(bad)
    };
    let (year, month, day) = (field(0, 4)?, field(5, 7)?, field(8, 10)?);
    let (hour, minute, second) = (field(11, 13)?, field(14, 16)?, field(17, 19)?);
    let ranges_ok = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour < 24
        && minute < 60
        && second <= 60;
    if !ranges_ok {
        return Err(bad());
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The `schema` property of current history databases.
pub const HISTORY_SCHEMA_TEXT: &str = "1.0";

/// The tables of a history database of schema 1.0 revision 3, as upstream creates them
/// (`history_sql.cc`), in creation order.
pub const HISTORY_DDL: [&str; 4] = [
    "CREATE TABLE properties (key TEXT, value TEXT, CONSTRAINT pk_properties PRIMARY KEY (key));",
    "CREATE TABLE branches (branch TEXT, parent TEXT, initial_revision INTEGER, \
     CONSTRAINT pk_branch PRIMARY KEY (branch), \
     FOREIGN KEY (parent) REFERENCES branches (branch), \
     CHECK ((branch <> '') OR (parent IS NULL)), \
     CHECK ((branch = '') OR (parent IS NOT NULL)));",
    "CREATE TABLE tags (name TEXT, hash TEXT, revision INTEGER, timestamp INTEGER, \
     channel INTEGER, description TEXT, size INTEGER, branch TEXT, \
     CONSTRAINT pk_tags PRIMARY KEY (name), \
     FOREIGN KEY (branch) REFERENCES branches (branch));",
    "CREATE TABLE recycle_bin (hash TEXT, flags INTEGER, CONSTRAINT pk_hash PRIMARY KEY (hash));",
];

/// Creates an empty history database of schema 1.0 revision 3 for `fqrn`: the tables,
/// the properties `schema`, `schema_revision` and `fqrn`, and the default branch row
/// `('', NULL, 0)` that upstream always inserts.
pub fn create_empty_history(conn: &Connection, fqrn: &str) -> rusqlite::Result<()> {
    for statement in HISTORY_DDL {
        conn.execute_batch(statement)?;
    }
    conn.execute(
        "INSERT INTO properties (key, value) VALUES ('schema', ?1), ('schema_revision', ?2), ('fqrn', ?3);",
        rusqlite::params![HISTORY_SCHEMA_TEXT, LATEST_HISTORY_REVISION.to_string(), fqrn],
    )?;
    conn.execute("INSERT INTO branches (branch, parent, initial_revision) VALUES ('', NULL, 0);", [])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse() {
        assert_eq!(parse_date("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse_date("2015-10-21T11:55:15Z").unwrap(), 1_445_428_515);
        assert_eq!(parse_date("2026-11-22T10:31:44Z").unwrap(), 1_795_343_504);
        assert_eq!(parse_date("2000-02-29T23:59:59Z").unwrap(), 951_868_799);
        assert_eq!(parse_date("1969-12-31T23:59:59Z").unwrap(), -1);
        for bad in [
            "2015-10-21 11:55:15Z",
            "2015-10-21T11:55:15",
            "2015-13-01T00:00:00Z",
            "2015-02-29T00:00:00Z",
            "2015-01-01T24:00:00Z",
            "2015-01-01T00:60:00Z",
            "+015-01-01T00:00:00Z",
            "2015-01-01T00:00:00Zx",
            "",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_history_opens_with_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("history.db");
        let conn = Connection::open(&file).unwrap();
        create_empty_history(&conn, "x.test").unwrap();
        conn.execute(
            "INSERT INTO tags VALUES ('t', 'da39a3ee5e6b4b0d3255bfef95601890afd80709', 1, 5, 0, 'd', 7, '')",
            [],
        )
        .unwrap();
        drop(conn);
        let history = History::open(&file).unwrap();
        assert_eq!((history.schema_revision(), history.fqrn()), (3, Some("x.test")));
        assert_eq!(history.tag_at(5).unwrap().unwrap().size, Some(7));
    }

    #[test]
    fn history_schema_rules() {
        assert_eq!(check_schema(Some("1.0"), Some("3")).unwrap(), 3);
        assert_eq!(check_schema(Some("1.0"), None).unwrap(), 0);
        assert!(check_schema(Some("1.0"), Some("4")).is_err());
        assert!(check_schema(Some("2.0"), Some("3")).is_err());
        assert_eq!(check_schema(None, None).unwrap(), 0);
        assert!(check_schema(Some("x"), None).is_err());
    }
}

//! The quota database `cachedb`: one row per cached object in upstream's
//! `cache_catalog` table, ordered by access sequence (`acseq`) for LRU eviction.
//!
//! Sharing between processes: every change of the cache directory (rename of a new
//! object into place, unlink of an evicted one) happens inside an SQLite write
//! transaction (`BEGIN IMMEDIATE`), which SQLite serialises across processes with file
//! locks. So the database has one writer at a time, the directory and the rows change
//! together, and the running total (`quota_state.gauge`) lives in the database rather
//! than in any process: an object inserted by two processes is counted once.
//!
//! Upstream runs one cache-manager process per shared cache and a different on-disk
//! protocol; this layout is therefore not meant to be shared with C++ clients.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior};

use crate::error::{CacheError, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cache_catalog (sha1 TEXT PRIMARY KEY, size INTEGER, acseq INTEGER,
    path TEXT, type INTEGER, pinned INTEGER);
CREATE UNIQUE INDEX IF NOT EXISTS idx_cache_catalog_acseq ON cache_catalog (acseq);
CREATE TABLE IF NOT EXISTS properties (key TEXT PRIMARY KEY, value TEXT);
INSERT OR IGNORE INTO properties VALUES ('schema', '1.0');
CREATE TABLE IF NOT EXISTS quota_state (id INTEGER PRIMARY KEY CHECK (id = 0),
    gauge INTEGER NOT NULL, seq INTEGER NOT NULL);
";

/// Bit 63 of `acseq`: volatile objects sort (and are evicted) first, as upstream.
const VOLATILE_BIT: i64 = i64::MIN;

/// Upstream's `type` column.
pub(crate) const TYPE_REGULAR: i64 = 0;
pub(crate) const TYPE_CATALOG: i64 = 1;

pub(crate) struct QuotaDb {
    conn: Connection,
    path: PathBuf,
    timeout: Duration,
}

/// One row of `cache_catalog`.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub key: String,
    pub size: u64,
    pub acseq: i64,
    pub description: String,
    pub kind: i64,
}

impl Row {
    pub fn volatile(&self) -> bool {
        self.acseq < 0
    }
}

/// What to record for a new object.
pub(crate) struct NewRow<'a> {
    pub key: &'a str,
    pub size: u64,
    pub description: &'a str,
    pub kind: i64,
    pub volatile: bool,
}

impl QuotaDb {
    /// Opens (creating if needed) the database. Returns whether it was fresh, i.e. has
    /// to be filled from the directory. A corrupt file is deleted and recreated once,
    /// as upstream does ("LRU database corrupted, re-building").
    pub fn open(path: &Path, timeout: Duration) -> Result<(QuotaDb, bool)> {
        match QuotaDb::open_once(path, timeout) {
            Err(CacheError::Database { source, .. }) if is_corruption(&source) => {
                tracing::warn!("quota database {} is corrupt, rebuilding it", path.display());
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let file = PathBuf::from(format!("{}{suffix}", path.display()));
                    crate::layout::remove_if_present(&file)
                        .map_err(|e| CacheError::io("removing", &file, e))?;
                }
                QuotaDb::open_once(path, timeout)
            }
            other => other,
        }
    }

    fn open_once(path: &Path, timeout: Duration) -> Result<(QuotaDb, bool)> {
        let db_error = |source| CacheError::Database { path: path.to_path_buf(), source };
        let conn = Connection::open(path).map_err(db_error)?;
        conn.busy_timeout(timeout).map_err(db_error)?;
        // WAL lets readers in other processes go on while one process writes; with
        // synchronous=OFF a killed process loses nothing (the OS still has the pages),
        // only a power cut can, and the directory scan at the next start repairs that.
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db_error)?;
        conn.pragma_update(None, "synchronous", "OFF").map_err(db_error)?;
        let mut db = QuotaDb { conn, path: path.to_path_buf(), timeout };
        let fresh = db
            .write(true, |tx| {
                tx.execute_batch(SCHEMA)?;
                let inserted = tx.execute("INSERT OR IGNORE INTO quota_state VALUES (0, 0, 0)", [])?;
                Ok(inserted == 1)
            })?
            .unwrap_or(false);
        Ok((db, fresh))
    }

    /// Runs `body` in a write transaction, committed if it returns `Ok`. With
    /// `wait == false` it returns `Ok(None)` instead of waiting for another writer.
    pub fn write<T>(
        &mut self,
        wait: bool,
        body: impl FnOnce(&Transaction) -> Result<T, DbOrCache>,
    ) -> Result<Option<T>> {
        let path = self.path.clone();
        let timeout = self.timeout;
        if !wait {
            self.conn
                .busy_timeout(Duration::ZERO)
                .map_err(|e| CacheError::Database { path: path.clone(), source: e })?;
        }
        let started = std::time::Instant::now();
        let outcome = self.run_transaction(body);
        if !wait {
            self.conn
                .busy_timeout(timeout)
                .map_err(|e| CacheError::Database { path: path.clone(), source: e })?;
        }
        match outcome {
            Ok(value) => Ok(Some(value)),
            Err(DbOrCache::Db(source)) if is_busy(&source) => {
                if wait {
                    Err(CacheError::LockTimeout { path, waited: started.elapsed() })
                } else {
                    Ok(None)
                }
            }
            Err(DbOrCache::Db(source)) => Err(CacheError::Database { path, source }),
            Err(DbOrCache::Cache(error)) => Err(error),
        }
    }

    fn run_transaction<T>(
        &mut self,
        body: impl FnOnce(&Transaction) -> Result<T, DbOrCache>,
    ) -> Result<T, DbOrCache> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = body(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// A read outside any write transaction (WAL: never blocked by a writer).
    pub fn read<T>(&mut self, body: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        body(&self.conn).map_err(|source| CacheError::Database { path: self.path.clone(), source })
    }
}

/// Errors inside a transaction body: SQLite's own, or ours (file system work done
/// while the transaction holds the lock).
#[derive(Debug)]
pub(crate) enum DbOrCache {
    Db(rusqlite::Error),
    Cache(CacheError),
}

impl From<rusqlite::Error> for DbOrCache {
    fn from(e: rusqlite::Error) -> Self {
        DbOrCache::Db(e)
    }
}

impl From<CacheError> for DbOrCache {
    fn from(e: CacheError) -> Self {
        DbOrCache::Cache(e)
    }
}

fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(error.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

fn is_corruption(error: &rusqlite::Error) -> bool {
    matches!(error.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase))
}

/// `(gauge, seq)`: bytes accounted and the last access sequence handed out.
pub(crate) fn state(conn: &Connection) -> rusqlite::Result<(u64, i64)> {
    conn.query_row("SELECT gauge, seq FROM quota_state WHERE id = 0", [], |r| {
        Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get(1)?))
    })
}

pub(crate) fn set_state(conn: &Connection, gauge: u64, seq: i64) -> rusqlite::Result<()> {
    conn.execute("UPDATE quota_state SET gauge = ?1, seq = ?2 WHERE id = 0", params![gauge as i64, seq])?;
    Ok(())
}

pub(crate) fn gauge(conn: &Connection) -> rusqlite::Result<u64> {
    state(conn).map(|(gauge, _)| gauge)
}

/// Adds `delta` bytes to the gauge (negative to subtract).
fn add_to_gauge(conn: &Connection, delta: i64) -> rusqlite::Result<()> {
    conn.execute("UPDATE quota_state SET gauge = MAX(0, gauge + ?1) WHERE id = 0", params![delta])?;
    Ok(())
}

/// Hands out the next access sequence number.
fn next_seq(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("UPDATE quota_state SET seq = seq + 1 WHERE id = 0 RETURNING seq", [], |r| r.get(0))
}

fn with_volatile_bit(seq: i64, volatile: bool) -> i64 {
    if volatile {
        seq | VOLATILE_BIT
    } else {
        seq
    }
}

pub(crate) fn size_of(conn: &Connection, key: &str) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached("SELECT size FROM cache_catalog WHERE sha1 = ?1")?
        .query_row(params![key], |r| r.get::<_, i64>(0))
        .optional()
        .map(|size| size.map(|s| s.max(0) as u64))
}

/// Inserts or replaces the row of an object and keeps the gauge in step: a new object
/// adds its size, a replaced one only the difference (so it is never counted twice).
pub(crate) fn upsert(conn: &Connection, row: &NewRow) -> rusqlite::Result<()> {
    let old = size_of(conn, row.key)?;
    let acseq = with_volatile_bit(next_seq(conn)?, row.volatile);
    conn.prepare_cached("INSERT OR REPLACE INTO cache_catalog VALUES (?1, ?2, ?3, ?4, ?5, 0)")?
        .execute(params![row.key, row.size as i64, acseq, row.description, row.kind])?;
    add_to_gauge(conn, row.size as i64 - old.unwrap_or(0) as i64)
}

/// Moves objects to the most-recently-used end, keeping their volatile bit.
pub(crate) fn touch(conn: &Connection, keys: &[String]) -> rusqlite::Result<()> {
    let mut statement = conn.prepare_cached(
        "UPDATE cache_catalog SET acseq = CASE WHEN acseq < 0 THEN ?1 | (1 << 63) ELSE ?1 END WHERE sha1 = ?2",
    )?;
    for key in keys {
        let seq = next_seq(conn)?;
        statement.execute(params![seq, key])?;
    }
    Ok(())
}

/// Deletes a row; returns the size it accounted for.
pub(crate) fn delete(conn: &Connection, key: &str) -> rusqlite::Result<Option<u64>> {
    let size = size_of(conn, key)?;
    if let Some(size) = size {
        conn.prepare_cached("DELETE FROM cache_catalog WHERE sha1 = ?1")?.execute(params![key])?;
        add_to_gauge(conn, -(size as i64))?;
    }
    Ok(size)
}

/// Up to `limit` rows in LRU order whose `acseq` is above `after`.
pub(crate) fn lru_rows(conn: &Connection, after: i64, limit: usize) -> rusqlite::Result<Vec<Row>> {
    let mut statement = conn.prepare_cached(
        "SELECT sha1, size, acseq, path, type FROM cache_catalog WHERE acseq > ?1 ORDER BY acseq LIMIT ?2",
    )?;
    let rows = statement.query_map(params![after, limit as i64], row_from_sql)?;
    rows.collect()
}

pub(crate) fn all_rows(conn: &Connection) -> rusqlite::Result<Vec<Row>> {
    let mut statement =
        conn.prepare_cached("SELECT sha1, size, acseq, path, type FROM cache_catalog ORDER BY acseq")?;
    let rows = statement.query_map([], row_from_sql)?;
    rows.collect()
}

fn row_from_sql(r: &rusqlite::Row) -> rusqlite::Result<Row> {
    Ok(Row {
        key: r.get(0)?,
        size: r.get::<_, Option<i64>>(1)?.unwrap_or(0).max(0) as u64,
        acseq: r.get(2)?,
        description: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
        kind: r.get::<_, Option<i64>>(4)?.unwrap_or(TYPE_REGULAR),
    })
}

pub(crate) fn set_size(conn: &Connection, key: &str, size: u64) -> rusqlite::Result<()> {
    conn.execute("UPDATE cache_catalog SET size = ?2 WHERE sha1 = ?1", params![key, size as i64])?;
    Ok(())
}

/// Recomputes the gauge from the rows and makes sure `seq` is above every row's
/// sequence (both may be off after a repair).
pub(crate) fn recompute_state(conn: &Connection) -> rusqlite::Result<()> {
    let total: i64 = conn.query_row("SELECT COALESCE(SUM(size), 0) FROM cache_catalog", [], |r| r.get(0))?;
    let highest: i64 =
        conn.query_row("SELECT COALESCE(MAX(acseq & 9223372036854775807), 0) FROM cache_catalog", [], |r| {
            r.get(0)
        })?;
    let (_, seq) = state(conn)?;
    set_state(conn, total.max(0) as u64, seq.max(highest))
}

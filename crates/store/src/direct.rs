//! The audit append's direct path on SQLite: a group's `INSERT` (or, for a large group, one
//! transaction of them) run on the group committer's own thread through the SQLite
//! library itself.
//!
//! sqlx runs every SQLite statement on a worker thread of its own; each commit then costs
//! two thread wake-ups (there and back). On a loaded machine each wake-up waits for a CPU
//! behind every other runnable thread, and the PostgreSQL gateway holds a statement's
//! `ReadyForQuery` for that commit. This path links the same SQLite library (sqlx's
//! `libsqlite3-sys`) and runs the insert inline: a few tens of microseconds on the
//! committer's thread, no wake-up. It never waits for SQLite's lock (busy timeout 0):
//! when another process holds it, or anything else fails, nothing was written and the
//! group takes the sqlx path, which waits asynchronously.

use std::path::PathBuf;
use std::time::Duration;

use rampart_audit::AuditRecord;

use crate::StoreError;
use crate::audit::{ROWS_PER_INSERT, insert_sql, seq_i64};

/// A second connection to rampart's SQLite file, used only to append audit records.
pub(crate) struct Direct {
    conn: rusqlite::Connection,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct").finish_non_exhaustive()
    }
}

impl Direct {
    /// Opens the database file the sqlx pool uses.
    pub(crate) fn open(path: &PathBuf) -> Result<Self, StoreError> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(direct_error)?;
        conn.busy_timeout(Duration::ZERO).map_err(direct_error)?;
        // As the sqlx connections: WAL (a property of the file), commits not fsynced,
        // checkpoints left to the background checkpointer, the WAL kept at its size.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(direct_error)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(direct_error)?;
        conn.pragma_update(None, "journal_size_limit", crate::WAL_KEEP_BYTES)
            .map_err(direct_error)?;
        conn.set_prepared_statement_cache_capacity(ROWS_PER_INSERT + 8);
        Ok(Self { conn })
    }

    /// Inserts sealed records, all of them or none: one autocommit statement, or for more
    /// than [`ROWS_PER_INSERT`] one transaction of such statements.
    pub(crate) fn insert(&mut self, rows: &[AuditRecord]) -> Result<(), StoreError> {
        if rows.len() <= ROWS_PER_INSERT {
            return self.insert_one(rows);
        }
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(direct_error)?;
        let inserted = rows
            .chunks(ROWS_PER_INSERT)
            .try_for_each(|chunk| self.insert_one(chunk));
        let ended = match inserted {
            Ok(()) => self.conn.execute_batch("COMMIT"),
            Err(_) => self.conn.execute_batch("ROLLBACK"),
        };
        match (inserted, ended) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), _) => Err(e),
            (Ok(()), Err(e)) => {
                // A failed COMMIT may leave the transaction open: end it before the
                // group goes the other way.
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(direct_error(e))
            }
        }
    }

    /// One multi-row `INSERT` of at most [`ROWS_PER_INSERT`] records.
    fn insert_one(&mut self, rows: &[AuditRecord]) -> Result<(), StoreError> {
        let sql = insert_sql(true, rows.len()).ok_or_else(|| {
            StoreError::Task(format!(
                "{} audit records in one statement (at most {ROWS_PER_INSERT})",
                rows.len()
            ))
        })?;
        let seqs = rows
            .iter()
            .map(|r| seq_i64(r.seq))
            .collect::<Result<Vec<i64>, _>>()?;
        let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(rows.len() * 10);
        for (r, seq) in rows.iter().zip(&seqs) {
            params.extend([
                seq as &dyn rusqlite::ToSql,
                &r.time_us,
                &r.actor,
                &r.action,
                &r.subject,
                &r.outcome,
                &r.source,
                &r.details,
                &r.prev_hash,
                &r.hash,
            ]);
        }
        let mut statement = self.conn.prepare_cached(sql).map_err(direct_error)?;
        statement
            .execute(rusqlite::params_from_iter(params))
            .map_err(direct_error)?;
        Ok(())
    }
}

fn direct_error(e: rusqlite::Error) -> StoreError {
    StoreError::AuditWrite(e.to_string())
}

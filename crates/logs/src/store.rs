//! Storage by UTC day: one SQLite file per day (`YYYY-MM-DD.db`), each with a `lines`
//! table, the word index of its chunks ([`crate::index`]: one Bloom filter per chunk of
//! up to 256 lines), and per-day counters (lines and last line per source, scrub findings
//! per detector and source).
//!
//! Day files written before the chunk index hold a contentless FTS5 index instead; they
//! are read and appended to as they were, and go with the retention.
//!
//! A purge drops whole files: O(1) in the number of lines, and crash-safe. A day is first
//! closed (SQLite folds its WAL back), then renamed to `YYYY-MM-DD.db.trash`, then deleted;
//! [`LogStore::open`] deletes any trash left by an interrupted purge, so a day is either
//! whole or gone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jiff::civil::Date;
use jiff::{Timestamp, tz::TimeZone};
use rampart_scrub::Counts;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::config::RetentionDays;
use crate::index::{self, CHUNK_LINES, TextQuery};
use crate::record::{Level, Line};

/// The smallest age (days) a purge may ever remove, whatever it is asked: the page's floor.
pub const MIN_KEEP_DAYS: i64 = 15;

/// A failure of the log store.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The disk is full: nothing of the batch was stored, nothing stored before was lost.
    #[error("the disk holding the logs is full")]
    DiskFull,
    /// SQLite failed.
    #[error("log database error: {0}")]
    Database(sqlx::Error),
    /// A file operation of the store failed.
    #[error("log store file error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A time outside what the store can name as a day.
    #[error("a time outside the supported range")]
    Time,
    /// Writing a day file failed.
    #[error("log database write error: {0}")]
    Write(rusqlite::Error),
    /// The day's writer is gone: the store was closed, or a writer task died.
    #[error("the log store is closed")]
    Closed,
}

impl From<rusqlite::Error> for LogError {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(failure, _) = &e
            && failure.code == rusqlite::ErrorCode::DiskFull
        {
            return LogError::DiskFull;
        }
        LogError::Write(e)
    }
}

impl From<sqlx::Error> for LogError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && let Some(code) = db.code()
            && code
                .parse::<i64>()
                .is_ok_and(|c| c & 0xff == 13 /* SQLITE_FULL */)
        {
            return LogError::DiskFull;
        }
        LogError::Database(e)
    }
}

/// The open day files and where they live.
#[derive(Debug)]
pub struct LogStore {
    dir: PathBuf,
    days: tokio::sync::Mutex<BTreeMap<Date, Arc<Day>>>,
}

/// One day's file: a writer connection (one transaction per batch) and a reader pool.
#[derive(Debug)]
struct Day {
    /// The day's writing connection: the SQLite library itself (the one sqlx links),
    /// driven from a blocking thread. A batch is one call, every statement of its
    /// transaction run back to back; through sqlx each statement was a round trip to sqlx's
    /// own thread, made under the day's write lock, and that lock was what bounded ingest.
    /// `None` once closed.
    write: Arc<std::sync::Mutex<Option<rusqlite::Connection>>>,
    read: SqlitePool,
    /// A file from before the chunk index: words are in an FTS5 table, one row per line.
    fts: bool,
}

/// A stored line, as search returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLine {
    /// Event time (µs).
    pub time_us: i64,
    /// Receive time (µs).
    pub received_us: i64,
    /// Source name.
    pub source: String,
    /// Level.
    pub level: Level,
    /// Flags (see [`crate::record::flags`]).
    pub flags: i64,
    /// Scrubbed message.
    pub message: String,
    /// Scrubbed fields (JSON object text).
    pub fields: Option<String>,
}

/// What to look for. Every bound is optional; results are newest first.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Words that must all appear (in the message or the fields).
    pub text: Option<String>,
    /// Oldest event time (µs), inclusive.
    pub since_us: Option<i64>,
    /// Newest event time (µs), exclusive.
    pub until_us: Option<i64>,
    /// Lowest level.
    pub min_level: Option<Level>,
    /// One source.
    pub source: Option<String>,
    /// Most lines returned.
    pub limit: u32,
}

/// Per-source facts of one day (LOG-1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDay {
    /// The day.
    pub day: Date,
    /// Source name.
    pub source: String,
    /// Lines stored.
    pub lines: i64,
    /// Receive time of the last line (µs).
    pub last_us: i64,
}

/// Which days a purge removes, decided without touching the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgePlan {
    /// Days to remove, oldest first.
    pub remove: Vec<Date>,
    /// Days kept.
    pub keep: Vec<Date>,
}

/// Decides the purge: a day whose age (today minus the day, in days) exceeds the retention
/// goes; a day younger than [`MIN_KEEP_DAYS`] never does.
pub fn plan_purge(days: &[Date], today: Date, retention: RetentionDays) -> PurgePlan {
    let mut plan = PurgePlan {
        remove: Vec::new(),
        keep: Vec::new(),
    };
    let limit = retention.get().max(MIN_KEEP_DAYS);
    for day in days {
        let age = day_age(*day, today);
        if age > limit {
            plan.remove.push(*day);
        } else {
            plan.keep.push(*day);
        }
    }
    plan.remove.sort();
    plan.keep.sort();
    plan
}

/// Whole days from `day` to `today` (0 for today, negative for the future).
pub fn day_age(day: Date, today: Date) -> i64 {
    i64::from(today.since(day).map(|span| span.get_days()).unwrap_or(0))
}

/// The UTC day of a time in µs.
pub fn day_of(time_us: i64) -> Result<Date, LogError> {
    let ts = Timestamp::from_microsecond(time_us).map_err(|_| LogError::Time)?;
    Ok(ts.to_zoned(TimeZone::UTC).date())
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS lines (id INTEGER PRIMARY KEY, time_us INTEGER NOT NULL, received_us INTEGER NOT NULL, source TEXT NOT NULL, level INTEGER NOT NULL, flags INTEGER NOT NULL, message TEXT NOT NULL, fields TEXT)",
    "CREATE INDEX IF NOT EXISTS lines_time ON lines(time_us)",
    "CREATE TABLE IF NOT EXISTS sources (source TEXT PRIMARY KEY, lines INTEGER NOT NULL, last_us INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS scrub_counts (source TEXT NOT NULL, detector TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (source, detector))",
];

/// The word index of files written since the chunk index: each chunk's line ids, times and
/// filter. Files that already hold `lines_fts` keep it instead.
const CHUNKS: &str = "CREATE TABLE IF NOT EXISTS chunks (id INTEGER PRIMARY KEY, first_id INTEGER NOT NULL, last_id INTEGER NOT NULL, min_time_us INTEGER NOT NULL, max_time_us INTEGER NOT NULL, filter BLOB NOT NULL)";

/// Rows per multi-row INSERT (7 values each, below SQLite's variable limit).
const ROWS_PER_INSERT: usize = 256;

impl LogStore {
    /// Opens (creating) the folder and finishes any purge a crash interrupted.
    pub async fn open(dir: &Path) -> Result<Self, LogError> {
        std::fs::create_dir_all(dir).map_err(|source| LogError::Io {
            path: dir.to_owned(),
            source,
        })?;
        finish_interrupted_purges(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            days: tokio::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// The folder of the day files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores lines in one transaction per day touched, with the batch's scrub counts and
    /// per-source counters. All of a day's lines commit together or not at all. The
    /// writing (and the word filters) happen on a blocking thread.
    pub async fn append(
        &self,
        lines: Vec<Line>,
        counts: Vec<(String, Counts)>,
    ) -> Result<(), LogError> {
        // Counts come from scrubbing these lines: none without lines.
        let Some(first) = lines.first() else {
            return Ok(());
        };
        let count_day = day_of(first.received_us)?;
        let mut by_day: BTreeMap<Date, Vec<Line>> = BTreeMap::new();
        for line in lines {
            by_day.entry(day_of(line.time_us)?).or_default().push(line);
        }
        by_day.entry(count_day).or_default();
        let mut counts = Some(counts);
        for (date, lines) in by_day {
            let day = self.day(date, true).await?.ok_or(LogError::Time)?;
            let counts = if date == count_day {
                counts.take().unwrap_or_default()
            } else {
                Vec::new()
            };
            let (writer, fts) = (day.write.clone(), day.fts);
            tokio::task::spawn_blocking(move || write_day(&writer, fts, &lines, &counts))
                .await
                .map_err(|_| LogError::Closed)??;
        }
        Ok(())
    }

    /// The days on disk, oldest first.
    pub fn days_on_disk(&self) -> Result<Vec<Date>, LogError> {
        let mut days = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|source| LogError::Io {
            path: self.dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(stem) = name.strip_suffix(".db")
                && let Ok(day) = Date::from_str(stem)
            {
                days.push(day);
            }
        }
        days.sort();
        Ok(days)
    }

    /// Removes the plan's days: close, rename to trash, delete. Returns the days removed.
    pub async fn purge(&self, plan: &PurgePlan) -> Result<Vec<Date>, LogError> {
        let mut removed = Vec::new();
        for date in &plan.remove {
            let day = self.days.lock().await.remove(date);
            if let Some(day) = day {
                day.read.close().await;
                // Waits for a write in progress, then closes: later appends to that day
                // find it closed.
                close_writer(day.write.clone()).await;
            }
            let path = self.path(*date);
            let trash = trash_path(&path);
            match std::fs::rename(&path, &trash) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(LogError::Io { path, source }),
            }
            remove_sidecars(&path)?;
            remove_file(&trash)?;
            removed.push(*date);
        }
        Ok(removed)
    }

    /// Lines matching the query, newest first, at most `limit`.
    pub async fn search(&self, q: &Query) -> Result<Vec<StoredLine>, LogError> {
        let mut out = Vec::new();
        let limit = q.limit.clamp(1, 10_000) as usize;
        let mut days = self.days_on_disk()?;
        days.reverse();
        for date in days {
            if let Some(since) = q.since_us
                && date < day_of(since)?
            {
                continue;
            }
            if let Some(until) = q.until_us
                && date > day_of(until)?
            {
                continue;
            }
            let Some(day) = self.day(date, false).await? else {
                continue;
            };
            let want = limit.saturating_sub(out.len());
            if !day.fts
                && let Some(text) = q.text.as_deref().and_then(TextQuery::parse)
            {
                let mut page = Vec::new();
                scan_chunks(&day, q, &text, |line| {
                    page.push(line);
                    page.len() < want
                })
                .await?;
                page.sort_by_key(|l| std::cmp::Reverse(l.time_us));
                out.extend(page);
                if out.len() >= limit {
                    break;
                }
                continue;
            }
            let (sql, match_text) = search_sql(q);
            let mut query = sqlx::query(&sql);
            if let Some(text) = &match_text {
                query = query.bind(text);
            }
            query = query
                .bind(q.since_us.unwrap_or(i64::MIN))
                .bind(q.until_us.unwrap_or(i64::MAX))
                .bind(q.min_level.map(Level::code).unwrap_or(0));
            if let Some(source) = &q.source {
                query = query.bind(source);
            }
            let rows = query
                .bind(i64::try_from(want).unwrap_or(i64::MAX))
                .fetch_all(&day.read)
                .await?;
            let mut page = rows
                .iter()
                .map(stored_line)
                .collect::<Result<Vec<_>, _>>()?;
            page.sort_by_key(|l| std::cmp::Reverse(l.time_us));
            out.extend(page);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// How many lines match (text, time, level, source; `limit` ignored).
    pub async fn count(&self, q: &Query) -> Result<i64, LogError> {
        let mut total = 0i64;
        for date in self.days_on_disk()? {
            if q.since_us
                .is_some_and(|s| day_of(s).is_ok_and(|d| date < d))
                || q.until_us
                    .is_some_and(|u| day_of(u).is_ok_and(|d| date > d))
            {
                continue;
            }
            let Some(day) = self.day(date, false).await? else {
                continue;
            };
            if !day.fts
                && let Some(text) = q.text.as_deref().and_then(TextQuery::parse)
            {
                let mut n = 0_i64;
                scan_chunks(&day, q, &text, |_| {
                    n += 1;
                    true
                })
                .await?;
                total = total.saturating_add(n);
                continue;
            }
            let (sql, match_text) = search_sql(q);
            let sql = sql
                .replacen(
                    "SELECT l.time_us, l.received_us, l.source, l.level, l.flags, l.message, l.fields FROM",
                    "SELECT COUNT(*) AS n FROM",
                    1,
                )
                .replacen(" ORDER BY lines_fts.rowid DESC LIMIT ?", "", 1)
                .replacen(" ORDER BY l.time_us DESC, l.id DESC LIMIT ?", "", 1);
            let mut query = sqlx::query(&sql);
            if let Some(text) = &match_text {
                query = query.bind(text);
            }
            query = query
                .bind(q.since_us.unwrap_or(i64::MIN))
                .bind(q.until_us.unwrap_or(i64::MAX))
                .bind(q.min_level.map(Level::code).unwrap_or(0));
            if let Some(source) = &q.source {
                query = query.bind(source);
            }
            let n: i64 = query.fetch_one(&day.read).await?.try_get("n")?;
            total = total.saturating_add(n);
        }
        Ok(total)
    }

    /// Sources that sent lines on days from `since_us`'s day on, with their last receive
    /// time (µs).
    pub async fn recent_sources(&self, since_us: i64) -> Result<BTreeMap<String, i64>, LogError> {
        let first = day_of(since_us)?;
        let mut out = BTreeMap::new();
        for date in self.days_on_disk()? {
            if date < first {
                continue;
            }
            let Some(day) = self.day(date, false).await? else {
                continue;
            };
            let rows = sqlx::query("SELECT source, last_us FROM sources")
                .fetch_all(&day.read)
                .await?;
            for row in rows {
                let source: String = row.try_get("source")?;
                let last: i64 = row.try_get("last_us")?;
                let entry = out.entry(source).or_insert(last);
                *entry = (*entry).max(last);
            }
        }
        Ok(out)
    }

    /// Lines per minute and level in `[since_us, until_us)`, optionally of one source:
    /// `(minute start µs, level, count)`.
    pub async fn histogram(
        &self,
        since_us: i64,
        until_us: i64,
        source: Option<&str>,
    ) -> Result<Vec<(i64, Level, i64)>, LogError> {
        let mut out = Vec::new();
        for date in self.days_on_disk()? {
            if date < day_of(since_us)? || date > day_of(until_us)? {
                continue;
            }
            let Some(day) = self.day(date, false).await? else {
                continue;
            };
            let sql = format!(
                "SELECT (time_us / 60000000) * 60000000 AS minute, level, COUNT(*) AS n FROM lines WHERE time_us >= ? AND time_us < ?{} GROUP BY minute, level ORDER BY minute",
                if source.is_some() {
                    " AND source = ?"
                } else {
                    ""
                }
            );
            let mut query = sqlx::query(&sql).bind(since_us).bind(until_us);
            if let Some(source) = source {
                query = query.bind(source);
            }
            for row in query.fetch_all(&day.read).await? {
                out.push((
                    row.try_get::<i64, _>("minute")?,
                    Level::from_code(row.try_get::<i64, _>("level")?),
                    row.try_get::<i64, _>("n")?,
                ));
            }
        }
        Ok(out)
    }

    /// Lines and last line per source for each day on disk (LOG-1).
    pub async fn source_days(&self) -> Result<Vec<SourceDay>, LogError> {
        let mut out = Vec::new();
        for date in self.days_on_disk()? {
            let Some(day) = self.day(date, false).await? else {
                continue;
            };
            let rows = sqlx::query("SELECT source, lines, last_us FROM sources ORDER BY source")
                .fetch_all(&day.read)
                .await?;
            for row in rows {
                out.push(SourceDay {
                    day: date,
                    source: row.try_get("source")?,
                    lines: row.try_get("lines")?,
                    last_us: row.try_get("last_us")?,
                });
            }
        }
        Ok(out)
    }

    /// Scrub findings per source and detector over every day on disk (LOG-2).
    pub async fn scrub_counts(&self) -> Result<BTreeMap<(String, String), i64>, LogError> {
        let mut out = BTreeMap::new();
        for date in self.days_on_disk()? {
            let Some(day) = self.day(date, false).await? else {
                continue;
            };
            let rows = sqlx::query("SELECT source, detector, count FROM scrub_counts")
                .fetch_all(&day.read)
                .await?;
            for row in rows {
                let key = (row.try_get("source")?, row.try_get("detector")?);
                let n: i64 = row.try_get("count")?;
                *out.entry(key).or_insert(0) += n;
            }
        }
        Ok(out)
    }

    /// Closes every day file (WAL folded back).
    pub async fn close(&self) {
        let days = std::mem::take(&mut *self.days.lock().await);
        for (_, day) in days {
            day.read.close().await;
            close_writer(day.write.clone()).await;
        }
    }

    fn path(&self, date: Date) -> PathBuf {
        self.dir.join(format!("{date}.db"))
    }

    /// The open day, opening it; `None` when it does not exist and `create` is false.
    async fn day(&self, date: Date, create: bool) -> Result<Option<Arc<Day>>, LogError> {
        let mut days = self.days.lock().await;
        if let Some(day) = days.get(&date) {
            return Ok(Some(day.clone()));
        }
        let path = self.path(date);
        if !create && !path.exists() {
            return Ok(None);
        }
        let (writer, fts) = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || open_writer(&path))
                .await
                .map_err(|_| LogError::Closed)??
        };
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .read_only(true);
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .idle_timeout(Duration::from_secs(60))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        let day = Arc::new(Day {
            write: Arc::new(std::sync::Mutex::new(Some(writer))),
            read,
            fts,
        });
        days.insert(date, day.clone());
        Ok(Some(day))
    }
}

/// Opens (creating) a day file for writing: WAL, commits not fsynced (checkpoints are),
/// a 10-second wait for another writer (the CLI), the schema. Says whether the file holds
/// the older FTS5 index.
fn open_writer(path: &Path) -> Result<(rusqlite::Connection, bool), LogError> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(LogError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(format!("the day file stays in journal mode {mode}")),
        });
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    for statement in SCHEMA {
        conn.execute(statement, [])?;
    }
    let fts: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'lines_fts')",
        [],
        |row| row.get(0),
    )?;
    if !fts {
        conn.execute(CHUNKS, [])?;
    }
    conn.set_prepared_statement_cache_capacity(32);
    Ok((conn, fts))
}

/// Closes a day's writer (SQLite folds the WAL back when it is the last connection).
async fn close_writer(writer: Arc<std::sync::Mutex<Option<rusqlite::Connection>>>) {
    let _ = tokio::task::spawn_blocking(move || {
        let writer = match writer.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(conn) = writer {
            let _ = conn.close();
        }
    })
    .await;
}

/// Chunks read per query of a chunk scan: bounds the memory of one scan step.
const CHUNKS_PER_PAGE: i64 = 128;

/// Hands `take` the lines of a chunk-indexed day that match `q` and `text`, newest chunk
/// first and, within a chunk, newest id first, until `take` says stop. Only the chunks
/// whose filter may hold every word are read; each of their lines is checked exactly.
/// Chunks are read a page at a time, so no connection stays taken between queries.
async fn scan_chunks(
    day: &Day,
    q: &Query,
    text: &TextQuery,
    mut take: impl FnMut(StoredLine) -> bool,
) -> Result<(), LogError> {
    let since = q.since_us.unwrap_or(i64::MIN);
    let until = q.until_us.unwrap_or(i64::MAX);
    let min_level = q.min_level.map(Level::code).unwrap_or(0);
    let mut lines_sql = String::from(
        // NOT INDEXED: the rowid range of the chunk, never the time index, drives it.
        "SELECT time_us, received_us, source, level, flags, message, fields FROM lines NOT INDEXED WHERE id BETWEEN ? AND ? AND time_us >= ? AND time_us < ? AND level >= ?",
    );
    if q.source.is_some() {
        lines_sql.push_str(" AND source = ?");
    }
    // A word every match holds, looked for by SQLite first: most lines of a chunk whose
    // filter said "maybe" never leave the database. SQLite's `lower` folds only ASCII,
    // and a few non-ASCII letters lower-case to ASCII ones (the Kelvin sign), so a line with
    // any non-ASCII character (more bytes than characters) always goes on to the exact check.
    let probe = text.probe();
    if probe.is_some() {
        lines_sql.push_str(
            " AND (instr(lower(message), ?) > 0 OR instr(lower(fields), ?) > 0 OR length(message) <> octet_length(message) OR length(fields) <> octet_length(fields))",
        );
    }
    lines_sql.push_str(" ORDER BY id DESC");
    let mut before = i64::MAX;
    loop {
        let chunks = sqlx::query(
            "SELECT id, first_id, last_id, filter FROM chunks WHERE id < ? AND max_time_us >= ? AND min_time_us < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(before)
        .bind(since)
        .bind(until)
        .bind(CHUNKS_PER_PAGE)
        .fetch_all(&day.read)
        .await?;
        let Some(last) = chunks.last() else {
            return Ok(());
        };
        before = last.try_get("id")?;
        for chunk in &chunks {
            if !text.may_match(chunk.try_get::<&[u8], _>("filter")?) {
                continue;
            }
            let mut query = sqlx::query(&lines_sql)
                .bind(chunk.try_get::<i64, _>("first_id")?)
                .bind(chunk.try_get::<i64, _>("last_id")?)
                .bind(since)
                .bind(until)
                .bind(min_level);
            if let Some(source) = &q.source {
                query = query.bind(source);
            }
            if let Some(probe) = &probe {
                query = query.bind(probe).bind(probe);
            }
            for row in query.fetch_all(&day.read).await? {
                let message: &str = row.try_get("message")?;
                let fields: Option<&str> = row.try_get("fields")?;
                if text.matches(message, fields) && !take(stored_line(&row)?) {
                    return Ok(());
                }
            }
        }
    }
}

/// One day's share of a batch, in one transaction: the lines, their word index (a filter
/// per chunk, built before taking the lock; or FTS5 rows in an older file), the per-source
/// counters and, on the day that counts them, the scrub counts.
fn write_day(
    writer: &std::sync::Mutex<Option<rusqlite::Connection>>,
    fts: bool,
    lines: &[Line],
    counts: &[(String, Counts)],
) -> Result<(), LogError> {
    let filters: Vec<Vec<u8>> =
        if fts {
            Vec::new()
        } else {
            lines
                .chunks(CHUNK_LINES)
                .map(|chunk| {
                    index::filter(chunk.iter().flat_map(|l| {
                        std::iter::once(l.message.as_str()).chain(l.fields.as_deref())
                    }))
                })
                .collect()
        };
    let mut guard = writer.lock().map_err(|_| LogError::Closed)?;
    let conn = guard.as_mut().ok_or(LogError::Closed)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for (chunk, filter) in lines.chunks(CHUNK_LINES).zip(&filters) {
        let (first_id, last_id) = insert_lines(&tx, chunk)?;
        let (min_time, max_time) = chunk.iter().fold((i64::MAX, i64::MIN), |(lo, hi), l| {
            (lo.min(l.time_us), hi.max(l.time_us))
        });
        tx.prepare_cached(
            "INSERT INTO chunks (first_id, last_id, min_time_us, max_time_us, filter) VALUES (?, ?, ?, ?, ?)",
        )?
        .execute(rusqlite::params![first_id, last_id, min_time, max_time, filter])?;
    }
    // A file from before the chunk index: one FTS5 row per line.
    for chunk in lines.chunks(ROWS_PER_INSERT).filter(|_| fts) {
        let (first, _) = insert_lines(&tx, chunk)?;
        let mut index = tx.prepare_cached(&rows_sql(
            "INSERT INTO lines_fts (rowid, message, fields) VALUES ",
            "(?,?,?)",
            chunk.len(),
        ))?;
        let mut at = 0;
        for (id, line) in (first..).zip(chunk) {
            index.raw_bind_parameter(at + 1, id)?;
            index.raw_bind_parameter(at + 2, &line.message)?;
            index.raw_bind_parameter(at + 3, &line.fields)?;
            at += 3;
        }
        index.raw_execute()?;
    }
    let mut per_source: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for line in lines {
        let entry = per_source.entry(&line.source).or_insert((0, 0));
        entry.0 += 1;
        entry.1 = entry.1.max(line.received_us);
    }
    for (source, (n, last)) in per_source {
        tx.prepare_cached(
            "INSERT INTO sources (source, lines, last_us) VALUES (?, ?, ?) ON CONFLICT (source) DO UPDATE SET lines = lines + excluded.lines, last_us = MAX(last_us, excluded.last_us)",
        )?
        .execute(rusqlite::params![source, n, last])?;
    }
    for (source, counts) in counts {
        for (detector, n) in counts.iter() {
            tx.prepare_cached(
                "INSERT INTO scrub_counts (source, detector, count) VALUES (?, ?, ?) ON CONFLICT (source, detector) DO UPDATE SET count = count + excluded.count",
            )?
            .execute(rusqlite::params![
                source,
                detector.name(),
                i64::try_from(n).unwrap_or(i64::MAX)
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// `head` followed by `rows` copies of `row`, comma-separated.
fn rows_sql(head: &str, row: &str, rows: usize) -> String {
    let mut sql = String::with_capacity(head.len() + rows * (row.len() + 1));
    sql.push_str(head);
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(row);
    }
    sql
}

/// Inserts lines in statements of [`ROWS_PER_INSERT`] rows; returns the first and last id.
/// Inside the day's write transaction the ids are consecutive.
fn insert_lines(tx: &rusqlite::Transaction<'_>, lines: &[Line]) -> Result<(i64, i64), LogError> {
    let mut ids = (0, 0);
    for (n, part) in lines.chunks(ROWS_PER_INSERT).enumerate() {
        let mut insert = tx.prepare_cached(&rows_sql(
            "INSERT INTO lines (time_us, received_us, source, level, flags, message, fields) VALUES ",
            "(?,?,?,?,?,?,?)",
            part.len(),
        ))?;
        let mut at = 0;
        for line in part {
            insert.raw_bind_parameter(at + 1, line.time_us)?;
            insert.raw_bind_parameter(at + 2, line.received_us)?;
            insert.raw_bind_parameter(at + 3, &line.source)?;
            insert.raw_bind_parameter(at + 4, line.level.code())?;
            insert.raw_bind_parameter(at + 5, line.flags)?;
            insert.raw_bind_parameter(at + 6, &line.message)?;
            insert.raw_bind_parameter(at + 7, &line.fields)?;
            at += 7;
        }
        insert.raw_execute()?;
        // One statement in a write transaction: its rows get consecutive rowids ending at
        // the last one (another process's writes wait for our commit).
        let last = tx.last_insert_rowid();
        let first = last - i64::try_from(part.len()).unwrap_or(0) + 1;
        if n == 0 {
            ids.0 = first;
        }
        ids.1 = last;
    }
    Ok(ids)
}

/// The SQL of a search on one day and the FTS match text, if any. Binds, in order:
/// [match], since, until, min level, [source], limit.
///
/// With words, the full-text index drives the query newest row first (`CROSS JOIN` keeps
/// SQLite from starting at the time index, and FTS5 walks rowids backwards natively), so a
/// common word stops after `limit` rows and a rare one reads only its own postings. Rowids
/// follow arrival order, which is close to time order within a day; each day's page is
/// re-sorted by time afterwards.
fn search_sql(q: &Query) -> (String, Option<String>) {
    let match_text = q.text.as_deref().and_then(fts_match);
    let mut sql = String::from(
        "SELECT l.time_us, l.received_us, l.source, l.level, l.flags, l.message, l.fields FROM ",
    );
    if match_text.is_some() {
        sql.push_str(
            "lines_fts CROSS JOIN lines l ON l.id = lines_fts.rowid WHERE lines_fts MATCH ? AND ",
        );
    } else {
        sql.push_str("lines l WHERE ");
    }
    sql.push_str("l.time_us >= ? AND l.time_us < ? AND l.level >= ?");
    if q.source.is_some() {
        sql.push_str(" AND l.source = ?");
    }
    if match_text.is_some() {
        sql.push_str(" ORDER BY lines_fts.rowid DESC LIMIT ?");
    } else {
        sql.push_str(" ORDER BY l.time_us DESC, l.id DESC LIMIT ?");
    }
    (sql, match_text)
}

/// Turns typed words into an FTS5 query in which every word must appear, each quoted so no
/// typed character is FTS syntax. `None` when there is no word.
pub fn fts_match(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split_whitespace()
        .take(16)
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    if terms.is_empty() {
        None
    } else {
        Some(terms.join(" "))
    }
}

fn stored_line(row: &sqlx::sqlite::SqliteRow) -> Result<StoredLine, LogError> {
    Ok(StoredLine {
        time_us: row.try_get("time_us")?,
        received_us: row.try_get("received_us")?,
        source: row.try_get("source")?,
        level: Level::from_code(row.try_get("level")?),
        flags: row.try_get("flags")?,
        message: row.try_get("message")?,
        fields: row.try_get("fields")?,
    })
}

fn trash_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".trash");
    PathBuf::from(name)
}

fn remove_sidecars(path: &Path) -> Result<(), LogError> {
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        remove_file(Path::new(&name))?;
    }
    Ok(())
}

fn remove_file(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LogError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Deletes trash files and the WAL/SHM of day files that no longer exist.
fn finish_interrupted_purges(dir: &Path) -> Result<(), LogError> {
    let entries = std::fs::read_dir(dir).map_err(|source| LogError::Io {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".db.trash") {
            remove_file(&path)?;
            continue;
        }
        for suffix in ["-wal", "-shm"] {
            if let Some(main) = name.strip_suffix(suffix)
                && main.ends_with(".db")
                && !dir.join(main).exists()
            {
                remove_file(&path)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

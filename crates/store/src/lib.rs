//! Persistence for rampart on SQLite (the embedded default) or PostgreSQL (for several
//! nodes), through sqlx's `Any` driver so that each query is written once.
//!
//! Every change that must be audited is made in the same transaction as its audit
//! record ([`Store::audited`] and the `*_audited` methods): if the record cannot be
//! written, the change does not happen (fail closed). Writes are serialized: one writer at
//! a time in this process (a mutex, which also keeps SQLite from returning `SQLITE_BUSY`
//! on lock upgrades), and one per cluster on PostgreSQL (a transaction-scoped advisory
//! lock), so the audit chain never forks.
//!
//! Writes use one dedicated connection. A write whose future is dropped half way (a client
//! hung up, a task was aborted) leaves its transaction open; the writer notices and rolls it
//! back at once (or, at the latest, before the next write), so a cancelled request can never
//! leave the database locked.
//!
//! Times are stored as integer microseconds (or seconds, where named `_s`) since the
//! epoch, which both engines store exactly.

mod access_requests;
mod accounts;
mod anomalies;
mod apps;
mod audit;
mod backups;
mod db_gateway;
mod direct;
mod log_tokens;
mod migrate;
mod policy;
pub mod reviews;
mod rollup;
mod sessions;
mod ssh;
mod webauthn;

pub use access_requests::{AccessRequest, Approval, DecisionError, RequestStatus};
pub use accounts::{Account, NewAccount};
pub use apps::{AppHandoff, AppRequestCount, AppToken, Redeemed};
pub use audit::AuditQuery;
pub use backups::BackupRow;
pub use db_gateway::{DbCredential, DbToken, NewDbToken};
pub use log_tokens::LogToken;
pub use sessions::SessionRow;
pub use ssh::{SshKey, SshSession};
pub use webauthn::{Ceremony, TakenChallenge, WebauthnKey};

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use rampart_audit::{AuditEvent, AuditRecord, Chain};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Executor};

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite file in the data directory.
    Sqlite,
    /// A PostgreSQL server shared by the nodes of a cluster.
    Postgres,
}

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The URL names an engine rampart does not support.
    #[error("store.url must start with sqlite:// or postgres://, got {0:?}")]
    UnsupportedUrl(String),
    /// A unique value (user name, email, name) is already taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// The row asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A stored value does not parse: the database was edited by hand or is corrupt.
    #[error("a stored value is invalid: {0}")]
    Corrupt(String),
    /// A group of audit records could not be committed (the first error, as text: the
    /// same failure is reported to every waiter of the group).
    #[error("the audit log could not be written: {0}")]
    AuditWrite(String),
    /// A worker task of the store panicked or was cancelled.
    #[error("a store task failed: {0}")]
    Task(String),
}

/// The shared handle to the database.
#[derive(Debug)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
    writer: Arc<tokio::sync::Mutex<Writer>>,
    group: mpsc::Sender<Pending>,
    /// Callers whose audit records are on their way (see [`Executing`]).
    executing: Arc<AtomicUsize>,
    /// The runtime the group committer runs on.
    committer: tokio::runtime::Handle,
    /// Dropped with the store: ends the background checkpointer.
    _checkpointer: Option<oneshot::Sender<()>>,
}

/// The connection all write transactions use, and whether one was left open.
#[derive(Debug)]
struct Writer {
    conn: Option<AnyConnection>,
    options: AnyConnectOptions,
    engine: Engine,
    /// A transaction was begun and neither committed nor rolled back.
    open: bool,
    /// The audit head as of the last commit made here, when it is known. Another process
    /// may have appended since: an insert built on it then collides on `seq` and fails
    /// whole, and the caller falls back to reading the head inside a transaction.
    head: Option<Chain>,
    /// SQLite: the database file, for the audit append's direct path (none in memory).
    file: Option<std::path::PathBuf>,
    /// The direct path's connection, opened at the first append that can use it.
    direct: Option<direct::Direct>,
    /// Groups committed by the direct path.
    direct_commits: u64,
}

impl Writer {
    /// The direct path's connection, opened when missing (SQLite files only).
    fn direct(&mut self) -> Option<&mut direct::Direct> {
        if self.direct.is_none() {
            let file = self.file.as_ref()?;
            match direct::Direct::open(file) {
                Ok(d) => self.direct = Some(d),
                Err(e) => {
                    tracing::debug!(error = %e, "the audit direct path is not available");
                    return None;
                }
            }
        }
        self.direct.as_mut()
    }

    /// The connection, (re)connected when missing, with any abandoned transaction rolled back.
    async fn ready(&mut self) -> Result<&mut AnyConnection, StoreError> {
        if self.conn.is_none() {
            let mut conn = self.options.connect().await?;
            if self.engine == Engine::Sqlite {
                prepare_sqlite(&mut conn).await?;
                // Commits only append to the WAL; the checkpointer copies it back into the
                // database in the background, so no commit waits for a checkpoint's writes
                // and fsync.
                conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
            }
            self.conn = Some(conn);
            self.open = false;
        }
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| StoreError::Task("no writer connection".into()))?;
        if self.open {
            // "no transaction is active" is fine: the rollback only clears what was left.
            let _ = conn.execute("ROLLBACK").await;
            self.open = false;
        }
        Ok(conn)
    }
}

/// How long a SQLite statement waits for another connection's lock.
const BUSY_TIMEOUT_MS: u32 = 10_000;

async fn prepare_sqlite(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    conn.execute(format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}").as_str())
        .await?;
    conn.execute("PRAGMA synchronous = NORMAL").await?;
    conn.execute(format!("PRAGMA journal_size_limit = {WAL_KEEP_BYTES}").as_str())
        .await?;
    conn.execute("PRAGMA foreign_keys = ON").await?;
    Ok(())
}

/// Records waiting for the group committer, and where to send them once sealed (or, when
/// the commit failed, back with the error).
type Pending = (Vec<AuditRecord>, oneshot::Sender<Appended>);

/// What [`Store::append_records`] gives back: the sealed records, or why they were not
/// committed and the records themselves.
pub type Appended = Result<Vec<AuditRecord>, (StoreError, Vec<AuditRecord>)>;

/// Most events committed in one group transaction.
const GROUP_MAX: usize = 2048;

/// Lock id of rampart's writer in PostgreSQL (`pg_advisory_xact_lock`): "rmpt".
const WRITER_LOCK: i64 = 0x726d_7074;

impl Store {
    /// Connects and brings the schema up to date. `url` is `sqlite://PATH` or
    /// `postgres://…`. The audit group committer runs on the calling runtime.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with_committer(url, &tokio::runtime::Handle::current()).await
    }

    /// As [`Store::open`], with the audit group committer on `committer`'s runtime. Tasks
    /// that wait for their records' commit and run on that runtime too (`serve` puts the
    /// PostgreSQL gateway there) are answered without waking another thread.
    pub async fn open_with_committer(
        url: &str,
        committer: &tokio::runtime::Handle,
    ) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Engine::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if engine == Engine::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if engine == Engine::Sqlite {
                        prepare_sqlite(conn).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await?;
        if engine == Engine::Sqlite {
            // WAL persists in the file: readers never block the writer.
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        let file = match engine {
            Engine::Sqlite => sqlite_file(&pool).await?,
            Engine::Postgres => None,
        };
        let writer = Arc::new(tokio::sync::Mutex::new(Writer {
            conn: None,
            options,
            engine,
            open: false,
            head: None,
            file,
            direct: None,
            direct_commits: 0,
        }));
        let (group, queue) = mpsc::channel(4096);
        let executing = Arc::new(AtomicUsize::new(0));
        committer.spawn(group_commit(
            engine,
            writer.clone(),
            queue,
            executing.clone(),
        ));
        let checkpointer = (engine == Engine::Sqlite).then(|| {
            let (stop, stopped) = oneshot::channel();
            tokio::spawn(checkpoint_loop(pool.clone(), stopped));
            stop
        });
        let store = Self {
            pool,
            engine,
            writer,
            group,
            executing,
            committer: committer.clone(),
            _checkpointer: checkpointer,
        };
        migrate::run(&store).await?;
        Ok(store)
    }

    /// The runtime the audit group committer runs on: a task that feeds it steadily (a
    /// batching writer) is best spawned there, so that its commits wake no other thread.
    pub fn committer_runtime(&self) -> &tokio::runtime::Handle {
        &self.committer
    }

    /// The engine in use.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The pool, for read queries of other crates' store code.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Copies the SQLite WAL into the database now (the background checkpointer does it
    /// every second); returns the WAL's frames and how many of them are in the database.
    /// From 64 MiB of WAL on, it also empties the WAL file. PostgreSQL: nothing to do.
    pub async fn checkpoint_wal(&self) -> Result<(i64, i64), StoreError> {
        match self.engine {
            Engine::Sqlite => checkpoint(&self.pool, WAL_RESTART_FRAMES).await,
            Engine::Postgres => Ok((0, 0)),
        }
    }

    /// How many audit groups were committed by the SQLite direct path (see `direct.rs`).
    pub async fn direct_audit_commits(&self) -> u64 {
        self.writer.lock().await.direct_commits
    }

    /// Closes every connection (on shutdown, after the last write).
    pub async fn close(&self) {
        let mut writer = self.writer.lock().await;
        writer.direct = None;
        if let Some(conn) = writer.conn.take() {
            // Closing the last connection lets SQLite checkpoint and remove its WAL file.
            let _ = sqlx::Connection::close(conn).await;
        }
        self.pool.close().await;
    }

    /// Appends events to the audit chain and returns their records once they are
    /// committed. Concurrent callers are grouped into one transaction (group commit), so
    /// many small appends cost about as much as one large one. The records' text is made
    /// here, on the caller's task; the committer only seals and inserts.
    pub async fn append_audit(
        &self,
        events: &[AuditEvent],
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let records = events.iter().map(AuditRecord::unsealed).collect();
        self.append_records(records).await.map_err(|(e, _)| e)
    }

    /// Appends records made unsealed beforehand (as [`AuditRecord::unsealed`] makes them),
    /// like [`Store::append_audit`]. When they were not committed, they come back with the
    /// error, for the caller to try again without making them anew.
    pub async fn append_records(&self, records: Vec<AuditRecord>) -> Appended {
        let stopped = || StoreError::AuditWrite("the audit writer has stopped".into());
        let (done, wait) = oneshot::channel();
        if let Err(mpsc::error::SendError((records, _))) = self.group.send((records, done)).await {
            return Err((stopped(), records));
        }
        // The committer answers every group it took; without an answer it has stopped
        // and the records are gone with it.
        wait.await.unwrap_or_else(|_| Err((stopped(), Vec::new())))
    }

    /// A hint for the group committer, held by one caller (a database session): while it
    /// is [`Executing::begin`]-ed, an audit record from that caller is on its way.
    pub fn executing(&self) -> Executing {
        Executing {
            counter: self.executing.clone(),
            held: AtomicBool::new(false),
        }
    }

    /// Starts a serialized write transaction. Audit records appended through it are
    /// committed together with the change, or not at all.
    pub async fn write(&self) -> Result<Write, StoreError> {
        begin(self.engine, &self.writer).await
    }

    /// Connects the writer now when it is not connected, so that the next write does not
    /// wait for it: a backup does this while its dump runs. A failure is left for that
    /// write to meet and report.
    pub async fn prepare_writer(&self) {
        if let Err(e) = self.writer.lock().await.ready().await {
            tracing::debug!(error = %e, "the writer did not connect ahead of its first write");
        }
    }
}

async fn begin(
    engine: Engine,
    writer: &Arc<tokio::sync::Mutex<Writer>>,
) -> Result<Write, StoreError> {
    let mut guard = writer.clone().lock_owned().await;
    guard.ready().await?;
    // Whatever this transaction does to the audit log, the cached head is only known
    // again once it commits.
    guard.head = None;
    // IMMEDIATE takes SQLite's write lock at BEGIN, waiting (busy_timeout) for another
    // process's writer, instead of failing at the first write after a read.
    let begin = match engine {
        Engine::Sqlite => "BEGIN IMMEDIATE",
        Engine::Postgres => "BEGIN",
    };
    // Marked open, and owned by a `Write`, before BEGIN is sent: if this future is dropped
    // from here on, `Write`'s drop rolls back whatever the server began.
    guard.open = true;
    let mut w = Write {
        guard: Some(guard),
        head: None,
    };
    if let Err(e) = w.conn()?.execute(begin).await {
        if let Some(g) = w.guard.as_mut() {
            // A broken connection is replaced before the next write.
            g.conn = None;
            g.open = false;
        }
        return Err(e.into());
    }
    if engine == Engine::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITER_LOCK)
            .execute(w.conn()?)
            .await?;
    }
    Ok(w)
}

/// Runs `f`, which blocks, on this thread: through `block_in_place` on a multi-thread
/// runtime, directly elsewhere (a current-thread runtime has no other worker to move to).
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The file of SQLite's main database, or none when it lives in memory.
async fn sqlite_file(pool: &AnyPool) -> Result<Option<std::path::PathBuf>, StoreError> {
    use sqlx::Row;
    let row = sqlx::query("SELECT file FROM pragma_database_list WHERE name = 'main'")
        .fetch_optional(pool)
        .await?;
    let file: Option<String> = row.map(|r| r.try_get(0)).transpose()?;
    Ok(file.filter(|f| !f.is_empty()).map(std::path::PathBuf::from))
}

/// How often the background checkpointer copies the WAL into the SQLite database.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Copies committed WAL pages into the database file every [`CHECKPOINT_EVERY`], beside
/// the writer (a passive checkpoint never blocks it), until the store is dropped.
async fn checkpoint_loop(pool: AnyPool, mut stop: oneshot::Receiver<()>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        if pool.is_closed() {
            return;
        }
        if let Err(e) = checkpoint(&pool, WAL_RESTART_FRAMES).await {
            // The store closed while the checkpoint ran (shutdown): nothing is wrong.
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "WAL checkpoint failed; it is tried again in a second");
        }
    }
}

/// WAL frames (pages of 4 KiB) from which a checkpoint also starts the WAL over: 64 MiB.
const WAL_RESTART_FRAMES: i64 = 16_384;

/// The WAL file is cut back to this size when it starts over (`journal_size_limit`): the
/// size it restarts at, so its blocks are written over rather than freed and allocated
/// again.
pub(crate) const WAL_KEEP_BYTES: i64 = WAL_RESTART_FRAMES * 4096;

/// Longest a restarting checkpoint waits for the writer and for readers. Appends wait
/// meanwhile (the direct path falls back to the waiting one), so it is kept short.
const WAL_RESTART_WAIT_MS: u32 = 100;

/// One passive checkpoint: returns the WAL's frames and how many are now in the database.
///
/// SQLite starts the WAL over only when a writer finds every frame copied back. Under
/// appends that never pause (a busy database gateway appends thousands of records a
/// second), a passive checkpoint never catches up with the WAL's end, and the file grows
/// without bound: 900 MB in 8 seconds of `bench/pg.sh`. So from `restart_after` frames
/// on, a `RESTART` checkpoint follows: it copies the few frames appended since, and the
/// next commit writes from the start of the file again. The file keeps its size (at most
/// [`WAL_KEEP_BYTES`] once it restarts): emptying it (`TRUNCATE`) freed its page cache
/// and blocks each time, and the appends that followed paid to allocate them again. When
/// the writer or a reader holds it up longer than [`WAL_RESTART_WAIT_MS`], it gives up and
/// the next round tries again.
async fn checkpoint(pool: &AnyPool, restart_after: i64) -> Result<(i64, i64), StoreError> {
    use sqlx::Row;
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await?;
    let passive: (i64, i64) = (row.try_get(1)?, row.try_get(2)?);
    if passive.0 < restart_after {
        return Ok(passive);
    }
    let mut conn = pool.acquire().await?;
    conn.execute(format!("PRAGMA busy_timeout = {WAL_RESTART_WAIT_MS}").as_str())
        .await?;
    let restarted = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
        .fetch_one(&mut *conn)
        .await;
    if conn
        .execute(format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}").as_str())
        .await
        .is_err()
    {
        // Not back in the pool with the short wait.
        conn.close_on_drop();
    }
    let row = restarted?;
    let busy: i64 = row.try_get(0)?;
    if busy != 0 {
        tracing::debug!(
            frames = passive.0,
            "the WAL could not be started over (a reader or the writer held it); trying again later"
        );
        return Ok(passive);
    }
    Ok((row.try_get(1)?, row.try_get(2)?))
}

/// One caller's part in [`Store::executing`]: counted while begun, uncounted when ended
/// or dropped. Beginning or ending twice counts once.
#[derive(Debug)]
pub struct Executing {
    counter: Arc<AtomicUsize>,
    held: AtomicBool,
}

impl Executing {
    /// An audit record of this caller will follow (a statement went to the server).
    pub fn begin(&self) {
        if !self.held.swap(true, Ordering::AcqRel) {
            self.counter.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Nothing of this caller is on its way any more.
    pub fn end(&self) {
        if self.held.swap(false, Ordering::AcqRel) {
            self.counter.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Executing {
    fn drop(&mut self) {
        self.end();
    }
}

/// How many times a commit lets the runtime run other tasks first, while records are on
/// their way. `bench/pg.sh` (16 sessions, `pgbench -S`): without it a commit held about
/// 1.5 statements, and rampart spent 47–55 µs of CPU per transaction; with two rounds a
/// commit holds about 3.5 and rampart spends 33–40 µs. More rounds gathered no more.
const GATHER_ROUNDS: usize = 2;

/// The group committer: takes whatever is queued (up to [`GROUP_MAX`] events), commits it
/// in one transaction, and answers every waiter. Ends when the store is dropped.
///
/// While some caller has a record on its way ([`Executing`]), it first yields to the
/// runtime (at most [`GATHER_ROUNDS`] times): a yielding task resumes after the runtime
/// polled for I/O and ran the tasks that woke, so sessions whose results just arrived
/// join this commit instead of each making its own. Nothing waits on a timer, and a
/// lone session, whose own hint ended before it appended, never yields.
async fn group_commit(
    engine: Engine,
    writer: Arc<tokio::sync::Mutex<Writer>>,
    mut queue: mpsc::Receiver<Pending>,
    executing: Arc<AtomicUsize>,
) {
    while let Some(first) = queue.recv().await {
        let mut group = vec![first];
        let mut count = group.iter().map(|(e, _)| e.len()).sum::<usize>();
        let mut rounds = 0;
        loop {
            while count < GROUP_MAX {
                match queue.try_recv() {
                    Ok(next) => {
                        count += next.0.len();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            if rounds == GATHER_ROUNDS
                || count >= GROUP_MAX
                || executing.load(Ordering::Acquire) == 0
            {
                break;
            }
            rounds += 1;
            tokio::task::yield_now().await;
        }
        let mut sizes = Vec::with_capacity(group.len());
        let mut waiters = Vec::with_capacity(group.len());
        let mut records = Vec::with_capacity(count);
        for (mine, done) in group {
            sizes.push(mine.len());
            waiters.push(done);
            records.extend(mine);
        }
        match commit_group(engine, &writer, &mut records).await {
            Ok(()) => {
                let mut rest = records.into_iter();
                for (n, done) in sizes.into_iter().zip(waiters) {
                    let _ = done.send(Ok(rest.by_ref().take(n).collect()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "audit group commit failed");
                let text = e.to_string();
                let mut rest = records.into_iter();
                for (n, done) in sizes.into_iter().zip(waiters) {
                    let mine = rest.by_ref().take(n).collect();
                    let _ = done.send(Err((StoreError::AuditWrite(text.clone()), mine)));
                }
            }
        }
    }
}

/// Seals and commits one group of records. On SQLite, when the head is known from the
/// previous commit, the direct path inserts the group (one `INSERT`, or one transaction of
/// them when larger); without it, a group that fits one statement is that single
/// `INSERT` through sqlx (autocommit: one round trip instead of four). If it fails for any reason
/// (typically another process appended, so `seq` collides), nothing was written and the
/// group goes the general way: `BEGIN IMMEDIATE`, read the head, seal again, insert,
/// commit.
async fn commit_group(
    engine: Engine,
    writer: &Arc<tokio::sync::Mutex<Writer>>,
    records: &mut [AuditRecord],
) -> Result<(), StoreError> {
    if engine == Engine::Sqlite {
        let mut guard = writer.lock().await;
        if let Some(mut head) = guard.head.take() {
            let now = now_us();
            for r in records.iter_mut() {
                head.seal_record(r, now);
            }
            let inserted = match guard.direct() {
                // A small group takes tens of microseconds: run inline. A large one (a
                // backlog) may take milliseconds: tell the runtime, which moves this
                // worker's other tasks elsewhere meanwhile.
                Some(direct) if records.len() <= audit::ROWS_PER_INSERT => {
                    Some(direct.insert(records))
                }
                Some(direct) => Some(blocking(|| direct.insert(records))),
                None if records.len() <= audit::ROWS_PER_INSERT => {
                    Some(match guard.ready().await {
                        Ok(conn) => audit::insert(conn, records).await,
                        Err(e) => Err(e),
                    })
                }
                None => None,
            };
            match inserted {
                Some(Ok(())) => {
                    guard.head = Some(head);
                    if guard.direct.is_some() {
                        guard.direct_commits += 1;
                    }
                    return Ok(());
                }
                Some(Err(e)) => tracing::debug!(error = %e, "audit fast append fell back"),
                None => {}
            }
        }
    }
    let mut w = begin(engine, writer).await?;
    w.seal_and_insert(records).await?;
    w.commit().await
}

/// A write transaction holding the writer lock. Dropped without [`Write::commit`], it is
/// rolled back.
#[derive(Debug)]
pub struct Write {
    guard: Option<tokio::sync::OwnedMutexGuard<Writer>>,
    head: Option<Chain>,
}

impl Write {
    /// A value of the `meta` table, read in this transaction.
    pub async fn meta(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(self.conn()?)
            .await?;
        Ok(row.map(|r| sqlx::Row::try_get(&r, "value")).transpose()?)
    }

    /// Sets (`Some`) or removes (`None`) a value of the `meta` table in this transaction.
    pub async fn put_meta(&mut self, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM meta WHERE key = $1")
            .bind(key)
            .execute(self.conn()?)
            .await?;
        if let Some(value) = value {
            sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2)")
                .bind(key)
                .bind(value)
                .execute(self.conn()?)
                .await?;
        }
        Ok(())
    }

    /// Seals and inserts audit events as part of this transaction.
    pub async fn audit(&mut self, events: &[AuditEvent]) -> Result<Vec<AuditRecord>, StoreError> {
        let mut records: Vec<AuditRecord> = events.iter().map(AuditRecord::unsealed).collect();
        self.seal_and_insert(&mut records).await?;
        Ok(records)
    }

    /// Seals unsealed records after the chain's head and inserts them.
    async fn seal_and_insert(&mut self, records: &mut [AuditRecord]) -> Result<(), StoreError> {
        let mut head = match self.head {
            Some(head) => head,
            None => audit::head(self.conn()?).await?,
        };
        let now = now_us();
        for r in records.iter_mut() {
            head.seal_record(r, now);
        }
        for chunk in records.chunks(audit::ROWS_PER_INSERT) {
            audit::insert(self.conn()?, chunk).await?;
        }
        self.head = Some(head);
        Ok(())
    }

    /// The connection the transaction runs on, for the change itself.
    pub fn conn(&mut self) -> Result<&mut AnyConnection, StoreError> {
        self.guard
            .as_mut()
            .and_then(|g| g.conn.as_mut())
            .ok_or_else(|| StoreError::Task("the write transaction has ended".into()))
    }

    /// Commits the change and its audit records.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        let mut guard = self
            .guard
            .take()
            .ok_or_else(|| StoreError::Task("the write transaction has ended".into()))?;
        let done = match guard.conn.as_mut() {
            Some(conn) => conn.execute("COMMIT").await,
            None => return Err(StoreError::Task("no writer connection".into())),
        };
        // Committed: nothing is open, and the head this transaction sealed up to (if it
        // appended) is the head. Failed: `ready` rolls back before the next write.
        if done.is_ok() {
            guard.open = false;
            guard.head = self.head;
        }
        done?;
        Ok(())
    }
}

impl Drop for Write {
    fn drop(&mut self) {
        // Not committed (an error, or the future was dropped): roll back now rather than
        // at the next write, so no lock outlives the request that took it.
        if let Some(mut guard) = self.guard.take()
            && guard.open
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = guard.ready().await;
            });
        }
    }
}

/// Microseconds since the epoch, now.
pub fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`].
fn conflict(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
    let what = what.into();
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Database(e),
    }
}

#[cfg(test)]
mod tests;

/// The `[store]` section of `rampart.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://…` for a cluster of nodes; absent: SQLite in the data directory.
    pub url: Option<String>,
}

//! Sources: what produces the bytes of a backup.
//!
//! - PostgreSQL: a `REPEATABLE READ` transaction exports its snapshot
//!   (`pg_export_snapshot()`) and stays open while `pg_dump -Fc -Z0 --snapshot=…` dumps
//!   exactly that snapshot. The rows of each table are counted off the dump stream
//!   ([`crate::pgarchive`]); a table it does not show is counted in the transaction. The
//!   counts are what a restore drill compares against later. The password goes to `pg_dump` through
//!   `PGPASSWORD`, never on its command line.
//! - SQLite: `VACUUM INTO` a private temporary file (a consistent copy while rampart keeps
//!   writing), streamed and then removed.
//! - Command: any program's stdout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use sqlx::Connection;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::BackupError;
use crate::config::{SourceConfig, SourceKind};
use crate::pgarchive::ArchiveCounter;

/// Most stderr kept from a failing program.
const STDERR_MAX: usize = 16 * 1024;

/// The capacity asked for a program's stdout pipe: Linux's limit for an unprivileged
/// process (`/proc/sys/fs/pipe-max-size`), 16 times the default. The program then goes on
/// writing while the compressing thread hands a chunk to zstd.
const PIPE_SIZE: usize = 1 << 20;

/// A dump in progress.
pub struct Dump {
    /// The bytes: a blocking reader (a pipe, see [`enlarged`], or a file), read on the
    /// compressing thread so that no async wake-up sits between the program's writes and
    /// zstd.
    pub reader: Box<dyn std::io::Read + Send>,
    child: Option<Child>,
    stderr: Option<JoinHandle<String>>,
    counts: Option<JoinHandle<Result<BTreeMap<String, i64>, BackupError>>>,
    release: Option<tokio::sync::oneshot::Sender<()>>,
    _temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Dump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dump").finish_non_exhaustive()
    }
}

/// The file extension of a source kind's dump.
pub fn extension(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Postgres => "pgdump",
        SourceKind::Sqlite => "sqlite",
        SourceKind::Command => "out",
    }
}

/// Starts dumping `source`.
pub async fn start(source: &SourceConfig) -> Result<Dump, BackupError> {
    match source.kind {
        SourceKind::Postgres => start_postgres(source).await,
        SourceKind::Sqlite => start_sqlite(source).await,
        SourceKind::Command => {
            let (program, args) = source
                .command
                .split_first()
                .ok_or_else(|| BackupError::Source("the command is empty".into()))?;
            let mut cmd = Command::new(program);
            cmd.args(args);
            spawn(cmd, None, None)
        }
    }
}

impl Dump {
    /// Waits for the source to end. Returns the row counts (PostgreSQL) or the failure,
    /// with the program's stderr (the caller scrubs it before it is stored).
    pub async fn finish(mut self) -> Result<BTreeMap<String, i64>, BackupError> {
        let status = match self.child.as_mut() {
            Some(child) => Some(
                child
                    .wait()
                    .await
                    .map_err(|e| BackupError::Source(format!("waiting for the dump: {e}")))?,
            ),
            None => None,
        };
        let stderr = match self.stderr.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        };
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
        let counts = match self.counts.take() {
            Some(task) => task
                .await
                .map_err(|e| BackupError::Internal(e.to_string()))??,
            None => BTreeMap::new(),
        };
        if let Some(status) = status
            && !status.success()
        {
            let stderr = stderr.trim();
            return Err(BackupError::Source(if stderr.is_empty() {
                format!("the dump program failed ({status})")
            } else {
                format!("the dump program failed ({status}): {stderr}")
            }));
        }
        Ok(counts)
    }

    /// Stops the source (a failed upload): kills the program.
    pub async fn kill(mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill().await;
        }
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
    }
}

fn spawn(
    mut cmd: Command,
    counts: Option<JoinHandle<Result<BTreeMap<String, i64>, BackupError>>>,
    release: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<Dump, BackupError> {
    // A plain pipe, read with blocking reads by the pipeline's compressing thread.
    let (stdout, pipe_writer) =
        std::io::pipe().map_err(|e| BackupError::Source(format!("cannot make a pipe: {e}")))?;
    let stdout = enlarged(stdout);
    cmd.stdin(Stdio::null())
        .stdout(pipe_writer)
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let spawned = cmd.spawn();
    // The command holds our copy of the pipe's write end: without dropping it, the reader
    // would never see the end of the dump.
    drop(cmd);
    let mut child =
        spawned.map_err(|e| BackupError::Source(format!("cannot run {program}: {e}")))?;
    let stderr = child.stderr.take().map(|mut err| {
        tokio::spawn(async move {
            let mut kept = Vec::new();
            let mut buf = [0_u8; 4096];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let room = STDERR_MAX.saturating_sub(kept.len());
                kept.extend_from_slice(buf.get(..n.min(room)).unwrap_or_default());
            }
            String::from_utf8_lossy(&kept).into_owned()
        })
    });
    Ok(Dump {
        reader: Box::new(stdout),
        child: Some(child),
        stderr,
        counts,
        release,
        _temp: None,
    })
}

async fn start_postgres(source: &SourceConfig) -> Result<Dump, BackupError> {
    let url = source
        .url
        .as_deref()
        .ok_or_else(|| BackupError::Source("no url".into()))?;
    let mut conn = sqlx::postgres::PgConnection::connect(url)
        .await
        .map_err(|e| BackupError::Source(format!("cannot connect to PostgreSQL: {e}")))?;
    let pg = |e: sqlx::Error| BackupError::Source(format!("PostgreSQL: {e}"));
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut conn)
        .await
        .map_err(pg)?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut conn)
        .await
        .map_err(pg)?;
    let (bare, password) = split_password(url);
    let mut cmd = Command::new(pg_program("pg_dump"));
    cmd.arg("-Fc")
        .arg("-Z0")
        .arg(format!("--snapshot={snapshot}"))
        .arg(format!("--dbname={bare}"));
    if let Some(password) = password {
        cmd.env("PGPASSWORD", password);
    }
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let counter = Arc::new(Mutex::new(Some(ArchiveCounter::new())));
    let seen = counter.clone();
    // The rows of each table are counted off the dump stream as it passes (no second scan);
    // a table the stream did not show is counted in the exporting transaction, which stays
    // open until pg_dump has ended, so every count is of the dump's snapshot.
    let counts = tokio::spawn(async move {
        // The snapshot's tables, asked while pg_dump starts rather than before it does.
        let tables: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT schemaname::text, tablename::text, format('%I.%I', schemaname, tablename) \
             FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 3",
        )
        .fetch_all(&mut conn)
        .await
        .map_err(pg)?;
        let _ = released.await;
        let streamed = seen
            .lock()
            .ok()
            .and_then(|mut c| c.take())
            .map(ArchiveCounter::finish)
            .unwrap_or_else(|| Err("no stream".into()));
        let streamed = match streamed {
            Ok(counts) => counts,
            Err(why) => {
                tracing::warn!(reason = %why, "row counts could not be read off the dump: counting in its snapshot");
                BTreeMap::new()
            }
        };
        let mut counts = BTreeMap::new();
        for (schema, table, quoted) in tables {
            let n = match streamed.get(&(schema, table)) {
                Some(n) => *n,
                // `quoted` is quoted by format('%I.%I').
                None => sqlx::query_scalar(&format!("SELECT count(*) FROM {quoted}"))
                    .fetch_one(&mut conn)
                    .await
                    .map_err(|e| BackupError::Source(format!("counting rows of {quoted}: {e}")))?,
            };
            counts.insert(quoted, n);
        }
        let _ = sqlx::query("COMMIT").execute(&mut conn).await;
        let _ = conn.close().await;
        Ok(counts)
    });
    let mut dump = spawn(cmd, Some(counts), Some(release))?;
    let pipe = std::mem::replace(&mut dump.reader, Box::new(std::io::empty()));
    dump.reader = Box::new(Counting {
        inner: pipe,
        counter,
    });
    Ok(dump)
}

/// The read end of a program's stdout pipe, asked to hold [`PIPE_SIZE`] (where the system
/// refuses, it keeps its default of 64 KiB).
///
/// It is read as it fills, one wake-up per write of the program (pg_dump writes 4 KiB at a
/// time). Reads that waited to take more at once (a 1 ms pause after a short read) were
/// tried: they cut the wake-ups severalfold, but the backup of a 1 GB database (pgbench
/// scale 70) took 6–17 % longer, with a core partly idle beside pg_dump and its server.
fn enlarged(pipe: std::io::PipeReader) -> std::io::PipeReader {
    #[cfg(target_os = "linux")]
    let _ = rustix::pipe::fcntl_setpipe_size(&pipe, PIPE_SIZE);
    pipe
}

/// A reader that shows every byte it reads to an [`ArchiveCounter`].
struct Counting<R> {
    inner: R,
    counter: Arc<Mutex<Option<ArchiveCounter>>>,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut guard) = self.counter.lock()
            && let Some(counter) = guard.as_mut()
        {
            counter.feed(buf.get(..n).unwrap_or_default());
        }
        Ok(n)
    }
}

async fn start_sqlite(source: &SourceConfig) -> Result<Dump, BackupError> {
    let path = source
        .path
        .clone()
        .ok_or_else(|| BackupError::Source("no path".into()))?;
    if !path.is_file() {
        return Err(BackupError::Source(format!(
            "the SQLite database {} does not exist",
            path.display()
        )));
    }
    let temp = tempfile::Builder::new()
        .prefix("rampart-backup-")
        .tempdir()
        .map_err(|e| BackupError::Source(format!("cannot make a temporary directory: {e}")))?;
    let copy = temp.path().join("copy.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(10));
    let mut conn = sqlx::sqlite::SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| BackupError::Source(format!("cannot open {}: {e}", path.display())))?;
    sqlx::query("VACUUM INTO $1")
        .bind(copy.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await
        .map_err(|e| BackupError::Source(format!("VACUUM INTO failed: {e}")))?;
    let _ = conn.close().await;
    let file = tokio::fs::File::open(&copy)
        .await
        .map_err(|e| BackupError::Source(format!("cannot read the copy: {e}")))?
        .into_std()
        .await;
    Ok(Dump {
        reader: Box::new(file),
        child: None,
        stderr: None,
        counts: None,
        release: None,
        _temp: Some(temp),
    })
}

/// A PostgreSQL client program: the newest installed major version's, else from `PATH`.
pub fn pg_program(name: &str) -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let p = e.path().join("bin").join(name);
            p.is_file().then_some((v, p))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, p)| p)
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Splits the password out of a `postgres://user:password@host/db` URL, so that it can go
/// through the environment instead of a command line others can read.
pub fn split_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return (url.to_owned(), None);
    };
    let Some((user, password)) = userinfo.split_once(':') else {
        return (url.to_owned(), None);
    };
    (
        format!("{scheme}://{user}@{host}{tail}"),
        Some(percent_decode(password)),
    )
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_dump_pipe_holds_a_mebibyte() {
        let (reader, _writer) = std::io::pipe().unwrap();
        assert_eq!(rustix::pipe::fcntl_getpipe_size(&reader).unwrap(), 64 << 10);
        let reader = enlarged(reader);
        assert_eq!(
            rustix::pipe::fcntl_getpipe_size(&reader).unwrap(),
            PIPE_SIZE
        );
    }

    #[test]
    fn the_password_leaves_the_url() {
        assert_eq!(
            split_password("postgres://app:s%40cret@db:5432/app?sslmode=require"),
            (
                "postgres://app@db:5432/app?sslmode=require".to_owned(),
                Some("s@cret".to_owned())
            )
        );
        assert_eq!(
            split_password("postgres://app@db/app"),
            ("postgres://app@db/app".to_owned(), None)
        );
        assert_eq!(
            split_password("postgres://db/app"),
            ("postgres://db/app".to_owned(), None)
        );
    }
}

//! Sources: what produces the bytes of a backup.
//!
//! - PostgreSQL: a `REPEATABLE READ` transaction exports its snapshot
//!   (`pg_export_snapshot()`), counts the rows of every table in it, and stays open while
//!   `pg_dump -Fc -Z0 --snapshot=…` dumps exactly that snapshot; the counts are what a
//!   restore drill compares against later. The password goes to `pg_dump` through
//!   `PGPASSWORD`, never on its command line.
//! - SQLite: `VACUUM INTO` a private temporary file (a consistent copy while rampart keeps
//!   writing), streamed and then removed.
//! - Command: any program's stdout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use sqlx::Connection;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::BackupError;
use crate::config::{SourceConfig, SourceKind};

/// Most stderr kept from a failing program.
const STDERR_MAX: usize = 16 * 1024;

/// A dump in progress.
pub struct Dump {
    /// The bytes: a blocking reader (a pipe or a file), read on the compressing thread so
    /// that no async wake-up sits between each of the program's writes and zstd.
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
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables \
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    .fetch_all(&mut conn)
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
    // Counts run in the exporting transaction while pg_dump reads the same snapshot; the
    // transaction stays open until pg_dump has ended.
    let counts = tokio::spawn(async move {
        let mut counts = BTreeMap::new();
        for table in tables {
            // `table` is quoted by format('%I.%I').
            let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&mut conn)
                .await
                .map_err(|e| BackupError::Source(format!("counting rows of {table}: {e}")))?;
            counts.insert(table, n);
        }
        let _ = released.await;
        let _ = sqlx::query("COMMIT").execute(&mut conn).await;
        let _ = conn.close().await;
        Ok(counts)
    });
    spawn(cmd, Some(counts), Some(release))
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

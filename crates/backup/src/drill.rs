//! The restore drill: the newest backup of each PostgreSQL source is restored into a
//! throwaway cluster (initdb in a temporary directory, Unix socket only, no TCP port), and
//! the row count of every table is compared with the counts taken in the dump's snapshot.
//! A pass records the backup as verified; either way the result and its duration are an
//! audit event, which the report reads as evidence.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use sqlx::Connection;

use crate::BackupError;
use crate::config::SourceKind;
use crate::jobs::{Backups, RestoreTarget, to_backup};
use crate::source::pg_program;

/// What one drill found.
#[derive(Debug, Clone)]
pub struct DrillResult {
    /// The source.
    pub source: String,
    /// The backup restored.
    pub backup: String,
    /// Tables compared.
    pub tables: usize,
    /// Tables whose counts differ, as `table: expected N, restored M`.
    pub mismatches: Vec<String>,
    /// The restore failed before any comparison.
    pub error: Option<String>,
    /// Restore and comparison.
    pub duration: Duration,
}

impl DrillResult {
    /// Restored, and every count matched.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.mismatches.is_empty()
    }
}

/// `meta` key of the restore drill's identity, sealed under the master key (the operator's
/// opt-in: `rampart backup drill-identity set`).
pub const DRILL_IDENTITY: &str = "backup.drill_identity";
/// The sealing context of [`DRILL_IDENTITY`].
pub const DRILL_IDENTITY_CONTEXT: &str = "backup.drill_identity";
/// `meta` key of the last scheduled drill's time (µs).
pub const LAST_DRILL: &str = "backup.last_drill_us";

/// What the scheduled drill found for one source.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The source.
    pub source: String,
    /// The backup checked.
    pub backup: String,
    /// What was checked.
    pub check: Check,
    /// Whether it held.
    pub passed: bool,
    /// What failed, when it did.
    pub error: Option<String>,
}

/// How far a scheduled check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Restored into a throwaway cluster and row counts compared (PostgreSQL).
    Restored,
    /// Decrypted and decompressed to its end, hash compared (other sources).
    Decrypted,
    /// Read back and hash compared only: no identity, so restores are unverified.
    HashOnly,
}

impl Check {
    /// As written in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restored => "restored and row counts compared",
            Self::Decrypted => "decrypted to its end",
            Self::HashOnly => "hash read back only (restores unverified: no drill identity)",
        }
    }
}

impl Backups<'_> {
    /// The scheduled drill over the newest good backup of each source. With `identities`
    /// (the stored drill identity): PostgreSQL sources are restored into a throwaway
    /// cluster and their row counts compared ([`Backups::drill`]); other sources are
    /// decrypted to their end. Without: each object is read back and its hash checked
    /// only, and the result says restores are unverified. Every check is recorded on the
    /// backup and audited; the time of the drill is kept in `meta` ([`LAST_DRILL`]).
    pub async fn scheduled_drill(
        &self,
        identities: Option<Vec<age::x25519::Identity>>,
        actor: &Actor,
    ) -> Result<Vec<Checked>, BackupError> {
        let mut out = Vec::new();
        if let Some(ids) = &identities {
            for r in self.drill(ids.clone(), actor).await? {
                out.push(Checked {
                    passed: r.passed(),
                    error: r
                        .error
                        .clone()
                        .or_else(|| (!r.mismatches.is_empty()).then(|| r.mismatches.join("; "))),
                    source: r.source,
                    backup: r.backup,
                    check: Check::Restored,
                });
            }
        }
        let rows = self.catalog().backups().await?;
        for source in self.sources() {
            if identities.is_some() && source.kind == SourceKind::Postgres {
                continue;
            }
            let Some(row) = rows
                .iter()
                .filter(|r| r.source == source.name.as_str() && to_backup(r).is_good())
                .max_by_key(|r| (r.started_us, r.id.clone()))
            else {
                continue;
            };
            let progress = Arc::new(AtomicU64::new(0));
            let (check, result) = match &identities {
                Some(ids) => {
                    let result = self
                        .restore_into_target(row, ids.clone(), &RestoreTarget::Discard, progress)
                        .await;
                    let mut event = AuditEvent::new(actor.clone(), Action::BackupVerify, &row.id)
                        .outcome(if result.is_ok() {
                            Outcome::Success
                        } else {
                            Outcome::Failure
                        })
                        .detail("source", &row.source)
                        .detail("check", "decrypted by the drill identity");
                    if let Err(e) = &result {
                        event = event.detail("error", crate::scrubbed(&e.to_string()));
                    }
                    self.record_check(&row.id, result.is_ok(), event).await?;
                    (Check::Decrypted, result.map(|_| ()))
                }
                None => (
                    Check::HashOnly,
                    self.verify(&row.id, actor, progress).await.map(|_| ()),
                ),
            };
            out.push(Checked {
                source: row.source.clone(),
                backup: row.id.clone(),
                check,
                passed: result.is_ok(),
                error: result.err().map(|e| e.to_string()),
            });
        }
        self.catalog()
            .set_meta(LAST_DRILL, &Timestamp::now().as_microsecond().to_string())
            .await?;
        Ok(out)
    }

    /// Drills the newest good backup of every PostgreSQL source with `identities`.
    pub async fn drill(
        &self,
        identities: Vec<age::x25519::Identity>,
        actor: &Actor,
    ) -> Result<Vec<DrillResult>, BackupError> {
        let rows = self.catalog().backups().await?;
        let mut out = Vec::new();
        for source in self
            .sources()
            .iter()
            .filter(|s| s.kind == SourceKind::Postgres)
        {
            let newest = rows
                .iter()
                .filter(|r| r.source == source.name.as_str() && to_backup(r).is_good())
                .max_by_key(|r| (r.started_us, r.id.clone()));
            let Some(row) = newest else {
                continue;
            };
            let started = Instant::now();
            let result = self.drill_one(row, identities.clone()).await;
            let duration = started.elapsed();
            let mut drill = DrillResult {
                source: row.source.clone(),
                backup: row.id.clone(),
                tables: 0,
                mismatches: Vec::new(),
                error: None,
                duration,
            };
            match result {
                Ok((tables, mismatches)) => {
                    drill.tables = tables;
                    drill.mismatches = mismatches;
                }
                Err(e) => drill.error = Some(e.to_string()),
            }
            let mut event = AuditEvent::new(actor.clone(), Action::BackupVerify, &row.id)
                .outcome(if drill.passed() {
                    Outcome::Success
                } else {
                    Outcome::Failure
                })
                .detail("source", &row.source)
                .detail("check", "restore drill")
                .detail("tables", drill.tables.to_string())
                .detail("duration_ms", duration.as_millis().to_string());
            if let Some(e) = &drill.error {
                event = event.detail("error", crate::scrubbed(e));
            }
            if !drill.mismatches.is_empty() {
                event = event.detail("mismatches", drill.mismatches.join("; "));
            }
            self.record_check(&row.id, drill.passed(), event).await?;
            out.push(drill);
        }
        Ok(out)
    }

    /// Records a check's verdict on the backup, with its audit event.
    async fn record_check(
        &self,
        id: &str,
        passed: bool,
        event: AuditEvent,
    ) -> Result<(), BackupError> {
        let verdict = if passed { "passed" } else { "failed" };
        self.catalog()
            .record_backup_verification(id, verdict, Timestamp::now().as_microsecond(), event)
            .await?;
        Ok(())
    }

    async fn drill_one(
        &self,
        row: &rampart_store::BackupRow,
        identities: Vec<age::x25519::Identity>,
    ) -> Result<(usize, Vec<String>), BackupError> {
        let expected: BTreeMap<String, i64> = serde_json::from_str(&row.row_counts)
            .map_err(|e| BackupError::Corrupt(format!("catalogued row counts: {e}")))?;
        let cluster = tokio::task::spawn_blocking(Cluster::start)
            .await
            .map_err(|e| BackupError::Internal(e.to_string()))??;
        let result = async {
            let options = sqlx::postgres::PgConnectOptions::new()
                .socket(cluster.socket_dir())
                .port(PORT)
                .username("postgres")
                .database("postgres");
            let mut admin = sqlx::postgres::PgConnection::connect_with(&options)
                .await
                .map_err(drill_error)?;
            sqlx::query("CREATE DATABASE drill")
                .execute(&mut admin)
                .await
                .map_err(drill_error)?;
            let _ = admin.close().await;
            let url = format!(
                "postgresql:///drill?host={}&port={PORT}&user=postgres",
                cluster.socket_dir().display()
            );
            self.restore_into_target(
                row,
                identities,
                &RestoreTarget::Postgres(url),
                Arc::new(AtomicU64::new(0)),
            )
            .await?;
            let mut conn =
                sqlx::postgres::PgConnection::connect_with(&options.clone().database("drill"))
                    .await
                    .map_err(drill_error)?;
            let mut mismatches = Vec::new();
            for (table, want) in &expected {
                // The name was quoted by format('%I.%I') when it was counted at dump time.
                let got: Result<i64, _> =
                    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                        .fetch_one(&mut conn)
                        .await;
                match got {
                    Ok(n) if n == *want => {}
                    Ok(n) => mismatches.push(format!("{table}: expected {want}, restored {n}")),
                    Err(_) => mismatches.push(format!("{table}: missing after restore")),
                }
            }
            let _ = conn.close().await;
            Ok((expected.len(), mismatches))
        }
        .await;
        tokio::task::spawn_blocking(move || cluster.stop())
            .await
            .map_err(|e| BackupError::Internal(e.to_string()))?;
        result
    }
}

/// The throwaway cluster's socket port (a socket file name only: no TCP listener).
const PORT: u16 = 5432;

fn drill_error(e: sqlx::Error) -> BackupError {
    BackupError::Sink(format!("the drill cluster: {e}"))
}

/// A PostgreSQL cluster in a temporary directory, listening on its socket only.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_root: bool,
}

impl Cluster {
    fn start() -> Result<Cluster, BackupError> {
        let initdb = pg_program("initdb");
        let bin = initdb
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| p.join("pg_ctl").is_file())
            .ok_or_else(|| {
                BackupError::Sink(
                    "initdb and pg_ctl are needed for the restore drill: apt-get install -y postgresql"
                        .into(),
                )
            })?;
        let dir = tempfile::Builder::new()
            .prefix("rampart-drill-")
            .tempdir()
            .map_err(|e| BackupError::Sink(format!("cannot make the drill directory: {e}")))?;
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0\n"))
            .unwrap_or(false);
        if as_root {
            // initdb refuses to run as root: the cluster belongs to the postgres user.
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()))?;
        }
        let cluster = Cluster { dir, bin, as_root };
        let data = cluster.dir.path().join("data");
        run(cluster.pg("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ]))?;
        let options = format!(
            "-c listen_addresses='' -k {} -p {PORT} -c fsync=off",
            cluster.dir.path().display()
        );
        run(cluster
            .pg("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-o")
            .arg(options)
            .arg("-l")
            .arg(cluster.dir.path().join("log"))
            .args(["-w", "-t", "60", "start"]))?;
        Ok(cluster)
    }

    fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    fn pg(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn stop(self) {
        let _ = self
            .pg("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn run(cmd: &mut Command) -> Result<(), BackupError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .output()
        .map_err(|e| BackupError::Sink(format!("cannot run {program}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BackupError::Sink(format!(
            "{program} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

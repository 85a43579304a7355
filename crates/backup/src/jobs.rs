//! What the CLI and the scheduler do with backups: run, list, plan, prune, pin, verify,
//! restore. Every one of them is an audit event; a catalog change and its event commit
//! together.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use jiff::Timestamp;
use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use rampart_store::{BackupRow, Store};

use crate::config::{BackupConfig, SourceConfig, SourceKind, SourceName};
use crate::pipeline::{self, ReadBack, Sink};
use crate::plan::{self as planner, Backup, Plan, Status, Verification};
use crate::source;
use crate::storage::Storage;
use crate::{BackupError, scrubbed};

/// Backups of one rampart installation: its configuration, storage and catalog.
#[derive(Debug)]
pub struct Backups<'a> {
    config: &'a BackupConfig,
    storage: Storage,
    store: &'a Store,
    sources: Vec<SourceConfig>,
}

/// The outcome of one source's run.
#[derive(Debug)]
pub struct RunResult {
    /// The source.
    pub source: String,
    /// The catalogued backup, or why there is none.
    pub result: Result<BackupRow, BackupError>,
}

/// Where a restore goes.
#[derive(Debug, Clone)]
pub enum RestoreTarget {
    /// `pg_restore` into this database (`postgres://…`).
    Postgres(String),
    /// The decrypted, decompressed dump into a file.
    File(PathBuf),
    /// Decrypted and decompressed to its end, then dropped: proves the object decrypts,
    /// authenticates and matches its hash.
    Discard,
}

impl<'a> Backups<'a> {
    /// Opens the storage. `own_database` is rampart's SQLite file when the store is SQLite
    /// and `own_database = true`.
    pub fn open(
        config: &'a BackupConfig,
        data_dir: &std::path::Path,
        store: &'a Store,
        own_database: Option<PathBuf>,
    ) -> Result<Self, BackupError> {
        let storage = Storage::open(&config.storage, data_dir)?;
        let mut sources = Vec::new();
        if config.own_database
            && let Some(path) = own_database
        {
            sources.push(SourceConfig {
                name: SourceName::parse("rampart").map_err(|e| BackupError::Internal(e.0))?,
                kind: SourceKind::Sqlite,
                url: None,
                path: Some(path),
                command: Vec::new(),
            });
        }
        sources.extend(config.sources.iter().cloned());
        Ok(Self {
            config,
            storage,
            store,
            sources,
        })
    }

    /// The catalog.
    pub fn catalog(&self) -> &Store {
        self.store
    }

    /// The storage.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The configured sources (with rampart's own database first when it is one).
    pub fn sources(&self) -> &[SourceConfig] {
        &self.sources
    }

    /// Backs up every source (or the one named), after removing orphans of crashed runs
    /// (while the first source's dump starts).
    pub async fn run(
        &self,
        only: Option<&str>,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Vec<RunResult>, BackupError> {
        if self.config.recipients.is_empty() {
            return Err(BackupError::NoRecipients);
        }
        let chosen: Vec<&SourceConfig> = self
            .sources
            .iter()
            .filter(|s| only.is_none_or(|name| s.name.as_str() == name))
            .collect();
        if chosen.is_empty() {
            return Err(BackupError::NotFound(match only {
                Some(name) => format!("no backup source is named {name:?}"),
                None => "no backup source is configured".into(),
            }));
        }
        let mut out = Vec::new();
        for (i, s) in chosen.into_iter().enumerate() {
            let result = if i == 0 {
                // The first dump starts (connecting, exporting its snapshot, starting pg_dump)
                // while the orphans of crashed runs are removed: both wait on other programs.
                // Its object is created only once the cleaning has ended, so the cleaning
                // cannot take it for an orphan.
                let started = Timestamp::now();
                let (cleaned, dump) =
                    tokio::join!(self.clean_orphans(now, actor), source::start(s));
                if let Err(e) = cleaned {
                    if let Ok(dump) = dump {
                        dump.kill().await;
                    }
                    return Err(e);
                }
                match dump {
                    Ok(dump) => self.write_one(s, started, dump, actor).await,
                    Err(e) => Err(e),
                }
            } else {
                self.run_one(s, actor).await
            };
            if let Err(e) = &result {
                let event = AuditEvent::new(actor.clone(), Action::BackupRun, s.name.as_str())
                    .outcome(Outcome::Failure)
                    .detail("error", scrubbed(&e.to_string()));
                self.store.append_audit(&[event]).await?;
            }
            out.push(RunResult {
                source: s.name.as_str().to_owned(),
                result,
            });
        }
        Ok(out)
    }

    /// One source: dump → pipeline → complete the object → catalog row (with its audit
    /// event). A failure at any step leaves no catalog row and no object.
    pub async fn run_one(&self, s: &SourceConfig, actor: &Actor) -> Result<BackupRow, BackupError> {
        let started = Timestamp::now();
        let dump = source::start(s).await?;
        self.write_one(s, started, dump, actor).await
    }

    /// The rest of [`Backups::run_one`], once the source has started.
    async fn write_one(
        &self,
        s: &SourceConfig,
        started: Timestamp,
        mut dump: source::Dump,
        actor: &Actor,
    ) -> Result<BackupRow, BackupError> {
        let id = uuid::Uuid::now_v7().to_string();
        let key = self
            .storage
            .key_for(s.name.as_str(), started, &id, source::extension(s.kind));
        let reader = std::mem::replace(&mut dump.reader, Box::new(std::io::empty()));
        // The catalog's writer connects while the dump runs, not after it.
        let (written, _) = tokio::join!(
            pipeline::write(
                reader,
                &self.storage,
                &key,
                &self.config.recipients,
                i32::try_from(self.config.zstd_level.get()).unwrap_or(3),
            ),
            self.store.prepare_writer()
        );
        let upload = match written {
            Ok(upload) => upload,
            Err(e) => {
                dump.kill().await;
                return Err(e);
            }
        };
        let counts = match dump.finish().await {
            Ok(counts) => counts,
            Err(e) => {
                upload.abort().await;
                return Err(e);
            }
        };
        let (sha256, size, raw) = (upload.sha256.clone(), upload.size, upload.raw);
        upload.commit().await?;
        let row = BackupRow {
            id: id.clone(),
            source: s.name.as_str().to_owned(),
            kind: s.kind.as_str().to_owned(),
            started_us: started.as_microsecond(),
            finished_us: Timestamp::now().as_microsecond(),
            status: Status::Complete.as_str().to_owned(),
            storage: self.storage.label().to_owned(),
            object_key: key.clone(),
            size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
            raw_bytes: i64::try_from(raw).unwrap_or(i64::MAX),
            sha256: sha256.clone(),
            recipients: serde_json::to_string(
                &self
                    .config
                    .recipients
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_else(|_| "[]".into()),
            row_counts: serde_json::to_string(&counts).unwrap_or_else(|_| "{}".into()),
            pinned: false,
            verification: Verification::Unverified.as_str().to_owned(),
            verified_us: None,
        };
        let event = AuditEvent::new(actor.clone(), Action::BackupRun, s.name.as_str())
            .detail("backup", &id)
            .detail("bytes", size.to_string())
            .detail("sha256", &sha256)
            .detail("storage", self.storage.label());
        if let Err(e) = self.store.insert_backup(&row, event).await {
            // Not catalogued: the object must not outlive the failed insert.
            let _ = self.storage.delete(&key, false).await;
            return Err(e.into());
        }
        Ok(row)
    }

    /// Removes objects under the prefix that no catalog row names and that are older than
    /// `job_start` (left by a crashed run). Returns how many were removed.
    pub async fn clean_orphans(
        &self,
        job_start: Timestamp,
        actor: &Actor,
    ) -> Result<usize, BackupError> {
        let known: std::collections::BTreeSet<String> = self
            .store
            .backups()
            .await?
            .into_iter()
            .map(|b| b.object_key)
            .collect();
        let mut removed = 0;
        for found in self.storage.list().await? {
            let base = match found.key.rsplit_once('#') {
                Some((base, _)) if found.staged => base.to_owned(),
                _ => found.key.clone(),
            };
            if found.modified >= job_start || (!found.staged && known.contains(&base)) {
                continue;
            }
            if found.staged || !known.contains(&base) {
                self.storage.delete(&found.key, found.staged).await?;
                let event = AuditEvent::new(actor.clone(), Action::BackupOrphan, &found.key)
                    .detail("bytes", found.size.to_string());
                self.store.append_audit(&[event]).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The catalog (an audited read).
    pub async fn list(&self, actor: &Actor) -> Result<Vec<BackupRow>, BackupError> {
        let rows = self.store.backups().await?;
        let event = AuditEvent::new(actor.clone(), Action::BackupList, "catalog")
            .detail("count", rows.len().to_string());
        self.store.append_audit(&[event]).await?;
        Ok(rows)
    }

    /// The retention plan at `now` (an audited read).
    pub async fn plan(&self, actor: &Actor, now: Timestamp) -> Result<Plan, BackupError> {
        let rows = self.store.backups().await?;
        let event = AuditEvent::new(actor.clone(), Action::BackupList, "plan")
            .detail("count", rows.len().to_string());
        self.store.append_audit(&[event]).await?;
        Ok(plan_rows(&rows, self.config, now))
    }

    /// Deletes exactly what the plan at `now` says: the object, then the catalog row with
    /// its audit event. Returns the plan that was carried out.
    pub async fn prune(&self, actor: &Actor, now: Timestamp) -> Result<Plan, BackupError> {
        let rows = self.store.backups().await?;
        let plan = plan_rows(&rows, self.config, now);
        let by_id: BTreeMap<&str, &BackupRow> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
        for d in plan.deletions() {
            let Some(row) = by_id.get(d.id.as_str()) else {
                continue;
            };
            self.storage.delete(&row.object_key, false).await?;
            let why: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
            let event = AuditEvent::new(actor.clone(), Action::BackupPrune, &d.id)
                .detail("source", &d.source)
                .detail("reason", why.join("; "));
            self.store.delete_backup(&d.id, event).await?;
        }
        Ok(plan)
    }

    /// Pins or unpins a backup.
    pub async fn pin(&self, id: &str, pinned: bool, actor: &Actor) -> Result<(), BackupError> {
        let event = AuditEvent::new(actor.clone(), Action::BackupPin, id)
            .detail("pinned", pinned.to_string());
        self.store.set_backup_pinned(id, pinned, event).await?;
        Ok(())
    }

    /// Reads a backup's object back whole and checks its SHA-256; records the result. A
    /// missing or altered object is a failure, recorded and returned.
    pub async fn verify(
        &self,
        id: &str,
        actor: &Actor,
        progress: Arc<AtomicU64>,
    ) -> Result<ReadBack, BackupError> {
        let row = self.row(id).await?;
        let result = pipeline::hash_object(&self.storage, &row.object_key, progress)
            .await
            .and_then(|got| check_hash(&row, got));
        let (verification, outcome) = match &result {
            Ok(_) => (Verification::Passed, Outcome::Success),
            Err(BackupError::Missing(_) | BackupError::HashMismatch { .. }) => {
                (Verification::Failed, Outcome::Failure)
            }
            // Storage unreachable: no verdict on the object.
            Err(e) => return Err(e.clone()),
        };
        let mut event = AuditEvent::new(actor.clone(), Action::BackupVerify, id)
            .outcome(outcome)
            .detail("source", &row.source);
        if let Err(e) = &result {
            event = event.detail("error", e.to_string());
        }
        self.store
            .record_backup_verification(
                id,
                verification.as_str(),
                Timestamp::now().as_microsecond(),
                event,
            )
            .await?;
        result
    }

    /// Restores a backup with `identities` into `target`. The restore is audited before it
    /// starts (fail closed) and its end is audited too.
    pub async fn restore(
        &self,
        id: &str,
        identities: Vec<age::x25519::Identity>,
        target: &RestoreTarget,
        actor: &Actor,
        progress: Arc<AtomicU64>,
    ) -> Result<ReadBack, BackupError> {
        let row = self.row(id).await?;
        let where_to = match target {
            RestoreTarget::Postgres(url) => source::split_password(url).0,
            RestoreTarget::File(path) => path.display().to_string(),
            RestoreTarget::Discard => "nowhere (decryption check)".to_owned(),
        };
        let start = AuditEvent::new(actor.clone(), Action::BackupRestore, id)
            .detail("source", &row.source)
            .detail("target", scrubbed(&where_to))
            .detail("stage", "start");
        self.store.append_audit(&[start]).await?;
        let result = self
            .restore_into_target(&row, identities, target, progress)
            .await;
        let mut end = AuditEvent::new(actor.clone(), Action::BackupRestore, id)
            .detail("source", &row.source)
            .detail("stage", "end");
        if let Err(e) = &result {
            end = end
                .outcome(Outcome::Failure)
                .detail("error", scrubbed(&e.to_string()));
        }
        self.store.append_audit(&[end]).await?;
        result
    }

    pub(crate) async fn restore_into_target(
        &self,
        row: &BackupRow,
        identities: Vec<age::x25519::Identity>,
        target: &RestoreTarget,
        progress: Arc<AtomicU64>,
    ) -> Result<ReadBack, BackupError> {
        match target {
            RestoreTarget::Discard => {
                let got = pipeline::read(
                    &self.storage,
                    &row.object_key,
                    identities,
                    Box::new(tokio::io::sink()) as Sink,
                    progress,
                )
                .await?;
                check_hash(row, got)
            }
            RestoreTarget::File(path) => {
                // Written beside the file asked for, and given its name only once the whole
                // backup decrypted, decompressed, matched its SHA-256 and is on disk: a
                // failed or interrupted restore leaves nothing that looks like a dump.
                if tokio::fs::symlink_metadata(path).await.is_ok() {
                    return Err(BackupError::Sink(format!(
                        "cannot create {}: it already exists",
                        path.display()
                    )));
                }
                let partial = partial_path(path);
                let file = tokio::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&partial)
                    .await
                    .map_err(|e| {
                        BackupError::Sink(format!("cannot create {}: {e}", partial.display()))
                    })?;
                let restored = async {
                    let got = pipeline::read(
                        &self.storage,
                        &row.object_key,
                        identities,
                        Box::new(file) as Sink,
                        progress,
                    )
                    .await?;
                    let got = check_hash(row, got)?;
                    publish(partial.clone(), path.clone()).await?;
                    Ok(got)
                }
                .await;
                if restored.is_err() {
                    let _ = tokio::fs::remove_file(&partial).await;
                }
                restored
            }
            RestoreTarget::Postgres(url) => {
                if row.kind != SourceKind::Postgres.as_str() {
                    return Err(BackupError::Sink(format!(
                        "backup {} is a {} dump: restore it to a file with --out",
                        row.id, row.kind
                    )));
                }
                let (bare, password) = source::split_password(url);
                let mut cmd = tokio::process::Command::new(source::pg_program("pg_restore"));
                cmd.arg("--no-owner")
                    .arg("--exit-on-error")
                    .arg(format!("--dbname={bare}"))
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .kill_on_drop(true);
                if let Some(p) = password {
                    cmd.env("PGPASSWORD", p);
                }
                let mut child = cmd
                    .spawn()
                    .map_err(|e| BackupError::Sink(format!("cannot run pg_restore: {e}")))?;
                let stdin = child
                    .stdin
                    .take()
                    .ok_or_else(|| BackupError::Internal("no stdin".into()))?;
                let mut stderr = child.stderr.take();
                let err_task = tokio::spawn(async move {
                    let mut text = String::new();
                    if let Some(err) = stderr.as_mut() {
                        use tokio::io::AsyncReadExt;
                        let _ = err.take(16 * 1024).read_to_string(&mut text).await;
                    }
                    text
                });
                let read = pipeline::read(
                    &self.storage,
                    &row.object_key,
                    identities,
                    Box::new(stdin) as Sink,
                    progress,
                )
                .await;
                if read.is_err() {
                    let _ = child.kill().await;
                }
                let status = child
                    .wait()
                    .await
                    .map_err(|e| BackupError::Sink(format!("pg_restore: {e}")))?;
                let stderr = err_task.await.unwrap_or_default();
                let got = read?;
                let got = check_hash(row, got)?;
                if !status.success() {
                    return Err(BackupError::Sink(format!(
                        "pg_restore failed ({status}): {}",
                        stderr.trim()
                    )));
                }
                Ok(got)
            }
        }
    }

    async fn row(&self, id: &str) -> Result<BackupRow, BackupError> {
        self.store
            .backup(id)
            .await?
            .ok_or_else(|| BackupError::NotFound(format!("no backup has the id {id}")))
    }
}

/// The plan for catalog rows.
pub fn plan_rows(rows: &[BackupRow], config: &BackupConfig, now: Timestamp) -> Plan {
    let backups: Vec<Backup> = rows.iter().map(to_backup).collect();
    planner::plan(&backups, &config.retention, now)
}

/// What the planner needs from a catalog row. A row with unreadable fields counts as
/// failed: it stands for no tier.
pub fn to_backup(row: &BackupRow) -> Backup {
    Backup {
        id: row.id.clone(),
        source: row.source.clone(),
        started: Timestamp::from_microsecond(row.started_us).unwrap_or(Timestamp::UNIX_EPOCH),
        status: Status::parse(&row.status).unwrap_or(Status::Failed),
        verification: Verification::parse(&row.verification).unwrap_or(Verification::Failed),
        pinned: row.pinned,
    }
}

/// Where a restore to `path` is written until it is complete: `path` with `.partial` added.
fn partial_path(path: &std::path::Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Gives a complete restore its name: synced to disk, linked as `path` (which fails if
/// something took that name meanwhile), the partial name removed, the directory synced.
async fn publish(partial: PathBuf, path: PathBuf) -> Result<(), BackupError> {
    tokio::task::spawn_blocking(move || {
        let fail = |what: &str, e: std::io::Error| {
            BackupError::Sink(format!("cannot {what} {}: {e}", path.display()))
        };
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(|e| fail("sync", e))?;
        std::fs::hard_link(&partial, &path).map_err(|e| fail("create", e))?;
        let _ = std::fs::remove_file(&partial);
        crate::pipeline::sync_parent(&path).map_err(|e| fail("sync the directory of", e))
    })
    .await
    .map_err(|e| BackupError::Internal(e.to_string()))?
}

fn check_hash(row: &BackupRow, got: ReadBack) -> Result<ReadBack, BackupError> {
    if got.sha256 == row.sha256 {
        Ok(got)
    } else {
        Err(BackupError::HashMismatch {
            key: row.object_key.clone(),
            expected: row.sha256.clone(),
            found: got.sha256,
        })
    }
}

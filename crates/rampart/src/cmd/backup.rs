//! `rampart backup run|list|plan|prune|pin|unpin|restore|verify|keygen` (BAK-1..5).
//!
//! Every command that reads or changes the catalog or an object is an audit event.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use jiff::Timestamp;
use rampart_access::Permission;
use rampart_audit::{Action, Actor, AuditEvent};
use rampart_backup::{BackupError, Backups, RestoreTarget, Verdict};
use rampart_identity::sealed::MasterKey;
use rampart_store::BackupRow;

use super::{Ctx, table};
use crate::{Exit, exit_usage};

/// Backup commands.
#[derive(Debug, clap::Subcommand)]
pub enum BackupCommand {
    /// Back up every source now (or one), after removing objects left by crashed runs.
    Run {
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
    },
    /// List the catalog.
    List {
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the retention plan as a dry run: every backup, keep or delete, and why.
    Plan {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete exactly what the retention plan says. Needs a person holding backup.prune
    /// with a second-factor check within the last 5 minutes.
    Prune {
        #[command(flatten)]
        person: super::Person,
    },
    /// Pin a backup (legal hold): no plan deletes it.
    Pin {
        /// Backup id.
        id: String,
    },
    /// Remove a pin.
    Unpin {
        /// Backup id.
        id: String,
    },
    /// Restore a backup: checks its SHA-256 while streaming, decrypts, decompresses, and
    /// runs pg_restore (or writes the dump to a file). Needs a person holding
    /// backup.restore with a second-factor check within the last 5 minutes.
    Restore {
        /// Backup id.
        id: String,
        #[command(flatten)]
        person: super::Person,
        /// age identity file (from `rampart backup keygen`).
        #[arg(long)]
        identity: PathBuf,
        /// PostgreSQL database to restore into (postgres://…).
        #[arg(long, conflicts_with = "out", required_unless_present = "out")]
        to: Option<String>,
        /// Write the decrypted dump to this new file instead.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Read backups back and check their SHA-256 (all, or one). Missing or altered objects
    /// are flagged and the command fails.
    Verify {
        /// Backup id (default: every backup).
        id: Option<String>,
    },
    /// Restore drill: restore the newest backup of each PostgreSQL source into a throwaway
    /// cluster (initdb in a temporary directory, socket only) and compare every table's row
    /// count with the count taken at dump time. Fails when any differs.
    Drill {
        /// age identity file that can decrypt the backups.
        #[arg(long)]
        identity: PathBuf,
    },
    /// The identity the scheduled restore drill decrypts with (the operator's opt-in; it is
    /// stored sealed under the master key and each use is audited). Without one, drills
    /// only read objects back and check their hash.
    DrillIdentity {
        #[command(subcommand)]
        action: DrillIdentityCommand,
    },
    /// Make an age identity for decrypting backups: writes FILE (mode 0600) and prints the
    /// public key to put in backup.recipients. Keep the file offline.
    Keygen {
        /// Where to write the identity (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
}

/// `rampart backup drill-identity …`.
#[derive(Debug, clap::Subcommand)]
pub enum DrillIdentityCommand {
    /// Store an identity for the drill: its public key must be one of backup.recipients.
    /// Use a key made for the drill (`rampart backup keygen`), not an operator's own.
    Set {
        /// age identity file.
        #[arg(long)]
        identity: PathBuf,
    },
    /// Remove the stored identity: drills go back to hash checks only.
    Clear,
    /// Say whether an identity is stored, and its public key.
    Status,
}

/// Runs a backup command.
pub async fn run(ctx: &Ctx, command: BackupCommand) -> Result<Exit> {
    let actor = ctx.actor();
    let own = ctx
        .config
        .store
        .url
        .is_none()
        .then(|| ctx.dir.0.join("rampart.db"));
    let backups = Backups::open(&ctx.config.backup, &ctx.dir.0, &ctx.store, own)?;
    let now = Timestamp::now();
    match command {
        BackupCommand::Run { source } => {
            let results = backups
                .run(source.as_deref(), &actor, now)
                .await
                .map_err(usage_or)?;
            let mut failed = false;
            for r in results {
                match r.result {
                    Ok(row) => println!(
                        "{}: backup {} ({} -> {} bytes, sha256 {})",
                        r.source, row.id, row.raw_bytes, row.size_bytes, row.sha256
                    ),
                    Err(e) => {
                        failed = true;
                        eprintln!("rampart: {}: {e}", r.source);
                    }
                }
            }
            Ok(if failed { Exit::Failed } else { Exit::Ok })
        }
        BackupCommand::List { json } => {
            let rows = backups.list(&actor).await?;
            if json {
                for r in &rows {
                    println!("{}", row_json(r));
                }
            } else {
                println!(
                    "{}",
                    table(
                        &[
                            "id", "source", "started", "size", "storage", "verified", "pinned"
                        ],
                        rows.iter()
                            .map(|r| {
                                vec![
                                    r.id.clone(),
                                    r.source.clone(),
                                    time(r.started_us),
                                    r.size_bytes.to_string(),
                                    r.storage.clone(),
                                    r.verification.clone(),
                                    if r.pinned {
                                        "yes".into()
                                    } else {
                                        String::new()
                                    },
                                ]
                            })
                            .collect(),
                    )
                );
            }
            Ok(Exit::Ok)
        }
        BackupCommand::Plan { json } => {
            let plan = backups.plan(&actor, now).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print_plan(&plan);
            }
            Ok(Exit::Ok)
        }
        BackupCommand::Prune { person } => {
            let actor = super::person_may(ctx, &person, Permission::BackupPrune).await?;
            let plan = backups.prune(&actor, now).await?;
            let deleted = plan.deletions().count();
            for d in plan.deletions() {
                let why: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
                println!("deleted {} ({}): {}", d.id, d.source, why.join("; "));
            }
            println!("{deleted} deleted, {} kept", plan.decisions.len() - deleted);
            Ok(Exit::Ok)
        }
        BackupCommand::Pin { id } => {
            backups.pin(&id, true, &actor).await?;
            println!("{id} pinned");
            Ok(Exit::Ok)
        }
        BackupCommand::Unpin { id } => {
            backups.pin(&id, false, &actor).await?;
            println!("{id} unpinned");
            Ok(Exit::Ok)
        }
        BackupCommand::Restore {
            id,
            person,
            identity,
            to,
            out,
        } => {
            let actor = super::person_may(ctx, &person, Permission::BackupRestore).await?;
            let identities = rampart_backup::keys::read_identities(&identity).map_err(usage_or)?;
            let target = match (to, out) {
                (Some(url), _) => RestoreTarget::Postgres(url),
                (None, Some(path)) => RestoreTarget::File(path),
                (None, None) => return Err(exit_usage("give --to postgres://… or --out FILE")),
            };
            let total = ctx
                .store
                .backup(&id)
                .await?
                .map(|r| r.size_bytes)
                .unwrap_or(0);
            let progress = Arc::new(AtomicU64::new(0));
            let bar = progress_bar(total, progress.clone());
            let started = std::time::Instant::now();
            let result = backups
                .restore(&id, identities, &target, &actor, progress)
                .await;
            if let Some(bar) = bar {
                bar.abort();
            }
            let got = result.map_err(usage_or)?;
            eprintln!(
                "restored {id}: {} bytes read, {} bytes of dump, SHA-256 checked, in {:.1} s",
                got.size,
                got.plain,
                started.elapsed().as_secs_f64()
            );
            Ok(Exit::Ok)
        }
        BackupCommand::Verify { id } => {
            let ids: Vec<String> = match id {
                Some(id) => vec![id],
                None => ctx
                    .store
                    .backups()
                    .await?
                    .into_iter()
                    .map(|r| r.id)
                    .collect(),
            };
            let mut failed = false;
            for id in ids {
                let progress = Arc::new(AtomicU64::new(0));
                match backups.verify(&id, &actor, progress).await {
                    Ok(got) => println!("{id}: ok ({} bytes, sha256 {})", got.size, got.sha256),
                    Err(e) => {
                        failed = true;
                        println!("{id}: FAILED: {e}");
                    }
                }
            }
            Ok(if failed { Exit::Failed } else { Exit::Ok })
        }
        BackupCommand::Drill { identity } => {
            let identities = rampart_backup::keys::read_identities(&identity).map_err(usage_or)?;
            let results = backups.drill(identities, &actor).await.map_err(usage_or)?;
            if results.is_empty() {
                println!("no PostgreSQL source has a backup to drill");
            }
            let mut failed = false;
            for r in &results {
                let took = r.duration.as_secs_f64();
                if r.passed() {
                    println!(
                        "{} {}: pass: restored, {} tables with the row counts of the dump, in {took:.1} s",
                        r.source, r.backup, r.tables
                    );
                } else {
                    failed = true;
                    let why = r.error.clone().unwrap_or_else(|| r.mismatches.join("; "));
                    println!("{} {}: FAIL after {took:.1} s: {why}", r.source, r.backup);
                }
            }
            Ok(if failed { Exit::Failed } else { Exit::Ok })
        }
        BackupCommand::DrillIdentity { action } => drill_identity(ctx, action, &actor).await,
        BackupCommand::Keygen { out } => match keygen(&out) {
            std::process::ExitCode::SUCCESS => Ok(Exit::Ok),
            _ => Ok(Exit::Failed),
        },
    }
}

async fn drill_identity(ctx: &Ctx, action: DrillIdentityCommand, actor: &Actor) -> Result<Exit> {
    use rampart_backup::drill::{DRILL_IDENTITY, DRILL_IDENTITY_CONTEXT};
    let master = || -> Result<MasterKey> {
        let key = crate::serve::read_key(&ctx.dir.master_key())?;
        MasterKey::from_bytes(&key)
            .map_err(|e| exit_usage(format!("{}: {e}", ctx.dir.master_key().display())))
    };
    match action {
        DrillIdentityCommand::Set { identity } => {
            let ids = rampart_backup::keys::read_identities(&identity).map_err(usage_or)?;
            let recipients: Vec<&str> = ctx
                .config
                .backup
                .recipients
                .iter()
                .map(|r| r.as_str())
                .collect();
            let publics: Vec<String> = ids.iter().map(|i| i.to_public().to_string()).collect();
            if !publics.iter().any(|p| recipients.contains(&p.as_str())) {
                return Err(exit_usage(format!(
                    "{} cannot decrypt the backups: its public key ({}) is not in backup.recipients",
                    identity.display(),
                    publics.join(", ")
                )));
            }
            let text = rampart_backup::keys::identities_text(&ids);
            let sealed = master()?
                .seal(DRILL_IDENTITY_CONTEXT, text.as_bytes())
                .map_err(|e| anyhow::anyhow!("cannot seal the identity: {e}"))?;
            let event = AuditEvent::new(actor.clone(), Action::BackupDrillIdentity, "set")
                .detail("public_keys", publics.join(","));
            ctx.store
                .set_meta_audited(DRILL_IDENTITY, Some(&sealed), event)
                .await?;
            println!(
                "stored (sealed under the master key): the daily drill now restores backups for {}",
                publics.join(", ")
            );
            Ok(Exit::Ok)
        }
        DrillIdentityCommand::Clear => {
            let event = AuditEvent::new(actor.clone(), Action::BackupDrillIdentity, "clear");
            ctx.store
                .set_meta_audited(DRILL_IDENTITY, None, event)
                .await?;
            println!("removed: drills check hashes only; restores are unverified");
            Ok(Exit::Ok)
        }
        DrillIdentityCommand::Status => {
            match ctx.store.meta(DRILL_IDENTITY).await? {
                None => {
                    println!("no drill identity: drills check hashes only; restores are unverified")
                }
                Some(sealed) => {
                    let opened = master()?.open(DRILL_IDENTITY_CONTEXT, &sealed).ok();
                    let ids = opened
                        .and_then(|p| String::from_utf8(p.expose_secret().clone()).ok())
                        .map(|t| rampart_backup::keys::parse_identities(&t))
                        .unwrap_or_default();
                    if ids.is_empty() {
                        println!("a drill identity is stored but this master key cannot open it");
                        return Ok(Exit::Failed);
                    }
                    let publics: Vec<String> =
                        ids.iter().map(|i| i.to_public().to_string()).collect();
                    println!("drill identity stored: {}", publics.join(", "));
                }
            }
            Ok(Exit::Ok)
        }
    }
}

/// `rampart backup keygen`: needs no data directory (operators run it on their own machine).
pub fn keygen(out: &std::path::Path) -> std::process::ExitCode {
    match rampart_backup::keys::keygen(out, Timestamp::now()) {
        Ok(public) => {
            eprintln!(
                "wrote {} (mode 0600): keep it offline; rampart never needs it except to restore",
                out.display()
            );
            println!("{public}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rampart: {e}");
            std::process::ExitCode::from(64)
        }
    }
}

/// Errors that are the operator's to fix exit 64; the others exit 1.
fn usage_or(e: BackupError) -> anyhow::Error {
    match e {
        BackupError::NoRecipients | BackupError::NotFound(_) | BackupError::WrongIdentity => {
            exit_usage(e.to_string())
        }
        other => other.into(),
    }
}

fn print_plan(plan: &rampart_backup::Plan) {
    let rows = plan
        .decisions
        .iter()
        .map(|d| {
            vec![
                d.id.clone(),
                d.source.clone(),
                d.started.strftime("%Y-%m-%d %H:%M UTC").to_string(),
                match d.verdict {
                    Verdict::Keep => "keep".into(),
                    Verdict::Delete => "DELETE".into(),
                },
                d.reasons
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ]
        })
        .collect();
    println!(
        "{}",
        table(&["id", "source", "started", "verdict", "why"], rows)
    );
    let deletions = plan.deletions().count();
    println!(
        "dry run: {deletions} would be deleted, {} kept",
        plan.decisions.len() - deletions
    );
}

fn time(us: i64) -> String {
    Timestamp::from_microsecond(us)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

fn row_json(r: &BackupRow) -> String {
    serde_json::json!({
        "id": r.id,
        "source": r.source,
        "kind": r.kind,
        "started": time(r.started_us),
        "finished": time(r.finished_us),
        "storage": r.storage,
        "object_key": r.object_key,
        "size_bytes": r.size_bytes,
        "raw_bytes": r.raw_bytes,
        "sha256": r.sha256,
        "row_counts": serde_json::from_str::<serde_json::Value>(&r.row_counts).unwrap_or_default(),
        "pinned": r.pinned,
        "verification": r.verification,
    })
    .to_string()
}

/// A progress bar (bytes, throughput, ETA) on stderr when it is a terminal.
fn progress_bar(total: i64, done: Arc<AtomicU64>) -> Option<tokio::task::JoinHandle<()>> {
    let bar = super::terminal_bar(
        u64::try_from(total).unwrap_or(0),
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )?;
    Some(tokio::spawn(async move {
        loop {
            bar.set_position(done.load(Ordering::Relaxed));
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }))
}

//! `rampart audit verify|checkpoint|search|tail|export`.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rampart_audit::{AuditRecord, Checkpoint, SigningKey, Verifier};
use rampart_store::{AuditQuery, Store};

use super::{Ctx, table};
use crate::{Exit, exit_usage};

/// Audit log commands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain end to end; names the first broken sequence number.
    Verify {
        /// A checkpoint exported earlier (`rampart audit checkpoint`): also detects a cut-off tail.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Public key (hex) to check the checkpoint with (default: the one in the store).
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Sign the current head of the chain and print the checkpoint; keep it elsewhere.
    Checkpoint,
    /// Search records, newest first.
    Search {
        /// Only this actor, e.g. user:alice or system.
        #[arg(long)]
        actor: Option<String>,
        /// Only actions starting with this, e.g. login or user.create.
        #[arg(long)]
        action: Option<String>,
        /// Only this outcome: success, failure or denied.
        #[arg(long)]
        outcome: Option<String>,
        /// At most this many records (1-1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the newest records; with --follow, keep printing new ones.
    Tail {
        /// How many to start with.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u32,
        /// Keep waiting for new records.
        #[arg(short, long)]
        follow: bool,
    },
    /// Export records as JSON lines, oldest first.
    Export {
        /// Only records after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

/// Runs an audit command.
pub async fn run(ctx: &Ctx, command: AuditCommand) -> Result<Exit> {
    match command {
        AuditCommand::Verify {
            checkpoint,
            public_key,
        } => verify(ctx, checkpoint, public_key).await,
        AuditCommand::Checkpoint => {
            let key = SigningKey::from_pkcs8(
                &std::fs::read(ctx.dir.audit_key()).context("cannot read the audit signing key")?,
            )?;
            let cp = store_checkpoint(&ctx.store, &key).await?;
            println!("{}", cp.to_line());
            eprintln!("public key: {}", key.public_key_hex());
            Ok(Exit::Ok)
        }
        AuditCommand::Search {
            actor,
            action,
            outcome,
            limit,
            json,
        } => {
            let q = AuditQuery {
                actor,
                action_prefix: action,
                outcome,
                limit,
                ..Default::default()
            };
            let records = ctx.store.audit_search(&q).await?;
            if json {
                print_json(&records)?;
            } else {
                println!("{}", records_table(&records));
            }
            Ok(Exit::Ok)
        }
        AuditCommand::Tail { lines, follow } => {
            let mut records = ctx
                .store
                .audit_search(&AuditQuery {
                    limit: lines,
                    ..Default::default()
                })
                .await?;
            records.reverse();
            print_json(&records)?;
            let mut last = records.last().map(|r| r.seq).unwrap_or(0);
            if !follow {
                return Ok(Exit::Ok);
            }
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let page = ctx.store.audit_page(last, 1000).await?;
                if let Some(r) = page.last() {
                    last = r.seq;
                }
                print_json(&page)?;
            }
        }
        AuditCommand::Export { after } => {
            let mut next = after;
            loop {
                let page = ctx.store.audit_page(next, 10_000).await?;
                let Some(last) = page.last() else { break };
                next = last.seq;
                print_json(&page)?;
            }
            Ok(Exit::Ok)
        }
    }
}

async fn verify(
    ctx: &Ctx,
    checkpoint: Option<PathBuf>,
    public_key: Option<String>,
) -> Result<Exit> {
    let checkpoint = match checkpoint {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| exit_usage(format!("cannot read {}: {e}", path.display())))?;
            let cp = Checkpoint::parse(text.trim())
                .map_err(|e| exit_usage(format!("{}: {e}", path.display())))?;
            let key =
                match public_key {
                    Some(k) => k,
                    None => ctx.store.meta("audit.public_key").await?.ok_or_else(|| {
                        exit_usage("no public key in the store: pass --public-key")
                    })?,
                };
            if let Err(e) = cp.verify(&key) {
                eprintln!("rampart: {}: {e}", path.display());
                return Ok(Exit::Failed);
            }
            Some(cp)
        }
    };
    let mut verifier = checkpoint
        .as_ref()
        .map(Verifier::with_checkpoint)
        .unwrap_or_default();
    let start = Instant::now();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let outcome = ctx
        .store
        .audit_verify(&mut verifier, |n| {
            if tty {
                eprint!("\rverifying… {n} records");
            }
        })
        .await?;
    if tty {
        eprintln!();
    }
    let result = outcome.and_then(|()| verifier.finish());
    let secs = start.elapsed().as_secs_f64();
    match result {
        Ok(n) => {
            let rate = if secs > 0.0 { n as f64 / secs } else { 0.0 };
            println!(
                "audit chain intact: {n} records verified in {secs:.2} s ({rate:.0} records/s)"
            );
            if let Some(cp) = checkpoint {
                println!("checkpoint at sequence {} matches", cp.seq);
            }
            Ok(Exit::Ok)
        }
        Err(b) => {
            println!("{b}");
            Ok(Exit::Failed)
        }
    }
}

/// Signs the current head, stores it in the store's meta table, and returns it.
pub async fn store_checkpoint(store: &Store, key: &SigningKey) -> Result<Checkpoint> {
    let head = store.audit_head().await?;
    let (seq, hash) = match &head {
        Some(r) => {
            let mut h = [0u8; 32];
            hex::decode_to_slice(&r.hash, &mut h).context("the stored head hash is malformed")?;
            (r.seq, h)
        }
        None => (0, rampart_audit::GENESIS),
    };
    let cp = key.sign(seq, hash, jiff::Timestamp::now().as_microsecond());
    store.set_meta("audit.checkpoint", &cp.to_line()).await?;
    store
        .set_meta("audit.public_key", &key.public_key_hex())
        .await?;
    Ok(cp)
}

fn print_json(records: &[AuditRecord]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for r in records {
        serde_json::to_writer(&mut out, r)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

fn records_table(records: &[AuditRecord]) -> String {
    let rows = records
        .iter()
        .map(|r| {
            vec![
                r.seq.to_string(),
                jiff::Timestamp::from_microsecond(r.time_us)
                    .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default(),
                r.actor.clone(),
                r.action.clone(),
                r.subject.clone(),
                r.outcome.clone(),
                r.source.clone(),
                r.details.clone(),
            ]
        })
        .collect();
    table(
        &[
            "#",
            "time (UTC)",
            "actor",
            "action",
            "subject",
            "outcome",
            "source",
            "details",
        ],
        rows,
    )
}

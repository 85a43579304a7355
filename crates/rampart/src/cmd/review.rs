//! `rampart review …`: access review campaigns from the command line (ACC-7). The operator
//! decides items as `cli:<user>` (never the grant's holder), like `rampart access approve`.

use std::path::PathBuf;

use anyhow::Result;
use rampart_store::reviews::Decision;

use super::{Ctx, table};
use crate::{Exit, exit_usage};

/// Review campaign commands.
#[derive(Debug, clap::Subcommand)]
pub enum ReviewCommand {
    /// Open a campaign now over every grant that reaches a target.
    Start {
        /// Days until the deadline (0 to 90; default policy.review_days). 0 puts the
        /// deadline now: the campaign closes at the next sweep (a drill).
        #[arg(long)]
        days: Option<i64>,
    },
    /// List campaigns, newest first, with their outcome counts.
    List,
    /// Show a campaign's grants, facts and decisions.
    Show {
        /// The campaign's id (`rampart review list`).
        id: String,
    },
    /// Keep or revoke the grant of one item, with a reason.
    Decide {
        /// The item's id (`rampart review show`).
        item: String,
        /// `keep` or `revoke`.
        #[arg(value_parser = ["keep", "revoke"])]
        decision: String,
        /// Why (scrubbed before it is stored).
        #[arg(long)]
        reason: String,
    },
    /// Export a campaign as evidence.
    Export {
        /// The campaign's id.
        id: String,
        /// As CSV (the only format).
        #[arg(long)]
        csv: bool,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Close the campaigns past their deadline now, revoking or flagging what is still
    /// open (`rampart serve` does this every minute).
    Sweep,
}

fn when(us: i64) -> String {
    rampart_web::reviews::when(Some(us))
}

/// Runs one review command.
pub async fn run(ctx: &Ctx, command: ReviewCommand) -> Result<Exit> {
    let now = jiff::Timestamp::now().as_microsecond();
    let store = &ctx.store;
    match command {
        ReviewCommand::Start { days } => {
            let days = days.unwrap_or(ctx.config.policy.review_days.get());
            if !(0..=90).contains(&days) {
                return Err(exit_usage("--days must be from 0 to 90"));
            }
            let c = rampart_web::reviews::start(store, &ctx.config.policy, ctx.actor(), now, days)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no campaign was opened"))?;
            let items = store.review_items(&c.id).await?;
            println!("{}", c.id);
            let webhook = crate::serve::alerts_webhook(&ctx.config)?;
            rampart_web::reviews::notice(
                store,
                webhook.as_deref(),
                &c,
                rampart_web::access_hooks::CLI_WAIT,
            )
            .await;
            eprintln!(
                "rampart: {} grants to review by {}",
                items.len(),
                when(c.deadline_us)
            );
        }
        ReviewCommand::List => {
            let mut rows = Vec::new();
            for c in store.review_campaigns().await? {
                let items = store.review_items(&c.id).await?;
                let o = rampart_web::reviews::outcome(&c, &items);
                rows.push(vec![
                    c.id.clone(),
                    when(c.started_us),
                    when(c.deadline_us),
                    if c.open { "open" } else { "closed" }.to_owned(),
                    o.total.to_string(),
                    o.kept.to_string(),
                    o.revoked.to_string(),
                    o.missed.to_string(),
                    o.flagged.to_string(),
                    o.open.to_string(),
                    o.unused.to_string(),
                ]);
            }
            println!(
                "{}",
                table(
                    &[
                        "id", "started", "deadline", "state", "grants", "kept", "revoked",
                        "missed", "flagged", "open", "unused"
                    ],
                    rows
                )
            );
        }
        ReviewCommand::Show { id } => {
            let c = store
                .review_campaign(&id)
                .await?
                .ok_or_else(|| exit_usage(format!("no review campaign {id}")))?;
            let items = store.review_items(&c.id).await?;
            println!(
                "campaign {} started {} by {}, deadline {} ({}); missed items: {}",
                c.id,
                when(c.started_us),
                c.started_by,
                when(c.deadline_us),
                if c.open { "open" } else { "closed" },
                c.missed.as_str()
            );
            let rows = items
                .iter()
                .map(|i| {
                    vec![
                        i.id.clone(),
                        i.account.clone(),
                        i.role.clone(),
                        format!("{} by {}", when(i.granted_us), i.granted_by),
                        i.reviewer.clone(),
                        i.last_use_us.map_or_else(|| "never".into(), when),
                        i.sessions.to_string(),
                        i.targets.clone(),
                        if i.unused(c.started_us) { "yes" } else { "" }.to_owned(),
                        i.decision.as_str().to_owned(),
                        i.reason.clone(),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(
                    &[
                        "item",
                        "account",
                        "role",
                        "granted",
                        "reviewer",
                        "last use",
                        "sessions",
                        "targets",
                        "unused 30d",
                        "decision",
                        "reason"
                    ],
                    rows
                )
            );
        }
        ReviewCommand::Decide {
            item,
            decision,
            reason,
        } => {
            let reason = reason.trim();
            if reason.is_empty() || reason.chars().count() > rampart_web::reviews::MAX_REASON {
                return Err(exit_usage("--reason must be 1 to 500 characters"));
            }
            let actor = ctx.actor();
            let decided = store
                .decide_review(
                    &item,
                    decision == "keep",
                    &rampart_web::scrubbed(reason),
                    &actor.to_string(),
                    true,
                    actor,
                    now,
                )
                .await?
                .map_err(|e| exit_usage(e.to_string()))?;
            match decided {
                Decision::Revoke => println!("revoked"),
                _ => println!("kept"),
            }
        }
        ReviewCommand::Export { id, csv, out } => {
            if !csv {
                return Err(exit_usage("give --csv (the only export format)"));
            }
            let c = store
                .review_campaign(&id)
                .await?
                .ok_or_else(|| exit_usage(format!("no review campaign {id}")))?;
            let items = store.review_items(&c.id).await?;
            let text = rampart_web::reviews::csv(&c, &items);
            let ev = rampart_audit::AuditEvent::new(
                ctx.actor(),
                rampart_audit::Action::AuditExport,
                format!("review {}", c.id),
            )
            .detail("format", "csv");
            store.append_audit(&[ev]).await?;
            match out {
                Some(path) => std::fs::write(&path, text)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
                None => print!("{text}"),
            }
        }
        ReviewCommand::Sweep => {
            let (n, closed) = rampart_web::reviews::sweep(store, now).await?;
            println!("{n} open items decided at their deadline");
            let webhook = crate::serve::alerts_webhook(&ctx.config)?;
            for c in &closed {
                rampart_web::reviews::notice(
                    store,
                    webhook.as_deref(),
                    c,
                    rampart_web::access_hooks::CLI_WAIT,
                )
                .await;
            }
        }
    }
    Ok(Exit::Ok)
}

//! `rampart anomaly …`: the anomaly rules over the audit log (ACC-7) on demand.

use anyhow::Result;

use super::{Ctx, table};
use crate::Exit;

/// Anomaly commands.
#[derive(Debug, clap::Subcommand)]
pub enum AnomalyCommand {
    /// Run the rules over the audit records not read yet (`rampart serve` does this every
    /// minute) and print the alerts raised.
    Scan,
    /// Acknowledge an alert with a note (`/anomalies` lists them with their record numbers).
    Ack {
        /// The alert's audit record number.
        seq: u64,
        /// What it was (scrubbed before it is stored).
        #[arg(long)]
        note: String,
    },
}

/// Runs one anomaly command.
pub async fn run(ctx: &Ctx, command: AnomalyCommand) -> Result<Exit> {
    match command {
        AnomalyCommand::Scan => {
            // Learning the history can take a while the first time (or after an upgrade)
            // on a long audit log: a bar on a terminal.
            let bar = super::terminal_bar(
                0,
                "learning the audit history {bar:40} {percent}% ETA {eta}",
            );
            let mut watch = rampart_web::anomalies::Watch::start_with(&ctx.store, &|at, until| {
                if let Some(bar) = &bar {
                    bar.set_length(until);
                    bar.set_position(at);
                }
            })
            .await?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            // Every record since the last look, however many steps that takes.
            let mut alerts = watch.step(&ctx.store).await?;
            while watch.is_behind() {
                alerts.extend(watch.step(&ctx.store).await?);
            }
            // The next scan (or `serve`) starts from here rather than from the first record.
            watch.save(&ctx.store).await?;
            let rows = alerts
                .iter()
                .map(|a| {
                    vec![
                        a.rule.as_str().to_owned(),
                        a.subject.clone(),
                        a.summary.clone(),
                        a.seqs
                            .iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                    ]
                })
                .collect();
            println!("{}", table(&["rule", "about", "what", "records"], rows));
            eprintln!("rampart: {} alerts raised", alerts.len());
        }
        AnomalyCommand::Ack { seq, note } => {
            rampart_web::anomalies::acknowledge(&ctx.store, seq, &note, ctx.actor())
                .await?
                .map_err(|e| crate::exit_usage(e.to_string()))?;
            println!("acknowledged");
        }
    }
    Ok(Exit::Ok)
}

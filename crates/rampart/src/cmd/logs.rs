//! `rampart logs …`: source tokens, ingesting files and pipes, search and tail (LOG-1).

use std::io::{BufRead, Read};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rampart_audit::{Action, AuditEvent};
use rampart_core::{Clock, SystemClock};
use rampart_logs::parse::ndjson;
use rampart_logs::store::{LogStore, Query, StoredLine};
use rampart_logs::{Entry, Ingest, Level, Parsed, SourceName};

use super::{Ctx, table};
use crate::{Exit, exit_usage};

/// Log commands.
#[derive(Debug, clap::Subcommand)]
pub enum LogsCommand {
    /// Manage the ingest tokens of log sources.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Store the lines of a file (or `-` for standard input): JSON lines are read as NDJSON,
    /// other lines are stored as plain messages.
    Ingest {
        /// File, or `-` for standard input.
        file: String,
        /// Source name to store the lines under.
        #[arg(long)]
        source: String,
    },
    /// Search stored lines, newest first.
    Search {
        /// Words that must all appear (message or fields). Empty: every line.
        #[arg(default_value = "")]
        query: String,
        #[command(flatten)]
        filter: Filter,
        /// Most lines shown.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The latest lines; with -f, keep printing new ones.
    Tail {
        #[command(flatten)]
        filter: Filter,
        /// Lines shown first.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u32,
        /// Follow: print new lines as they arrive (Ctrl-C stops).
        #[arg(short = 'f', long)]
        follow: bool,
    },
}

/// Filters shared by search and tail.
#[derive(Debug, clap::Args)]
pub struct Filter {
    /// How far back: 90s, 30m, 1h, 2d.
    #[arg(long, default_value = "24h")]
    since: String,
    /// Lowest level: debug, info, warn, error, fatal.
    #[arg(long)]
    level: Option<String>,
    /// One source.
    #[arg(long)]
    source: Option<String>,
}

/// Token commands.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Issue a token for SOURCE held by a service account; printed once.
    Create {
        /// Source name (1-64 of a-z, 0-9, '.', '_', '-').
        source: String,
        /// The service account that holds the token.
        #[arg(long)]
        account: String,
    },
    /// List tokens (never their values).
    List,
    /// Revoke every live token of SOURCE.
    Revoke {
        /// Source name.
        source: String,
    },
}

/// Runs a logs command.
pub async fn run(ctx: &Ctx, command: LogsCommand) -> Result<Exit> {
    match command {
        LogsCommand::Token(c) => token(ctx, c).await,
        LogsCommand::Ingest { file, source } => ingest(ctx, &file, &source).await,
        LogsCommand::Search {
            query,
            filter,
            limit,
            json,
        } => {
            let store = open_store(ctx).await?;
            let mut q = filter.query(SystemClock.now().as_microsecond())?;
            q.text = Some(query);
            q.limit = limit;
            let lines = store.search(&q).await?;
            for line in lines.iter().rev() {
                print_line(line, json);
            }
            store.close().await;
            Ok(Exit::Ok)
        }
        LogsCommand::Tail {
            filter,
            lines,
            follow,
        } => {
            let store = open_store(ctx).await?;
            let mut q = filter.query(SystemClock.now().as_microsecond())?;
            q.limit = lines;
            let mut last = q.since_us.unwrap_or(0);
            let mut seen = print_batch(&store.search(&q).await?, &mut last);
            if !follow {
                store.close().await;
                return Ok(Exit::Ok);
            }
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                q.since_us = Some(last);
                q.limit = 10_000;
                let batch: Vec<StoredLine> = store
                    .search(&q)
                    .await?
                    .into_iter()
                    .filter(|l| !seen.contains(&key(l)))
                    .collect();
                let printed = print_batch(&batch, &mut last);
                seen.retain(|k| k.0 >= last);
                seen.extend(printed);
            }
        }
    }
}

impl Filter {
    fn query(&self, now_us: i64) -> Result<Query> {
        let ago = parse_ago(&self.since).ok_or_else(|| {
            exit_usage(format!(
                "--since {:?} is not a duration: use a number and s, m, h or d (30m, 1h, 2d)",
                self.since
            ))
        })?;
        let min_level = match &self.level {
            None => None,
            Some(l) => Some(Level::parse(l).ok_or_else(|| {
                exit_usage(format!(
                    "--level {l:?} is not a level: use debug, info, warn, error or fatal"
                ))
            })?),
        };
        Ok(Query {
            text: None,
            since_us: Some(now_us.saturating_sub(ago)),
            until_us: None,
            min_level,
            source: self.source.clone(),
            limit: 100,
        })
    }
}

/// `90s`, `30m`, `1h`, `2d` in microseconds; at most 400 days.
pub(crate) fn parse_ago(text: &str) -> Option<i64> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let number: i64 = text.get(..text.len() - unit.len_utf8())?.parse().ok()?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    let total = number.checked_mul(seconds)?;
    (0..=400 * 86_400)
        .contains(&total)
        .then(|| total * 1_000_000)
}

type Key = (i64, String, String);

fn key(line: &StoredLine) -> Key {
    (line.time_us, line.source.clone(), line.message.clone())
}

/// Prints newest-first results oldest first; returns their keys and moves `last`.
fn print_batch(lines: &[StoredLine], last: &mut i64) -> Vec<Key> {
    let mut keys = Vec::new();
    for line in lines.iter().rev() {
        print_line(line, false);
        *last = (*last).max(line.time_us);
        keys.push(key(line));
    }
    keys
}

fn print_line(line: &StoredLine, json: bool) {
    let time = jiff::Timestamp::from_microsecond(line.time_us)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default();
    if json {
        let fields: serde_json::Value = line
            .fields
            .as_deref()
            .and_then(|f| serde_json::from_str(f).ok())
            .unwrap_or(serde_json::Value::Null);
        println!(
            "{}",
            serde_json::json!({
                "time": time,
                "level": line.level.as_str(),
                "source": line.source,
                "message": line.message,
                "fields": fields,
                "flags": line.flags,
            })
        );
    } else {
        let fields = line.fields.as_deref().unwrap_or("");
        println!(
            "{time} {:<5} {} {} {fields}",
            line.level.as_str(),
            line.source,
            line.message
        );
    }
}

async fn open_store(ctx: &Ctx) -> Result<LogStore> {
    LogStore::open(&ctx.config.logs_dir(&ctx.dir.0))
        .await
        .context("cannot open the log store")
}

async fn token(ctx: &Ctx, command: TokenCommand) -> Result<Exit> {
    match command {
        TokenCommand::Create { source, account } => {
            let source = SourceName::parse(&source).map_err(|e| exit_usage(e.to_string()))?;
            let token = format!("rlt_{}", rampart_identity::random_token()?);
            let event = AuditEvent::new(ctx.actor(), Action::LogTokenCreate, source.as_str())
                .detail("account", account.clone());
            ctx.store
                .create_log_token(
                    source.as_str(),
                    &account,
                    &rampart_web::logs::token_hash(&token),
                    event,
                )
                .await
                .map_err(|e| match e {
                    rampart_store::StoreError::NotFound(what) => {
                        exit_usage(format!("no {what}: create one with `rampart user add NAME --kind service --owner PERSON --email …`"))
                    }
                    other => other.into(),
                })?;
            println!("{token}");
            eprintln!(
                "Token for source {} held by {account}. It is shown only now: send it as `Authorization: Bearer TOKEN`, or in syslog as [rampart@32473 token=\"TOKEN\"].",
                source.as_str()
            );
            Ok(Exit::Ok)
        }
        TokenCommand::List => {
            let rows = ctx
                .store
                .log_tokens()
                .await?
                .into_iter()
                .map(|t| {
                    vec![
                        t.source,
                        t.account,
                        time_s(t.created_us),
                        t.revoked_us.map(time_s).unwrap_or_else(|| "live".into()),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(&["source", "held by", "created", "revoked"], rows)
            );
            Ok(Exit::Ok)
        }
        TokenCommand::Revoke { source } => {
            let event = AuditEvent::new(ctx.actor(), Action::LogTokenRevoke, source.clone());
            let n = ctx
                .store
                .revoke_log_tokens(&source, event)
                .await
                .map_err(|e| match e {
                    rampart_store::StoreError::NotFound(what) => exit_usage(format!("no {what}")),
                    other => other.into(),
                })?;
            println!("revoked {n} token(s) of {source}");
            Ok(Exit::Ok)
        }
    }
}

fn time_s(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// Lines longer than this are cut while reading (the store cuts further, with its marker).
const MAX_READ_LINE: u64 = 16 * 1024 * 1024;
/// Lines stored per batch.
const BATCH: usize = 1000;

async fn ingest(ctx: &Ctx, file: &str, source: &str) -> Result<Exit> {
    let source = SourceName::parse(source).map_err(|e| exit_usage(e.to_string()))?;
    let reader: Box<dyn Read + Send> = if file == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(file)
                .map_err(|e| exit_usage(format!("cannot read {file}: {e}")))?,
        )
    };
    let scrubber = rampart_scrub::Scrubber::new(&rampart_scrub::ScrubConfig::default(), None)?;
    let store = open_store(ctx).await?;
    let ingest = Ingest::new(
        store,
        Arc::new(scrubber),
        ctx.config.logs.clone(),
        Arc::new(SystemClock),
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Parsed>(4);
    let reading = tokio::task::spawn_blocking(move || read_batches(reader, &tx));
    let mut stored = 0usize;
    let mut errors = 0usize;
    while let Some(batch) = rx.recv().await {
        let report = ingest.ingest(source.as_str(), batch).await?;
        for e in &report.errors {
            eprintln!("line {}: {}", e.line, e.reason);
        }
        stored += report.stored;
        errors += report.errors.len();
    }
    reading.await??;
    ingest.store().close().await;
    println!(
        "stored {stored} line(s) from {file} as {}; {errors} unreadable",
        source.as_str()
    );
    Ok(if errors == 0 { Exit::Ok } else { Exit::Failed })
}

/// Reads bounded lines into batches; a JSON object line is NDJSON, any other line is text.
fn read_batches(
    reader: Box<dyn Read + Send>,
    tx: &tokio::sync::mpsc::Sender<Parsed>,
) -> Result<()> {
    let mut reader = std::io::BufReader::with_capacity(1 << 20, reader);
    let mut batch = Parsed::default();
    let mut number = 0u64;
    loop {
        let mut raw = Vec::new();
        let n = reader
            .by_ref()
            .take(MAX_READ_LINE)
            .read_until(b'\n', &mut raw)?;
        if n == 0 {
            break;
        }
        if !raw.ends_with(b"\n") && u64::try_from(raw.len()).unwrap_or(0) == MAX_READ_LINE {
            // Skip the rest of an overlong line.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                let m = reader.by_ref().take(1 << 20).read_until(b'\n', &mut rest)?;
                if m == 0 || rest.ends_with(b"\n") {
                    break;
                }
            }
        }
        number += 1;
        let trimmed = raw.strip_suffix(b"\n").unwrap_or(&raw);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        if trimmed.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if trimmed.first() == Some(&b'{') {
            match ndjson::line(trimmed) {
                Ok(entry) => batch.entries.push(entry),
                Err(reason) => batch.errors.push(rampart_logs::LineError {
                    line: number,
                    reason,
                }),
            }
        } else {
            batch.entries.push(Entry::message(
                String::from_utf8_lossy(trimmed).into_owned(),
            ));
        }
        if batch.entries.len() >= BATCH {
            let full = std::mem::take(&mut batch);
            if tx.blocking_send(full).is_err() {
                return Ok(());
            }
        }
    }
    if !batch.entries.is_empty() || !batch.errors.is_empty() {
        let _ = tx.blocking_send(batch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read() {
        assert_eq!(parse_ago("90s"), Some(90_000_000));
        assert_eq!(parse_ago("1h"), Some(3_600_000_000));
        assert_eq!(parse_ago("2d"), Some(172_800_000_000));
        assert_eq!(parse_ago("1y"), None);
        assert_eq!(parse_ago("h"), None);
        assert_eq!(parse_ago("9999d"), None);
    }
}

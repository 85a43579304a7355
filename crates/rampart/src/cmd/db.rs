//! `rampart db …`: database tokens, upstream credentials, and what the PostgreSQL gateway
//! recorded (sessions, database changes: LOG-3, LOG-4).

use std::io::BufRead;

use anyhow::Result;
use rampart_audit::{Action, AuditEvent, AuditRecord};
use rampart_identity::sealed::MasterKey;
use rampart_store::AuditQuery;

use super::{Ctx, table};
use crate::{Exit, exit_usage};

/// Database gateway commands.
#[derive(Debug, clap::Subcommand)]
pub enum DbCommand {
    /// Database tokens: the password a person uses through the gateway.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Upstream credentials per target and database role.
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// Database sessions through the gateway, newest first.
    Sessions {
        /// How far back: 30m, 24h, 7d.
        #[arg(long, default_value = "24h")]
        since: String,
    },
    /// Database changes (writes, DDL, privilege statements), newest first (LOG-4).
    Changes {
        /// How far back: 30m, 24h, 7d.
        #[arg(long, default_value = "24h")]
        since: String,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
    },
    /// The statements of one session, in order.
    Statements {
        /// The session id (from `rampart db sessions`).
        session: String,
    },
}

/// Token commands.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Issue a token for USER on TARGET as a database role; printed once.
    Issue {
        /// The person's user name.
        user: String,
        /// The postgres target.
        target: String,
        /// The database role (a grant of the person must name it).
        #[arg(long)]
        role: String,
        /// Lifetime in hours (1 to 12; default postgres.token_hours).
        #[arg(long)]
        hours: Option<u32>,
    },
    /// List tokens (never their values).
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token by id.
    Revoke {
        /// Token id.
        id: String,
    },
}

/// Credential commands.
#[derive(Debug, clap::Subcommand)]
pub enum CredentialCommand {
    /// Set the credential rampart logs in with upstream for ROLE on TARGET. The password is
    /// read from the first line of standard input, sealed, and never shown again.
    Set {
        /// The postgres target.
        target: String,
        /// The database role people ask for.
        role: String,
        /// The user name upstream (default: the role).
        #[arg(long)]
        username: Option<String>,
    },
}

/// Runs a db command.
pub async fn run(ctx: &Ctx, command: DbCommand) -> Result<Exit> {
    match command {
        DbCommand::Token(TokenCommand::Issue {
            user,
            target,
            role,
            hours,
        }) => {
            let hours = hours.unwrap_or(ctx.config.postgres.token_hours);
            let issued_by = ctx.actor().to_string();
            let (token, row) = rampart_web::ops::issue_db_token(
                &ctx.store,
                &user,
                &target,
                &role,
                hours,
                &issued_by,
                ctx.actor(),
            )
            .await
            .map_err(|e| exit_usage(e.to_string()))?;
            let port = ctx.config.postgres.listen.map_or(6432, |a| a.port());
            let host = &ctx.config.web.public_host;

            println!(
                "token {} for {}#{} as {} (expires in {hours} h):",
                row.id, row.account, row.target, row.db_role
            );
            println!("{}", token.expose_secret());
            println!();
            println!(
                "PGPASSWORD={} psql \"host={host} port={port} user={}#{} dbname={} sslmode=require\"",
                token.expose_secret(),
                row.account,
                row.target,
                row.db_role
            );
            println!(
                "postgres://{}%23{}@{host}:{port}/{}?sslmode=require",
                row.account, row.target, row.db_role
            );
        }
        DbCommand::Token(TokenCommand::List { user }) => {
            let now = jiff::Timestamp::now().as_microsecond();
            let rows = ctx
                .store
                .db_tokens(user.as_deref())
                .await?
                .into_iter()
                .map(|t| {
                    let state = if t.revoked_us.is_some() {
                        "revoked"
                    } else if t.expires_us <= now {
                        "expired"
                    } else {
                        "live"
                    };
                    vec![
                        t.id,
                        t.account,
                        t.target,
                        t.db_role,
                        time(t.created_us),
                        time(t.expires_us),
                        state.into(),
                        t.issued_by,
                    ]
                })
                .collect();
            println!(
                "{}",
                table(
                    &[
                        "id",
                        "user",
                        "target",
                        "role",
                        "issued",
                        "expires",
                        "state",
                        "issued by"
                    ],
                    rows
                )
            );
        }
        DbCommand::Token(TokenCommand::Revoke { id }) => {
            let event = AuditEvent::new(ctx.actor(), Action::DbTokenRevoke, id.clone());
            ctx.store
                .revoke_db_token(&id, None, event)
                .await
                .map_err(|e| exit_usage(e.to_string()))?;
            println!("revoked {id}");
        }
        DbCommand::Credential(CredentialCommand::Set {
            target,
            role,
            username,
        }) => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let password =
                rampart_core::Secret::new(line.trim_end_matches(['\r', '\n']).to_owned());
            if password.expose_secret().is_empty() {
                return Err(exit_usage(
                    "give the password on the first line of standard input",
                ));
            }
            let key = std::fs::read(ctx.dir.master_key()).map_err(|e| {
                exit_usage(format!(
                    "cannot read {}: {e}",
                    ctx.dir.master_key().display()
                ))
            })?;
            let master = MasterKey::from_bytes(&key).map_err(|e| exit_usage(e.to_string()))?;
            let username = username.unwrap_or_else(|| role.clone());
            rampart_postgres::credential::set(
                &ctx.store,
                &master,
                &target,
                &role,
                &username,
                password.expose_secret().as_bytes(),
                ctx.actor(),
            )
            .await
            .map_err(|e| exit_usage(e.to_string()))?;
            println!("credential for role {role} on {target} sealed (it is not shown again)");
        }
        DbCommand::Sessions { since } => {
            let records = search(ctx, "db.session", &since).await?;
            let mut ends = std::collections::HashMap::new();
            for r in records
                .iter()
                .filter(|r| r.action == Action::DbSessionEnd.as_str())
            {
                if let Some(id) = detail(r, "session") {
                    ends.insert(id, r.clone());
                }
            }
            let rows = records
                .iter()
                .filter(|r| r.action == Action::DbSessionStart.as_str())
                .map(|r| {
                    let id = detail(r, "session").unwrap_or_default();
                    let end = ends.get(&id);
                    vec![
                        id.clone(),
                        r.actor.clone(),
                        r.subject.clone(),
                        detail(r, "db_role").unwrap_or_default(),
                        time(r.time_us),
                        end.map(|e| time(e.time_us))
                            .unwrap_or_else(|| "open".into()),
                        end.and_then(|e| detail(e, "statements"))
                            .unwrap_or_default(),
                        end.and_then(|e| detail(e, "reason")).unwrap_or_default(),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(
                    &[
                        "session",
                        "person",
                        "target",
                        "role",
                        "start",
                        "end",
                        "statements",
                        "ended by"
                    ],
                    rows
                )
            );
        }
        DbCommand::Changes { since, target } => {
            let rows = search(ctx, "db.change", &since)
                .await?
                .into_iter()
                .filter(|r| target.as_ref().is_none_or(|t| *t == r.subject))
                .map(|r| {
                    vec![
                        time(r.time_us),
                        r.actor.clone(),
                        r.subject.clone(),
                        detail(&r, "class").unwrap_or_default(),
                        detail(&r, "statement").unwrap_or_default(),
                        detail(&r, "rows").unwrap_or_default(),
                        r.outcome.clone(),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(
                    &[
                        "time",
                        "person",
                        "target",
                        "class",
                        "statement",
                        "rows",
                        "outcome"
                    ],
                    rows
                )
            );
        }
        DbCommand::Statements { session } => {
            let mut records = search(ctx, "db.", "400d").await?;
            records.retain(|r| {
                (r.action == Action::DbStatement.as_str() || r.action == Action::DbChange.as_str())
                    && detail(r, "session").as_deref() == Some(session.as_str())
            });
            records.reverse();
            let rows = records
                .into_iter()
                .map(|r| {
                    vec![
                        time(r.time_us),
                        detail(&r, "class").unwrap_or_default(),
                        detail(&r, "statement").unwrap_or_default(),
                        detail(&r, "command").unwrap_or_default(),
                        detail(&r, "rows").unwrap_or_default(),
                        detail(&r, "duration_us").unwrap_or_default(),
                        detail(&r, "sqlstate").unwrap_or_default(),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(
                    &[
                        "time",
                        "class",
                        "statement",
                        "command",
                        "rows",
                        "µs",
                        "sqlstate"
                    ],
                    rows
                )
            );
        }
    }
    Ok(Exit::Ok)
}

async fn search(ctx: &Ctx, prefix: &str, since: &str) -> Result<Vec<AuditRecord>> {
    let ago = super::logs::parse_ago(since).ok_or_else(|| {
        exit_usage(format!(
            "--since {since:?} is not a duration: use a number and s, m, h or d (30m, 24h, 7d)"
        ))
    })?;
    Ok(ctx
        .store
        .audit_search(&AuditQuery {
            action_prefix: Some(prefix.into()),
            since_us: Some(jiff::Timestamp::now().as_microsecond() - ago),
            limit: 1000,
            ..AuditQuery::default()
        })
        .await?)
}

fn detail(record: &AuditRecord, key: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(&record.details).ok()?;
    value.get(key)?.as_str().map(str::to_owned)
}

fn time(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

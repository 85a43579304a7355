//! `rampart apps …`: the configured apps behind the front door and their bearer tokens.

use anyhow::Result;
use rampart_audit::{Action, AuditEvent};

use super::{Ctx, table};
use crate::{Exit, exit_usage};

/// App commands.
#[derive(Debug, clap::Subcommand)]
pub enum AppsCommand {
    /// List the configured apps: how they are reached, their upstream and environment.
    List,
    /// Manage the bearer tokens API clients use for an app.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// Token commands.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Issue a token for APP held by a service account; printed once. The account still
    /// needs a grant on the app's http target.
    Create {
        /// App name (as in `[[apps]]`).
        app: String,
        /// The service account that holds the token.
        #[arg(long)]
        account: String,
    },
    /// List tokens (never their values).
    List,
    /// Revoke every live token of APP.
    Revoke {
        /// App name.
        app: String,
    },
}

/// Runs an apps command.
pub async fn run(ctx: &Ctx, command: AppsCommand) -> Result<Exit> {
    match command {
        AppsCommand::List => {
            let apps =
                rampart_proxy::config::validate(&ctx.config.apps, &ctx.config.web.public_host)
                    .map_err(|e| exit_usage(e.0))?;
            let rows = apps
                .iter()
                .map(|a| {
                    vec![
                        a.name.to_string(),
                        match &a.mount {
                            rampart_proxy::Mount::Host(h) => format!("host {h}"),
                            rampart_proxy::Mount::Prefix(p) => format!("prefix {p}"),
                        },
                        a.upstream.clone(),
                        a.environment.to_string(),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(&["app", "reached at", "upstream", "environment"], rows)
            );
            Ok(Exit::Ok)
        }
        AppsCommand::Token(TokenCommand::Create { app, account }) => {
            if !ctx.config.apps.iter().any(|a| a.name == app) {
                return Err(exit_usage(format!(
                    "no app {app:?} in [[apps]] of the configuration"
                )));
            }
            let token = format!(
                "{}{}",
                rampart_web::apps::TOKEN_PREFIX,
                rampart_identity::random_token()?
            );
            let event = AuditEvent::new(ctx.actor(), Action::AppTokenCreate, app.as_str())
                .detail("account", account.clone());
            ctx.store
                .create_app_token(&app, &account, &rampart_identity::token_hash(&token), event)
                .await
                .map_err(|e| match e {
                    rampart_store::StoreError::NotFound(what) => exit_usage(format!(
                        "no {what}: create one with `rampart user add NAME --kind service --owner PERSON --email …`"
                    )),
                    other => other.into(),
                })?;
            println!("{token}");
            eprintln!(
                "Token for app {app} held by {account}. It is shown only now: send it as `Authorization: Bearer TOKEN`. The account needs a grant on target {app}."
            );
            Ok(Exit::Ok)
        }
        AppsCommand::Token(TokenCommand::List) => {
            let rows = ctx
                .store
                .app_tokens()
                .await?
                .into_iter()
                .map(|t| {
                    vec![
                        t.app,
                        t.account,
                        time_s(t.created_us),
                        t.revoked_us.map(time_s).unwrap_or_else(|| "live".into()),
                    ]
                })
                .collect();
            println!("{}", table(&["app", "held by", "created", "revoked"], rows));
            Ok(Exit::Ok)
        }
        AppsCommand::Token(TokenCommand::Revoke { app }) => {
            let event = AuditEvent::new(ctx.actor(), Action::AppTokenRevoke, app.clone());
            let n = ctx.store.revoke_app_tokens(&app, event).await?;
            println!("revoked {n} token(s) of {app}");
            Ok(Exit::Ok)
        }
    }
}

fn time_s(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

//! `rampart user …` and `rampart admin …`.

use anyhow::Result;
use rampart_audit::{Action, AuditEvent};
use rampart_store::Account;

use super::{Ctx, table};
use crate::{Exit, exit_usage};

/// Account commands.
#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Create an account and print its one-time enrollment link.
    Add {
        /// Unique user name (2-32 of a-z, 0-9, '.', '_', '-').
        username: String,
        /// Unique email address.
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// person, third-party or service.
        #[arg(long, default_value = "person")]
        kind: String,
        /// The person responsible for a service account.
        #[arg(long)]
        owner: Option<String>,
    },
    /// List accounts.
    List,
    /// Show one account and its grants.
    Show {
        /// User name or email.
        user: String,
    },
    /// Disable an account: its sessions end at once.
    Disable {
        /// User name or email.
        user: String,
    },
    /// Enable a disabled account.
    Enable {
        /// User name or email.
        user: String,
    },
    /// Remove an account's second factors; it must enroll again at next login.
    ResetMfa {
        /// User name or email.
        user: String,
    },
}

/// Admin helpers.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Issue a new one-time enrollment link (24 h) for an account.
    EnrollLink {
        /// User name or email.
        user: String,
    },
}

/// Runs an account command.
pub async fn run(ctx: &Ctx, command: UserCommand) -> Result<Exit> {
    match command {
        UserCommand::Add {
            username,
            email,
            name,
            kind,
            owner,
        } => {
            let kind = kind.replace('-', "_");
            let (account, token) = rampart_web::ops::create_user(
                &ctx.store,
                ctx.actor(),
                &username,
                &email,
                &name,
                &kind,
                owner.as_deref(),
            )
            .await
            .map_err(|e| exit_usage(e.to_string()))?;
            println!("created {} ({})", account.username, account.kind.as_str());
            println!(
                "enrollment link (one use, 24 hours): {}/enroll/{token}",
                ctx.config.web.public_origin()
            );
        }
        UserCommand::List => {
            let rows = ctx
                .store
                .accounts()
                .await?
                .into_iter()
                .map(|a| {
                    vec![
                        a.username.to_string(),
                        a.email.as_str().to_owned(),
                        a.kind.as_str().to_owned(),
                        a.owner.clone().unwrap_or_default(),
                        if a.has_mfa() {
                            "yes".into()
                        } else {
                            "no".into()
                        },
                        if a.active {
                            "active".into()
                        } else {
                            "disabled".into()
                        },
                    ]
                })
                .collect();
            println!(
                "{}",
                table(&["user", "email", "kind", "owner", "mfa", "status"], rows)
            );
        }
        UserCommand::Show { user } => {
            let a = find(ctx, &user).await?;
            println!(
                "user:     {}\nemail:    {}\nname:     {}\nkind:     {}",
                a.username,
                a.email.as_str(),
                a.display_name,
                a.kind.as_str()
            );
            if let Some(owner) = &a.owner {
                println!("owner:    {owner}");
            }
            println!(
                "mfa:      {}",
                match (a.has_totp(), a.webauthn_keys) {
                    (false, 0) => "not enrolled".to_owned(),
                    (true, 0) => "enrolled (TOTP)".to_owned(),
                    (totp, n) => format!(
                        "enrolled ({}{n} security key{})",
                        if totp { "TOTP, " } else { "" },
                        if n == 1 { "" } else { "s" }
                    ),
                }
            );
            println!("status:   {}", if a.active { "active" } else { "disabled" });
            println!(
                "password: {}",
                if a.password_hash.is_some() {
                    "set"
                } else {
                    "not set (enrollment pending)"
                }
            );
            for b in ctx.store.bindings(Some(a.username.as_str())).await? {
                let until = b
                    .expires_at
                    .map(|t| format!(" until {t}"))
                    .unwrap_or_default();
                println!("role:     {}{until}", b.role);
            }
        }
        UserCommand::Disable { user } => {
            let a = find(ctx, &user).await?;
            ctx.store
                .set_active(
                    &a.id,
                    false,
                    AuditEvent::new(ctx.actor(), Action::UserDisable, a.username.to_string()),
                )
                .await?;
            println!("disabled {}; its sessions have ended", a.username);
        }
        UserCommand::Enable { user } => {
            let a = find(ctx, &user).await?;
            ctx.store
                .set_active(
                    &a.id,
                    true,
                    AuditEvent::new(ctx.actor(), Action::UserEnable, a.username.to_string()),
                )
                .await?;
            println!("enabled {}", a.username);
        }
        UserCommand::ResetMfa { user } => {
            let a = find(ctx, &user).await?;
            ctx.store
                .reset_mfa(
                    &a.id,
                    AuditEvent::new(ctx.actor(), Action::MfaReset, a.username.to_string()),
                )
                .await?;
            println!(
                "removed the second factors of {}; it enrolls again at next login",
                a.username
            );
        }
    }
    Ok(Exit::Ok)
}

/// Runs an admin helper.
pub async fn run_admin(ctx: &Ctx, command: AdminCommand) -> Result<Exit> {
    match command {
        AdminCommand::EnrollLink { user } => {
            let a = find(ctx, &user).await?;
            let token = rampart_web::ops::issue_enroll_link(&ctx.store, ctx.actor(), &a)
                .await
                .map_err(|e| exit_usage(e.to_string()))?;
            println!("{}/enroll/{token}", ctx.config.web.public_origin());
        }
    }
    Ok(Exit::Ok)
}

async fn find(ctx: &Ctx, user: &str) -> Result<Account> {
    ctx.store
        .account_by_login(user)
        .await?
        .ok_or_else(|| exit_usage(format!("no account {user:?}")))
}

//! `rampart target|role|grant …`.

use anyhow::Result;
use jiff::ToSpan;
use rampart_access::{Binding, Permission, RoleName};
use rampart_audit::{Action, AuditEvent};

use super::{Ctx, table};
use crate::{Exit, exit_usage};

/// Target commands.
#[derive(Debug, clap::Subcommand)]
pub enum TargetCommand {
    /// Register or replace a target.
    Add {
        /// Unique name, as in `ssh alice:NAME@gateway`.
        name: String,
        /// ssh, postgres or http.
        #[arg(long)]
        kind: String,
        /// host:port or URL.
        #[arg(long)]
        address: String,
        /// Environment, such as production, staging or test.
        #[arg(long = "env")]
        environment: String,
    },
    /// List targets.
    List,
    /// Remove a target.
    Remove {
        /// Its name.
        name: String,
    },
}

/// Role commands. Creating, replacing and deleting a role need a person holding
/// roles.manage with a second-factor check within the last 5 minutes (ACC-2).
#[derive(Debug, clap::Subcommand)]
pub enum RoleCommand {
    /// Create or replace a role. Needs `--as` a person holding roles.manage with a recent
    /// second-factor check.
    Add {
        /// Role name.
        name: String,
        /// Admin permission (repeatable): users.manage, roles.manage, targets.manage, audit.view, report.view.
        #[arg(long = "perm")]
        permissions: Vec<String>,
        /// Target grant (repeatable): "PATTERN [ENVIRONMENT] LOGIN [forward=HOST:PORT ...]", e.g. "web-* production deploy forward=10.0.1.5:5432".
        #[arg(long = "grant")]
        grants: Vec<String>,
        #[command(flatten)]
        person: super::Person,
    },
    /// List roles.
    List,
    /// Delete a role and its grants to accounts. Needs `--as`, as for add.
    Remove {
        /// Role name.
        name: String,
        #[command(flatten)]
        person: super::Person,
    },
}

/// Grant commands. Adding and removing a grant need a person holding roles.manage with a
/// second-factor check within the last 5 minutes (ACC-2).
#[derive(Debug, clap::Subcommand)]
pub enum GrantCommand {
    /// Grant a role to an account. Needs `--as` a person holding roles.manage with a recent
    /// second-factor check.
    Add {
        /// User name or email.
        user: String,
        /// Role name.
        role: String,
        /// Expire after this many hours (default: no expiry).
        #[arg(long)]
        hours: Option<u32>,
        #[command(flatten)]
        person: super::Person,
    },
    /// List grants.
    List,
    /// Remove a role from an account. Needs `--as`, as for add.
    Remove {
        /// User name.
        user: String,
        /// Role name.
        role: String,
        #[command(flatten)]
        person: super::Person,
    },
}

/// Runs a target command.
pub async fn run_target(ctx: &Ctx, command: TargetCommand) -> Result<Exit> {
    match command {
        TargetCommand::Add {
            name,
            kind,
            address,
            environment,
        } => {
            let target = rampart_web::parse_target(&name, &kind, &address, &environment)
                .map_err(exit_usage)?;
            let ev = AuditEvent::new(ctx.actor(), Action::TargetAdd, target.name.to_string())
                .detail("kind", target.kind.as_str())
                .detail("environment", target.environment.to_string());
            ctx.store.put_target(&target, ev).await?;
            println!(
                "registered {} ({}, {})",
                target.name,
                target.kind.as_str(),
                target.environment
            );
        }
        TargetCommand::List => {
            let rows = ctx
                .store
                .targets()
                .await?
                .into_iter()
                .map(|t| {
                    vec![
                        t.name.to_string(),
                        t.kind.as_str().into(),
                        t.address,
                        t.environment.to_string(),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(&["name", "kind", "address", "environment"], rows)
            );
        }
        TargetCommand::Remove { name } => {
            ctx.store
                .remove_target(
                    &name,
                    AuditEvent::new(ctx.actor(), Action::TargetRemove, name.clone()),
                )
                .await
                .map_err(|e| exit_usage(e.to_string()))?;
            println!("removed {name}");
        }
    }
    Ok(Exit::Ok)
}

/// Runs a role command.
pub async fn run_role(ctx: &Ctx, command: RoleCommand) -> Result<Exit> {
    match command {
        RoleCommand::Add {
            name,
            permissions,
            grants,
            person,
        } => {
            // The command is checked before the person: a refused command uses no code.
            let role = rampart_web::ops::make_role(&name, &permissions, &grants.join("\n"))
                .map_err(|e| exit_usage(e.to_string()))?;
            let actor = super::person_may(ctx, &person, Permission::ManageRoles).await?;
            let ev = AuditEvent::new(actor, Action::RoleCreate, role.name.to_string())
                .detail("permissions", permissions.join(","))
                .detail("grants", role.grants.len().to_string());
            ctx.store.put_role(&role, ev).await?;
            println!("saved role {}", role.name);
        }
        RoleCommand::List => {
            let rows = ctx
                .store
                .roles()
                .await?
                .into_iter()
                .map(|r| {
                    vec![
                        r.name.to_string(),
                        r.permissions
                            .iter()
                            .map(|p| p.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        r.grants
                            .iter()
                            .map(|g| {
                                format!(
                                    "{} {} {}{}",
                                    g.target,
                                    g.environment.as_ref().map(|e| e.as_str()).unwrap_or("*"),
                                    g.login,
                                    g.forward
                                        .iter()
                                        .map(|f| format!(" forward={f}"))
                                        .collect::<String>()
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("\n"),
                    ]
                })
                .collect();
            println!("{}", table(&["role", "permissions", "target grants"], rows));
        }
        RoleCommand::Remove { name, person } => {
            let actor = super::person_may(ctx, &person, Permission::ManageRoles).await?;
            ctx.store
                .remove_role(
                    &name,
                    AuditEvent::new(actor, Action::RoleDelete, name.clone()),
                )
                .await
                .map_err(|e| exit_usage(e.to_string()))?;
            println!("deleted role {name}");
        }
    }
    Ok(Exit::Ok)
}

/// Runs a grant command.
pub async fn run_grant(ctx: &Ctx, command: GrantCommand) -> Result<Exit> {
    match command {
        GrantCommand::Add {
            user,
            role,
            hours,
            person,
        } => {
            let account = ctx
                .store
                .account_by_login(&user)
                .await?
                .ok_or_else(|| exit_usage(format!("no account {user:?}")))?;
            let role = RoleName::parse(&role).map_err(|e| exit_usage(e.to_string()))?;
            let expires_at = match hours {
                None => None,
                Some(h) if (1..=8760).contains(&h) => {
                    Some(jiff::Timestamp::now().checked_add(i64::from(h).hours())?)
                }
                Some(_) => return Err(exit_usage("--hours must be from 1 to 8760")),
            };
            rampart_web::ops::check_grant_expiry(
                account.kind,
                expires_at,
                jiff::Timestamp::now(),
                &ctx.config.policy,
            )
            .map_err(|e| exit_usage(e.to_string()))?;
            // The command is checked before the person: a refused command uses no code.
            let actor = super::person_may(ctx, &person, Permission::ManageRoles).await?;
            let binding = Binding {
                account: account.username.to_string(),
                role,
                expires_at,
            };
            let ev = AuditEvent::new(actor, Action::GrantAdd, binding.account.clone())
                .detail("role", binding.role.to_string())
                .detail(
                    "expires",
                    expires_at
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "never".into()),
                );
            ctx.store
                .bind_role(&binding, ev)
                .await
                .map_err(|e| exit_usage(e.to_string()))?;
            println!("granted {} to {}", binding.role, binding.account);
        }
        GrantCommand::List => {
            let rows = ctx
                .store
                .bindings(None)
                .await?
                .into_iter()
                .map(|b| {
                    vec![
                        b.account,
                        b.role.to_string(),
                        b.expires_at
                            .map(|t| t.to_string())
                            .unwrap_or_else(|| "never".into()),
                    ]
                })
                .collect();
            println!("{}", table(&["account", "role", "expires"], rows));
        }
        GrantCommand::Remove { user, role, person } => {
            let actor = super::person_may(ctx, &person, Permission::ManageRoles).await?;
            let ev = AuditEvent::new(actor, Action::GrantRemove, user.clone())
                .detail("role", role.clone());
            ctx.store
                .unbind_role(&user, &role, ev)
                .await
                .map_err(|e| exit_usage(e.to_string()))?;
            println!("removed {role} from {user}");
        }
    }
    Ok(Exit::Ok)
}

//! `rampart access …`: access requests from the command line (EXT-1). The operator files
//! requests on someone's behalf and denies them as `cli:<user>`, which is never the
//! requester; approving names the approver (`--as`), who must hold access.approve and
//! have passed a second-factor check within the last 5 minutes (ACC-2).

use anyhow::Result;
use rampart_store::{AccessRequest, Approval, RequestStatus};
use rampart_web::access_hooks::Event;

use super::{Ctx, table};
use crate::{Exit, exit_usage};

/// Access request commands.
#[derive(Debug, clap::Subcommand)]
pub enum AccessCommand {
    /// List requests, newest first.
    List {
        /// Only pending ones.
        #[arg(long)]
        pending: bool,
    },
    /// File a request on behalf of an account.
    Request {
        /// The account that will hold the grant.
        #[arg(long)]
        user: String,
        /// The role asked for.
        role: String,
        /// How long the grant lasts once approved (1 to policy.request_max_hours).
        #[arg(long)]
        hours: i64,
        /// Why (a ticket, an incident).
        #[arg(long)]
        reason: String,
    },
    /// Approve a pending request; the approval that completes policy.request_approvals grants the role.
    /// Needs a person holding access.approve with a second-factor check in the last 5 minutes (ACC-2).
    Approve {
        /// The request's id (`rampart access list`).
        id: String,
        /// The approver.
        #[command(flatten)]
        person: super::Person,
    },
    /// Deny a pending request.
    Deny {
        /// The request's id.
        id: String,
        /// Why not.
        #[arg(long)]
        reason: String,
    },
}

/// Sends the notice of request `id` as it now stands to the alerts webhook, waiting at
/// most [`rampart_web::access_hooks::CLI_WAIT`] (an undelivered notice is audited).
async fn notice(ctx: &Ctx, event: Event, id: &str, by: &str) -> Result<()> {
    let Some(webhook) = crate::serve::alerts_webhook(&ctx.config)? else {
        return Ok(());
    };
    if let Some(r) = ctx.store.access_request(id).await? {
        rampart_web::access_hooks::deliver(
            &ctx.store,
            Some(&webhook),
            event,
            &r,
            r.status.as_str(),
            by,
            rampart_web::access_hooks::CLI_WAIT,
        )
        .await;
    }
    Ok(())
}

/// Runs one access request command.
pub async fn run(ctx: &Ctx, command: AccessCommand) -> Result<Exit> {
    let policy = &ctx.config.policy;
    let now = jiff::Timestamp::now().as_microsecond();
    match command {
        AccessCommand::List { pending } => {
            let rows = ctx
                .store
                .access_requests(None)
                .await?
                .into_iter()
                .filter(|r| !pending || r.status == RequestStatus::Pending)
                .map(|r| {
                    let asked = jiff::Timestamp::from_microsecond(r.created_us)
                        .map(|t| t.strftime("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_default();
                    vec![
                        r.id,
                        asked,
                        r.requester,
                        r.role,
                        r.hours.to_string(),
                        r.status.as_str().to_owned(),
                        r.deciders.join(", "),
                        r.reason,
                    ]
                })
                .collect();
            println!(
                "{}",
                table(
                    &[
                        "id",
                        "asked",
                        "who",
                        "role",
                        "hours",
                        "status",
                        "decided by",
                        "reason"
                    ],
                    rows
                )
            );
        }
        AccessCommand::Request {
            user,
            role,
            hours,
            reason,
        } => {
            let account = ctx
                .store
                .account_by_login(&user)
                .await?
                .ok_or_else(|| exit_usage(format!("no account {user:?}")))?;
            let mut max = policy.request_max_hours.get();
            if account.kind == rampart_identity::AccountKind::ThirdParty {
                max = max.min(policy.third_party_grant_hours.get());
            }
            if !(1..=max).contains(&hours) {
                return Err(exit_usage(format!("--hours must be from 1 to {max}")));
            }
            let reason = reason.trim();
            if reason.is_empty() || reason.chars().count() > 500 {
                return Err(exit_usage("--reason must be 1 to 500 characters"));
            }
            let request = AccessRequest {
                id: uuid::Uuid::now_v7().to_string(),
                requester: account.username.to_string(),
                role,
                hours,
                reason: rampart_web::scrubbed(reason),
                status: RequestStatus::Pending,
                created_us: now,
                pending_until_us: now
                    .saturating_add(policy.request_pending_hours.get() * 3_600_000_000),
                deciders: Vec::new(),
                note: String::new(),
            };
            ctx.store
                .create_access_request(&request, ctx.actor())
                .await
                .map_err(|e| exit_usage(e.to_string()))?;
            println!("{}", request.id);
            notice(ctx, Event::Filed, &request.id, &ctx.actor().to_string()).await?;
        }
        AccessCommand::Approve { id, person } => {
            let actor =
                super::person_may(ctx, &person, rampart_access::Permission::ApproveAccess).await?;
            let approver = match &actor {
                rampart_audit::Actor::User(name) => name.clone(),
                other => other.to_string(),
            };
            let needed = usize::try_from(policy.request_approvals.get()).unwrap_or(1);
            let outcome = ctx
                .store
                .approve_access_request(&id, &approver, actor, needed, now)
                .await?;
            if outcome.is_ok() {
                notice(ctx, Event::Approved, &id, &approver).await?;
            }
            match outcome {
                Ok(Approval::Counted) => println!("approval counted; more are needed"),
                Ok(Approval::Granted(until)) => println!(
                    "granted until {}",
                    jiff::Timestamp::from_microsecond(until)
                        .map(|t| t.to_string())
                        .unwrap_or_default()
                ),
                Err(e) => return Err(exit_usage(e.to_string())),
            }
        }
        AccessCommand::Deny { id, reason } => {
            let actor = ctx.actor();
            let reason = reason.trim();
            if reason.is_empty() || reason.chars().count() > 500 {
                return Err(exit_usage("--reason must be 1 to 500 characters"));
            }
            ctx.store
                .deny_access_request(
                    &id,
                    &actor.to_string(),
                    actor,
                    &rampart_web::scrubbed(reason),
                    now,
                )
                .await?
                .map_err(|e| exit_usage(e.to_string()))?;
            println!("denied");
            notice(ctx, Event::Denied, &id, &ctx.actor().to_string()).await?;
        }
    }
    Ok(Exit::Ok)
}

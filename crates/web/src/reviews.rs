//! `/reviews`: access review campaigns (ACC-7). Every `policy.review_interval_days` the
//! schedule ([`scheduled`], called every minute by `rampart serve`) opens a campaign over
//! every grant that reaches a target; each item's reviewer (the account's owner, else a
//! holder of `access.review`) keeps or revokes it with a reason. At the deadline, open
//! items are revoked or flagged (`policy.review_missed`). Grants unused for 30 days are
//! marked as candidates for removal (ACC-3). A campaign is exported as evidence at
//! `/reviews/<id>.csv`.
//!
//! What a revocation does to live sessions: the binding is deleted at once, so no new
//! session starts under it. The SSH bastion re-checks the access decision of every live
//! session every five seconds, and the PostgreSQL gateway checks every five seconds that
//! the grant a session rests on still exists (and the account is active): a live SSH or
//! database session relying on a revoked grant ends within about five seconds.

use askama::Template;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rampart_access::Permission;
use rampart_audit::{Action, Actor, AuditEvent};
use rampart_identity::policy::PolicyConfig;
use rampart_store::reviews::{Campaign, DAY_US, Decision, NewCampaign, ReviewItem};
use rampart_store::{Store, StoreError};
use serde::Deserialize;

use crate::admin::{nav, require};
use crate::auth::{Viewer, internal};
use crate::pages::{message, render};
use crate::{AppState, ops, scrubbed};

/// Longest decision reason kept, in characters.
pub const MAX_REASON: usize = 500;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/reviews", get(list).post(start_page))
        .route("/reviews/{file}", get(show))
        .route("/reviews/items/{id}", post(decide_page))
}

/// Opens a campaign now, with a deadline `days` days away (0: it closes at the next
/// sweep), over the grants used in the last `policy.review_interval_days`.
pub async fn start(
    store: &Store,
    policy: &PolicyConfig,
    actor: Actor,
    now_us: i64,
    days: i64,
) -> Result<Option<Campaign>, StoreError> {
    store
        .start_review(
            NewCampaign {
                now_us,
                deadline_us: now_us.saturating_add(days.saturating_mul(DAY_US)),
                missed: policy.review_missed,
                period_us: policy.review_interval_days.get().saturating_mul(DAY_US),
                unless_since_us: None,
            },
            actor,
        )
        .await
}

/// Closes the campaigns past their deadline at `now_us`; returns how many open items were
/// revoked or flagged, and the campaigns closed.
pub async fn sweep(store: &Store, now_us: i64) -> Result<(usize, Vec<Campaign>), StoreError> {
    let due: Vec<String> = store
        .review_campaigns()
        .await?
        .into_iter()
        .filter(|c| c.open && c.deadline_us <= now_us)
        .map(|c| c.id)
        .collect();
    let decided = store.sweep_reviews(now_us).await?;
    let mut closed = Vec::new();
    for id in due {
        if let Some(c) = store.review_campaign(&id).await?
            && !c.open
        {
            closed.push(c);
        }
    }
    Ok((decided, closed))
}

/// Sends a notice of a campaign opened or closed to the signed `[logs.alerts]` webhook as
/// `{"rule": "review", "kind": "review_opened"|"review_closed", "campaign", "started",
/// "deadline", "grants", "kept", "revoked", "missed", "flagged", "open", "unused", "at"}`,
/// waiting at most `wait`; an undelivered notice is audited as `access.notify`.
pub async fn notice(
    store: &Store,
    webhook: Option<&crate::logs::alerts::Webhook>,
    c: &Campaign,
    wait: std::time::Duration,
) {
    let Some(webhook) = webhook else {
        return;
    };
    let items = match store.review_items(&c.id).await {
        Ok(items) => items,
        Err(e) => {
            tracing::warn!(error = %e, "could not read a campaign for its notice");
            return;
        }
    };
    let o = outcome(c, &items);
    let kind = if c.open {
        "review_opened"
    } else {
        "review_closed"
    };
    let body = serde_json::json!({
        "rule": "review",
        "kind": kind,
        "campaign": c.id,
        "started": when(Some(c.started_us)),
        "deadline": when(Some(c.deadline_us)),
        "grants": o.total,
        "kept": o.kept,
        "revoked": o.revoked,
        "missed": o.missed,
        "flagged": o.flagged,
        "open": o.open,
        "unused": o.unused,
        "at": jiff::Timestamp::now().to_string(),
    })
    .to_string()
    .into_bytes();
    let sent = tokio::time::timeout(wait, crate::logs::alerts::notify(webhook, body))
        .await
        .unwrap_or(false);
    if !sent {
        let ev = AuditEvent::new(Actor::System, Action::AccessNotify, c.id.clone())
            .outcome(rampart_audit::Outcome::Failure)
            .detail("event", kind)
            .detail("reason", "the webhook did not take the notice");
        if let Err(e) = store.append_audit(&[ev]).await {
            tracing::warn!(error = %e, "could not audit an undelivered review notice");
        }
    }
}

/// The minute sweep: closes campaigns past their deadline, then opens one when none
/// started in the last `policy.review_interval_days` (and some grant reaches a target).
/// Returns the open items decided at their deadline, the campaigns closed and the one
/// opened.
pub async fn scheduled(
    store: &Store,
    policy: &PolicyConfig,
    now_us: i64,
) -> Result<(usize, Vec<Campaign>, Option<Campaign>), StoreError> {
    let (decided, closed) = sweep(store, now_us).await?;
    let interval = policy.review_interval_days.get().saturating_mul(DAY_US);
    let opened = store
        .start_review(
            NewCampaign {
                now_us,
                deadline_us: now_us.saturating_add(policy.review_days.get().saturating_mul(DAY_US)),
                missed: policy.review_missed,
                period_us: interval,
                unless_since_us: Some(now_us.saturating_sub(interval)),
            },
            Actor::System,
        )
        .await?;
    Ok((decided, closed, opened))
}

/// A time as `YYYY-MM-DD HH:MM UTC`, or `-`.
pub fn when(us: Option<i64>) -> String {
    us.and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

/// One CSV cell: quoted when needed, and defused when a spreadsheet would read it as a
/// formula.
fn cell(text: &str) -> String {
    let text = if text.len() > 1 && text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The campaign as CSV evidence: one line per grant with the facts and the decision.
pub fn csv(c: &Campaign, items: &[ReviewItem]) -> String {
    let mut out = String::from(
        "campaign,started,deadline,state,account,role,granted,granted_by,expires,reviewer,last_use,sessions_in_period,targets_in_period,unused_30_days,decision,reason,decided_by,decided\n",
    );
    for i in items {
        let line = [
            c.id.clone(),
            when(Some(c.started_us)),
            when(Some(c.deadline_us)),
            if c.open { "open" } else { "closed" }.to_owned(),
            i.account.clone(),
            i.role.clone(),
            when(Some(i.granted_us)),
            i.granted_by.clone(),
            when(i.expires_us),
            i.reviewer.clone(),
            when(i.last_use_us),
            i.sessions.to_string(),
            i.targets.clone(),
            if i.unused(c.started_us) { "yes" } else { "no" }.to_owned(),
            i.decision.as_str().to_owned(),
            i.reason.clone(),
            i.decided_by.clone(),
            when(i.decided_us),
        ]
        .iter()
        .map(|f| cell(f))
        .collect::<Vec<_>>()
        .join(",");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Counts of a campaign's decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Items covered.
    pub total: usize,
    /// Kept by a reviewer.
    pub kept: usize,
    /// Revoked by a reviewer.
    pub revoked: usize,
    /// Revoked at the deadline ("missed review").
    pub missed: usize,
    /// Flagged at the deadline.
    pub flagged: usize,
    /// Still open.
    pub open: usize,
    /// Grants unused for 30 days (ACC-3).
    pub unused: usize,
}

/// Counts the decisions of a campaign's items.
pub fn outcome(c: &Campaign, items: &[ReviewItem]) -> Outcome {
    let mut o = Outcome {
        total: items.len(),
        ..Outcome::default()
    };
    for i in items {
        match i.decision {
            Decision::Open => o.open += 1,
            Decision::Keep => o.kept += 1,
            Decision::Revoke if i.reason == rampart_store::reviews::MISSED_REASON => {
                o.missed += 1;
            }
            Decision::Revoke => o.revoked += 1,
            Decision::Flagged => o.flagged += 1,
        }
        if i.unused(c.started_us) {
            o.unused += 1;
        }
    }
    o
}

pub(crate) struct CampaignRow {
    pub id: String,
    pub started: String,
    pub deadline: String,
    pub state: &'static str,
    pub started_by: String,
    pub outcome: Outcome,
}

pub(crate) struct ItemRow {
    pub id: String,
    pub account: String,
    pub role: String,
    pub granted: String,
    pub granted_by: String,
    pub expires: String,
    pub reviewer: String,
    pub last_use: String,
    pub sessions: i64,
    pub targets: String,
    pub unused: bool,
    pub decision: &'static str,
    pub reason: String,
    pub decided_by: String,
    pub decided: String,
    pub can_decide: bool,
    pub campaign: String,
}

#[derive(Template)]
#[template(path = "reviews.html")]
pub(crate) struct ReviewsPage {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub may_start: bool,
    pub days: i64,
    pub interval: i64,
    pub campaigns: Vec<CampaignRow>,
    pub mine: Vec<ItemRow>,
}

#[derive(Template)]
#[template(path = "review.html")]
pub(crate) struct ReviewPage {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub campaign: CampaignRow,
    pub missed: &'static str,
    pub items: Vec<ItemRow>,
}

fn campaign_row(c: &Campaign, items: &[ReviewItem]) -> CampaignRow {
    CampaignRow {
        id: c.id.clone(),
        started: when(Some(c.started_us)),
        deadline: when(Some(c.deadline_us)),
        state: if c.open { "open" } else { "closed" },
        started_by: c.started_by.clone(),
        outcome: outcome(c, items),
    }
}

fn item_row(c: &Campaign, i: &ReviewItem, me: &str, reviews_all: bool, now: i64) -> ItemRow {
    ItemRow {
        id: i.id.clone(),
        account: i.account.clone(),
        role: i.role.clone(),
        granted: when(Some(i.granted_us).filter(|t| *t > 0)),
        granted_by: i.granted_by.clone(),
        expires: i
            .expires_us
            .map_or_else(|| "never".to_owned(), |t| when(Some(t))),
        reviewer: if i.reviewer.is_empty() {
            "nobody (an operator on the CLI)".into()
        } else {
            i.reviewer.clone()
        },
        last_use: i
            .last_use_us
            .map_or_else(|| "never".to_owned(), |t| when(Some(t))),
        sessions: i.sessions,
        targets: i.targets.replace(',', ", "),
        unused: i.unused(c.started_us),
        decision: i.decision.as_str(),
        reason: i.reason.clone(),
        decided_by: i.decided_by.clone(),
        decided: when(i.decided_us),
        can_decide: c.open
            && c.deadline_us > now
            && i.decision == Decision::Open
            && i.account != me
            && (reviews_all || i.reviewer == me),
        campaign: c.id.clone(),
    }
}

async fn holds(state: &AppState, viewer: &Viewer, p: Permission) -> Result<bool, StoreError> {
    Ok(ops::check_permission(&state.store, &viewer.account, p)
        .await?
        .is_ok())
}

async fn list(State(state): State<AppState>, viewer: Viewer) -> Response {
    let me = viewer.account.username.to_string();
    let (reviews_all, audit) = match tokio::try_join!(
        holds(&state, &viewer, Permission::ReviewAccess),
        holds(&state, &viewer, Permission::ViewAudit)
    ) {
        Ok(v) => v,
        Err(e) => return internal(e),
    };
    let campaigns = match state.store.review_campaigns().await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let now = jiff::Timestamp::now().as_microsecond();
    let mut rows = Vec::new();
    let mut mine = Vec::new();
    for c in &campaigns {
        let items = match state.store.review_items(&c.id).await {
            Ok(i) => i,
            Err(e) => return internal(e),
        };
        if c.open {
            mine.extend(
                items
                    .iter()
                    .filter(|i| i.reviewer == me && i.decision == Decision::Open)
                    .map(|i| item_row(c, i, &me, reviews_all, now)),
            );
        }
        if reviews_all || audit {
            rows.push(campaign_row(c, &items));
        }
    }
    render(
        StatusCode::OK,
        &ReviewsPage {
            nav: nav(&viewer),
            flash: None,
            may_start: reviews_all,
            days: state.policy.review_days.get(),
            interval: state.policy.review_interval_days.get(),
            campaigns: rows,
            mine,
        },
    )
}

async fn start_page(State(state): State<AppState>, viewer: Viewer) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ReviewAccess).await {
        return r;
    }
    let actor = Actor::User(viewer.account.username.to_string());
    let now = jiff::Timestamp::now().as_microsecond();
    match start(
        &state.store,
        &state.policy,
        actor,
        now,
        state.policy.review_days.get(),
    )
    .await
    {
        Ok(Some(c)) => Redirect::to(&format!("/reviews/{}", c.id)).into_response(),
        Ok(None) => Redirect::to("/reviews").into_response(),
        Err(e) => internal(e),
    }
}

fn not_found(viewer: &Viewer) -> Response {
    message(
        StatusCode::NOT_FOUND,
        nav(viewer),
        "No such campaign",
        "There is no review campaign with that id.",
        Some("/reviews"),
    )
}

async fn show(State(state): State<AppState>, viewer: Viewer, Path(file): Path<String>) -> Response {
    let (id, as_csv) = match file.strip_suffix(".csv") {
        Some(id) => (id.to_owned(), true),
        None => (file, false),
    };
    let me = viewer.account.username.to_string();
    let (reviews_all, audit) = match tokio::try_join!(
        holds(&state, &viewer, Permission::ReviewAccess),
        holds(&state, &viewer, Permission::ViewAudit)
    ) {
        Ok(v) => v,
        Err(e) => return internal(e),
    };
    let c = match state.store.review_campaign(&id).await {
        Ok(Some(c)) => c,
        Ok(None) => return not_found(&viewer),
        Err(e) => return internal(e),
    };
    let items = match state.store.review_items(&c.id).await {
        Ok(i) => i,
        Err(e) => return internal(e),
    };
    let whole = reviews_all || audit;
    if as_csv {
        if !whole {
            return require(&state, &viewer, Permission::ReviewAccess)
                .await
                .err()
                .unwrap_or_else(|| not_found(&viewer));
        }
        let ev = AuditEvent::new(
            Actor::User(me.clone()),
            Action::AuditExport,
            format!("review {}", c.id),
        )
        .source(viewer.source)
        .detail("format", "csv");
        if let Err(e) = state.store.append_audit(&[ev]).await {
            return internal(e);
        }
        let name = format!("attachment; filename=\"review-{}.csv\"", c.id);
        return (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (header::CONTENT_DISPOSITION, name),
            ],
            csv(&c, &items),
        )
            .into_response();
    }
    let shown: Vec<&ReviewItem> = items.iter().filter(|i| whole || i.reviewer == me).collect();
    if shown.is_empty() && !whole {
        return require(&state, &viewer, Permission::ReviewAccess)
            .await
            .err()
            .unwrap_or_else(|| not_found(&viewer));
    }
    let now = jiff::Timestamp::now().as_microsecond();
    render(
        StatusCode::OK,
        &ReviewPage {
            nav: nav(&viewer),
            flash: None,
            campaign: campaign_row(&c, &items),
            missed: c.missed.as_str(),
            items: shown
                .into_iter()
                .map(|i| item_row(&c, i, &me, reviews_all, now))
                .collect(),
        },
    )
}

#[derive(Deserialize)]
struct DecideForm {
    decision: String,
    reason: String,
}

fn refused(viewer: &Viewer, text: &str) -> Response {
    message(
        StatusCode::BAD_REQUEST,
        nav(viewer),
        "Not decided",
        text,
        Some("/reviews"),
    )
}

async fn decide_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: Result<Form<DecideForm>, FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return refused(&viewer, "The form was incomplete.");
    };
    let keep = match f.decision.as_str() {
        "keep" => true,
        "revoke" => false,
        _ => return refused(&viewer, "Choose keep or revoke."),
    };
    let reason = f.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return refused(
            &viewer,
            &format!("Give a reason of 1 to {MAX_REASON} characters."),
        );
    }
    let reviews_all = match holds(&state, &viewer, Permission::ReviewAccess).await {
        Ok(v) => v,
        Err(e) => return internal(e),
    };
    let me = viewer.account.username.to_string();
    let now = jiff::Timestamp::now().as_microsecond();
    let item = match state.store.review_item(&id).await {
        Ok(i) => i,
        Err(e) => return internal(e),
    };
    match state
        .store
        .decide_review(
            &id,
            keep,
            &scrubbed(reason),
            &me,
            reviews_all,
            Actor::User(me.clone()),
            now,
        )
        .await
    {
        Ok(Ok(_)) => {
            let back = item.map_or_else(
                || "/reviews".to_owned(),
                |i| format!("/reviews/{}", i.campaign),
            );
            Redirect::to(&back).into_response()
        }
        Ok(Err(e)) => refused(&viewer, &format!("{e}.")),
        Err(e) => internal(e),
    }
}

/// ACC-3 evidence: live grants per person, and grants that reach a target but were not used
/// in the last 30 days although made before that (candidates for removal). Passes when
/// there is no such grant.
pub async fn acc3(store: &Store) -> Result<rampart_report::Finding, StoreError> {
    use rampart_store::reviews::UNUSED_DAYS;
    let now = jiff::Timestamp::now();
    let now_us = now.as_microsecond();
    let roles = store.roles().await?;
    let live: Vec<_> = store
        .bindings(None)
        .await?
        .into_iter()
        .filter(|b| b.expires_at.is_none_or(|t| t > now))
        .collect();
    let mut per_account: std::collections::BTreeMap<&str, usize> = Default::default();
    for b in &live {
        *per_account.entry(b.account.as_str()).or_default() += 1;
    }
    let cutoff = now_us.saturating_sub(UNUSED_DAYS * DAY_US);
    let mut unused = Vec::new();
    for b in live.iter().filter(|b| {
        roles
            .iter()
            .any(|r| r.name == b.role && !r.grants.is_empty())
    }) {
        let (granted_us, _) = store.granted(&b.account, b.role.as_str()).await?;
        if granted_us > cutoff {
            continue;
        }
        let (last, _, _) = store.usage(&b.account, b.role.as_str(), now_us).await?;
        if last.is_none_or(|t| t < cutoff) {
            unused.push(format!(
                "{} ({}, last used {})",
                b.account,
                b.role,
                last.map_or_else(|| "never".to_owned(), |t| when(Some(t)))
            ));
        }
    }
    let counts = per_account
        .iter()
        .map(|(a, n)| format!("{a}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut evidence = vec![format!(
        "live grants per account: {}",
        if counts.is_empty() { "none" } else { &counts }
    )];
    let pass = unused.is_empty();
    evidence.push(if pass {
        format!("no grant that reaches a target went unused for {UNUSED_DAYS} days")
    } else {
        format!(
            "grants unused for {UNUSED_DAYS} days (candidates for removal): {}",
            unused.join(", ")
        )
    });
    Ok(rampart_report::Finding::new(
        rampart_core::ControlId::Acc3,
        pass,
        if pass {
            "Every grant that reaches a target is in use."
        } else {
            "Some grants that reach targets are unused: remove them."
        },
        evidence,
    ))
}

/// ACC-7 evidence: the last completed review campaign (when, and what was decided), the
/// open one's progress, and the anomaly alerts of the last 30 days not yet acknowledged. Fails when no campaign completed within `review_interval_days` +
/// `review_days` (while some grant reaches a target), or when the last one flagged grants
/// nobody reviewed.
pub async fn acc7(
    store: &Store,
    policy: &PolicyConfig,
) -> Result<rampart_report::Finding, StoreError> {
    let now = jiff::Timestamp::now();
    let now_us = now.as_microsecond();
    let campaigns = store.review_campaigns().await?;
    let roles = store.roles().await?;
    let any_gateway_grant = store.bindings(None).await?.iter().any(|b| {
        b.expires_at.is_none_or(|t| t > now)
            && roles
                .iter()
                .any(|r| r.name == b.role && !r.grants.is_empty())
    });
    let within = policy
        .review_interval_days
        .get()
        .saturating_add(policy.review_days.get())
        .saturating_mul(DAY_US);
    let mut evidence = Vec::new();
    let last = campaigns
        .iter()
        .filter(|c| !c.open)
        .max_by_key(|c| c.closed_us.unwrap_or(c.deadline_us));
    let mut last_flagged = 0;
    let recent = match last {
        Some(c) => {
            let o = outcome(c, &store.review_items(&c.id).await?);
            last_flagged = o.flagged;
            let closed = c.closed_us.unwrap_or(c.deadline_us);
            evidence.push(format!(
                "last completed campaign {} closed {}: {} grants, {} kept, {} revoked by a reviewer, {} revoked for a missed review, {} flagged unreviewed, {} unused for 30 days",
                c.id,
                when(Some(closed)),
                o.total,
                o.kept,
                o.revoked,
                o.missed,
                o.flagged,
                o.unused
            ));
            closed >= now_us.saturating_sub(within)
        }
        None => {
            evidence.push("no campaign has completed".into());
            false
        }
    };
    for c in campaigns.iter().filter(|c| c.open) {
        let o = outcome(c, &store.review_items(&c.id).await?);
        evidence.push(format!(
            "open campaign {}: {} of {} grants decided, deadline {}",
            c.id,
            o.total - o.open,
            o.total,
            when(Some(c.deadline_us))
        ));
    }
    let (alerts, open_alerts) =
        crate::anomalies::open_alerts(store, now_us.saturating_sub(30 * DAY_US)).await?;
    evidence.push(format!(
        "anomaly alerts in the last 30 days: {alerts}, {open_alerts} not acknowledged (/anomalies)"
    ));
    evidence.push(format!(
        "a campaign every {} days, {} days to decide; grants undecided at the deadline: {}",
        policy.review_interval_days.get(),
        policy.review_days.get(),
        policy.review_missed.as_str()
    ));
    let (pass, summary) = if !any_gateway_grant && last.is_none() {
        (
            true,
            "No grant reaches a target: there is nothing to review yet.",
        )
    } else if !recent {
        (
            false,
            "No access review completed within the review interval and its deadline.",
        )
    } else if last_flagged > 0 {
        (
            false,
            "The last access review left grants unreviewed (flagged, not revoked).",
        )
    } else {
        (
            true,
            "Gateway access was reviewed within the interval; missed reviews revoke.",
        )
    };
    Ok(rampart_report::Finding::new(
        rampart_core::ControlId::Acc7,
        pass,
        summary,
        evidence,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{DAY_US, cell, scheduled};
    use rampart_access::{Binding, Role, RoleName, TargetGrant, TargetPattern};
    use rampart_audit::{Action, Actor, AuditEvent};
    use rampart_identity::policy::PolicyConfig;
    use rampart_store::Store;

    /// The schedule: nothing to review opens nothing; a campaign opens when none started
    /// within the interval; at the deadline what is open is revoked.
    #[tokio::test]
    async fn the_schedule_opens_a_campaign_per_interval_and_closes_it_at_the_deadline() {
        let dir = std::env::temp_dir().join(format!("rampart-reviews-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("r.db").display());
        let store = Store::open(&url).await.unwrap();
        let policy = PolicyConfig::default();
        let now = rampart_store::now_us();
        assert_eq!(
            scheduled(&store, &policy, now).await.unwrap(),
            (0, vec![], None)
        );

        let ev = |a: Action| AuditEvent::new(Actor::System, a, "x");
        let role = Role {
            name: RoleName::parse("ops").unwrap(),
            permissions: Default::default(),
            grants: vec![TargetGrant {
                target: TargetPattern::parse("web-*").unwrap(),
                environment: None,
                login: "deploy".into(),
                forward: vec![],
            }],
        };
        store.put_role(&role, ev(Action::RoleCreate)).await.unwrap();
        let bind = || Binding {
            account: "bob".into(),
            role: role.name.clone(),
            expires_at: None,
        };
        store
            .bind_role(&bind(), ev(Action::GrantAdd))
            .await
            .unwrap();

        let (_, _, opened) = scheduled(&store, &policy, now).await.unwrap();
        let first = opened.unwrap();
        assert_eq!(first.deadline_us, now + 7 * DAY_US);
        assert_eq!(store.review_items(&first.id).await.unwrap().len(), 1);
        // Within the interval: nothing new, nothing closed before the deadline.
        assert_eq!(
            scheduled(&store, &policy, now + DAY_US).await.unwrap(),
            (0, vec![], None)
        );
        // At the deadline the open item is revoked; with no grant left, nothing opens.
        let (decided, closed, opened) = scheduled(&store, &policy, now + 7 * DAY_US).await.unwrap();
        assert_eq!((decided, opened), (1, None));
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].id, first.id);
        assert!(store.bindings(Some("bob")).await.unwrap().is_empty());
        // A grant made later is covered by the next campaign, an interval after the first.
        store
            .bind_role(&bind(), ev(Action::GrantAdd))
            .await
            .unwrap();
        assert_eq!(
            scheduled(&store, &policy, now + 29 * DAY_US).await.unwrap(),
            (0, vec![], None)
        );
        let (_, _, next) = scheduled(&store, &policy, now + 30 * DAY_US).await.unwrap();
        assert!(next.is_some());
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(cell("-"), "-");
        assert_eq!(cell("-1+2"), "'-1+2");
    }
}

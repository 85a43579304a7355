//! `/backups` (BAK-1..5): the timeline of kept backups per tier (server-side SVG), the
//! newest backup and last verification of each source, storage use, and the catalog with
//! pin buttons. Pruning from the page needs a second-factor check within the last
//! 5 minutes ([`crate::ops::recent_mfa`]). Every view is a `backup.list` audit event.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rampart_access::Permission;
use rampart_audit::Actor;
use rampart_backup::{BackupConfig, BackupError, Backups};
use rampart_store::BackupRow;
use serde::Deserialize;

use crate::AppState;
use crate::admin::{nav, require};
use crate::auth::{Viewer, internal};
use crate::ops::MfaRefusal;
use crate::pages::{message, render};

/// What the backup room needs from the server: its configuration and where things live.
#[derive(Debug, Clone)]
pub struct BackupSite {
    /// `[backup]`.
    pub config: Arc<BackupConfig>,
    /// The data directory (a `dir` storage is relative to it).
    pub data_dir: PathBuf,
    /// rampart's own SQLite file, when it is a source.
    pub own_database: Option<PathBuf>,
}

/// Most catalog rows listed on the page (the newest).
const PAGE_ROWS: usize = 200;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/backups", get(page))
        .route("/backups/prune", post(prune))
        .route("/backups/{id}/pin", post(pin))
        .route("/backups/{id}/unpin", post(unpin))
}

pub(crate) struct SourceRow {
    pub name: String,
    pub kept: usize,
    pub newest: String,
    pub newest_age: String,
    pub stale: bool,
    pub verification: String,
    pub verified: String,
    pub stored: String,
    pub raw: String,
}

pub(crate) struct BackupLine {
    pub id: String,
    pub source: String,
    pub started: String,
    pub size: String,
    pub verification: String,
    pub pinned: bool,
    pub verdict: &'static str,
    pub reasons: String,
}

#[derive(Template)]
#[template(path = "backups.html")]
pub(crate) struct BackupsPage {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub enabled: bool,
    pub storage: String,
    pub timeline: String,
    pub sources: Vec<SourceRow>,
    pub total_stored: String,
    pub pending: usize,
    pub lines: Vec<BackupLine>,
    pub shown_note: String,
    pub policy: String,
}

fn open<'a>(state: &'a AppState) -> Result<Backups<'a>, BackupError> {
    let site = &state.backup;
    Backups::open(
        &site.config,
        &site.data_dir,
        &state.store,
        site.own_database.clone(),
    )
}

fn actor(viewer: &Viewer) -> Actor {
    Actor::User(viewer.account.username.to_string())
}

async fn page(State(state): State<AppState>, viewer: Viewer) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::BackupView).await {
        return r;
    }
    show(&state, &viewer, None, StatusCode::OK).await
}

async fn show(
    state: &AppState,
    viewer: &Viewer,
    flash: Option<String>,
    status: StatusCode,
) -> Response {
    let backups = match open(state) {
        Ok(b) => b,
        Err(e) => return failed(viewer, &e),
    };
    let rows = match backups.list(&actor(viewer)).await {
        Ok(rows) => rows,
        Err(e) => return failed(viewer, &e),
    };
    let config = &state.backup.config;
    let now = jiff::Timestamp::now();
    let plan = rampart_backup::jobs::plan_rows(&rows, config, now);
    let planned: Vec<rampart_backup::Backup> =
        rows.iter().map(rampart_backup::jobs::to_backup).collect();
    let timeline = rampart_backup::chart::timeline_svg(&planned, &plan, &config.retention, now);
    let decisions: BTreeMap<&str, &rampart_backup::Decision> =
        plan.decisions.iter().map(|d| (d.id.as_str(), d)).collect();
    let sources = source_rows(&backups, &rows, now);
    let total: i64 = rows.iter().map(|r| r.size_bytes).sum();
    let mut newest_first: Vec<&BackupRow> = rows.iter().collect();
    newest_first.sort_by_key(|r| std::cmp::Reverse(r.started_us));
    let lines = newest_first
        .iter()
        .take(PAGE_ROWS)
        .map(|r| {
            let decision = decisions.get(r.id.as_str());
            BackupLine {
                id: r.id.clone(),
                source: r.source.clone(),
                started: time_us(r.started_us),
                size: bytes(r.size_bytes),
                verification: r.verification.clone(),
                pinned: r.pinned,
                verdict: match decision.map(|d| d.verdict) {
                    Some(rampart_backup::Verdict::Delete) => "delete",
                    _ => "keep",
                },
                reasons: decision
                    .map(|d| {
                        d.reasons
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    let policy = &config.retention;
    render(
        status,
        &BackupsPage {
            nav: nav(viewer),
            flash,
            enabled: !config.recipients.is_empty(),
            storage: backups.storage().label().to_owned(),
            timeline,
            sources,
            total_stored: bytes(total),
            pending: plan.deletions().count(),
            shown_note: if rows.len() > PAGE_ROWS {
                format!("The newest {PAGE_ROWS} of {} backups.", rows.len())
            } else {
                format!("{} backups.", rows.len())
            },
            lines,
            policy: format!(
                "a base backup every {:#}; base kept {} days, daily {} days, weekly {} weeks, monthly {} months ({} of each period, {})",
                config.interval.get(),
                policy.base_days,
                policy.daily_days,
                policy.weekly_weeks,
                policy.monthly_months,
                policy.rule,
                policy.time_zone.name()
            ),
        },
    )
}

/// One row per configured source (and per catalogued source no longer configured).
fn source_rows(backups: &Backups<'_>, rows: &[BackupRow], now: jiff::Timestamp) -> Vec<SourceRow> {
    let mut names: Vec<String> = backups
        .sources()
        .iter()
        .map(|s| s.name.as_str().to_owned())
        .collect();
    for r in rows {
        if !names.contains(&r.source) {
            names.push(r.source.clone());
        }
    }
    names
        .into_iter()
        .map(|name| {
            let mine: Vec<&BackupRow> = rows.iter().filter(|r| r.source == name).collect();
            let newest = mine
                .iter()
                .filter(|r| r.status == "complete" && r.verification != "failed")
                .max_by_key(|r| r.started_us);
            let verified = mine
                .iter()
                .filter(|r| r.verified_us.is_some())
                .max_by_key(|r| r.verified_us);
            let age_us = newest.map(|r| now.as_microsecond() - r.started_us);
            SourceRow {
                kept: mine.len(),
                newest: newest
                    .map(|r| time_us(r.started_us))
                    .unwrap_or_else(|| "none".into()),
                newest_age: age_us.map(age).unwrap_or_default(),
                stale: age_us.is_none_or(|us| us >= 6 * 3_600_000_000),
                verification: verified
                    .map(|r| format!("{} ({})", r.verification, r.id))
                    .unwrap_or_else(|| "never verified".into()),
                verified: verified
                    .and_then(|r| r.verified_us)
                    .map(time_us)
                    .unwrap_or_default(),
                stored: bytes(mine.iter().map(|r| r.size_bytes).sum()),
                raw: bytes(mine.iter().map(|r| r.raw_bytes).sum()),
                name,
            }
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PruneForm {
    code: String,
}

async fn prune(
    State(state): State<AppState>,
    viewer: Viewer,
    form: Result<Form<PruneForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::BackupPrune).await {
        return r;
    }
    let code = form.map(|Form(f)| f.code).unwrap_or_default();
    match crate::ops::recent_mfa(
        &state.store,
        &state.master,
        &state.policy.throttle(),
        &viewer.account,
        Some(code.as_str()).filter(|c| !c.trim().is_empty()),
        "backup.prune",
        viewer.source,
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(refusal)) => {
            let status = match refusal {
                MfaRefusal::Locked => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::FORBIDDEN,
            };
            return show(
                &state,
                &viewer,
                Some(format!("Not pruned: {refusal}.")),
                status,
            )
            .await;
        }
        Err(e) => return internal(e),
    }
    let backups = match open(&state) {
        Ok(b) => b,
        Err(e) => return failed(&viewer, &e),
    };
    match backups.prune(&actor(&viewer), jiff::Timestamp::now()).await {
        Ok(plan) => {
            let n = plan.deletions().count();
            show(
                &state,
                &viewer,
                Some(format!("Pruned {n} backups, as the plan said.")),
                StatusCode::OK,
            )
            .await
        }
        Err(e) => failed(&viewer, &e),
    }
}

async fn pin(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    set_pin(state, viewer, id, true).await
}

async fn unpin(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    set_pin(state, viewer, id, false).await
}

async fn set_pin(state: AppState, viewer: Viewer, id: String, pinned: bool) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::BackupPin).await {
        return r;
    }
    let backups = match open(&state) {
        Ok(b) => b,
        Err(e) => return failed(&viewer, &e),
    };
    match backups.pin(&id, pinned, &actor(&viewer)).await {
        Ok(()) => Redirect::to("/backups").into_response(),
        Err(e) => failed(&viewer, &e),
    }
}

fn failed(viewer: &Viewer, e: &BackupError) -> Response {
    let status = match e {
        BackupError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    message(
        status,
        nav(viewer),
        "Backups",
        &e.to_string(),
        Some("/backups"),
    )
}

fn time_us(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

fn age(us: i64) -> String {
    let minutes = us.max(0) / 60_000_000;
    match minutes {
        m if m < 120 => format!("{m} min ago"),
        m if m < 48 * 60 => format!("{} h ago", m / 60),
        m => format!("{} days ago", m / (24 * 60)),
    }
}

/// Bytes with a binary unit.
fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("B");
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {name}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_and_ages_read_like_a_person_wrote_them() {
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(6_644_203), "6.3 MiB");
        assert_eq!(super::age(90 * 60_000_000), "90 min ago");
        assert_eq!(super::age(30 * 3_600_000_000), "30 h ago");
        assert_eq!(super::age(5 * 86_400_000_000), "5 days ago");
    }
}

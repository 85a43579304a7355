//! `/databases`: "connect to a database". A person with a complete (MFA) login picks a
//! PostgreSQL target and a database role a live grant allows, gets a short-lived token
//! shown once with a ready `psql` command and connection string, and lists or revokes
//! their tokens. Holders of `audit.view` also see recent gateway sessions and database
//! changes (LOG-3, LOG-4).

use askama::Template;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rampart_access::{Permission, TargetKind};
use rampart_audit::{Action, Actor, AuditEvent, AuditRecord};
use rampart_store::AuditQuery;
use serde::Deserialize;

use crate::admin::nav;
use crate::auth::{Viewer, internal};
use crate::pages::{message, render};
use crate::{AppState, ops};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/databases", get(page))
        .route("/databases/token", post(issue))
        .route("/databases/token/{id}/revoke", post(revoke))
        .route("/databases/sessions/{id}", get(session_page))
}

pub(crate) struct Choice {
    pub target: String,
    pub role: String,
    pub environment: String,
}

pub(crate) struct TokenRow {
    pub id: String,
    pub target: String,
    pub role: String,
    pub expires: String,
    pub state: &'static str,
}

pub(crate) struct Issued {
    pub token: String,
    pub psql: String,
    pub url: String,
    pub hours: u32,
}

pub(crate) struct Activity {
    pub session: String,
    pub time: String,
    pub person: String,
    pub target: String,
    pub what: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "databases.html")]
pub(crate) struct DatabasesPage {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub choices: Vec<Choice>,
    pub default_hours: u32,
    pub max_hours: u32,
    pub issued: Option<Issued>,
    pub tokens: Vec<TokenRow>,
    pub auditor: bool,
    pub sessions: Vec<Activity>,
    pub changes: Vec<Activity>,
}

async fn page(State(state): State<AppState>, viewer: Viewer) -> Response {
    show(&state, &viewer, None).await
}

async fn show(state: &AppState, viewer: &Viewer, issued: Option<Issued>) -> Response {
    let me = viewer.account.username.to_string();
    let (targets, pairs, tokens) = match (
        state.store.targets().await,
        ops::bindings_with_roles(&state.store, &me).await,
        state.store.db_tokens(Some(&me)).await,
    ) {
        (Ok(t), Ok(p), Ok(k)) => (t, p, k),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return internal(e),
    };
    let now = jiff::Timestamp::now();
    let mut choices = Vec::new();
    for t in targets.iter().filter(|t| t.kind == TargetKind::Postgres) {
        let mut roles: Vec<String> = pairs
            .iter()
            .filter(|(b, _)| b.expires_at.is_none_or(|at| at > now))
            .flat_map(|(_, r)| r.grants.iter())
            .filter(|g| g.login != "*" && g.admits(t, &g.login))
            .map(|g| g.login.clone())
            .collect();
        roles.sort();
        roles.dedup();
        for role in roles {
            choices.push(Choice {
                target: t.name.to_string(),
                role,
                environment: t.environment.to_string(),
            });
        }
    }
    let now_us = now.as_microsecond();
    let tokens = tokens
        .into_iter()
        .map(|t| TokenRow {
            state: if t.revoked_us.is_some() {
                "revoked"
            } else if t.expires_us <= now_us {
                "expired"
            } else {
                "live"
            },
            expires: time(t.expires_us),
            id: t.id,
            target: t.target,
            role: t.db_role,
        })
        .collect();
    let auditor = matches!(
        ops::check_permission(&state.store, &viewer.account, Permission::ViewAudit).await,
        Ok(Ok(()))
    );
    let (sessions, changes) = if auditor {
        let recent = |prefix: &'static str| AuditQuery {
            action_prefix: Some(prefix.into()),
            limit: 50,
            ..AuditQuery::default()
        };
        match (
            state.store.audit_search(&recent("db.session.start")).await,
            state.store.audit_search(&recent("db.change")).await,
        ) {
            (Ok(s), Ok(c)) => (
                s.iter()
                    .map(|r| activity(r, &["db_role", "database"]))
                    .collect(),
                c.iter()
                    .map(|r| activity(r, &["class", "statement", "rows"]))
                    .collect(),
            ),
            (Err(e), _) | (_, Err(e)) => return internal(e),
        }
    } else {
        (Vec::new(), Vec::new())
    };
    render(
        StatusCode::OK,
        &DatabasesPage {
            nav: nav(viewer),
            flash: None,
            choices,
            default_hours: 1,
            max_hours: ops::DB_TOKEN_MAX_HOURS,
            issued,
            tokens,
            auditor,
            sessions,
            changes,
        },
    )
}

fn activity(r: &AuditRecord, keys: &[&str]) -> Activity {
    let details: serde_json::Value = serde_json::from_str(&r.details).unwrap_or_default();
    let detail = keys
        .iter()
        .filter_map(|k| {
            details
                .get(*k)
                .and_then(|v| v.as_str())
                .map(|v| format!("{k}: {v}"))
        })
        .collect::<Vec<_>>()
        .join(" · ");
    Activity {
        session: details
            .get("session")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned(),
        time: time(r.time_us),
        person: r.actor.trim_start_matches("user:").to_owned(),
        target: r.subject.clone(),
        what: r.outcome.clone(),
        detail,
    }
}

fn time(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

pub(crate) struct StatementRow {
    pub time: String,
    pub action: String,
    pub class: String,
    pub statement: String,
    pub command: String,
    pub rows: String,
    pub micros: String,
    pub outcome: String,
    pub sqlstate: String,
}

#[derive(Template)]
#[template(path = "db_session.html")]
pub(crate) struct SessionPage {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub id: String,
    pub person: String,
    pub target: String,
    pub rows: Vec<StatementRow>,
}

/// One session's records in order: statements with class, timing, rows and SQLSTATE.
async fn session_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    if let Err(denied) = crate::admin::require(&state, &viewer, Permission::ViewAudit).await {
        return denied;
    }
    let records = match state.store.db_session_records(&id).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let first = records.first();
    let person = first
        .map(|r| r.actor.trim_start_matches("user:").to_owned())
        .unwrap_or_default();
    let target = first.map(|r| r.subject.clone()).unwrap_or_default();
    let rows = records
        .iter()
        .map(|r| {
            let d: serde_json::Value = serde_json::from_str(&r.details).unwrap_or_default();
            let get = |k: &str| {
                d.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            StatementRow {
                time: jiff::Timestamp::from_microsecond(r.time_us)
                    .map(|t| t.strftime("%H:%M:%S%.3f").to_string())
                    .unwrap_or_default(),
                action: r.action.clone(),
                class: get("class"),
                statement: get("statement"),
                command: get("command"),
                rows: get("rows"),
                micros: get("duration_us"),
                outcome: r.outcome.clone(),
                sqlstate: get("sqlstate"),
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &SessionPage {
            nav: nav(&viewer),
            flash: None,
            id,
            person,
            target,
            rows,
        },
    )
}

#[derive(Deserialize)]
struct IssueForm {
    choice: String,
    hours: String,
}

async fn issue(
    State(state): State<AppState>,
    viewer: Viewer,
    form: Result<Form<IssueForm>, FormRejection>,
) -> Response {
    let refused = |text: &str| {
        message(
            StatusCode::BAD_REQUEST,
            nav(&viewer),
            "No token issued",
            text,
            Some("/databases"),
        )
    };
    let Ok(Form(form)) = form else {
        return refused("Pick a database and a number of hours.");
    };
    let Some((target, role)) = form.choice.split_once('/') else {
        return refused("Pick a database from the list.");
    };
    let Ok(hours) = form.hours.trim().parse::<u32>() else {
        return refused("Hours is a whole number from 1 to 12.");
    };
    let me = viewer.account.username.to_string();
    let issued = ops::issue_db_token(
        &state.store,
        &me,
        target,
        role,
        hours,
        "web-mfa",
        Actor::User(me.clone()),
    )
    .await;
    let (token, row) = match issued {
        Ok(pair) => pair,
        Err(ops::OpError::Invalid(text)) => return refused(&text),
        Err(ops::OpError::Store(e)) => return internal(e),
    };
    let host = &state.web.public_host;
    let port = state.db_gateway.map_or(6432, |a| a.port());
    let secret = token.expose_secret().clone();
    let issued = Issued {
        psql: format!(
            "PGPASSWORD='{secret}' psql \"host={host} port={port} user={me}#{} dbname={} sslmode=require\"",
            row.target, row.db_role
        ),
        url: format!(
            "postgres://{me}%23{}:{secret}@{host}:{port}/{}?sslmode=require",
            row.target, row.db_role
        ),
        token: secret,
        hours,
    };
    show(&state, &viewer, Some(issued)).await
}

async fn revoke(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let me = viewer.account.username.to_string();
    let event = AuditEvent::new(Actor::User(me.clone()), Action::DbTokenRevoke, id.clone())
        .source(viewer.source);
    match state.store.revoke_db_token(&id, Some(&me), event).await {
        Ok(()) => Redirect::to("/databases").into_response(),
        Err(rampart_store::StoreError::NotFound(_)) => message(
            StatusCode::NOT_FOUND,
            nav(&viewer),
            "Not revoked",
            "No live token of yours has that id.",
            Some("/databases"),
        ),
        Err(e) => internal(e),
    }
}

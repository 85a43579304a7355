//! `/access`: anyone asks for a role for a few hours with a reason (EXT-1 for third
//! parties, "just in time" access for people); holders of `access.approve` other than the
//! requester approve or deny. The approval that completes `policy.request_approvals`
//! grants the role until the requested hours have passed.

use askama::Template;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rampart_access::Permission;
use rampart_audit::Actor;
use rampart_identity::AccountKind;
use rampart_store::{AccessRequest, Approval, RequestStatus};
use serde::Deserialize;

use crate::access_hooks::{self, Event};
use crate::admin::{nav, require};
use crate::auth::{Viewer, internal};
use crate::pages::{message, render};
use crate::{AppState, ops, scrubbed};

/// Longest reason or denial note kept, in characters.
const MAX_REASON: usize = 500;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/access", get(page).post(create))
        .route("/access/{id}/approve", post(approve))
        .route("/access/{id}/deny", post(deny))
}

pub(crate) struct RequestRow {
    pub id: String,
    pub requester: String,
    pub role: String,
    pub hours: i64,
    pub reason: String,
    pub status: &'static str,
    pub created: String,
    pub deciders: String,
    pub note: String,
}

#[derive(Template)]
#[template(path = "access.html")]
pub(crate) struct AccessPage {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub roles: Vec<String>,
    pub max_hours: i64,
    pub mine: Vec<RequestRow>,
    pub to_decide: Vec<RequestRow>,
    pub approvals: i64,
}

fn row(r: AccessRequest) -> RequestRow {
    RequestRow {
        created: jiff::Timestamp::from_microsecond(r.created_us)
            .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default(),
        id: r.id,
        requester: r.requester,
        role: r.role,
        hours: r.hours,
        reason: r.reason,
        status: r.status.as_str(),
        deciders: r.deciders.join(", "),
        note: r.note,
    }
}

/// The longest grant `kind` may ask for.
fn max_hours(state: &AppState, kind: AccountKind) -> i64 {
    let max = state.policy.request_max_hours.get();
    if kind == AccountKind::ThirdParty {
        max.min(state.policy.third_party_grant_hours.get())
    } else {
        max
    }
}

async fn page(State(state): State<AppState>, viewer: Viewer) -> Response {
    let me = viewer.account.username.to_string();
    let (roles, mine, all) = match (
        state.store.roles().await,
        state.store.access_requests(Some(&me)).await,
        state.store.access_requests(None).await,
    ) {
        (Ok(roles), Ok(mine), Ok(all)) => (roles, mine, all),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return internal(e),
    };
    let approver = matches!(
        ops::check_permission(&state.store, &viewer.account, Permission::ApproveAccess).await,
        Ok(Ok(()))
    );
    let now = jiff::Timestamp::now().as_microsecond();
    let to_decide = if approver {
        all.into_iter()
            .filter(|r| {
                r.status == RequestStatus::Pending && r.pending_until_us > now && r.requester != me
            })
            .map(row)
            .collect()
    } else {
        Vec::new()
    };
    render(
        StatusCode::OK,
        &AccessPage {
            nav: nav(&viewer),
            flash: None,
            roles: roles.into_iter().map(|r| r.name.to_string()).collect(),
            max_hours: max_hours(&state, viewer.account.kind),
            mine: mine.into_iter().map(row).collect(),
            to_decide,
            approvals: state.policy.request_approvals.get(),
        },
    )
}

#[derive(Deserialize)]
struct RequestForm {
    role: String,
    hours: String,
    reason: String,
}

fn refused(viewer: &Viewer, text: &str) -> Response {
    message(
        StatusCode::BAD_REQUEST,
        nav(viewer),
        "Not sent",
        text,
        Some("/access"),
    )
}

async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    form: Result<Form<RequestForm>, FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return refused(&viewer, "The form was incomplete.");
    };
    let max = max_hours(&state, viewer.account.kind);
    let hours = match f.hours.trim().parse::<i64>() {
        Ok(h) if (1..=max).contains(&h) => h,
        _ => {
            return refused(
                &viewer,
                &format!("Ask for a whole number of hours from 1 to {max}."),
            );
        }
    };
    let reason = f.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return refused(
            &viewer,
            &format!("Give a reason of 1 to {MAX_REASON} characters."),
        );
    }
    let now = jiff::Timestamp::now().as_microsecond();
    let pending_us = state.policy.request_pending_hours.get() * 3_600_000_000;
    let request = AccessRequest {
        id: uuid::Uuid::now_v7().to_string(),
        requester: viewer.account.username.to_string(),
        role: f.role.trim().to_owned(),
        hours,
        // Free text from a person: it may name customers or carry secrets (LOG-2).
        reason: scrubbed(reason),
        status: RequestStatus::Pending,
        created_us: now,
        pending_until_us: now.saturating_add(pending_us),
        deciders: Vec::new(),
        note: String::new(),
    };
    let actor = Actor::User(request.requester.clone());
    match state.store.create_access_request(&request, actor).await {
        Ok(()) => {
            let by = request.requester.clone();
            notice(&state, Event::Filed, request, &by);
            Redirect::to("/access").into_response()
        }
        Err(rampart_store::StoreError::NotFound(what)) => {
            refused(&viewer, &format!("There is no {what}."))
        }
        Err(e) => internal(e),
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ApproveForm {
    code: String,
}

async fn approve(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: Result<Form<ApproveForm>, FormRejection>,
) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ApproveAccess).await {
        return r;
    }
    let code = form.map(|Form(f)| f.code).unwrap_or_default();
    if let Err(r) =
        crate::sensitive::require_recent_mfa(&state, &viewer, &code, "access.approve", "/access")
            .await
    {
        return r;
    }
    let me = viewer.account.username.to_string();
    let needed = usize::try_from(state.policy.request_approvals.get()).unwrap_or(1);
    let now = jiff::Timestamp::now().as_microsecond();
    match state
        .store
        .approve_access_request(&id, &me, Actor::User(me.clone()), needed, now)
        .await
    {
        Ok(Ok(Approval::Counted | Approval::Granted(_))) => {
            decided(&state, Event::Approved, &id, &me).await;
            Redirect::to("/access").into_response()
        }
        Ok(Err(e)) => refused(&viewer, &format!("{e}.")),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct DenyForm {
    reason: String,
}

async fn deny(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: Result<Form<DenyForm>, FormRejection>,
) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ApproveAccess).await {
        return r;
    }
    let Ok(Form(f)) = form else {
        return refused(&viewer, "The form was incomplete.");
    };
    let reason = f.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return refused(
            &viewer,
            &format!("Give a reason of 1 to {MAX_REASON} characters."),
        );
    }
    let me = viewer.account.username.to_string();
    let now = jiff::Timestamp::now().as_microsecond();
    match state
        .store
        .deny_access_request(&id, &me, Actor::User(me.clone()), &scrubbed(reason), now)
        .await
    {
        Ok(Ok(())) => {
            decided(&state, Event::Denied, &id, &me).await;
            Redirect::to("/access").into_response()
        }
        Ok(Err(e)) => refused(&viewer, &format!("{e}.")),
        Err(e) => internal(e),
    }
}

/// Sends a notice of the request to the webhook, in the background.
fn notice(state: &AppState, event: Event, r: AccessRequest, by: &str) {
    let status = r.status.as_str();
    access_hooks::spawn(
        state.store.clone(),
        state.access_webhook.clone(),
        event,
        r,
        status,
        by,
    );
}

/// After a decision: the notice with the request as it now stands.
async fn decided(state: &AppState, event: Event, id: &str, by: &str) {
    if state.access_webhook.is_none() {
        return;
    }
    match state.store.access_request(id).await {
        Ok(Some(r)) => notice(state, event, r, by),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "could not read a decided request for its notice"),
    }
}

//! The admin UI: dashboard, users, roles and grants, targets, audit log, my account. Every
//! page checks its permission; every change is audited by the store with the change.

use std::sync::atomic::Ordering;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use jiff::ToSpan;
use rampart_access::{Binding, Permission, RoleName, Target, TargetKind, TargetName};
use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use rampart_core::Environment;
use rampart_store::AuditQuery;
use serde::Deserialize;

use crate::auth::{Viewer, internal};
use crate::ops::{self, OpError};
use crate::pages::{self, render};
use crate::{AppState, evidence};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard))
        .route("/users", get(users).post(add_user))
        .route("/users/{id}/{verb}", post(user_action))
        .route("/roles", get(roles).post(save_role))
        .route("/roles/{name}/delete", post(delete_role))
        .route("/bindings", post(add_binding))
        .route("/bindings/delete", post(delete_binding))
        .route("/targets", get(targets).post(add_target))
        .route("/targets/{name}/delete", post(delete_target))
        .route("/audit", get(audit))
        .route("/network", get(network_page))
        .route("/account", get(account))
        .route("/account/sessions/{id}/revoke", post(revoke_session))
}

/// Checks an admin permission; a refusal is audited and answered with 403.
pub(crate) async fn require(
    state: &AppState,
    viewer: &Viewer,
    permission: Permission,
) -> Result<(), Response> {
    match ops::check_permission(&state.store, &viewer.account, permission).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(denial)) => {
            state.metrics.denials.fetch_add(1, Ordering::Relaxed);
            let ev = AuditEvent::new(actor(viewer), Action::PermissionDenied, permission.as_str())
                .outcome(Outcome::Denied)
                .source(viewer.source)
                .detail("reason", denial.to_string());
            state.store.append_audit(&[ev]).await.map_err(internal)?;
            Err(pages::message(
                StatusCode::FORBIDDEN,
                nav(viewer),
                "Not allowed",
                &format!(
                    "Your roles do not include the permission {}. Ask an administrator.",
                    permission.as_str()
                ),
                Some("/account"),
            ))
        }
        Err(e) => Err(internal(e)),
    }
}

fn actor(viewer: &Viewer) -> Actor {
    Actor::User(viewer.account.username.to_string())
}

pub(crate) fn nav(viewer: &Viewer) -> Option<String> {
    Some(viewer.account.username.to_string())
}

fn bad_request(viewer: &Viewer, text: &str, back: &str) -> Response {
    pages::message(
        StatusCode::BAD_REQUEST,
        nav(viewer),
        "Not saved",
        text,
        Some(back),
    )
}

/// After a change: back to its page, or the reason it was not saved.
fn saved(viewer: &Viewer, result: Result<(), rampart_store::StoreError>, back: &str) -> Response {
    match result {
        Ok(()) => Redirect::to(back).into_response(),
        Err(e) => op_error(viewer, e.into(), back),
    }
}

fn op_error(viewer: &Viewer, e: OpError, back: &str) -> Response {
    match e {
        OpError::Invalid(text) => bad_request(viewer, &text, back),
        OpError::Store(rampart_store::StoreError::Conflict(what)) => {
            bad_request(viewer, &format!("{what} already exists."), back)
        }
        OpError::Store(rampart_store::StoreError::NotFound(what)) => {
            bad_request(viewer, &format!("{what} does not exist."), back)
        }
        OpError::Store(e) => internal(e),
    }
}

async fn dashboard(State(state): State<AppState>, viewer: Viewer) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ViewReport).await {
        return r;
    }
    let leaf = state.leaf_der.read().map(|l| l.clone()).unwrap_or_default();
    let probe = crate::probe::enc2(
        state.web.http_listen,
        state.web.https_listen,
        state.public_origin(),
        &leaf,
    )
    .await;
    let mut extra = vec![probe];
    if let Ok(network) = state.network.read() {
        extra.extend(crate::network::findings(&network));
    }
    if let Some(ingest) = &state.logs {
        extra.extend(crate::logs::findings(&state, ingest).await);
    }
    extra.extend(
        evidence::backups(&state.store, &state.backup.config, jiff::Timestamp::now()).await,
    );
    let report = evidence::collect(&state.store, &state.policy, extra, Some(state.chain())).await;
    let (pass, fail, not_checked) = report.tally();
    render(
        StatusCode::OK,
        &pages::Dashboard {
            nav: nav(&viewer),
            flash: None,
            generated: report
                .generated_at
                .strftime("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
            pass,
            fail,
            not_checked,
            overview_svg: report.to_svg_overview(),
            report_html: report.to_html_fragment(),
        },
    )
}

async fn users_page(state: &AppState, viewer: &Viewer, new_link: Option<String>) -> Response {
    let accounts = match state.store.accounts().await {
        Ok(a) => a,
        Err(e) => return internal(e),
    };
    let users = accounts
        .into_iter()
        .map(|a| pages::UserRow {
            mfa: a.has_mfa(),
            id: a.id,
            username: a.username.to_string(),
            email: a.email.as_str().to_owned(),
            kind: a.kind.as_str(),
            owner: a.owner.unwrap_or_default(),
            active: a.active,
            last_login: a
                .last_login_us
                .map(pages::time_us)
                .unwrap_or_else(|| "never".into()),
        })
        .collect();
    render(
        StatusCode::OK,
        &pages::Users {
            nav: nav(viewer),
            flash: None,
            users,
            new_link,
        },
    )
}

async fn users(State(state): State<AppState>, viewer: Viewer) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ManageUsers).await {
        return r;
    }
    users_page(&state, &viewer, None).await
}

#[derive(Deserialize)]
struct NewUserForm {
    username: String,
    email: String,
    #[serde(default)]
    display_name: String,
    kind: String,
    #[serde(default)]
    owner: String,
}

async fn add_user(
    State(state): State<AppState>,
    viewer: Viewer,
    form: Result<Form<NewUserForm>, FormRejection>,
) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ManageUsers).await {
        return r;
    }
    let Ok(Form(f)) = form else {
        return bad_request(&viewer, "The form was incomplete.", "/users");
    };
    match ops::create_user(
        &state.store,
        actor(&viewer),
        &f.username,
        &f.email,
        &f.display_name,
        &f.kind,
        Some(&f.owner),
    )
    .await
    {
        Ok((_, token)) => {
            users_page(
                &state,
                &viewer,
                Some(format!("{}/enroll/{token}", state.public_origin())),
            )
            .await
        }
        Err(e) => op_error(&viewer, e, "/users"),
    }
}

async fn user_action(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, verb)): Path<(String, String)>,
) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ManageUsers).await {
        return r;
    }
    let account = match state.store.account_by_id(&id).await {
        Ok(Some(a)) => a,
        Ok(None) => return bad_request(&viewer, "No such account.", "/users"),
        Err(e) => return internal(e),
    };
    let subject = account.username.to_string();
    let result = match verb.as_str() {
        "disable" if account.id == viewer.account.id => {
            return bad_request(&viewer, "You cannot disable your own account.", "/users");
        }
        "disable" => {
            state
                .store
                .set_active(
                    &id,
                    false,
                    AuditEvent::new(actor(&viewer), Action::UserDisable, subject)
                        .source(viewer.source),
                )
                .await
        }
        "enable" => {
            state
                .store
                .set_active(
                    &id,
                    true,
                    AuditEvent::new(actor(&viewer), Action::UserEnable, subject)
                        .source(viewer.source),
                )
                .await
        }
        "reset-mfa" => {
            state
                .store
                .reset_mfa(
                    &id,
                    AuditEvent::new(actor(&viewer), Action::MfaReset, subject)
                        .source(viewer.source),
                )
                .await
        }
        "enroll-link" => {
            return match ops::issue_enroll_link(&state.store, actor(&viewer), &account).await {
                Ok(token) => {
                    users_page(
                        &state,
                        &viewer,
                        Some(format!("{}/enroll/{token}", state.public_origin())),
                    )
                    .await
                }
                Err(e) => op_error(&viewer, e, "/users"),
            };
        }
        _ => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
    };
    match result {
        Ok(()) => Redirect::to("/users").into_response(),
        Err(e) => op_error(&viewer, e.into(), "/users"),
    }
}

async fn roles(State(state): State<AppState>, viewer: Viewer) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ManageRoles).await {
        return r;
    }
    let (roles, bindings) = match (state.store.roles().await, state.store.bindings(None).await) {
        (Ok(r), Ok(b)) => (r, b),
        (Err(e), _) | (_, Err(e)) => return internal(e),
    };
    let roles = roles
        .into_iter()
        .map(|r| pages::RoleRow {
            name: r.name.to_string(),
            permissions: r
                .permissions
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            grants: r
                .grants
                .iter()
                .map(|g| match &g.environment {
                    Some(env) => format!("{} {} {}", g.target, env, g.login),
                    None => format!("{} {}", g.target, g.login),
                })
                .collect::<Vec<_>>()
                .join("; "),
        })
        .collect();
    let bindings = bindings
        .into_iter()
        .map(|b| pages::BindingRow {
            account: b.account,
            role: b.role.to_string(),
            expires: b
                .expires_at
                .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_else(|| "never".into()),
        })
        .collect();
    render(
        StatusCode::OK,
        &pages::Roles {
            nav: nav(&viewer),
            flash: None,
            roles,
            bindings,
            all_permissions: Permission::ALL.iter().map(|p| p.as_str()).collect(),
        },
    )
}

async fn save_role(State(state): State<AppState>, viewer: Viewer, body: String) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ManageRoles).await {
        return r;
    }
    // Repeated `perm` fields: parse the body as pairs rather than a struct.
    let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(&body) else {
        return bad_request(&viewer, "The form was malformed.", "/roles");
    };
    let field = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let perms: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "perm")
        .map(|(_, v)| v.clone())
        .collect();
    if let Err(r) = crate::sensitive::require_recent_mfa(
        &state,
        &viewer,
        field("code"),
        "roles.manage",
        "/roles",
    )
    .await
    {
        return r;
    }
    let role = match ops::make_role(field("name"), &perms, field("grants")) {
        Ok(r) => r,
        Err(e) => return op_error(&viewer, e, "/roles"),
    };
    let ev = AuditEvent::new(actor(&viewer), Action::RoleCreate, role.name.to_string())
        .source(viewer.source)
        .detail("permissions", perms.join(","))
        .detail("grants", role.grants.len().to_string());
    saved(&viewer, state.store.put_role(&role, ev).await, "/roles")
}

async fn delete_role(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    form: Result<Form<CodeForm>, FormRejection>,
) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ManageRoles).await {
        return r;
    }
    let code = form.map(|Form(f)| f.code).unwrap_or_default();
    if let Err(r) =
        crate::sensitive::require_recent_mfa(&state, &viewer, &code, "roles.manage", "/roles").await
    {
        return r;
    }
    let ev =
        AuditEvent::new(actor(&viewer), Action::RoleDelete, name.clone()).source(viewer.source);
    saved(&viewer, state.store.remove_role(&name, ev).await, "/roles")
}

/// The second-factor code a sensitive form may carry (ACC-2).
#[derive(Default, Deserialize)]
#[serde(default)]
struct CodeForm {
    code: String,
}

#[derive(Deserialize)]
struct BindingForm {
    account: String,
    role: String,
    #[serde(default)]
    hours: String,
    #[serde(default)]
    code: String,
}

async fn add_binding(
    State(state): State<AppState>,
    viewer: Viewer,
    form: Result<Form<BindingForm>, FormRejection>,
) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ManageRoles).await {
        return r;
    }
    let Ok(Form(f)) = form else {
        return bad_request(&viewer, "The form was incomplete.", "/roles");
    };
    if let Err(r) =
        crate::sensitive::require_recent_mfa(&state, &viewer, &f.code, "roles.manage", "/roles")
            .await
    {
        return r;
    }
    let Ok(role) = RoleName::parse(f.role.trim()) else {
        return bad_request(&viewer, "That is not a role name.", "/roles");
    };
    let account = match state.store.account_by_login(&f.account).await {
        Ok(Some(a)) => a,
        Ok(None) => return bad_request(&viewer, "No such account.", "/roles"),
        Err(e) => return internal(e),
    };
    let expires_at = match f.hours.trim() {
        "" => None,
        h => match h.parse::<i64>() {
            Ok(hours) if (1..=24 * 365).contains(&hours) => {
                jiff::Timestamp::now().checked_add(hours.hours()).ok()
            }
            _ => {
                return bad_request(
                    &viewer,
                    "Expiry is a whole number of hours from 1 to 8760.",
                    "/roles",
                );
            }
        },
    };
    if let Err(e) = crate::ops::check_grant_expiry(
        account.kind,
        expires_at,
        jiff::Timestamp::now(),
        &state.policy,
    ) {
        return bad_request(&viewer, &e.to_string(), "/roles");
    }
    let binding = Binding {
        account: account.username.to_string(),
        role,
        expires_at,
    };
    let ev = AuditEvent::new(actor(&viewer), Action::GrantAdd, binding.account.clone())
        .source(viewer.source)
        .detail("role", binding.role.to_string())
        .detail(
            "expires",
            expires_at
                .map(|t| t.to_string())
                .unwrap_or_else(|| "never".into()),
        );
    saved(&viewer, state.store.bind_role(&binding, ev).await, "/roles")
}

#[derive(Deserialize)]
struct UnbindForm {
    account: String,
    role: String,
    #[serde(default)]
    code: String,
}

async fn delete_binding(
    State(state): State<AppState>,
    viewer: Viewer,
    form: Result<Form<UnbindForm>, FormRejection>,
) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ManageRoles).await {
        return r;
    }
    let Ok(Form(f)) = form else {
        return bad_request(&viewer, "The form was incomplete.", "/roles");
    };
    if let Err(r) =
        crate::sensitive::require_recent_mfa(&state, &viewer, &f.code, "roles.manage", "/roles")
            .await
    {
        return r;
    }
    let ev = AuditEvent::new(actor(&viewer), Action::GrantRemove, f.account.clone())
        .source(viewer.source)
        .detail("role", f.role.clone());
    saved(
        &viewer,
        state.store.unbind_role(&f.account, &f.role, ev).await,
        "/roles",
    )
}

async fn targets(State(state): State<AppState>, viewer: Viewer) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ManageTargets).await {
        return r;
    }
    match state.store.targets().await {
        Ok(list) => render(
            StatusCode::OK,
            &pages::Targets {
                nav: nav(&viewer),
                flash: None,
                targets: list
                    .into_iter()
                    .map(|t| pages::TargetRow {
                        name: t.name.to_string(),
                        kind: t.kind.as_str(),
                        address: t.address,
                        environment: t.environment.to_string(),
                    })
                    .collect(),
            },
        ),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct TargetForm {
    name: String,
    kind: String,
    address: String,
    environment: String,
}

/// Parses a target from form or CLI fields.
pub fn parse_target(
    name: &str,
    kind: &str,
    address: &str,
    environment: &str,
) -> Result<Target, String> {
    let address = address.trim();
    if address.is_empty()
        || address.len() > 255
        || address.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("An address is host:port or a URL, without spaces.".into());
    }
    Ok(Target {
        name: TargetName::parse(name.trim()).map_err(|e| e.to_string())?,
        kind: TargetKind::parse(kind.trim()).ok_or("Kind is ssh, postgres or http.")?,
        address: address.to_owned(),
        environment: Environment::parse(environment).map_err(|e| e.to_string())?,
    })
}

async fn add_target(
    State(state): State<AppState>,
    viewer: Viewer,
    form: Result<Form<TargetForm>, FormRejection>,
) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ManageTargets).await {
        return r;
    }
    let Ok(Form(f)) = form else {
        return bad_request(&viewer, "The form was incomplete.", "/targets");
    };
    let target = match parse_target(&f.name, &f.kind, &f.address, &f.environment) {
        Ok(t) => t,
        Err(text) => return bad_request(&viewer, &text, "/targets"),
    };
    let ev = AuditEvent::new(actor(&viewer), Action::TargetAdd, target.name.to_string())
        .source(viewer.source)
        .detail("kind", target.kind.as_str())
        .detail("environment", target.environment.to_string());
    saved(
        &viewer,
        state.store.put_target(&target, ev).await,
        "/targets",
    )
}

async fn delete_target(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ManageTargets).await {
        return r;
    }
    let ev =
        AuditEvent::new(actor(&viewer), Action::TargetRemove, name.clone()).source(viewer.source);
    saved(
        &viewer,
        state.store.remove_target(&name, ev).await,
        "/targets",
    )
}

#[derive(Deserialize, Default)]
struct AuditParams {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    outcome: String,
    before: Option<u64>,
}

const PAGE: u32 = 100;

async fn audit(
    State(state): State<AppState>,
    viewer: Viewer,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ViewAudit).await {
        return r;
    }
    let p = params.map(|Query(p)| p).unwrap_or_default();
    let clip = |s: &str| s.trim().chars().take(64).collect::<String>();
    let (actor_f, action_f, outcome_f) = (clip(&p.actor), clip(&p.action), clip(&p.outcome));
    let q = AuditQuery {
        actor: Some(actor_f.clone()).filter(|s| !s.is_empty()),
        action_prefix: Some(action_f.clone()).filter(|s| !s.is_empty()),
        outcome: Some(outcome_f.clone()).filter(|s| !s.is_empty()),
        before_seq: p.before,
        since_us: None,
        limit: PAGE,
    };
    let records = match state.store.audit_search(&q).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let older = (records.len() == PAGE as usize)
        .then(|| records.last().map(|r| r.seq))
        .flatten()
        .map(|seq| {
            let qs = serde_urlencoded::to_string([
                ("actor", &actor_f),
                ("action", &action_f),
                ("outcome", &outcome_f),
            ])
            .unwrap_or_default();
            format!("/audit?{qs}&before={seq}")
        });
    let chain_status = match state.chain().get().await {
        Some(checked) => match &checked.result {
            Ok(n) => format!("{n} records, verified end to end at {}", checked.when()),
            Err(text) => format!("BROKEN (found at {}): {text}", checked.when()),
        },
        None => {
            "being verified end to end for the first time since rampart started: reload in a moment"
                .into()
        }
    };
    render(
        StatusCode::OK,
        &pages::Audit {
            nav: nav(&viewer),
            flash: None,
            chain_status,
            outcomes: ["success", "failure", "denied"]
                .iter()
                .map(|o| ((*o).to_owned(), *o == outcome_f))
                .collect(),
            actor: actor_f,
            action: action_f,
            records: records
                .into_iter()
                .map(|r| pages::AuditRow {
                    seq: r.seq,
                    time: pages::time_us(r.time_us),
                    actor: r.actor,
                    action: r.action,
                    subject: r.subject,
                    outcome: r.outcome,
                    source: r.source,
                    details: r.details,
                })
                .collect(),
            older,
        },
    )
}

async fn account(State(state): State<AppState>, viewer: Viewer) -> Response {
    let a = &viewer.account;
    let (sessions, left, keys, webauthn_keys) = match (
        state.store.sessions_of(&a.id).await,
        state.store.recovery_codes_left(&a.id).await,
        state.store.ssh_keys(Some(&a.id)).await,
        state.store.webauthn_keys(&a.id).await,
    ) {
        (Ok(s), Ok(n), Ok(k), Ok(w)) => (s, n, k, w),
        (Err(e), _, _, _) | (_, Err(e), _, _) | (_, _, Err(e), _) | (_, _, _, Err(e)) => {
            return internal(e);
        }
    };
    let webauthn = state.webauthn().is_some();
    let now = jiff::Timestamp::now().as_second();
    let policy = state.policy.sessions();
    let page = render(
        StatusCode::OK,
        &pages::AccountPage {
            nav: nav(&viewer),
            flash: None,
            username: a.username.to_string(),
            email: a.email.as_str().to_owned(),
            kind: a.kind.as_str(),
            mfa: a.has_mfa(),
            recovery_left: left,
            sessions: sessions
                .into_iter()
                .filter(|s| policy.is_live(s.stage, s.created_s, s.last_seen_s, now))
                .map(|s| pages::SessionItem {
                    current: s.id_hash == viewer.session_hash,
                    id: s.id_hash,
                    created: pages::time_s(s.created_s),
                    last_seen: pages::time_s(s.last_seen_s),
                    source: s.source,
                })
                .collect(),
            ssh_keys: keys
                .into_iter()
                .map(|k| (k.fingerprint, pages::time_us(k.created_us)))
                .collect(),
            webauthn,
            webauthn_keys: webauthn_keys
                .into_iter()
                .map(|k| pages::KeyItem {
                    id: k.id,
                    name: k.name,
                    added: pages::time_us(k.created_us),
                    last_used: k.last_used_us.map(pages::time_us).unwrap_or_default(),
                })
                .collect(),
        },
    );
    // The one page besides the login's second step that runs a script: adding a key.
    if webauthn {
        crate::guard::with_script_policy(page)
    } else {
        page
    }
}

async fn revoke_session(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    let username = viewer.account.username.to_string();
    let ev = AuditEvent::new(actor(&viewer), Action::SessionRevoke, username).source(viewer.source);
    match state
        .store
        .revoke_session(&viewer.account.id, &id, ev)
        .await
    {
        Ok(_) => Redirect::to("/account").into_response(),
        Err(e) => internal(e),
    }
}

async fn network_page(State(state): State<AppState>, viewer: Viewer) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ViewReport).await {
        return r;
    }
    let snapshot = state.network.read().map(|s| s.clone()).ok();
    let (status, matrix_svg, findings) = match snapshot {
        None | Some(crate::network::NetworkState::NotConfigured) => (
            "No inventory configured: set network.inventory in rampart.toml to a directory of AWS CLI JSON, Terraform plan JSON or rampart TOML.".to_owned(),
            String::new(),
            Vec::new(),
        ),
        Some(crate::network::NetworkState::Failed { at, error }) => (
            format!("The inventory could not be read at {}: {error}", at.strftime("%Y-%m-%d %H:%M:%S UTC")),
            String::new(),
            Vec::new(),
        ),
        Some(crate::network::NetworkState::Checked { at, report }) => {
            let violations = report.findings.iter().filter(|f| f.severity.is_violation()).count();
            (
                format!(
                    "Checked {}: {} VPCs, {} subnets, {} security groups, {} endpoints; {violations} violations.",
                    at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                    report.stats.vpcs,
                    report.stats.subnets,
                    report.stats.security_groups,
                    report.stats.endpoints
                ),
                rampart_network::matrix_svg(&report.matrix),
                report
                    .findings
                    .iter()
                    .take(500)
                    .map(|f| pages::NetFindingRow {
                        severity: f.severity.to_string(),
                        control: f.control.map(|c| c.to_string()).unwrap_or_default(),
                        resource: f.resource.clone(),
                        message: f.message.clone(),
                        path: f.path.iter().map(ToString::to_string).collect::<Vec<_>>().join(" → "),
                    })
                    .collect(),
            )
        }
    };
    render(
        StatusCode::OK,
        &pages::Network {
            nav: nav(&viewer),
            flash: None,
            status,
            matrix_svg,
            findings,
        },
    )
}

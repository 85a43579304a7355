//! Page templates (askama: compile-checked, auto-escaped) and rendering helpers.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// Renders a template, or a bare 500 that leaks nothing.
pub(crate) fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

/// A page with a heading, a sentence and an optional link.
pub(crate) fn message(
    status: StatusCode,
    nav: Option<String>,
    heading: &str,
    text: &str,
    link: Option<&str>,
) -> Response {
    render(
        status,
        &Message {
            nav,
            flash: None,
            heading: heading.to_owned(),
            text: text.to_owned(),
            link: link.map(str::to_owned),
        },
    )
}

/// `/static/app.css`, embedded in the binary.
pub(crate) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static.css"),
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct Message {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub heading: String,
    pub text: String,
    pub link: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
pub(crate) struct Login {
    pub nav: Option<String>,
    pub flash: Option<String>,
}

#[derive(Template)]
#[template(path = "mfa.html")]
pub(crate) struct Mfa {
    pub nav: Option<String>,
    pub flash: Option<String>,
    /// A TOTP secret is enrolled (else the code field takes recovery codes only).
    pub totp: bool,
    /// The account holds WebAuthn keys: offer them (the page runs `webauthn.js`).
    pub webauthn: bool,
}

#[derive(Template)]
#[template(path = "enroll.html")]
pub(crate) struct Enroll {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub username: String,
    pub token: String,
}

#[derive(Template)]
#[template(path = "mfa_enroll.html")]
pub(crate) struct MfaEnroll {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub qr_svg: String,
    pub secret: String,
    pub sealed: String,
}

#[derive(Template)]
#[template(path = "recovery.html")]
pub(crate) struct Recovery {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub codes: Vec<String>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
pub(crate) struct Dashboard {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub generated: String,
    pub pass: usize,
    pub fail: usize,
    pub not_checked: usize,
    pub overview_svg: String,
    pub report_html: String,
}

pub(crate) struct UserRow {
    pub id: String,
    pub username: String,
    pub email: String,
    pub kind: &'static str,
    pub owner: String,
    pub mfa: bool,
    pub active: bool,
    pub last_login: String,
}

#[derive(Template)]
#[template(path = "users.html")]
pub(crate) struct Users {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub users: Vec<UserRow>,
    pub new_link: Option<String>,
}

pub(crate) struct RoleRow {
    pub name: String,
    pub permissions: String,
    pub grants: String,
}

pub(crate) struct BindingRow {
    pub account: String,
    pub role: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "roles.html")]
pub(crate) struct Roles {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub roles: Vec<RoleRow>,
    pub bindings: Vec<BindingRow>,
    pub all_permissions: Vec<&'static str>,
}

pub(crate) struct TargetRow {
    pub name: String,
    pub kind: &'static str,
    pub address: String,
    pub environment: String,
}

#[derive(Template)]
#[template(path = "targets.html")]
pub(crate) struct Targets {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub targets: Vec<TargetRow>,
}

#[derive(Template)]
#[template(path = "ssh_sessions.html")]
pub(crate) struct SshSessions {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub sessions: Vec<SshSessionRow>,
}

pub(crate) struct SshSessionRow {
    pub id: String,
    pub live: bool,
    pub account: String,
    pub target: String,
    pub login: String,
    pub environment: String,
    pub source: String,
    pub started: String,
    pub ended: String,
    pub bytes: String,
    pub exit: String,
}

#[derive(Template)]
#[template(path = "ssh_recording.html")]
pub(crate) struct SshRecording {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub id: String,
    pub text: String,
}

pub(crate) struct AuditRow {
    pub seq: u64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub outcome: String,
    pub source: String,
    pub details: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
pub(crate) struct Audit {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub chain_status: String,
    pub actor: String,
    pub action: String,
    pub outcomes: Vec<(String, bool)>,
    pub records: Vec<AuditRow>,
    pub older: Option<String>,
}

pub(crate) struct SessionItem {
    pub id: String,
    pub created: String,
    pub last_seen: String,
    pub source: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
pub(crate) struct AccountPage {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub username: String,
    pub email: String,
    pub kind: &'static str,
    pub mfa: bool,
    pub recovery_left: i64,
    pub sessions: Vec<SessionItem>,
    pub ssh_keys: Vec<(String, String)>,
    /// WebAuthn is on (the page runs `webauthn.js` to add a key).
    pub webauthn: bool,
    pub webauthn_keys: Vec<KeyItem>,
}

/// A security key or passkey on the account page.
pub(crate) struct KeyItem {
    pub id: String,
    pub name: String,
    pub added: String,
    pub last_used: String,
}

pub(crate) struct NetFindingRow {
    pub severity: String,
    pub control: String,
    pub resource: String,
    pub message: String,
    pub path: String,
}

#[derive(Template)]
#[template(path = "network.html")]
pub(crate) struct Network {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub status: String,
    pub matrix_svg: String,
    pub findings: Vec<NetFindingRow>,
}

/// Formats seconds since the epoch as `2026-11-29 12:00:00`.
pub(crate) fn time_s(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Formats microseconds since the epoch.
pub(crate) fn time_us(micros: i64) -> String {
    time_s(micros.div_euclid(1_000_000))
}

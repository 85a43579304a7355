//! `/ssh/sessions`: SSH sessions through the bastion (live and of the last 30 days), ending
//! a live one, and reading a recording (a transcript of its scrubbed output, and the
//! asciicast v2 file for `asciinema play`). The bastion is another room: recordings are
//! opened through [`crate::Inner::recordings`], which the binary provides.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rampart_access::Permission;
use rampart_audit::{Action, Actor, AuditEvent};

use crate::AppState;
use crate::admin::{nav, require};
use crate::auth::{Viewer, internal};
use crate::pages::{self, render};

/// Opens a session's recording as asciicast v2 text, or says why not.
pub type OpenRecording = dyn Fn(&str) -> Result<String, String> + Send + Sync;
/// Parses an `authorized_keys` line into its fingerprint and its one-line form.
pub type ParseKey = dyn Fn(&str) -> Result<(String, String), String> + Send + Sync;

/// What the bastion's room lends the admin UI (the binary provides it).
#[derive(Clone)]
pub struct SshHooks {
    /// Opens recordings.
    pub open_recording: std::sync::Arc<OpenRecording>,
    /// Parses public keys.
    pub parse_key: std::sync::Arc<ParseKey>,
}

impl std::fmt::Debug for SshHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SshHooks")
    }
}

const WINDOW_US: i64 = 30 * 24 * 3600 * 1_000_000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ssh/sessions", get(list))
        .route("/ssh/sessions/{id}/kill", post(kill))
        .route("/ssh/sessions/{id}/recording", get(transcript))
        .route("/ssh/sessions/{id}/cast", get(cast))
        .route("/static/asciinema-player.js", get(player_js))
        .route("/static/asciinema-player.css", get(player_css))
        .route("/static/replay.js", get(replay_js))
        .route("/account/ssh-keys", post(add_key))
        .route("/account/ssh-keys/remove", post(remove_key))
}

#[derive(serde::Deserialize)]
struct KeyForm {
    key: String,
}

/// A person registers a public key to their own account (ACC-1: one key, one account).
async fn add_key(
    State(state): State<AppState>,
    viewer: Viewer,
    form: Result<axum::Form<KeyForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let back = |status, text: &str| {
        pages::message(
            status,
            nav(&viewer),
            "Key not added",
            text,
            Some("/account"),
        )
    };
    let (Ok(axum::Form(f)), Some(hooks)) = (form, state.ssh.as_ref()) else {
        return back(
            StatusCode::BAD_REQUEST,
            "Paste one public key line, such as the content of ~/.ssh/id_ed25519.pub.",
        );
    };
    let (fingerprint, line) = match (hooks.parse_key)(f.key.trim()) {
        Ok(parsed) => parsed,
        Err(_) => {
            return back(
                StatusCode::BAD_REQUEST,
                "That is not an OpenSSH public key line.",
            );
        }
    };
    let ev = AuditEvent::new(
        Actor::User(viewer.account.username.to_string()),
        Action::SshKeyAdd,
        viewer.account.username.to_string(),
    )
    .source(viewer.source)
    .detail("fingerprint", fingerprint.clone())
    .detail("via", "web");
    match state
        .store
        .add_ssh_key(
            &viewer.account.id,
            &fingerprint,
            &line,
            "added on the account page",
            ev,
        )
        .await
    {
        Ok(()) => Redirect::to("/account").into_response(),
        Err(rampart_store::StoreError::Conflict(_)) => back(
            StatusCode::CONFLICT,
            "That key is already registered. A key belongs to one account only.",
        ),
        Err(e) => internal(e),
    }
}

#[derive(serde::Deserialize)]
struct RemoveKeyForm {
    fingerprint: String,
}

async fn remove_key(
    State(state): State<AppState>,
    viewer: Viewer,
    form: Result<axum::Form<RemoveKeyForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(axum::Form(f)) = form else {
        return Redirect::to("/account").into_response();
    };
    match state.store.ssh_key(&f.fingerprint).await {
        Ok(Some(k)) if k.account_id == viewer.account.id => {}
        Ok(_) => return Redirect::to("/account").into_response(),
        Err(e) => return internal(e),
    }
    let ev = AuditEvent::new(
        Actor::User(viewer.account.username.to_string()),
        Action::SshKeyRemove,
        viewer.account.username.to_string(),
    )
    .source(viewer.source)
    .detail("fingerprint", f.fingerprint.clone());
    match state.store.remove_ssh_key(&f.fingerprint, ev).await {
        Ok(()) | Err(rampart_store::StoreError::NotFound(_)) => {
            Redirect::to("/account").into_response()
        }
        Err(e) => internal(e),
    }
}

async fn list(State(state): State<AppState>, viewer: Viewer) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ViewAudit).await {
        return r;
    }
    let since = jiff::Timestamp::now().as_microsecond() - WINDOW_US;
    match state.store.ssh_sessions(since, false, 500).await {
        Ok(rows) => render(
            StatusCode::OK,
            &pages::SshSessions {
                nav: nav(&viewer),
                flash: None,
                sessions: rows
                    .into_iter()
                    .map(|s| pages::SshSessionRow {
                        live: s.ended_us.is_none(),
                        id: s.id,
                        account: s.account,
                        target: s.target,
                        login: s.login,
                        environment: s.environment,
                        source: s.source,
                        started: pages::time_us(s.started_us),
                        ended: s.ended_us.map(pages::time_us).unwrap_or_default(),
                        bytes: format!("{} / {}", s.bytes_up, s.bytes_down),
                        exit: s.exit_status.map(|c| c.to_string()).unwrap_or_default(),
                    })
                    .collect(),
            },
        ),
        Err(e) => internal(e),
    }
}

async fn kill(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ManageUsers).await {
        return r;
    }
    let ev = AuditEvent::new(
        Actor::User(viewer.account.username.to_string()),
        Action::SshSessionKill,
        id.chars().take(64).collect::<String>(),
    )
    .source(viewer.source);
    match state.store.kill_ssh_session(&id, ev).await {
        Ok(()) => Redirect::to("/ssh/sessions").into_response(),
        Err(rampart_store::StoreError::NotFound(_)) => pages::message(
            StatusCode::NOT_FOUND,
            nav(&viewer),
            "Not live",
            "That session is not live any more.",
            Some("/ssh/sessions"),
        ),
        Err(e) => internal(e),
    }
}

async fn open(state: &AppState, viewer: &Viewer, id: &str) -> Result<String, Response> {
    require(state, viewer, Permission::ViewAudit).await?;
    let Some(hooks) = state.ssh.as_ref() else {
        return Err(not_found(viewer));
    };
    let cast = (hooks.open_recording)(id).map_err(|_| not_found(viewer))?;
    let ev = AuditEvent::new(
        Actor::User(viewer.account.username.to_string()),
        Action::AuditExport,
        format!("ssh-recording:{}", id.chars().take(64).collect::<String>()),
    )
    .source(viewer.source);
    state.store.append_audit(&[ev]).await.map_err(internal)?;
    Ok(cast)
}

fn not_found(viewer: &Viewer) -> Response {
    pages::message(
        StatusCode::NOT_FOUND,
        nav(viewer),
        "No recording",
        "There is no readable recording for that session.",
        Some("/ssh/sessions"),
    )
}

async fn transcript(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    let cast = match open(&state, &viewer, &id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut page = render(
        StatusCode::OK,
        &pages::SshRecording {
            nav: nav(&viewer),
            flash: None,
            id,
            text: terminal_text(&cast),
        },
    );
    // The one page that runs scripts: the vendored player, from rampart itself, which
    // fetches the cast from here and compiles its terminal emulator (WebAssembly). The
    // front door keeps a policy a handler has set.
    page.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(PLAYER_CSP),
    );
    page
}

/// The recording page's policy: the front door's, plus scripts and fetches from rampart
/// itself and WebAssembly compilation for the player.
pub(crate) const PLAYER_CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A vendored file, cached by the browser for an hour.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn player_js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../static/asciinema-player/asciinema-player.min.js"),
    )
}

async fn player_css() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../static/asciinema-player/asciinema-player.css"),
    )
}

async fn replay_js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../static/replay.js"),
    )
}

async fn cast(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    match open(&state, &viewer, &id).await {
        Ok(c) => (
            [
                (header::CONTENT_TYPE, "application/x-asciicast"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"session.cast\"",
                ),
            ],
            c,
        )
            .into_response(),
        Err(r) => r,
    }
}

/// The output events as plain text: escape sequences dropped, carriage returns and
/// backspaces applied line by line (a transcript, not a terminal emulation).
pub fn terminal_text(cast: &str) -> String {
    let mut out = String::new();
    for line in cast.lines().skip(1) {
        let Ok(serde_json::Value::Array(ev)) = serde_json::from_str::<serde_json::Value>(line)
        else {
            continue;
        };
        if ev.get(1).and_then(|v| v.as_str()) == Some("o")
            && let Some(data) = ev.get(2).and_then(|v| v.as_str())
        {
            out.push_str(data);
        }
    }
    let mut text = String::with_capacity(out.len());
    let mut line = String::new();
    let mut chars = out.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    line.clear();
                }
            }
            '\n' => {
                text.push_str(&line);
                text.push('\n');
                line.clear();
            }
            '\u{8}' => {
                line.pop();
            }
            c if c.is_control() && c != '\t' => {}
            c => line.push(c),
        }
    }
    text.push_str(&line);
    text
}

fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        // CSI: parameters, then one final byte in @..~.
        Some('[') => {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
        // OSC: up to BEL or ST.
        Some(']') => {
            while let Some(c) = chars.next() {
                if c == '\u{7}' || (c == '\u{1b}' && chars.peek() == Some(&'\\')) {
                    if c == '\u{1b}' {
                        chars.next();
                    }
                    break;
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::terminal_text;

    #[test]
    fn transcripts_drop_escapes_and_apply_carriage_returns() {
        let cast = concat!(
            "{\"version\":2,\"width\":80,\"height\":24}\n",
            "[0.1,\"o\",\"\\u001b[01;32mroot\\u001b[0m$ ls\\r\\n\"]\n",
            "[0.2,\"i\",\"ls\\r\"]\n",
            "[0.3,\"o\",\"a b\\r\\nxx\\rok\\u0008\\u0008done\\r\\n\"]\n",
        );
        assert_eq!(terminal_text(cast), "root$ ls\na b\ndone\n");
    }
}

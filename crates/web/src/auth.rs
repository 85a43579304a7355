//! Login (password, then TOTP, a WebAuthn key or a recovery code), enrollment, sessions
//! and logout.
//!
//! A login is a sequence of server-side session stages (`PasswordOk` → `Complete`, or
//! `MustEnroll` → `Complete`); each step replaces the session id. Throttling counts failed
//! credential checks per typed login and per address. Clients learn only "invalid
//! credentials"; the audit log gets the reason.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;

use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use rampart_core::Secret;
use rampart_identity::policy::MfaPolicy;
use rampart_identity::session::Stage;
use rampart_identity::totp::{self, TotpSecret};
use rampart_identity::{password, random_token, token_hash};
use rampart_store::{Account, SessionRow};
use serde::Deserialize;

use crate::AppState;
use crate::pages::{self, render};

/// The session cookie: `__Host-` pins it to this host, path `/`, Secure.
pub(crate) const COOKIE: &str = "__Host-rampart";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/login/mfa", get(mfa_page).post(mfa))
        .route("/enroll/{token}", get(enroll_page).post(enroll))
        .route("/mfa/enroll", get(mfa_enroll_page).post(mfa_enroll))
        .route("/logout", post(logout))
}

/// A complete login: the account and the hash of its session id.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub account: Account,
    pub session_hash: String,
    pub source: Option<IpAddr>,
}

/// A login short of complete.
#[derive(Debug, Clone)]
pub(crate) struct Partial {
    pub account: Account,
    pub session: SessionRow,
}

/// What a handler answers when there is no usable session.
pub(crate) struct ToLogin;

impl IntoResponse for ToLogin {
    fn into_response(self) -> Response {
        Redirect::to("/login").into_response()
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let (account, session) = live_session(parts, state).await?;
        match session.stage {
            Stage::Complete => Ok(Viewer {
                account,
                session_hash: session.id_hash,
                source: client_ip(parts),
            }),
            Stage::PasswordOk => Err(Redirect::to("/login/mfa").into_response()),
            Stage::MustEnroll => Err(Redirect::to("/mfa/enroll").into_response()),
        }
    }
}

impl FromRequestParts<AppState> for Partial {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let (account, session) = live_session(parts, state).await?;
        Ok(Partial { account, session })
    }
}

async fn live_session(parts: &Parts, state: &AppState) -> Result<(Account, SessionRow), Response> {
    session_for(state, &parts.headers)
        .await?
        .ok_or_else(|| ToLogin.into_response())
}

/// The live session named by the request's cookie and its active account; `None` when
/// there is no cookie, or the session is unknown, revoked, expired or its account disabled.
pub(crate) async fn session_for(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(Account, SessionRow)>, Response> {
    let Some(token) = cookie(headers) else {
        return Ok(None);
    };
    let hash = token_hash(&token);
    let Some(session) = state.store.session(&hash).await.map_err(internal)? else {
        return Ok(None);
    };
    let now = jiff::Timestamp::now().as_second();
    if session.revoked
        || !state.policy.sessions().is_live(
            session.stage,
            session.created_s,
            session.last_seen_s,
            now,
        )
    {
        return Ok(None);
    }
    let Some(account) = state
        .store
        .account_by_id(&session.account_id)
        .await
        .map_err(internal)?
    else {
        return Ok(None);
    };
    if !account.active {
        return Ok(None);
    }
    if now - session.last_seen_s >= 30 {
        // Coarse touches keep writes down; idle timeouts are in minutes.
        state
            .store
            .touch_session(&hash, now)
            .await
            .map_err(internal)?;
    }
    Ok(Some((account, session)))
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "request failed");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
}

pub(crate) fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

pub(crate) fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn set_cookie(token: &str) -> (header::HeaderName, HeaderValue) {
    let value = format!("{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict");
    (
        header::SET_COOKIE,
        HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("")),
    )
}

/// Where to send the browser after a complete login (an app the person was on), kept in a
/// short-lived cookie from the login page on; only paths `apps::acceptable_next` allows.
const NEXT_COOKIE: &str = "__Host-rampart-next";

fn next_cookie(next: &str) -> Option<(header::HeaderName, HeaderValue)> {
    let value = format!(
        "{NEXT_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=900",
        serde_urlencoded::to_string([("n", next)])
            .ok()?
            .strip_prefix("n=")?
    );
    Some((header::SET_COOKIE, HeaderValue::from_str(&value).ok()?))
}

fn clear_next_cookie() -> (header::HeaderName, HeaderValue) {
    (
        header::SET_COOKIE,
        HeaderValue::from_static(
            "__Host-rampart-next=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0",
        ),
    )
}

/// The accepted `next` of this login, if any.
fn login_next(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let raw = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == NEXT_COOKIE)
        .map(|(_, v)| v.to_owned())?;
    let decoded: Vec<(String, String)> = serde_urlencoded::from_str(&format!("n={raw}")).ok()?;
    let next = decoded.into_iter().next()?.1;
    crate::apps::acceptable_next(state, &next).then_some(next)
}

/// The redirect after a complete login: back to the app the person came from, or `/`.
fn after_login(
    state: &AppState,
    headers: &HeaderMap,
    cookie: (header::HeaderName, HeaderValue),
) -> Response {
    match login_next(state, headers) {
        Some(next) => (
            axum::response::AppendHeaders([cookie, clear_next_cookie()]),
            Redirect::to(&next),
        )
            .into_response(),
        None => ([cookie], Redirect::to("/")).into_response(),
    }
}

fn clear_cookie() -> (header::HeaderName, HeaderValue) {
    (
        header::SET_COOKIE,
        HeaderValue::from_static(
            "__Host-rampart=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    )
}

fn login_form(status: StatusCode, flash: &str) -> Response {
    render(
        status,
        &pages::Login {
            nav: None,
            flash: Some(flash.to_owned()).filter(|f| !f.is_empty()),
        },
    )
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

async fn login_page(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    let form = login_form(StatusCode::OK, "");
    match q
        .next
        .filter(|n| crate::apps::acceptable_next(&state, n))
        .and_then(|n| next_cookie(&n))
    {
        Some(cookie) => ([cookie], form).into_response(),
        None => form,
    }
}

#[derive(Deserialize)]
struct LoginForm {
    login: String,
    password: String,
}

const INVALID: &str = "Invalid user name or password.";

async fn login(
    State(state): State<AppState>,
    parts: Parts,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return login_form(StatusCode::BAD_REQUEST, "The form was incomplete.");
    };
    let source = client_ip(&parts);
    let now = jiff::Timestamp::now().as_second();
    let login_key = format!(
        "login:{}",
        form.login
            .trim()
            .to_lowercase()
            .chars()
            .take(254)
            .collect::<String>()
    );
    let addr_key = format!(
        "addr:{}",
        source.map(|ip| ip.to_string()).unwrap_or_default()
    );
    let throttle = state.policy.throttle();
    let mut states = Vec::new();
    for key in [&login_key, &addr_key] {
        match state.store.throttle(key).await {
            Ok(s) => states.push((key.clone(), s)),
            Err(e) => return internal(e),
        }
    }
    let account = match state.store.account_by_login(&form.login).await {
        Ok(a) => a,
        Err(e) => return internal(e),
    };
    // Only a known account's name is recorded: typed text from a client is not.
    let subject = account
        .as_ref()
        .map(|a| a.username.to_string())
        .unwrap_or_else(|| "unknown".into());
    if states.iter().any(|(_, s)| throttle.check(s, now).is_err()) {
        let ev = AuditEvent::new(Actor::Anonymous, Action::LoginPassword, subject)
            .outcome(Outcome::Denied)
            .source(source)
            .detail("reason", "locked");
        if let Err(e) = state.store.append_audit(&[ev]).await {
            return internal(e);
        }
        return login_form(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed attempts. Try again later.",
        );
    }
    let stored = account
        .as_ref()
        .and_then(|a| a.password_hash.clone())
        .unwrap_or_else(|| state.decoy_hash.clone());
    let candidate = Secret::new(form.password);
    let permit = state.hashing.acquire().await;
    let ok = tokio::task::spawn_blocking(move || password::verify(&candidate, &stored))
        .await
        .unwrap_or(false);
    drop(permit);
    let account = match account {
        Some(a) if ok && a.password_hash.is_some() => a,
        _ => {
            return failed_check(
                &state,
                states,
                now,
                source,
                subject,
                Action::LoginPassword,
                login_form(StatusCode::UNAUTHORIZED, INVALID),
            )
            .await;
        }
    };
    if !account.active {
        let ev = AuditEvent::new(
            Actor::User(account.username.to_string()),
            Action::LoginPassword,
            subject,
        )
        .outcome(Outcome::Denied)
        .source(source)
        .detail("reason", "account disabled");
        if let Err(e) = state.store.append_audit(&[ev]).await {
            return internal(e);
        }
        return login_form(StatusCode::UNAUTHORIZED, INVALID);
    }
    let stage = if account.has_mfa() {
        Stage::PasswordOk
    } else if state.policy.mfa == MfaPolicy::Required && account.kind.needs_mfa() {
        Stage::MustEnroll
    } else {
        Stage::Complete
    };
    let ev = AuditEvent::new(
        Actor::User(account.username.to_string()),
        Action::LoginPassword,
        subject,
    )
    .source(source)
    .detail("next", stage.as_str());
    start_session(&state, &parts.headers, &account, stage, source, ev).await
}

/// Records a failed credential check against every throttle key, locking where due.
async fn failed_check(
    state: &AppState,
    states: Vec<(String, rampart_identity::throttle::FailureState)>,
    now: i64,
    source: Option<IpAddr>,
    subject: String,
    action: Action,
    page: Response,
) -> Response {
    state.metrics.login_failures.fetch_add(1, Ordering::Relaxed);
    let throttle = state.policy.throttle();
    let mut events = vec![
        AuditEvent::new(Actor::Anonymous, action, subject.clone())
            .outcome(Outcome::Failure)
            .source(source),
    ];
    let mut next = Vec::new();
    for (key, s) in states {
        let (after, locked) = throttle.on_failure(&s, now);
        if locked {
            let kind = if key.starts_with("addr:") {
                "address"
            } else {
                "account"
            };
            events.push(
                AuditEvent::new(Actor::System, Action::LoginLocked, subject.clone())
                    .outcome(Outcome::Denied)
                    .source(source)
                    .detail("key", kind)
                    .detail("until", after.locked_until.to_string()),
            );
        }
        next.push((key, after));
    }
    if let Err(e) = state.store.save_throttle(&next, &events).await {
        return internal(e);
    }
    page
}

async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    account: &Account,
    stage: Stage,
    source: Option<IpAddr>,
    event: AuditEvent,
) -> Response {
    let token = match random_token() {
        Ok(t) => t,
        Err(e) => return internal(e),
    };
    let now = jiff::Timestamp::now().as_second();
    let row = SessionRow {
        id_hash: token_hash(&token),
        account_id: account.id.clone(),
        stage,
        created_s: now,
        last_seen_s: now,
        source: source.map(|ip| ip.to_string()).unwrap_or_default(),
        revoked: false,
    };
    let mut events = vec![event];
    if stage == Stage::Complete {
        events.push(session_start_event(account, source, "none"));
        state.metrics.logins.fetch_add(1, Ordering::Relaxed);
    }
    if let Err(e) = state.store.create_session(&row, &events).await {
        return internal(e);
    }
    let next = match stage {
        Stage::PasswordOk => "/login/mfa",
        Stage::MustEnroll => "/mfa/enroll",
        Stage::Complete => return after_login(state, headers, set_cookie(&token)),
    };
    ([set_cookie(&token)], Redirect::to(next)).into_response()
}

fn session_start_event(account: &Account, source: Option<IpAddr>, mfa: &str) -> AuditEvent {
    AuditEvent::new(
        Actor::User(account.username.to_string()),
        Action::SessionStart,
        account.username.to_string(),
    )
    .source(source)
    .detail("mfa", mfa)
}

/// Replaces a partial session by a complete one, auditing `event` and the session start.
async fn complete(
    state: &AppState,
    partial: &Partial,
    source: Option<IpAddr>,
    mfa: &str,
    event: AuditEvent,
) -> Result<String, Response> {
    let token = random_token().map_err(internal)?;
    let now = jiff::Timestamp::now().as_second();
    let row = SessionRow {
        id_hash: token_hash(&token),
        account_id: partial.account.id.clone(),
        stage: Stage::Complete,
        created_s: now,
        last_seen_s: now,
        source: source.map(|ip| ip.to_string()).unwrap_or_default(),
        revoked: false,
    };
    let events = [event, session_start_event(&partial.account, source, mfa)];
    state
        .store
        .advance_session(&partial.session.id_hash, &row, &events)
        .await
        .map_err(internal)?;
    state.metrics.logins.fetch_add(1, Ordering::Relaxed);
    Ok(token)
}

/// The second-factor page for `account`: a code field (TOTP or recovery code) and, when it
/// holds WebAuthn keys, the security key button with the policy that lets its script run.
pub(crate) fn mfa_form(
    state: &AppState,
    account: &Account,
    status: StatusCode,
    flash: &str,
) -> Response {
    let webauthn = account.webauthn_keys > 0 && state.webauthn().is_some();
    let page = render(
        status,
        &pages::Mfa {
            nav: None,
            flash: Some(flash.to_owned()).filter(|f| !f.is_empty()),
            totp: account.has_totp(),
            webauthn,
        },
    );
    if webauthn {
        crate::guard::with_script_policy(page)
    } else {
        page
    }
}

async fn mfa_page(State(state): State<AppState>, partial: Partial) -> Response {
    match partial.session.stage {
        Stage::PasswordOk => mfa_form(&state, &partial.account, StatusCode::OK, ""),
        Stage::MustEnroll => Redirect::to("/mfa/enroll").into_response(),
        Stage::Complete => Redirect::to("/").into_response(),
    }
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
}

async fn mfa(
    State(state): State<AppState>,
    parts: Parts,
    partial: Partial,
    form: Result<Form<CodeForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if partial.session.stage != Stage::PasswordOk {
        return Redirect::to("/login").into_response();
    }
    let account = &partial.account;
    let Ok(Form(form)) = form else {
        return mfa_form(&state, account, StatusCode::BAD_REQUEST, "Enter a code.");
    };
    let source = client_ip(&parts);
    let gate = match mfa_gate(&state, account, source).await {
        Ok(g) => g,
        Err(response) => return response,
    };
    let typed = form.code.trim();
    let (accepted, method, reason) =
        if typed.len() == 6 && typed.bytes().all(|b| b.is_ascii_digit()) {
            crate::ops::check_totp(&state.store, &state.master, account, typed, gate.now).await
        } else {
            let hash = token_hash(&totp::normalize_recovery_code(typed));
            match state.store.use_recovery_code(&account.id, &hash).await {
                Ok(true) => (true, "recovery_code", ""),
                Ok(false) => (false, "recovery_code", "unknown or used recovery code"),
                Err(e) => return internal(e),
            }
        };
    if !accepted {
        return mfa_failed(
            &state,
            account,
            gate,
            source,
            method,
            reason,
            "That code was not accepted.",
        )
        .await;
    }
    let subject = account.username.to_string();
    let action = if method == "recovery_code" {
        Action::RecoveryCodeUsed
    } else {
        Action::LoginMfa
    };
    let ev = AuditEvent::new(Actor::User(subject.clone()), action, subject)
        .source(source)
        .detail("method", method);
    mfa_passed(&state, &parts, &partial, gate, source, method, ev).await
}

/// The second-factor throttle of one account, read before a check: the check may only
/// run when it is not locked.
pub(crate) struct MfaGate {
    key: String,
    current: rampart_identity::throttle::FailureState,
    now: i64,
}

/// Opens the gate for a second-factor check of `account`, or answers the locked page
/// (audited).
pub(crate) async fn mfa_gate(
    state: &AppState,
    account: &Account,
    source: Option<IpAddr>,
) -> Result<MfaGate, Response> {
    let now = jiff::Timestamp::now().as_second();
    let key = format!("mfa:{}", account.id);
    let current = state.store.throttle(&key).await.map_err(internal)?;
    if state.policy.throttle().check(&current, now).is_err() {
        let subject = account.username.to_string();
        let ev = AuditEvent::new(Actor::User(subject.clone()), Action::LoginMfa, subject)
            .outcome(Outcome::Denied)
            .source(source)
            .detail("reason", "locked");
        state.store.append_audit(&[ev]).await.map_err(internal)?;
        return Err(mfa_form(
            state,
            account,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed attempts. Try again later.",
        ));
    }
    Ok(MfaGate { key, current, now })
}

/// A refused second factor: audited with its method and reason, counted toward the
/// account's lockout, and the page again with `flash`.
pub(crate) async fn mfa_failed(
    state: &AppState,
    account: &Account,
    gate: MfaGate,
    source: Option<IpAddr>,
    method: &str,
    reason: &str,
    flash: &str,
) -> Response {
    let subject = account.username.to_string();
    let ev = AuditEvent::new(
        Actor::User(subject.clone()),
        Action::LoginMfa,
        subject.clone(),
    )
    .outcome(Outcome::Failure)
    .source(source)
    .detail("method", method.to_owned())
    .detail("reason", reason.to_owned());
    if let Err(e) = state.store.append_audit(&[ev]).await {
        return internal(e);
    }
    failed_check(
        state,
        vec![(gate.key, gate.current)],
        gate.now,
        source,
        subject,
        Action::LoginMfa,
        mfa_form(state, account, StatusCode::UNAUTHORIZED, flash),
    )
    .await
}

/// An accepted second factor (`event` says which): the throttle is cleared and the login
/// completes with a new session id.
pub(crate) async fn mfa_passed(
    state: &AppState,
    parts: &Parts,
    partial: &Partial,
    gate: MfaGate,
    source: Option<IpAddr>,
    method: &str,
    event: AuditEvent,
) -> Response {
    if let Err(e) = state.store.clear_throttle(&gate.key).await {
        return internal(e);
    }
    match complete(state, partial, source, method, event).await {
        Ok(token) => after_login(state, &parts.headers, set_cookie(&token)),
        Err(response) => response,
    }
}

async fn enroll_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let now = jiff::Timestamp::now().as_second();
    match state
        .store
        .enroll_link_account(&token_hash(&token), now)
        .await
    {
        Ok(Some(account)) => render(
            StatusCode::OK,
            &pages::Enroll {
                nav: None,
                flash: None,
                username: account.username.to_string(),
                token,
            },
        ),
        Ok(None) => pages::message(
            StatusCode::NOT_FOUND,
            None,
            "Link not valid",
            "This enrollment link was already used, has expired, or never existed. Ask an administrator for a new one.",
            None,
        ),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct EnrollForm {
    password: String,
    confirm: String,
}

async fn enroll(
    State(state): State<AppState>,
    parts: Parts,
    Path(token): Path<String>,
    form: Result<Form<EnrollForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let now = jiff::Timestamp::now().as_second();
    let hash = token_hash(&token);
    let account = match state.store.enroll_link_account(&hash, now).await {
        Ok(Some(a)) => a,
        Ok(None) => return enroll_page(State(state), Path(token)).await,
        Err(e) => return internal(e),
    };
    let again = |flash: String| {
        render(
            StatusCode::BAD_REQUEST,
            &pages::Enroll {
                nav: None,
                flash: Some(flash),
                username: account.username.to_string(),
                token: token.clone(),
            },
        )
    };
    let Ok(Form(form)) = form else {
        return again("The form was incomplete.".into());
    };
    if form.password != form.confirm {
        return again("The two passwords differ.".into());
    }
    let pw = Secret::new(form.password);
    let context = [
        account.username.as_str(),
        account.email.as_str(),
        account.display_name.as_str(),
    ];
    if let Err(e) = password::check_strength(&pw, &context) {
        return again(format!("{}.", capitalize(&e.to_string())));
    }
    let cost = state.cost;
    let permit = state.hashing.acquire().await;
    let hashed = tokio::task::spawn_blocking(move || password::hash(&pw, cost)).await;
    drop(permit);
    let Ok(Ok(hashed)) = hashed else {
        return internal("password hashing failed");
    };
    let source = client_ip(&parts);
    let ev = AuditEvent::new(
        Actor::User(account.username.to_string()),
        Action::EnrollComplete,
        account.username.to_string(),
    )
    .source(source);
    match state
        .store
        .complete_enrollment(&hash, now, &hashed, ev)
        .await
    {
        Ok(true) => {}
        Ok(false) => return enroll_page(State(state), Path(token)).await,
        Err(e) => return internal(e),
    }
    let stage = if account.has_mfa() {
        Stage::PasswordOk
    } else if state.policy.mfa == MfaPolicy::Required && account.kind.needs_mfa() {
        Stage::MustEnroll
    } else {
        Stage::Complete
    };
    let ev = AuditEvent::new(
        Actor::User(account.username.to_string()),
        Action::LoginPassword,
        account.username.to_string(),
    )
    .source(source)
    .detail("via", "enrollment")
    .detail("next", stage.as_str());
    start_session(&state, &parts.headers, &account, stage, source, ev).await
}

async fn mfa_enroll_page(State(state): State<AppState>, partial: Partial) -> Response {
    if partial.session.stage != Stage::MustEnroll {
        return Redirect::to("/").into_response();
    }
    let secret = match TotpSecret::generate() {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let base32 = secret.to_base32();
    let context = format!("pending-totp:{}", partial.account.id);
    let sealed = match state
        .master
        .seal(&context, base32.expose_secret().as_bytes())
    {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let url = secret.otpauth_url(
        &format!("rampart {}", state.web.public_host),
        partial.account.username.as_str(),
    );
    let qr_svg = qrcode::QrCode::new(url.expose_secret().as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .build()
        })
        .unwrap_or_default();
    render(
        StatusCode::OK,
        &pages::MfaEnroll {
            nav: None,
            flash: None,
            qr_svg,
            secret: base32.expose_secret().clone(),
            sealed,
        },
    )
}

#[derive(Deserialize)]
struct MfaEnrollForm {
    sealed: String,
    code: String,
}

async fn mfa_enroll(
    State(state): State<AppState>,
    parts: Parts,
    partial: Partial,
    form: Result<Form<MfaEnrollForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if partial.session.stage != Stage::MustEnroll {
        return Redirect::to("/").into_response();
    }
    let Ok(Form(form)) = form else {
        return (StatusCode::BAD_REQUEST, "bad form\n").into_response();
    };
    let account = &partial.account;
    let opened = state
        .master
        .open(&format!("pending-totp:{}", account.id), &form.sealed)
        .ok()
        .and_then(|b| String::from_utf8(b.expose_secret().clone()).ok());
    let Some(base32) = opened else {
        return (StatusCode::BAD_REQUEST, "bad form\n").into_response();
    };
    let Some(secret) = TotpSecret::from_base32(&base32) else {
        return (StatusCode::BAD_REQUEST, "bad form\n").into_response();
    };
    let now = jiff::Timestamp::now().as_second();
    let Ok(step) = secret.verify(&form.code, now, None) else {
        return pages::message(
            StatusCode::BAD_REQUEST,
            None,
            "Code not accepted",
            "The code did not match. Check the time on your phone and try again.",
            Some("/mfa/enroll"),
        );
    };
    let codes = match totp::recovery_codes() {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| token_hash(&totp::normalize_recovery_code(c.expose_secret())))
        .collect();
    let sealed = match state
        .master
        .seal(&format!("totp:{}", account.id), base32.as_bytes())
    {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let source = client_ip(&parts);
    let username = account.username.to_string();
    let ev = AuditEvent::new(
        Actor::User(username.clone()),
        Action::MfaEnroll,
        username.clone(),
    )
    .source(source)
    .detail("factor", "totp");
    if let Err(e) = state
        .store
        .enroll_totp(&account.id, &sealed, step, &hashes, ev)
        .await
    {
        return internal(e);
    }
    let ev = AuditEvent::new(Actor::User(username.clone()), Action::LoginMfa, username)
        .source(source)
        .detail("method", "totp")
        .detail("via", "enrollment");
    let token = match complete(&state, &partial, source, "totp", ev).await {
        Ok(t) => t,
        Err(response) => return response,
    };
    let page = render(
        StatusCode::OK,
        &pages::Recovery {
            nav: Some(account.username.to_string()),
            flash: None,
            codes: codes.iter().map(|c| c.expose_secret().clone()).collect(),
        },
    );
    ([set_cookie(&token)], page).into_response()
}

async fn logout(State(state): State<AppState>, viewer: Viewer) -> Response {
    let username = viewer.account.username.to_string();
    let ev = AuditEvent::new(Actor::User(username.clone()), Action::SessionEnd, username)
        .source(viewer.source)
        .detail("reason", "logout");
    match state
        .store
        .revoke_session(&viewer.account.id, &viewer.session_hash, ev)
        .await
    {
        Ok(_) => ([clear_cookie()], Redirect::to("/login")).into_response(),
        Err(e) => internal(e),
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

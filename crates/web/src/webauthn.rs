//! WebAuthn (ACC-2): security keys and passkeys as a second factor beside TOTP.
//!
//! Registration (from the account page of a complete login) and the login's second step
//! are each a ceremony in two requests: `…/begin` answers the options as JSON and stores
//! the webauthn-rs state server-side (`Store::put_webauthn_challenge`), bound to the
//! account and the session that asked, for [`CHALLENGE_SECS`]; the page's script
//! (`static/webauthn.js`, served by rampart, the only script those pages may run) asks the
//! authenticator and posts its answer as a form field. The answer is checked against the
//! state taken from the store in a transaction that deletes it: an answer is checked once,
//! a replay finds nothing, an expired state is refused. Keys are stored as the serialised
//! `Passkey` and rewritten after each use as the crate documents (the signature counter
//! moves forward; a counter that goes back is refused by webauthn-rs). Every step is
//! audited: `mfa.enroll` and `mfa.remove` with `factor=webauthn`, `login.mfa` with
//! `method=webauthn` (accepted or refused, with the reason).
//!
//! The relying party id is `web.public_host` and the only accepted origin is the front
//! door's public origin (`https://host[:port]`), never anything a client sent.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::Engine as _;
use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use rampart_identity::session::Stage;
use rampart_store::{Account, Ceremony, StoreError, TakenChallenge};
use serde::Deserialize;
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use crate::AppState;
use crate::admin::nav;
use crate::auth::{Partial, Viewer, client_ip, internal};
use crate::pages;

/// How long a begun ceremony may wait for the authenticator's answer.
pub const CHALLENGE_SECS: i64 = 5 * 60;

/// Longest name a person may give a key.
const NAME_MAX: usize = 64;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/static/webauthn.js", get(script))
        .route("/account/webauthn/begin", post(register_begin))
        .route("/account/webauthn", post(register_finish))
        .route("/account/webauthn/{id}/remove", post(remove))
        .route("/login/webauthn/begin", post(login_begin))
        .route("/login/webauthn", post(login_finish))
}

/// The relying party for `public_host` and `origin`; `None` (WebAuthn off, with a
/// warning) when the host is not a domain name WebAuthn accepts, such as an IP address.
pub(crate) fn relying_party(public_host: &str, origin: &str) -> Option<Arc<Webauthn>> {
    // Browsers refuse an IP address as relying party id (WebAuthn §5.1.3: a valid domain).
    let ip = public_host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok();
    let built = if ip {
        Err("an IP address is not a domain name".to_owned())
    } else {
        Url::parse(origin)
            .map_err(|e| e.to_string())
            .and_then(|url| {
                WebauthnBuilder::new(public_host, &url)
                    .and_then(|b| b.rp_name("rampart").build())
                    .map_err(|e| e.to_string())
            })
    };
    match built {
        Ok(rp) => Some(Arc::new(rp)),
        Err(e) => {
            tracing::warn!(host = public_host, error = %e, "WebAuthn is off: web.public_host is not a domain name it accepts");
            None
        }
    }
}

/// The account's keys, parsed; a row that does not parse is skipped and logged (it can
/// only come from a hand-edited database).
pub(crate) async fn passkeys(
    state: &AppState,
    account: &Account,
) -> Result<Vec<(rampart_store::WebauthnKey, Passkey)>, StoreError> {
    Ok(state
        .store
        .webauthn_keys(&account.id)
        .await?
        .into_iter()
        .filter_map(|row| match serde_json::from_str::<Passkey>(&row.passkey) {
            Ok(pk) => Some((row, pk)),
            Err(e) => {
                tracing::error!(key = %row.id, error = %e, "a stored WebAuthn key does not parse; skipped");
                None
            }
        })
        .collect())
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/webauthn.js"),
    )
        .into_response()
}

/// A plain-text refusal for the JSON endpoints (the script shows it).
fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}

fn json(value: &impl serde::Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => (
            [(header::CONTENT_TYPE, "application/json")],
            body.into_bytes(),
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

fn unavailable() -> Response {
    plain(
        StatusCode::NOT_FOUND,
        "Security keys are not available: web.public_host is not a domain name.",
    )
}

/// The credential id as stored: base64url without padding.
fn credential_id(pk: &Passkey) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pk.cred_id().as_slice())
}

/// The first characters of a credential id, enough to tell keys apart in the audit log.
fn short(id: &str) -> String {
    id.chars().take(16).collect()
}

async fn register_begin(State(state): State<AppState>, viewer: Viewer) -> Response {
    let Some(rp) = state.webauthn() else {
        return unavailable();
    };
    let account = &viewer.account;
    let existing = match passkeys(&state, account).await {
        Ok(k) => k,
        Err(e) => return internal(e),
    };
    let exclude = existing
        .iter()
        .map(|(_, pk)| pk.cred_id().clone())
        .collect();
    // Account ids are UUIDs: the authenticator keeps this as the user handle.
    let uid = match Uuid::parse_str(&account.id) {
        Ok(u) => u,
        Err(e) => return internal(e),
    };
    let (options, registration) = match rp.start_passkey_registration(
        uid,
        account.username.as_str(),
        &account.display_name,
        Some(exclude),
    ) {
        Ok(pair) => pair,
        Err(e) => return internal(e),
    };
    let stored = match serde_json::to_string(&registration) {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let expires = jiff::Timestamp::now().as_microsecond() + CHALLENGE_SECS * 1_000_000;
    if let Err(e) = state
        .store
        .put_webauthn_challenge(
            &viewer.session_hash,
            Ceremony::Register,
            &account.id,
            &stored,
            expires,
        )
        .await
    {
        return internal(e);
    }
    json(&options)
}

#[derive(Deserialize)]
struct RegisterForm {
    #[serde(default)]
    name: String,
    credential: String,
}

async fn register_finish(
    State(state): State<AppState>,
    viewer: Viewer,
    form: Result<Form<RegisterForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let refused = |status, text: &str| {
        pages::message(
            status,
            nav(&viewer),
            "Key not added",
            text,
            Some("/account"),
        )
    };
    let Some(rp) = state.webauthn() else {
        return unavailable();
    };
    let Ok(Form(form)) = form else {
        return refused(StatusCode::BAD_REQUEST, "The form was incomplete.");
    };
    let name = match key_name(&form.name) {
        Ok(n) => n,
        Err(text) => return refused(StatusCode::BAD_REQUEST, text),
    };
    let Ok(answer) = serde_json::from_str::<RegisterPublicKeyCredential>(&form.credential) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "The browser's answer was not understood. Try again.",
        );
    };
    let account = &viewer.account;
    let username = account.username.to_string();
    let event = || {
        AuditEvent::new(
            Actor::User(username.clone()),
            Action::MfaEnroll,
            username.clone(),
        )
        .source(viewer.source)
        .detail("factor", "webauthn")
    };
    let now = jiff::Timestamp::now().as_microsecond();
    let taken = state
        .store
        .take_webauthn_challenge(&viewer.session_hash, Ceremony::Register, &account.id, now)
        .await;
    let registration = match taken {
        Ok(TakenChallenge::Fresh(s)) => s,
        Ok(other) => {
            let (reason, text) = stale(&other);
            let ev = event().outcome(Outcome::Failure).detail("reason", reason);
            if let Err(e) = state.store.append_audit(&[ev]).await {
                return internal(e);
            }
            return refused(StatusCode::BAD_REQUEST, text);
        }
        Err(e) => return internal(e),
    };
    let registration: PasskeyRegistration = match serde_json::from_str(&registration) {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let passkey = match rp.finish_passkey_registration(&answer, &registration) {
        Ok(pk) => pk,
        Err(e) => {
            let ev = event()
                .outcome(Outcome::Failure)
                .detail("reason", e.to_string());
            if let Err(e) = state.store.append_audit(&[ev]).await {
                return internal(e);
            }
            return refused(
                StatusCode::BAD_REQUEST,
                "The security key's answer was not accepted. Try again.",
            );
        }
    };
    let id = credential_id(&passkey);
    let stored = match serde_json::to_string(&passkey) {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    match state
        .store
        .add_webauthn_key(
            &account.id,
            &id,
            &stored,
            &name,
            event().detail("credential", short(&id)),
        )
        .await
    {
        Ok(_) => Redirect::to("/account").into_response(),
        Err(StoreError::Conflict(_)) => refused(
            StatusCode::CONFLICT,
            "That security key is already registered.",
        ),
        Err(e) => internal(e),
    }
}

/// A key's name: trimmed, control characters refused, at most [`NAME_MAX`] characters;
/// empty becomes "Security key".
fn key_name(typed: &str) -> Result<String, &'static str> {
    let name = typed.trim();
    if name.chars().any(char::is_control) {
        return Err("A key's name cannot hold control characters.");
    }
    if name.chars().count() > NAME_MAX {
        return Err("A key's name is at most 64 characters.");
    }
    Ok(if name.is_empty() {
        "Security key".to_owned()
    } else {
        name.to_owned()
    })
}

/// The audit reason and the person's sentence for a challenge that is not there.
fn stale(taken: &TakenChallenge) -> (&'static str, &'static str) {
    match taken {
        TakenChallenge::Expired => (
            "challenge expired",
            "That took too long: the request expired. Try again.",
        ),
        TakenChallenge::Missing | TakenChallenge::Fresh(_) => (
            "no challenge: never begun or already used",
            "There is no key check in progress (it was already used). Try again.",
        ),
    }
}

#[derive(Deserialize)]
struct RemoveForm {
    #[serde(default)]
    code: String,
}

/// Removes one of the viewer's keys; needs a second-factor check in the last 5 minutes,
/// like other sensitive changes.
async fn remove(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: Result<Form<RemoveForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let code = form.map(|Form(f)| f.code).unwrap_or_default();
    if let Err(refusal) =
        crate::sensitive::require_recent_mfa(&state, &viewer, &code, "webauthn.remove", "/account")
            .await
    {
        return refusal;
    }
    let username = viewer.account.username.to_string();
    let ev = AuditEvent::new(Actor::User(username.clone()), Action::MfaRemove, username)
        .source(viewer.source)
        .detail("factor", "webauthn")
        .detail("key", id.chars().take(64).collect::<String>());
    match state
        .store
        .remove_webauthn_key(&viewer.account.id, &id, ev)
        .await
    {
        Ok(true) => Redirect::to("/account").into_response(),
        Ok(false) => pages::message(
            StatusCode::NOT_FOUND,
            nav(&viewer),
            "Key not found",
            "You hold no such security key.",
            Some("/account"),
        ),
        Err(e) => internal(e),
    }
}

async fn login_begin(State(state): State<AppState>, partial: Partial) -> Response {
    let Some(rp) = state.webauthn() else {
        return unavailable();
    };
    if partial.session.stage != Stage::PasswordOk {
        return plain(
            StatusCode::CONFLICT,
            "No login is waiting for a second factor.",
        );
    }
    let keys = match passkeys(&state, &partial.account).await {
        Ok(k) => k,
        Err(e) => return internal(e),
    };
    if keys.is_empty() {
        return plain(
            StatusCode::BAD_REQUEST,
            "No security key is registered for this account.",
        );
    }
    let creds: Vec<Passkey> = keys.into_iter().map(|(_, pk)| pk).collect();
    let (options, authentication) = match rp.start_passkey_authentication(&creds) {
        Ok(pair) => pair,
        Err(e) => return internal(e),
    };
    let stored = match serde_json::to_string(&authentication) {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let expires = jiff::Timestamp::now().as_microsecond() + CHALLENGE_SECS * 1_000_000;
    if let Err(e) = state
        .store
        .put_webauthn_challenge(
            &partial.session.id_hash,
            Ceremony::Login,
            &partial.account.id,
            &stored,
            expires,
        )
        .await
    {
        return internal(e);
    }
    json(&options)
}

#[derive(Deserialize)]
struct AssertionForm {
    credential: String,
}

/// Why a WebAuthn login step was refused: the audit reason.
enum Refusal {
    /// The state was missing, used or expired.
    Stale(TakenChallenge),
    /// webauthn-rs refused the assertion (its message: produced by the crate).
    Rejected(String),
    /// The key was removed while the login waited.
    Gone,
}

async fn login_finish(
    State(state): State<AppState>,
    parts: Parts,
    partial: Partial,
    form: Result<Form<AssertionForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if partial.session.stage != Stage::PasswordOk {
        return Redirect::to("/login").into_response();
    }
    let Some(rp) = state.webauthn() else {
        return unavailable();
    };
    let account = &partial.account;
    let answer = form
        .ok()
        .and_then(|Form(f)| serde_json::from_str::<PublicKeyCredential>(&f.credential).ok());
    let Some(answer) = answer else {
        return crate::auth::mfa_form(
            &state,
            account,
            StatusCode::BAD_REQUEST,
            "The browser's answer was not understood. Try again.",
        );
    };
    let source = client_ip(&parts);
    let gate = match crate::auth::mfa_gate(&state, account, source).await {
        Ok(g) => g,
        Err(response) => return response,
    };
    let now = jiff::Timestamp::now().as_microsecond();
    let verdict = match check_assertion(&state, &rp, &partial, &answer, now).await {
        Ok(v) => v,
        Err(e) => return internal(e),
    };
    match verdict {
        Ok(credential) => {
            let subject = account.username.to_string();
            let ev = AuditEvent::new(Actor::User(subject.clone()), Action::LoginMfa, subject)
                .source(source)
                .detail("method", "webauthn")
                .detail("credential", short(&credential));
            crate::auth::mfa_passed(&state, &parts, &partial, gate, source, "webauthn", ev).await
        }
        Err(refusal) => {
            let reason = match &refusal {
                Refusal::Stale(t) => stale(t).0.to_owned(),
                Refusal::Rejected(why) => why.clone(),
                Refusal::Gone => "key removed".to_owned(),
            };
            let flash = match refusal {
                Refusal::Stale(t) => stale(&t).1,
                Refusal::Rejected(_) | Refusal::Gone => "The security key was not accepted.",
            };
            crate::auth::mfa_failed(&state, account, gate, source, "webauthn", &reason, flash).await
        }
    }
}

/// Takes the login's challenge and checks the answer against it; on success the key's
/// new state is stored (counter) with the account's latest second-factor check, and its
/// credential id is returned.
async fn check_assertion(
    state: &AppState,
    rp: &Webauthn,
    partial: &Partial,
    answer: &PublicKeyCredential,
    now_us: i64,
) -> Result<Result<String, Refusal>, StoreError> {
    let account = &partial.account;
    let taken = state
        .store
        .take_webauthn_challenge(
            &partial.session.id_hash,
            Ceremony::Login,
            &account.id,
            now_us,
        )
        .await?;
    let TakenChallenge::Fresh(stored) = taken else {
        return Ok(Err(Refusal::Stale(taken)));
    };
    let authentication: PasskeyAuthentication = serde_json::from_str(&stored)
        .map_err(|e| StoreError::Corrupt(format!("a WebAuthn login state: {e}")))?;
    let result = match rp.finish_passkey_authentication(answer, &authentication) {
        Ok(r) => r,
        Err(e) => return Ok(Err(Refusal::Rejected(e.to_string()))),
    };
    let keys = state.store.webauthn_keys(&account.id).await?;
    let used = keys.into_iter().find_map(|row| {
        let mut pk = serde_json::from_str::<Passkey>(&row.passkey).ok()?;
        (pk.cred_id() == result.cred_id()).then(|| {
            // `Some(true)`: the counter or backup state moved, store the new state.
            let changed = pk.update_credential(&result) == Some(true);
            (row.credential_id, changed.then_some(pk))
        })
    });
    let Some((credential, changed)) = used else {
        return Ok(Err(Refusal::Gone));
    };
    let rewritten = changed
        .map(|pk| serde_json::to_string(&pk))
        .transpose()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if !state
        .store
        .use_webauthn_key(&account.id, &credential, rewritten.as_deref())
        .await?
    {
        return Ok(Err(Refusal::Gone));
    }
    Ok(Ok(credential))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_are_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(key_name("  YubiKey 5 ").as_deref(), Ok("YubiKey 5"));
        assert_eq!(key_name("").as_deref(), Ok("Security key"));
        assert!(key_name("a\u{0}b").is_err());
        assert!(key_name(&"x".repeat(65)).is_err());
        assert!(key_name(&"é".repeat(64)).is_ok());
    }

    #[test]
    fn the_relying_party_is_the_public_host_and_an_address_turns_webauthn_off() {
        assert!(relying_party("gateway.test", "https://gateway.test:8443").is_some());
        assert!(relying_party("localhost", "https://localhost:8443").is_some());
        assert!(relying_party("other.test", "https://gateway.test").is_none());
        assert!(relying_party("127.0.0.1", "https://127.0.0.1:8443").is_none());
        assert!(relying_party("[::1]", "https://[::1]:8443").is_none());
    }
}

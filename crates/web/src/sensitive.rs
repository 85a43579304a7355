//! Sensitive actions in the web UI (ACC-2): approving an access request and changing roles
//! or grants need a second-factor check within the last 5 minutes, as backup restore and
//! prune do. A login counts; otherwise the form's `code` field is checked now.

use axum::http::StatusCode;
use axum::response::Response;

use crate::AppState;
use crate::admin::nav;
use crate::auth::{Viewer, internal};
use crate::ops::{MfaRefusal, recent_mfa};
use crate::pages::message;

/// `Ok` when `viewer` passed a second-factor check in the last 5 minutes or `code` is a
/// current one (checked and audited as `login.mfa` with `purpose`); else the refusal page.
pub(crate) async fn require_recent_mfa(
    state: &AppState,
    viewer: &Viewer,
    code: &str,
    purpose: &str,
    back: &str,
) -> Result<(), Response> {
    let code = Some(code.trim()).filter(|c| !c.is_empty());
    match recent_mfa(
        &state.store,
        &state.master,
        &state.policy.throttle(),
        &viewer.account,
        code,
        purpose,
        viewer.source,
    )
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(refusal)) => {
            let status = match refusal {
                MfaRefusal::Locked => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::FORBIDDEN,
            };
            Err(message(
                status,
                nav(viewer),
                "Second factor needed",
                &format!("Not done: {refusal}."),
                Some(back),
            ))
        }
        Err(e) => Err(internal(e)),
    }
}

//! Application logs on the front door (LOG-1, LOG-2): `POST /ingest/ndjson` and the Loki
//! push API `POST /loki/api/v1/push` (JSON or snappy protobuf; any body may come gzip-encoded,
//! `Content-Encoding: gzip`, decoded to at most 8 times the body limit), authenticated by per-source
//! tokens held by service accounts; the syslog-over-TLS listener ([`syslog`]); the `/logs`
//! page ([`page`]) and its live tail ([`tail`]).
//!
//! A token is presented as `Authorization: Bearer TOKEN` or as the password of HTTP Basic
//! (Loki clients' `basic_auth`); only its SHA-256 is looked up. No, unknown or revoked
//! token: 401 and a `logs.ingest.denied` audit record. Over its rate: 429 with
//! `Retry-After`. Disk full: 503, and nothing already stored is touched.

pub mod alerts;
pub(crate) mod page;
pub mod syslog;
pub(crate) mod tail;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use rampart_logs::Parsed;
use rampart_logs::ingest::{Ingest, IngestError, Report};
use rampart_logs::parse::{BodyError, loki, ndjson};
use sha2::{Digest, Sha256};

use crate::AppState;

/// The log room, when `[logs]` is enabled.
pub type SharedLogs = Option<Arc<Ingest>>;

/// The `/logs` page.
pub(crate) fn page_routes() -> Router<AppState> {
    Router::new()
        .route("/logs", axum::routing::get(page::logs_page))
        .route("/logs/stream", axum::routing::get(tail::logs_stream))
        .route("/static/logs-tail.js", axum::routing::get(tail_script))
}

/// The live tail's script (the only one the logs page may run).
async fn tail_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/logs-tail.js"),
    )
        .into_response()
}

/// The ingest routes; the caller gives them their own body limit (`logs.max_body_kib`).
pub(crate) fn ingest_routes() -> Router<AppState> {
    Router::new()
        .route("/ingest/ndjson", post(push_ndjson))
        .route("/loki/api/v1/push", post(push_loki))
}

/// LOG-1, LOG-2 and LOG-5 for the report, with the sources holding a live token.
pub async fn findings(state: &AppState, ingest: &Ingest) -> Vec<rampart_report::Finding> {
    let live: Vec<String> = state
        .store
        .log_tokens()
        .await
        .map(|tokens| {
            tokens
                .into_iter()
                .filter(|t| t.revoked_us.is_none())
                .map(|t| t.source)
                .collect()
        })
        .unwrap_or_default();
    crate::evidence::logs(
        ingest.store(),
        ingest.config().retention_days,
        &live,
        ingest.clock().now(),
    )
    .await
}

/// SHA-256 hex of a token, as stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The token of a request: Bearer, or the password of Basic.
fn presented_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    if let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    {
        return Some(token.trim().to_owned());
    }
    let basic = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_, password) = text.split_once(':')?;
    Some(password.to_owned())
}

/// Why a source could not be authenticated, for the audit record.
pub(crate) enum Refusal {
    Missing,
    Unknown,
    Revoked(String),
}

/// Looks a presented token up: the source name, or the refusal (audited by the caller).
pub(crate) async fn authenticate(
    state: &AppState,
    token: Option<&str>,
) -> Result<Result<String, Refusal>, rampart_store::StoreError> {
    let Some(token) = token.filter(|t| !t.is_empty() && t.len() <= 256) else {
        return Ok(Err(Refusal::Missing));
    };
    Ok(
        match state.store.log_token_source(&token_hash(token)).await? {
            Ok(source) => Ok(source),
            Err(Some(source)) => Err(Refusal::Revoked(source)),
            Err(None) => Err(Refusal::Unknown),
        },
    )
}

/// The audit record of a refused push.
pub(crate) fn refusal_event(refusal: &Refusal, via: &str, source: Option<IpAddr>) -> AuditEvent {
    let (subject, reason) = match refusal {
        Refusal::Missing => ("unknown".to_owned(), "no token"),
        Refusal::Unknown => ("unknown".to_owned(), "unknown token"),
        Refusal::Revoked(name) => (name.clone(), "revoked token or disabled holder"),
    };
    AuditEvent::new(Actor::Anonymous, Action::LogIngestDenied, subject)
        .outcome(Outcome::Denied)
        .source(source)
        .detail("reason", reason)
        .detail("via", via)
}

async fn push_ndjson(State(state): State<AppState>, request: Request) -> Response {
    push(state, request, "ndjson", |_, body| Ok(ndjson::parse(body))).await
}

async fn push_loki(State(state): State<AppState>, request: Request) -> Response {
    push(state, request, "loki", |headers, body| {
        let protobuf = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/x-protobuf"));
        if protobuf {
            // The decompressed body is bounded by the same limit as a plain one, times 8.
            loki::parse_protobuf(body, body.len().saturating_mul(8).max(1 << 20))
                .map_err(|e| e.to_string())
        } else {
            loki::parse_json(body).map_err(|e| e.to_string())
        }
    })
    .await
}

async fn push(
    state: AppState,
    request: Request,
    via: &str,
    parse: impl FnOnce(&HeaderMap, &[u8]) -> Result<Parsed, String>,
) -> Response {
    let Some(ingest) = state.logs.clone() else {
        return (
            StatusCode::NOT_FOUND,
            "application logs are not enabled on this server\n",
        )
            .into_response();
    };
    let (parts, body) = request.into_parts();
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip());
    let token = presented_token(&parts.headers);
    let source = match authenticate(&state, token.as_deref()).await {
        Ok(Ok(source)) => source,
        Ok(Err(refusal)) => {
            if let Err(e) = state
                .store
                .append_audit(&[refusal_event(&refusal, via, client)])
                .await
            {
                return crate::auth::internal(e);
            }
            // Read a small body before refusing: answering an HTTP/2 stream whose body is
            // still arriving resets it, and clients report the reset instead of the 401.
            let _ = axum::body::to_bytes(body, 64 * 1024).await;
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
                "a valid log-source token is required\n",
            )
                .into_response();
        }
        Err(e) => return crate::auth::internal(e),
    };
    let limit = usize::try_from(ingest.config().max_body_kib.get())
        .unwrap_or(64)
        .saturating_mul(1024);
    let body: Bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body is larger than logs.max_body_kib\n",
            )
                .into_response();
        }
    };
    // A gzip body (Vector, Alloy and Fluent Bit can send one) is decoded first, to at most
    // 8 times the body limit.
    let encoding = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?"));
    let body = match rampart_logs::parse::decode_body(encoding, &body, limit.saturating_mul(8)) {
        Ok(b) => b,
        Err(e) => {
            let status = match e {
                BodyError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::Corrupt => StatusCode::BAD_REQUEST,
            };
            return (status, format!("{e}\n")).into_response();
        }
    };
    let parsed = match parse(&parts.headers, &body) {
        Ok(p) => p,
        Err(why) => return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
    };
    respond(ingest.ingest(&source, parsed).await)
}

/// The answer to a push: 200 with the report (per-line errors included), 400 when no line
/// of a non-empty batch was readable, 429, 503.
fn respond(result: Result<Report, IngestError>) -> Response {
    match result {
        Ok(report) => {
            let status = if report.stored == 0 && !report.errors.is_empty() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::to_string(&report).unwrap_or_default(),
            )
                .into_response()
        }
        Err(IngestError::RateLimited { retry_after_s, .. }) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after_s.to_string())],
            "this source is over its rate limit; retry later\n",
        )
            .into_response(),
        Err(IngestError::DiskFull) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "60".to_owned())],
            "the log store is full; nothing of this batch was stored\n",
        )
            .into_response(),
        Err(e @ (IngestError::Store(_) | IngestError::Worker)) => crate::auth::internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_from_bearer_and_basic() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer rlt_abc"),
        );
        assert_eq!(presented_token(&h).as_deref(), Some("rlt_abc"));
        // "tenant:rlt_abc"
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dGVuYW50OnJsdF9hYmM="),
        );
        assert_eq!(presented_token(&h).as_deref(), Some("rlt_abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Digest x"));
        assert_eq!(presented_token(&h), None);
    }
}

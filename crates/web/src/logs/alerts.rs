//! Evaluates the `[logs.alerts]` rules on a timer: measures each rule per source, keeps the
//! firing state in the store (a rule fires once until it resolves: de-duplication), audits
//! each change in the same transaction, shows firing alerts on `/logs`, and POSTs a JSON
//! notice for firing and resolved, signed `X-Rampart-Signature: sha256=<hex HMAC-SHA-256 of
//! the body>`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use rampart_logs::alert::{Measure, Rule, RuleKind, decide, signature};
use rampart_logs::store::Query;
use rampart_logs::{Ingest, Level};

use crate::AppState;

/// Where notices go.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// `http://` or `https://` URL.
    pub url: String,
    /// HMAC key.
    pub key: rampart_core::Secret<Vec<u8>>,
}

/// How long one webhook attempt may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per notice.
const WEBHOOK_ATTEMPTS: u32 = 3;

/// Evaluates every `every` until aborted.
pub async fn keep_evaluating(state: AppState, webhook: Option<Webhook>) {
    let Some(ingest) = state.logs.clone() else {
        return;
    };
    let every = Duration::from_secs(
        u64::try_from(ingest.config().alerts.every_seconds.get()).unwrap_or(30),
    );
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = evaluate_once(&state, &ingest, webhook.as_ref()).await {
            tracing::warn!(error = %e, "log alert evaluation failed");
        }
    }
}

/// One pass over every rule.
pub async fn evaluate_once(
    state: &AppState,
    ingest: &Ingest,
    webhook: Option<&Webhook>,
) -> Result<(), String> {
    let now = ingest.clock().now().as_microsecond();
    let store = ingest.store();
    let sources = store
        .recent_sources(now - 2 * 86_400_000_000)
        .await
        .map_err(|e| e.to_string())?;
    let firing = state
        .store
        .log_alerts_firing()
        .await
        .map_err(|e| e.to_string())?;
    for rule in &ingest.config().alerts.rules {
        let mut targets: BTreeSet<String> = match &rule.source {
            Some(s) => BTreeSet::from([s.as_str().to_owned()]),
            None => sources.keys().cloned().collect(),
        };
        targets.extend(
            firing
                .iter()
                .filter(|(r, _, _)| *r == rule.name)
                .map(|(_, s, _)| s.clone()),
        );
        for source in targets {
            let measure = match &rule.kind {
                RuleKind::ErrorRate { window_minutes, .. } => Measure::Count(
                    store
                        .count(&Query {
                            since_us: Some(now - window_minutes * 60_000_000),
                            until_us: Some(now + 1),
                            min_level: Some(Level::Error),
                            source: Some(source.clone()),
                            ..Query::default()
                        })
                        .await
                        .map_err(|e| e.to_string())?,
                ),
                RuleKind::Pattern {
                    pattern,
                    window_minutes,
                } => Measure::Count(
                    store
                        .count(&Query {
                            text: Some(pattern.clone()),
                            since_us: Some(now - window_minutes * 60_000_000),
                            until_us: Some(now + 1),
                            source: Some(source.clone()),
                            ..Query::default()
                        })
                        .await
                        .map_err(|e| e.to_string())?,
                ),
                RuleKind::Silence { .. } => Measure::LastSeen(sources.get(&source).copied()),
            };
            let fires = decide(&rule.kind, measure, now);
            let changed = if fires {
                let event = event(rule, &source, measure, Outcome::Failure);
                state
                    .store
                    .log_alert_fire(&rule.name, &source, now, event)
                    .await
            } else {
                let event = event(rule, &source, measure, Outcome::Success);
                state
                    .store
                    .log_alert_resolve(&rule.name, &source, event)
                    .await
            }
            .map_err(|e| e.to_string())?;
            if changed && let Some(webhook) = webhook {
                let body = payload(rule, &source, measure, fires, now);
                let _ = notify(webhook, body).await;
            }
        }
    }
    Ok(())
}

fn event(rule: &Rule, source: &str, measure: Measure, outcome: Outcome) -> AuditEvent {
    AuditEvent::new(
        Actor::System,
        Action::LogAlert,
        format!("{}:{source}", rule.name),
    )
    .outcome(outcome)
    .detail("kind", rule.kind.as_str())
    .detail(
        "status",
        if outcome == Outcome::Failure {
            "firing"
        } else {
            "resolved"
        },
    )
    .detail("measure", measure_text(measure))
}

fn measure_text(measure: Measure) -> String {
    match measure {
        Measure::Count(n) => format!("{n} lines"),
        Measure::LastSeen(Some(t)) => format!("last line at {t} µs"),
        Measure::LastSeen(None) => "no line seen".into(),
    }
}

/// The notice's JSON body.
fn payload(rule: &Rule, source: &str, measure: Measure, fires: bool, now_us: i64) -> Vec<u8> {
    let at = jiff::Timestamp::from_microsecond(now_us)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let (count, last_seen) = match measure {
        Measure::Count(n) => (Some(n), None),
        Measure::LastSeen(t) => (None, t),
    };
    serde_json::json!({
        "rule": rule.name,
        "kind": rule.kind.as_str(),
        "source": source,
        "status": if fires { "firing" } else { "resolved" },
        "at": at,
        "count": count,
        "last_seen_us": last_seen,
    })
    .to_string()
    .into_bytes()
}

/// POSTs a notice, retrying a few times; a failure is logged (the state change and its
/// audit record are already committed). Returns whether the endpoint took it.
pub async fn notify(webhook: &Webhook, body: Vec<u8>) -> bool {
    let signed = signature(webhook.key.expose_secret(), &body);
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        match tokio::time::timeout(WEBHOOK_TIMEOUT, post(&webhook.url, body.clone(), &signed)).await
        {
            Ok(Ok(status)) if (200..300).contains(&status) => return true,
            Ok(Ok(status)) => {
                tracing::warn!(status, attempt, "the alert webhook answered with an error");
            }
            Ok(Err(e)) => tracing::warn!(error = %e, attempt, "the alert webhook failed"),
            Err(_) => tracing::warn!(attempt, "the alert webhook timed out"),
        }
        tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
    }
    false
}

async fn post(url: &str, body: Vec<u8>, signed: &str) -> Result<u16, String> {
    let uri: hyper::Uri = url.parse().map_err(|_| "bad webhook URL".to_owned())?;
    let host = uri.host().ok_or("webhook URL without host")?.to_owned();
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri
        .path_and_query()
        .map_or("/", hyper::http::uri::PathAndQuery::as_str)
        .to_owned();
    let authority = uri
        .authority()
        .map_or(host.clone(), |a| a.as_str().to_owned());
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "rampart-alerts")
        .header("x-rampart-signature", signed)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| e.to_string())?;
    if https {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name =
            rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        send(TokioIo::new(tls), request).await
    } else {
        send(TokioIo::new(tcp), request).await
    }
}

async fn send<IO>(io: IO, request: hyper::Request<Full<Bytes>>) -> Result<u16, String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    // Read (and drop) a bounded answer so the connection ends cleanly.
    let _ = http_body_util::Limited::new(response.into_body(), 64 * 1024)
        .collect()
        .await;
    driver.abort();
    Ok(status)
}

//! `/anomalies`: the anomaly rules of [`rampart_audit::anomaly`] run over the audit log
//! (ACC-7). [`Watch`] learns the history once, then reads new records (`rampart serve` every
//! minute; `rampart anomaly scan` on demand); each alert becomes an `anomaly.alert` audit
//! record (outcome failure) naming the records behind it, written in the same transaction
//! as the mark of how far the rules have read, so an alert is written once.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use rampart_access::Permission;
use rampart_audit::anomaly::{Alert, Detector, Thresholds};
use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use rampart_store::{AuditQuery, Store, StoreError};

use crate::AppState;
use crate::admin::{nav, require};
use crate::auth::{Viewer, internal};
use crate::pages::render;

/// Records read per page.
const PAGE: u32 = 5000;

/// Pages read per step at most (the next step goes on).
const MAX_PAGES: usize = 20;

/// Record numbers named per alert at most.
const MAX_NAMED: usize = 50;

/// The rules and how far they have read.
#[derive(Debug)]
pub struct Watch {
    detector: Detector,
    seen: Option<u64>,
}

/// The audit event of an alert.
pub fn event(alert: &Alert) -> AuditEvent {
    let records: Vec<String> = alert
        .seqs
        .iter()
        .take(MAX_NAMED)
        .map(u64::to_string)
        .collect();
    AuditEvent::new(Actor::System, Action::AnomalyAlert, alert.subject.clone())
        .outcome(Outcome::Failure)
        .detail("rule", alert.rule.as_str())
        .detail("summary", alert.summary.clone())
        .detail("records", records.join(","))
}

impl Watch {
    /// Learns the history up to the stored mark (records there raised their alerts
    /// already). On the very first run there is no mark: the whole history is learned and
    /// raises nothing, and the next step starts after it.
    pub async fn start(store: &Store) -> Result<Self, StoreError> {
        let mark = store.anomaly_seen().await?;
        let head = store.audit_head().await?.map_or(0, |r| r.seq);
        let until = mark.unwrap_or(head);
        let mut detector = Detector::new(Thresholds::default());
        let mut after = 0;
        'pages: while after < until {
            let page = store.audit_page(after, PAGE).await?;
            if page.is_empty() {
                break;
            }
            for r in &page {
                if r.seq > until {
                    break 'pages;
                }
                let _ = detector.observe(r);
                after = r.seq;
            }
        }
        Self {
            detector,
            seen: Some(until),
        }
        .first_mark(store, mark.is_none())
        .await
    }

    async fn first_mark(self, store: &Store, first: bool) -> Result<Self, StoreError> {
        if first {
            let seen = self.seen.unwrap_or(0);
            // Another process may have set it meanwhile: then its mark counts.
            if let Err(theirs) = store.record_anomalies(&[], None, seen).await? {
                return Ok(Self {
                    seen: theirs,
                    ..self
                });
            }
        }
        Ok(self)
    }

    /// Reads the records after the mark, records the alerts they raise, and returns them.
    /// After an error, start again with [`Watch::start`].
    pub async fn step(&mut self, store: &Store) -> Result<Vec<Alert>, StoreError> {
        let mut raised = Vec::new();
        for _ in 0..MAX_PAGES {
            let from = self.seen;
            let page = store.audit_page(from.unwrap_or(0), PAGE).await?;
            let Some(last) = page.last().map(|r| r.seq) else {
                break;
            };
            let alerts: Vec<Alert> = page
                .iter()
                .filter(|r| r.action != Action::AnomalyAlert.as_str())
                .flat_map(|r| self.detector.observe(r))
                .collect();
            let events: Vec<AuditEvent> = alerts.iter().map(event).collect();
            match store.record_anomalies(&events, from, last).await? {
                Ok(()) => {
                    self.seen = Some(last);
                    raised.extend(alerts);
                }
                // Someone else recorded these: their mark counts, the alerts are theirs.
                Err(theirs) => self.seen = theirs.max(Some(last)),
            }
            if page.len() < PAGE as usize {
                break;
            }
        }
        Ok(raised)
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/anomalies", get(page))
}

pub(crate) struct AlertRow {
    pub seq: u64,
    pub time: String,
    pub rule: String,
    pub subject: String,
    pub summary: String,
    pub records: String,
}

#[derive(Template)]
#[template(path = "anomalies.html")]
pub(crate) struct AnomaliesPage {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub alerts: Vec<AlertRow>,
}

async fn page(State(state): State<AppState>, viewer: Viewer) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ViewAudit).await {
        return r;
    }
    let records = match state
        .store
        .audit_search(&AuditQuery {
            action_prefix: Some(Action::AnomalyAlert.as_str().into()),
            limit: 200,
            ..AuditQuery::default()
        })
        .await
    {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let alerts = records
        .into_iter()
        .map(|r| {
            let details: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&r.details).unwrap_or_default();
            let field = |k: &str| {
                details
                    .get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            AlertRow {
                seq: r.seq,
                time: crate::reviews::when(Some(r.time_us)),
                rule: field("rule"),
                summary: field("summary"),
                records: field("records").replace(',', ", "),
                subject: r.subject,
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &AnomaliesPage {
            nav: nav(&viewer),
            flash: None,
            alerts,
        },
    )
}

//! `/anomalies`: the anomaly rules of [`rampart_audit::anomaly`] run over the audit log
//! (ACC-7). [`Watch`] learns the history once, then reads new records (`rampart serve` every
//! minute, or every second while it is behind; `rampart anomaly scan` on demand, to the
//! end); each alert becomes an `anomaly.alert` audit record (outcome failure) naming the
//! records behind it, written in the same transaction as the mark of how far the rules
//! have read, so an alert is written once.

use std::time::{Duration, Instant};

use askama::Template;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rampart_access::Permission;
use rampart_audit::anomaly::{Alert, Detector, Thresholds};
use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use rampart_store::{AuditQuery, Store, StoreError};

use crate::AppState;
use crate::admin::{nav, require};
use crate::auth::{Viewer, internal};
use crate::pages::{message, render};

/// Records read per page.
const PAGE: u32 = 5000;

/// Sequence numbers one page looks across at most. Only the records the rules read
/// ([`Detector::OBSERVED`]) come out of the database; app requests, which can be most of
/// the log, are passed by there.
const SPAN: u64 = 100_000;

/// Pages read per step at most (the next step goes on).
const MAX_PAGES: usize = 20;

/// Record numbers named per alert at most.
const MAX_NAMED: usize = 50;

/// The rules and how far they have read.
#[derive(Debug)]
pub struct Watch {
    detector: Detector,
    seen: Option<u64>,
    /// The last record the detector has read (the mark can be ahead of it when another
    /// node moved it).
    read: u64,
    /// The last step stopped at its page limit, not at the newest record.
    behind: bool,
    /// Records read to learn the history at the start.
    learned: u64,
    /// Where the saved state stands and when it was saved by this watch.
    saved: Option<(u64, Instant)>,
    /// The mark moved past records this watch did not read (another node or process
    /// recorded them first): its state lacks them, so it is not saved.
    skipped: bool,
}

/// Records of history from which learning it is worth a line in the log.
const LONG_HISTORY: u64 = 1_000_000;

/// How often the rules' state is saved while they read new records, at most. A restart
/// then reads about this much of the log again, instead of the whole log.
pub const SAVE_EVERY: Duration = Duration::from_secs(300);

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
    /// already): from the saved state ([`Watch::save_if_due`]) and the records after it,
    /// or, without a usable saved state, from the whole log. On the very first run there
    /// is no mark: the whole history is learned and raises nothing, and the next step
    /// starts after it.
    pub async fn start(store: &Store) -> Result<Self, StoreError> {
        Self::start_with(store, &|_, _| {}).await
    }

    /// [`Watch::start`], calling `progress(read_to, until)` after each page of the history
    /// it reads (sequence numbers: where it has read to, where it stops), for a progress
    /// bar.
    pub async fn start_with(
        store: &Store,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<Self, StoreError> {
        let mark = store.anomaly_seen().await?;
        let head = store.audit_head().await?.map_or(0, |r| r.seq);
        let until = mark.unwrap_or(head);
        let limits = Thresholds::default();
        let (mut detector, saved) = match store.anomaly_state().await? {
            Some((seq, state)) if seq <= until => match Detector::restore(&state, limits) {
                Ok(detector) => (detector, Some(seq)),
                Err(why) => {
                    tracing::info!(%why, "the anomaly rules' saved state is not used; they learn the whole audit log again");
                    (Detector::new(limits), None)
                }
            },
            _ => (Detector::new(limits), None),
        };
        let mut after = saved.unwrap_or(0);
        let mut learned = 0;
        if until - after > LONG_HISTORY {
            tracing::info!(
                from = after,
                to = until,
                "the anomaly rules learn the audit log's history"
            );
        }
        while after < until {
            let (page, reached) = store
                .audit_page_of(after, SPAN.min(until - after), PAGE, Detector::OBSERVED)
                .await?;
            for r in &page {
                let _ = detector.observe(r);
            }
            learned += page.len() as u64;
            if reached <= after {
                break;
            }
            after = reached;
            progress(after, until);
        }
        Self {
            detector,
            seen: Some(until),
            read: until,
            behind: false,
            learned,
            saved: saved.map(|seq| (seq, Instant::now())),
            skipped: false,
        }
        .first_mark(store, mark.is_none())
        .await
    }

    /// How many records [`Watch::start`] read to learn the history.
    pub fn learned(&self) -> u64 {
        self.learned
    }

    /// Saves the rules' state when none was saved since this watch started, or the last
    /// save is [`SAVE_EVERY`] old and the rules have read further since.
    pub async fn save_if_due(&mut self, store: &Store) -> Result<(), StoreError> {
        let due = self
            .saved
            .is_none_or(|(seq, at)| self.read > seq && at.elapsed() >= SAVE_EVERY);
        if due {
            self.save(store).await?;
        }
        Ok(())
    }

    /// Saves the rules' state now, unless a state that has read further is saved, or this
    /// watch skipped records another node read (that node's state has them).
    pub async fn save(&mut self, store: &Store) -> Result<(), StoreError> {
        if self.skipped {
            return Ok(());
        }
        let state = self.detector.save();
        if state.len() > rampart_audit::anomaly::MAX_SAVED {
            tracing::warn!(
                bytes = state.len(),
                "the anomaly rules' state is too large to save; a restart learns the whole audit log again"
            );
        } else {
            store.save_anomaly_state(self.read, &state).await?;
        }
        self.saved = Some((self.read, Instant::now()));
        Ok(())
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
        self.step_across(store, SPAN).await
    }

    /// Whether the last step stopped at its page limit with newer records left: a busy
    /// gateway can write more in a minute than one step reads, so the caller steps again
    /// soon instead of falling further behind.
    pub fn is_behind(&self) -> bool {
        self.behind
    }

    async fn step_across(&mut self, store: &Store, span: u64) -> Result<Vec<Alert>, StoreError> {
        let mut raised = Vec::new();
        self.behind = true;
        for _ in 0..MAX_PAGES {
            let from = self.seen;
            let after = from.unwrap_or(0);
            let (page, reached) = store
                .audit_page_of(after, span, PAGE, Detector::OBSERVED)
                .await?;
            if reached <= after {
                self.behind = false;
                break;
            }
            let alerts: Vec<Alert> = page
                .iter()
                .filter(|r| r.action != Action::AnomalyAlert.as_str())
                .flat_map(|r| self.detector.observe(r))
                .collect();
            let events: Vec<AuditEvent> = alerts.iter().map(event).collect();
            self.read = reached;
            match store.record_anomalies(&events, from, reached).await? {
                Ok(()) => {
                    self.seen = Some(reached);
                    raised.extend(alerts);
                }
                // Someone else recorded these: their mark counts, the alerts are theirs.
                Err(theirs) => {
                    self.skipped |= theirs > Some(reached);
                    self.seen = theirs.max(Some(reached));
                }
            }
            // Caught up: the look stopped at the newest record, not at its span or page.
            if reached - after < span && page.len() < PAGE as usize {
                self.behind = false;
                break;
            }
        }
        Ok(raised)
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/anomalies", get(page))
        .route("/anomalies/{seq}/ack", post(ack_page))
}

/// Longest acknowledgement note kept, in characters.
pub const MAX_NOTE: usize = 500;

/// Why an acknowledgement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// No anomaly alert has that record number.
    #[error("record {0} is not an anomaly alert")]
    NotAlert(u64),
    /// It was acknowledged already.
    #[error("alert {0} was already acknowledged")]
    Done(u64),
    /// The note is empty or too long.
    #[error("give a note of 1 to 500 characters")]
    Note,
}

/// Acknowledges the alert at record `seq` with a note (scrubbed here), audited as
/// `anomaly.ack`.
pub async fn acknowledge(
    store: &Store,
    seq: u64,
    note: &str,
    actor: Actor,
) -> Result<Result<(), AckError>, StoreError> {
    let note = note.trim();
    if note.is_empty() || note.chars().count() > MAX_NOTE {
        return Ok(Err(AckError::Note));
    }
    let page = store.audit_page(seq.saturating_sub(1), 1).await?;
    if !page
        .first()
        .is_some_and(|r| r.seq == seq && r.action == Action::AnomalyAlert.as_str())
    {
        return Ok(Err(AckError::NotAlert(seq)));
    }
    if acks(store).await?.contains_key(&seq) {
        return Ok(Err(AckError::Done(seq)));
    }
    let ev = AuditEvent::new(actor, Action::AnomalyAck, seq.to_string())
        .detail("note", crate::scrubbed(note));
    store.append_audit(&[ev]).await?;
    Ok(Ok(()))
}

/// Anomaly alerts since `since_us` (at most 1,000 read), and how many of them nobody
/// acknowledged.
pub async fn open_alerts(store: &Store, since_us: i64) -> Result<(usize, usize), StoreError> {
    let alerts = store
        .audit_search(&AuditQuery {
            action_prefix: Some(Action::AnomalyAlert.as_str().into()),
            since_us: Some(since_us),
            limit: 1000,
            ..AuditQuery::default()
        })
        .await?;
    let acked = acks(store).await?;
    let open = alerts
        .iter()
        .filter(|r| !acked.contains_key(&r.seq))
        .count();
    Ok((alerts.len(), open))
}

/// The acknowledgements of the last 1,000: alert record number → (who, note).
async fn acks(
    store: &Store,
) -> Result<std::collections::BTreeMap<u64, (String, String)>, StoreError> {
    let records = store
        .audit_search(&AuditQuery {
            action_prefix: Some(Action::AnomalyAck.as_str().into()),
            limit: 1000,
            ..AuditQuery::default()
        })
        .await?;
    Ok(records
        .into_iter()
        .filter_map(|r| {
            let seq = r.subject.parse().ok()?;
            let details: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&r.details).unwrap_or_default();
            let note = details
                .get("note")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned();
            Some((seq, (r.actor, note)))
        })
        .collect())
}

#[derive(serde::Deserialize)]
struct AckForm {
    note: String,
}

async fn ack_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(seq): Path<u64>,
    form: Result<Form<AckForm>, FormRejection>,
) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ViewAudit).await {
        return r;
    }
    let Ok(Form(f)) = form else {
        return message(
            StatusCode::BAD_REQUEST,
            nav(&viewer),
            "Not acknowledged",
            "The form was incomplete.",
            Some("/anomalies"),
        );
    };
    let actor = Actor::User(viewer.account.username.to_string());
    match acknowledge(&state.store, seq, &f.note, actor).await {
        Ok(Ok(())) => Redirect::to("/anomalies").into_response(),
        Ok(Err(e)) => message(
            StatusCode::BAD_REQUEST,
            nav(&viewer),
            "Not acknowledged",
            &format!("{e}."),
            Some("/anomalies"),
        ),
        Err(e) => internal(e),
    }
}

pub(crate) struct AlertRow {
    pub seq: u64,
    pub time: String,
    pub rule: String,
    pub subject: String,
    pub summary: String,
    pub records: String,
    pub acked: Option<(String, String)>,
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
    let acked = match acks(&state.store).await {
        Ok(a) => a,
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
                acked: acked.get(&r.seq).cloned(),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    /// A store in a directory of its own (removed by the test).
    async fn fresh() -> (std::path::PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!("rampart-anomalies-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&format!("sqlite://{}?mode=rwc", dir.join("a.db").display()))
            .await
            .unwrap();
        (dir, store)
    }

    /// App requests fill most of the log: the rules pass them by and still see the burst
    /// of failed logins behind them, across several looks, and the mark ends at the head.
    #[tokio::test]
    async fn the_rules_pass_app_requests_by_and_see_the_records_behind_them() {
        let (dir, store) = fresh().await;
        let mut watch = Watch::start(&store).await.unwrap();
        let request = |i: usize| {
            AuditEvent::new(Actor::User("alice".into()), Action::AppRequest, "grafana")
                .detail("path", format!("/d/{i}"))
        };
        store
            .append_audit(&(0..300).map(request).collect::<Vec<_>>())
            .await
            .unwrap();
        for i in 0..5 {
            let failed = AuditEvent::new(Actor::Anonymous, Action::LoginPassword, "mallory")
                .outcome(Outcome::Failure)
                .source("203.0.113.7".parse().ok());
            store
                .append_audit(&[failed, request(i), request(i + 1)])
                .await
                .unwrap();
        }
        let alerts = watch.step_across(&store, 50).await.unwrap();
        let rules: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
        assert_eq!(
            rules.len(),
            2,
            "one burst per account and per address: {rules:?}"
        );
        let head = store.audit_head().await.unwrap().unwrap().seq;
        assert_eq!(
            store.anomaly_seen().await.unwrap(),
            Some(head - 2),
            "the two alerts come after the mark"
        );
        assert!(watch.step_across(&store, 50).await.unwrap().is_empty());
        assert!(!watch.is_behind());
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A restart reads only the records between the saved state and the mark: a target
    /// known from before the save is not a first access, an unknown one is. A state that
    /// cannot be used is passed over and the whole log is read.
    #[tokio::test]
    async fn a_restarted_watch_learns_from_the_saved_state_and_the_records_after_it() {
        let (dir, store) = fresh().await;
        let session = |target: &str| {
            AuditEvent::new(Actor::User("alice".into()), Action::SshSessionStart, target)
        };
        let mut watch = Watch::start(&store).await.unwrap();
        let history: Vec<AuditEvent> = (0..200)
            .map(|i| session(if i % 2 == 0 { "web-1" } else { "db-1" }))
            .collect();
        store.append_audit(&history).await.unwrap();
        let alerts = watch.step(&store).await.unwrap();
        assert_eq!(alerts.len(), 1, "db-1 after web-1: {alerts:?}");
        watch.save_if_due(&store).await.unwrap();
        // Saved where the rules have read to: the mark (the alert's record is after it).
        let (saved_at, _) = store.anomaly_state().await.unwrap().unwrap();
        assert_eq!(Some(saved_at), store.anomaly_seen().await.unwrap());
        assert_eq!(saved_at, 200);
        // Read (the mark moves) but not saved again: the last save is not old enough.
        store
            .append_audit(&[session("web-1"), session("web-1"), session("db-1")])
            .await
            .unwrap();
        assert!(watch.step(&store).await.unwrap().is_empty());
        watch.save_if_due(&store).await.unwrap();
        assert_eq!(store.anomaly_state().await.unwrap().unwrap().0, saved_at);
        drop(watch);

        let read_to = std::sync::Mutex::new(Vec::new());
        let mut restarted = Watch::start_with(&store, &|at, until| {
            read_to.lock().unwrap().push((at, until));
        })
        .await
        .unwrap();
        let mark = store.anomaly_seen().await.unwrap().unwrap();
        assert_eq!(read_to.into_inner().unwrap(), [(mark, mark)]);
        assert_eq!(
            restarted.learned(),
            3,
            "only the records after the saved state"
        );
        store
            .append_audit(&[session("db-1"), session("db-9")])
            .await
            .unwrap();
        let alerts = restarted.step(&store).await.unwrap();
        let about: Vec<(&str, &str)> = alerts
            .iter()
            .map(|a| (a.rule.as_str(), a.summary.as_str()))
            .collect();
        assert_eq!(
            about,
            [("first_target", "alice reached db-9 for the first time")]
        );

        // A state that does not parse is passed over: the whole log is learned.
        let mark = store.anomaly_seen().await.unwrap().unwrap();
        assert!(store.save_anomaly_state(mark, "{\"rules\":").await.unwrap());
        let relearned = Watch::start(&store).await.unwrap();
        assert_eq!(
            relearned.learned(),
            205,
            "every session record; alerts are not read"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Two watchers on one store: the one whose mark was overtaken by the other's skipped
    /// records, so its state is not saved; the other's is.
    #[tokio::test]
    async fn a_watch_that_skipped_records_another_read_does_not_save_its_state() {
        let (dir, store) = fresh().await;
        let mut ahead = Watch::start(&store).await.unwrap();
        let mut behind = Watch::start(&store).await.unwrap();
        let events: Vec<AuditEvent> = (0..100)
            .map(|i| {
                AuditEvent::new(
                    Actor::User("alice".into()),
                    Action::SshSessionStart,
                    format!("host-{}", i % 3),
                )
            })
            .collect();
        store.append_audit(&events).await.unwrap();
        ahead.step(&store).await.unwrap();
        // Its first page ends at record 10; the mark is at 100 already.
        behind.step_across(&store, 10).await.unwrap();
        behind.save(&store).await.unwrap();
        assert_eq!(store.anomaly_state().await.unwrap(), None);
        ahead.save(&store).await.unwrap();
        let (at, _) = store.anomaly_state().await.unwrap().unwrap();
        assert_eq!(at, 100, "every session record, read by the one ahead");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// More records than one step reads: the step says it is behind, and the next one
    /// reads the rest and catches up.
    #[tokio::test]
    async fn a_step_that_stops_at_its_page_limit_says_it_is_behind() {
        let (dir, store) = fresh().await;
        let mut watch = Watch::start(&store).await.unwrap();
        let span = 10;
        // One step looks across MAX_PAGES spans: a few more records than that.
        let events: Vec<AuditEvent> = (0..MAX_PAGES as u64 * span + 25)
            .map(|i| {
                AuditEvent::new(Actor::User("alice".into()), Action::AppRequest, "grafana")
                    .detail("path", format!("/d/{i}"))
            })
            .collect();
        store.append_audit(&events).await.unwrap();
        let head = store.audit_head().await.unwrap().unwrap().seq;
        watch.step_across(&store, span).await.unwrap();
        assert!(watch.is_behind());
        assert!(store.anomaly_seen().await.unwrap() < Some(head));
        watch.step_across(&store, span).await.unwrap();
        assert!(!watch.is_behind());
        assert_eq!(store.anomaly_seen().await.unwrap(), Some(head));
        std::fs::remove_dir_all(&dir).ok();
    }
}

//! `GET /logs/stream`: the live tail of the `/logs` page, as server-sent events.
//!
//! The page's script (`static/logs-tail.js`, the only script that page may run) opens an
//! `EventSource` on this URL with the page's filters and the time the page was drawn; each
//! stored line that matches and is newer is sent once as a `line` event (JSON: time, level,
//! source, message, fields: all scrubbed before they were stored), oldest first. Lines
//! whose event time is up to [`LATE_US`] behind the newest line sent (a shipper that
//! batches, a source whose clock lags) are still sent; older ones are not. A line dated
//! ahead of now counts as now there. A reader that takes no event for [`SEND_WAIT`] is
//! dropped.
//!
//! Limits: at most [`MAX_TAILS`] streams at once on a node (more get 503); the store is read
//! once a second, at most [`BATCH`] lines each time; a stream ends after [`LIFETIME`], and the
//! browser reconnects with the `Last-Event-ID` of its last line, so every reconnection passes
//! the session and permission checks again. Within a stream the session and the permission
//! are checked every [`RECHECK`]: a signed-out session, a disabled account or a removed grant
//! ends it with an `end` event. A stopping server ends its streams at once (no `end` event:
//! the browser reconnects once a server answers again).

use std::collections::HashSet;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{Query as UrlQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use rampart_access::Permission;
use rampart_identity::session::Stage;
use rampart_logs::Level;
use rampart_logs::store::{Query, StoredLine};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc};

use crate::AppState;
use crate::admin::require;
use crate::auth::Viewer;

/// Most live tails served at once by one node.
pub(crate) const MAX_TAILS: usize = 32;
/// Most lines read from the store per poll.
const BATCH: u32 = 500;
/// How often the store is read.
const POLL: Duration = Duration::from_secs(1);
/// How often the session and the permission are checked again.
const RECHECK: Duration = Duration::from_secs(5);
/// How long a line may wait for a reader that does not read before the stream is dropped.
const SEND_WAIT: Duration = Duration::from_secs(10);
/// How long the browser waits before it reconnects after a stream ends.
const RECONNECT: Duration = Duration::from_secs(2);
/// How long one stream lasts before the browser reconnects.
const LIFETIME: Duration = Duration::from_secs(60);
/// How late a line may arrive (event time behind the newest line sent) and still be sent.
const LATE_US: i64 = 30_000_000;
/// How far back a stream may start (a page drawn long ago, or a forged `from`).
const MAX_BACK_US: i64 = 3_600_000_000;

static TAILS: Semaphore = Semaphore::const_new(MAX_TAILS);

/// The filters of the page, and where to start.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub(crate) struct TailFilters {
    pub q: String,
    pub level: String,
    pub source: String,
    /// Event time (µs) to start from: the page's drawing time.
    pub from: i64,
}

/// One line as the script receives it.
#[derive(Serialize)]
struct Wire<'a> {
    time: String,
    level: &'static str,
    source: &'a str,
    message: &'a str,
    fields: &'a str,
}

pub(crate) async fn logs_stream(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    UrlQuery(filters): UrlQuery<TailFilters>,
) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ViewLogs).await {
        return r;
    }
    if state.logs.is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Ok(permit) = TAILS.try_acquire() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "30")],
            "too many live tails are open on this server; try again later\n",
        )
            .into_response();
    };
    let now_us = jiff::Timestamp::now().as_microsecond();
    // A reconnection resumes at its last line (sent again, and dropped by the script).
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    let start = resume
        .unwrap_or(filters.from)
        .clamp(now_us - MAX_BACK_US, now_us);
    let query = Query {
        text: Some(filters.q.clone()),
        since_us: Some(start),
        until_us: None,
        min_level: Level::parse(&filters.level),
        source: Some(filters.source.trim().to_owned()).filter(|s| !s.is_empty()),
        limit: BATCH,
    };
    let (tx, rx) = mpsc::channel::<Event>(4);
    tokio::spawn(async move {
        let _permit = permit;
        follow(state, viewer, query, tx).await;
    });
    Sse::new(Events(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// Sends new lines until the stream's lifetime is over, the reader goes away, or the
/// session or permission is gone.
async fn follow(state: AppState, viewer: Viewer, mut query: Query, tx: mpsc::Sender<Event>) {
    let Some(ingest) = state.logs.clone() else {
        return;
    };
    // First, how long the browser waits before reconnecting after a normal end.
    if !send(&tx, Event::default().retry(RECONNECT)).await {
        return;
    }
    let started = tokio::time::Instant::now();
    let mut checked = started;
    // Lines already sent: event time and a hash of the line (bounded memory, whatever the
    // lines' length).
    let mut seen: HashSet<(i64, u64)> = HashSet::new();
    let mut stopping = state.stopping.subscribe();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
        if started.elapsed() >= LIFETIME {
            return;
        }
        if checked.elapsed() >= RECHECK {
            checked = tokio::time::Instant::now();
            if let Some(why) = gone(&state, &viewer).await {
                send(&tx, Event::default().event("end").data(why)).await;
                return;
            }
        }
        let lines = match ingest.store().search(&query).await {
            Ok(lines) => lines,
            Err(e) => {
                tracing::warn!(error = %e, "live tail: reading the log store failed");
                let end = "Live tail stopped: the log store could not be read.";
                send(&tx, Event::default().event("end").data(end)).await;
                return;
            }
        };
        // Newest first from the store: sent oldest first, each line once.
        for line in lines.iter().rev() {
            let key = (line.time_us, line_hash(line));
            if seen.contains(&key) {
                continue;
            }
            if let Some(event) = event(line)
                && !send(&tx, event).await
            {
                return;
            }
            seen.insert(key);
        }
        if let Some(newest) = lines.first() {
            // A line dated ahead (within the accepted clock skew) does not move the window
            // past the present: lines of now would be missed.
            let now_us = jiff::Timestamp::now().as_microsecond();
            let from = newest.time_us.min(now_us) - LATE_US;
            if query.since_us.is_none_or(|s| from > s) {
                seen.retain(|k| k.0 >= from);
                query.since_us = Some(from);
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

/// Sends one event; `false` when the reader is gone or has not taken events for
/// [`SEND_WAIT`] (a client that stops reading holds no slot).
async fn send(tx: &mpsc::Sender<Event>, event: Event) -> bool {
    matches!(
        tokio::time::timeout(SEND_WAIT, tx.send(event)).await,
        Ok(Ok(()))
    )
}

/// Why the viewer may no longer tail, if so.
async fn gone(state: &AppState, viewer: &Viewer) -> Option<&'static str> {
    let live = match state.store.session(&viewer.session_hash).await {
        Ok(Some(s)) => !s.revoked && s.stage == Stage::Complete,
        Ok(None) => false,
        Err(_) => return Some("Live tail stopped: the session could not be checked."),
    };
    let active = match state.store.account_by_id(&viewer.account.id).await {
        Ok(Some(a)) => a.active.then_some(a),
        Ok(None) => None,
        Err(_) => return Some("Live tail stopped: the session could not be checked."),
    };
    let Some(account) = active.filter(|_| live) else {
        return Some("Live tail stopped: the session has ended. Sign in again.");
    };
    match crate::ops::check_permission(&state.store, &account, Permission::ViewLogs).await {
        Ok(Ok(())) => None,
        Ok(Err(_)) => Some("Live tail stopped: your roles no longer include logs.view."),
        Err(_) => Some("Live tail stopped: the permission could not be checked."),
    }
}

fn line_hash(line: &StoredLine) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    (&line.source, line.level.code(), &line.message, &line.fields).hash(&mut h);
    h.finish()
}

fn event(line: &StoredLine) -> Option<Event> {
    let wire = Wire {
        time: jiff::Timestamp::from_microsecond(line.time_us)
            .map(|t| t.strftime("%Y-%m-%d %H:%M:%S%.3f").to_string())
            .unwrap_or_default(),
        level: line.level.as_str(),
        source: &line.source,
        message: &line.message,
        fields: line.fields.as_deref().unwrap_or_default(),
    };
    Event::default()
        .event("line")
        .id(line.time_us.to_string())
        .json_data(&wire)
        .ok()
}

/// The channel's receiving end as the stream `Sse` wants.
struct Events(mpsc::Receiver<Event>);

impl futures_core::Stream for Events {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|e| e.map(Ok))
    }
}

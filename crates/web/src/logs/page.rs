//! `GET /logs`: search with the CLI's filters, a histogram of lines per minute by level
//! (server-side SVG), firing alerts, and an optional live tail ([`super::tail`]: the page
//! then runs `logs-tail.js` under its own policy; without scripts it reloads every 10 s).

use askama::Template;
use axum::extract::{Query as UrlQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use rampart_access::Permission;
use rampart_logs::Level;
use rampart_logs::chart::{bucket_minutes, histogram_svg};
use rampart_logs::store::Query;
use serde::Deserialize;

use crate::AppState;
use crate::admin::{nav, require};
use crate::auth::{Viewer, internal};
use crate::pages::render;

/// The filters, as typed in the form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Filters {
    q: String,
    since: String,
    level: String,
    source: String,
    tail: String,
    /// The name of the option before the live tail (kept for bookmarks).
    refresh: String,
}

/// One line shown.
pub(crate) struct Row {
    pub time: String,
    pub level: &'static str,
    pub source: String,
    pub message: String,
    pub fields: String,
}

/// One firing alert.
pub(crate) struct AlertRow {
    pub rule: String,
    pub source: String,
    pub since: String,
}

#[derive(Template)]
#[template(path = "logs.html")]
pub(crate) struct LogsPage {
    pub nav: Option<String>,
    pub flash: Option<String>,
    pub q: String,
    pub since: String,
    pub level: String,
    pub source: String,
    /// Live tail on: the URL of its event stream.
    pub stream: Option<String>,
    pub sinces: Vec<&'static str>,
    pub levels: Vec<&'static str>,
    pub histogram: String,
    pub rows: Vec<Row>,
    pub alerts: Vec<AlertRow>,
    pub note: String,
}

const SINCES: &[(&str, i64)] = &[
    ("15m", 15),
    ("1h", 60),
    ("6h", 360),
    ("24h", 1440),
    ("7d", 10_080),
];

/// Most lines shown on the page.
const PAGE_LINES: u32 = 200;

pub(crate) async fn logs_page(
    State(state): State<AppState>,
    viewer: Viewer,
    UrlQuery(filters): UrlQuery<Filters>,
) -> Response {
    if let Err(r) = require(&state, &viewer, Permission::ViewLogs).await {
        return r;
    }
    let Some(ingest) = state.logs.clone() else {
        return crate::pages::message(
            StatusCode::NOT_FOUND,
            nav(&viewer),
            "Logs",
            "Application logs are not enabled on this server.",
            None,
        );
    };
    let (since_label, minutes) = SINCES
        .iter()
        .find(|(label, _)| *label == filters.since)
        .copied()
        .unwrap_or(("1h", 60));
    let now_us = ingest.clock().now().as_microsecond();
    let since_us = now_us - minutes * 60_000_000;
    let level = Level::parse(&filters.level);
    let source = Some(filters.source.trim().to_owned()).filter(|s| !s.is_empty());
    let query = Query {
        text: Some(filters.q.clone()),
        since_us: Some(since_us),
        until_us: Some(now_us + 1),
        min_level: level,
        source: source.clone(),
        limit: PAGE_LINES,
    };
    let lines = match ingest.store().search(&query).await {
        Ok(lines) => lines,
        Err(e) => return internal(e),
    };
    let histogram = match ingest
        .store()
        .histogram(since_us, now_us + 1, source.as_deref())
        .await
    {
        Ok(rows) => histogram_svg(&rows, since_us, now_us, bucket_minutes(now_us - since_us)),
        Err(e) => return internal(e),
    };
    let alerts = match state.store.log_alerts_firing().await {
        Ok(alerts) => alerts
            .into_iter()
            .map(|(rule, source, since)| AlertRow {
                rule,
                source,
                since: time_us(since),
            })
            .collect(),
        Err(e) => return internal(e),
    };
    let note = if lines.len() >= PAGE_LINES as usize {
        format!(
            "Showing the newest {PAGE_LINES} matching lines; narrow the filters to see older ones."
        )
    } else {
        format!("{} matching lines.", lines.len())
    };
    let tail = filters.tail == "on" || filters.refresh == "on";
    let stream = tail.then(|| {
        let from = super::tail::TailFilters {
            q: filters.q.clone(),
            level: level.map(|l| l.as_str().to_owned()).unwrap_or_default(),
            source: source.clone().unwrap_or_default(),
            from: now_us,
        };
        format!(
            "/logs/stream?{}",
            serde_urlencoded::to_string(&from).unwrap_or_default()
        )
    });
    let page = render(
        StatusCode::OK,
        &LogsPage {
            nav: nav(&viewer),
            flash: None,
            q: filters.q,
            since: since_label.to_owned(),
            level: level.map(|l| l.as_str().to_owned()).unwrap_or_default(),
            source: source.unwrap_or_default(),
            stream,
            sinces: SINCES.iter().map(|(l, _)| *l).collect(),
            levels: Level::ALL.iter().map(|l| l.as_str()).collect(),
            histogram,
            rows: lines
                .into_iter()
                .map(|l| Row {
                    time: time_us(l.time_us),
                    level: l.level.as_str(),
                    source: l.source,
                    message: l.message,
                    fields: l.fields.unwrap_or_default(),
                })
                .collect(),
            alerts,
            note,
        },
    );
    if tail {
        crate::guard::with_script_policy(page)
    } else {
        page
    }
}

fn time_us(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

//! Wiring of the log room into `serve`: the pipeline, the retention purge job and the
//! syslog-over-TLS listener.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum_server::tls_rustls::RustlsConfig;
use jiff::tz::TimeZone;
use rampart_audit::{Action, Actor, AuditEvent};
use rampart_core::SystemClock;
use rampart_logs::store::{LogStore, plan_purge};
use rampart_logs::{Ingest, RetentionDays};
use rampart_web::AppState;

use crate::config::{Config, DataDir};

/// How often the retention purge runs.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Opens the log store (finishing any interrupted purge) and builds the pipeline.
pub async fn open(dir: &DataDir, config: &Config) -> Result<Option<Arc<Ingest>>> {
    let store = LogStore::open(&config.logs_dir(&dir.0))
        .await
        .context("cannot open the log store")?;
    let scrubber = rampart_scrub::Scrubber::new(&rampart_scrub::ScrubConfig::default(), None)
        .context("cannot build the log scrubber")?;
    Ok(Some(Arc::new(Ingest::new(
        store,
        Arc::new(scrubber),
        config.logs.clone(),
        Arc::new(SystemClock),
    ))))
}

/// Starts the purge job and, when configured, the syslog listener.
pub fn spawn(
    state: &AppState,
    syslog: Option<std::net::TcpListener>,
    tls: RustlsConfig,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    let Some(ingest) = state.logs.clone() else {
        return Ok(tasks);
    };
    let store = state.store.clone();
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        loop {
            tick.tick().await;
            if let Err(e) = purge_once(&ingest, &store).await {
                tracing::warn!(error = %e, "the log retention purge failed; it runs again in an hour");
            }
        }
    }));
    let alerts = &state
        .logs
        .as_ref()
        .map(|l| l.config().alerts.clone())
        .unwrap_or_default();
    if !alerts.rules.is_empty() {
        let webhook = match (&alerts.webhook_url, &alerts.webhook_secret_file) {
            (Some(url), Some(file)) => {
                let key = std::fs::read(file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let key = key.trim_ascii().to_vec();
                Some(rampart_web::logs::alerts::Webhook {
                    url: url.clone(),
                    key: rampart_core::Secret::new(key),
                })
            }
            _ => None,
        };
        tasks.push(tokio::spawn(rampart_web::logs::alerts::keep_evaluating(
            state.clone(),
            webhook,
        )));
    }
    if let Some(listener) = syslog {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let current: rampart_web::logs::syslog::CurrentConfig = Arc::new(move || tls.get_inner());
        tasks.push(tokio::spawn(rampart_web::logs::syslog::serve(
            listener,
            current,
            state.clone(),
        )));
    }
    Ok(tasks)
}

/// One purge: plan from the clock's day, audit the plan, then remove (fail closed: no
/// record, no deletion).
pub async fn purge_once(ingest: &Ingest, store: &rampart_store::Store) -> Result<()> {
    let today = ingest.clock().now().to_zoned(TimeZone::UTC).date();
    let retention: RetentionDays = ingest.config().retention_days;
    let plan = plan_purge(&ingest.store().days_on_disk()?, today, retention);
    if plan.remove.is_empty() {
        return Ok(());
    }
    let days: Vec<String> = plan.remove.iter().map(ToString::to_string).collect();
    store
        .append_audit(&[
            AuditEvent::new(Actor::System, Action::LogPurge, days.join(","))
                .detail("retention_days", retention.to_string())
                .detail("today", today.to_string()),
        ])
        .await
        .context("cannot audit the log purge, so nothing was removed")?;
    let removed = ingest.store().purge(&plan).await?;
    tracing::info!(
        days = removed.len(),
        "purged log days older than the retention"
    );
    Ok(())
}

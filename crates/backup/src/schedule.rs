//! The scheduler inside `rampart serve`: a base backup of every source each interval, then
//! a prune by the plan. Daily, weekly and monthly backups are not separate runs: they are
//! promotions the planner makes of base backups. Every `drill_hours` (default daily) the
//! restore drill runs ([`Backups::scheduled_drill`]) with the stored drill identity, if the
//! operator gave one, unsealed for that drill only.
//!
//! Several nodes may share one PostgreSQL store: a run starts only on the node holding the
//! `backup` lease, and only when the catalog says a source is due, so each scheduled run
//! happens once per cluster. A node that dies mid-run holds the lease until it expires
//! ([`LEASE`]); then another node takes over.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use rampart_store::{BackupRow, Store};

use crate::config::BackupConfig;
use crate::jobs::Backups;

/// How long a node holds the lease for one run.
pub const LEASE: SignedDuration = SignedDuration::from_hours(1);

/// How often the scheduler looks at the catalog.
const TICK: Duration = Duration::from_secs(60);

/// Whether a source is due at `now`: its newest complete backup started an interval ago or
/// more, or it has none. Pure.
pub fn due(rows: &[BackupRow], source: &str, interval: SignedDuration, now: Timestamp) -> bool {
    let newest = rows
        .iter()
        .filter(|r| r.source == source && r.status == "complete")
        .map(|r| r.started_us)
        .max();
    match newest {
        None => true,
        Some(us) => {
            let interval_us = i64::try_from(interval.as_micros()).unwrap_or(i64::MAX);
            now.as_microsecond().saturating_sub(us) >= interval_us
        }
    }
}

/// Opens a value sealed under the master key (the drill identity), given its context.
pub type Unseal = Arc<dyn Fn(&str, &str) -> Option<Vec<u8>> + Send + Sync>;

/// A source's scheduled backups started failing (`firing`), or succeeded again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The source.
    pub source: String,
    /// Failing now (true), or recovered (false).
    pub firing: bool,
    /// The first failure's error, scrubbed (empty when recovered).
    pub error: String,
}

/// Where alerts go besides the audit log and rampart's own log (the webhook, when set).
pub type Notify = Arc<dyn Fn(Alert) + Send + Sync>;

/// How long a failing source waits before its next attempt: 1, 2, 4 … minutes after each
/// consecutive failure, at most an hour. Storage that is down or full is not hammered.
pub fn backoff(failures: u32) -> SignedDuration {
    let minutes = 1_i64 << failures.saturating_sub(1).min(6);
    SignedDuration::from_mins(minutes.min(60))
}

/// Whether the drill is due: `hours` after the last one, or never run.
pub fn drill_due(last_us: Option<i64>, hours: i64, now: Timestamp) -> bool {
    last_us.is_none_or(|us| now.as_microsecond().saturating_sub(us) >= hours * 3_600_000_000)
}

/// Runs for ever: every minute, if a source is due and this node takes the lease, backs up
/// the due sources and prunes; then, when due, drills. Failures are audited by the run and
/// logged here.
pub async fn keep_backed_up(
    config: Arc<BackupConfig>,
    data_dir: PathBuf,
    store: Arc<Store>,
    own_database: Option<PathBuf>,
    node: String,
    unseal: Unseal,
    notify: Notify,
) {
    if config.recipients.is_empty() {
        tracing::warn!("backups are off: backup.recipients is empty (BAK-1..4 will fail)");
        return;
    }
    let backups = match Backups::open(&config, &data_dir, &store, own_database) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "backups are off: the storage cannot be opened");
            return;
        }
    };
    let mut tick = tokio::time::interval(TICK);
    // Consecutive failures of each source and when the last one was.
    let mut failing: std::collections::BTreeMap<String, (u32, Timestamp)> =
        std::collections::BTreeMap::new();
    loop {
        tick.tick().await;
        let now = Timestamp::now();
        let rows = match store.backups().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the backup catalog");
                continue;
            }
        };
        let due_sources: Vec<String> = backups
            .sources()
            .iter()
            .map(|s| s.name.as_str().to_owned())
            .filter(|name| due(&rows, name, config.interval.get(), now))
            .filter(|name| {
                failing.get(name).is_none_or(|(n, last)| {
                    last.checked_add(backoff(*n)).is_ok_and(|next| now >= next)
                })
            })
            .collect();
        let last_drill = store
            .meta(crate::drill::LAST_DRILL)
            .await
            .ok()
            .flatten()
            .and_then(|v| v.parse::<i64>().ok());
        let drill = drill_due(last_drill, config.drill_hours.get(), now);
        if due_sources.is_empty() && (!drill || rows.is_empty()) {
            continue;
        }
        let until = now.checked_add(LEASE).unwrap_or(now);
        match store
            .take_lease(
                "backup",
                &node,
                now.as_microsecond(),
                until.as_microsecond(),
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the backup lease");
                continue;
            }
        }
        for name in &due_sources {
            let outcome = match backups.run(Some(name), &Actor::System, now).await {
                Ok(results) => results
                    .into_iter()
                    .find_map(|r| r.result.err())
                    .map_or(Ok(()), Err),
                Err(e) => Err(e),
            };
            let alert = match outcome {
                Ok(()) => failing.remove(name).map(|_| Alert {
                    source: name.clone(),
                    firing: false,
                    error: String::new(),
                }),
                Err(e) => {
                    tracing::error!(source = %name, error = %e, "scheduled backup failed");
                    let entry = failing.entry(name.clone()).or_insert((0, now));
                    *entry = (entry.0.saturating_add(1), Timestamp::now());
                    (entry.0 == 1).then(|| Alert {
                        source: name.clone(),
                        firing: true,
                        error: crate::scrubbed(&e.to_string()),
                    })
                }
            };
            if let Some(alert) = alert {
                raise(&store, &notify, alert).await;
            }
        }
        if !due_sources.is_empty()
            && let Err(e) = backups.prune(&Actor::System, Timestamp::now()).await
        {
            tracing::error!(error = %e, "pruning backups failed");
        }
        // Drill once there is something to drill (right after the first backups, too).
        if drill && store.backups().await.is_ok_and(|rows| !rows.is_empty()) {
            run_drill(&backups, &store, &unseal).await;
        }
        // Free the lease for the next interval (whoever is up then).
        let _ = store
            .take_lease("backup", &node, now.as_microsecond(), now.as_microsecond())
            .await;
    }
}

/// Audits an alert (fail closed is not the point here: the backup already failed) and
/// hands it to `notify`.
async fn raise(store: &Store, notify: &Notify, alert: Alert) {
    let event = AuditEvent::new(Actor::System, Action::BackupAlert, &alert.source)
        .outcome(if alert.firing {
            Outcome::Failure
        } else {
            Outcome::Success
        })
        .detail("status", if alert.firing { "firing" } else { "resolved" })
        .detail("error", &alert.error);
    if let Err(e) = store.append_audit(&[event]).await {
        tracing::error!(error = %e, "cannot audit a backup alert");
    }
    notify(alert);
}

/// One scheduled drill, with the stored identity when there is one (its use is audited
/// with each check it makes).
async fn run_drill(backups: &Backups<'_>, store: &Store, unseal: &Unseal) {
    use crate::drill::{DRILL_IDENTITY, DRILL_IDENTITY_CONTEXT};
    let identities = match store.meta(DRILL_IDENTITY).await {
        Ok(Some(sealed)) => match unseal(DRILL_IDENTITY_CONTEXT, &sealed)
            .and_then(|plain| String::from_utf8(plain).ok())
            .map(|text| crate::keys::parse_identities(&text))
            .filter(|ids| !ids.is_empty())
        {
            Some(ids) => Some(ids),
            None => {
                tracing::error!(
                    "the stored drill identity cannot be opened with this master key: drilling with hash checks only"
                );
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the drill identity");
            return;
        }
    };
    match backups.scheduled_drill(identities, &Actor::System).await {
        Ok(checked) => {
            for c in checked.iter().filter(|c| !c.passed) {
                tracing::error!(source = %c.source, backup = %c.backup, check = c.check.as_str(), error = c.error.as_deref().unwrap_or(""), "restore drill failed");
            }
        }
        Err(e) => tracing::error!(error = %e, "the restore drill could not run"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn row(source: &str, started: &str, status: &str) -> BackupRow {
        BackupRow {
            id: started.into(),
            source: source.into(),
            kind: "postgres".into(),
            started_us: started.parse::<Timestamp>().unwrap().as_microsecond(),
            finished_us: 0,
            status: status.into(),
            storage: "dir".into(),
            object_key: started.into(),
            size_bytes: 0,
            raw_bytes: 0,
            sha256: String::new(),
            recipients: "[]".into(),
            row_counts: "{}".into(),
            pinned: false,
            verification: "unverified".into(),
            verified_us: None,
        }
    }

    #[test]
    fn a_failing_source_backs_off_to_at_most_an_hour() {
        let minutes: Vec<i64> = (1..=9).map(|n| backoff(n).as_mins()).collect();
        assert_eq!(minutes, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn the_drill_is_due_its_hours_after_the_last_one() {
        let at = |t: &str| t.parse::<Timestamp>().unwrap();
        let last = at("2026-06-01T00:00:00Z").as_microsecond();
        assert!(drill_due(None, 24, at("2026-06-01T00:00:00Z")));
        assert!(!drill_due(Some(last), 24, at("2026-06-01T23:59:59Z")));
        assert!(drill_due(Some(last), 24, at("2026-06-02T00:00:00Z")));
    }

    #[test]
    fn a_source_is_due_an_interval_after_its_newest_complete_backup() {
        let six = SignedDuration::from_hours(6);
        let rows = vec![
            row("app", "2026-06-01T00:00:00Z", "complete"),
            row("app", "2026-06-01T05:00:00Z", "failed"),
        ];
        let at = |t: &str| t.parse::<Timestamp>().unwrap();
        assert!(!due(&rows, "app", six, at("2026-06-01T05:59:59Z")));
        assert!(due(&rows, "app", six, at("2026-06-01T06:00:00Z")));
        assert!(due(&rows, "other", six, at("2026-06-01T01:00:00Z")));
    }
}

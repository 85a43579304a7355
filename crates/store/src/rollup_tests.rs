//! The hourly counts against counting the log itself, on both engines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use rampart_audit::{Action, Actor, AuditEvent};
use sqlx::Row;

use super::{Counts, HOUR_US};
use crate::{Store, now_us};

/// Appends `n` records: the actions alternate, over two subjects and three people.
async fn append(store: &Store, n: usize) {
    let events: Vec<AuditEvent> = (0..n)
        .map(|i| {
            let action = if i % 2 == 0 {
                Action::AppRequest
            } else {
                Action::DbStatement
            };
            let who = ["alice", "bob", "carol"][(i / 4) % 3];
            AuditEvent::new(
                Actor::User(who.into()),
                action,
                ["grafana", "orders-db"][(i / 2) % 2],
            )
        })
        .collect();
    for chunk in events.chunks(50) {
        store.append_audit(chunk).await.unwrap();
    }
}

/// Spreads the records from `after` on over the last 37.5 days, out of sequence order
/// (the chain no longer verifies, which counting does not look at).
async fn spread(store: &Store, after: i64, now: i64) {
    sqlx::query(
        "UPDATE audit_log SET time_us = $1 - ((seq * 7919) % 9000) * 360000000 WHERE seq > $2",
    )
    .bind(now)
    .bind(after)
    .execute(store.pool())
    .await
    .unwrap();
}

/// What the log itself says.
async fn counted(store: &Store, action: &str, since: i64) -> Counts {
    let rows = sqlx::query(
        "SELECT subject, actor, COUNT(*) AS n FROM audit_log WHERE action = $1 AND time_us >= $2 GROUP BY subject, actor ORDER BY subject, actor",
    )
    .bind(action)
    .bind(since)
    .fetch_all(store.pool())
    .await
    .unwrap();
    rows.iter()
        .map(|r| (r.get("subject"), r.get("actor"), r.get("n")))
        .collect()
}

async fn mark(store: &Store) -> i64 {
    store.rollup_state().await.unwrap().unwrap().mark
}

async fn head(store: &Store) -> i64 {
    store.rollup_head().await.unwrap()
}

/// The windows the pages ask for (30 days, 24 hours), one that starts on the hour, one
/// of the last hour and a bit, and one in the future.
fn windows(now: i64) -> [i64; 5] {
    let day = 24 * HOUR_US;
    let on_the_hour = now.div_euclid(HOUR_US) * HOUR_US - 5 * HOUR_US;
    [
        now - 30 * day,
        now - day,
        now - HOUR_US - 1_017_000_000,
        on_the_hour,
        now + HOUR_US,
    ]
}

/// Records at the edges of each window, for both actions: a second before its start,
/// at its start, and a second after the hour its start falls in begins (before the start
/// unless it is on the hour).
async fn edges(store: &Store, now: i64) {
    let before = head(store).await;
    let times: Vec<i64> = windows(now)
        .iter()
        .flat_map(|&s| {
            [
                s - 1_000_000,
                s,
                s.div_euclid(HOUR_US) * HOUR_US + 1_000_000,
            ]
        })
        .collect();
    // Two records per time: `append` alternates the actions.
    append(store, times.len() * 2).await;
    for (i, t) in times.iter().enumerate() {
        let i = i64::try_from(i).unwrap();
        sqlx::query("UPDATE audit_log SET time_us = $1 WHERE seq = $2 OR seq = $3")
            .bind(*t)
            .bind(before + 2 * i + 1)
            .bind(before + 2 * i + 2)
            .execute(store.pool())
            .await
            .unwrap();
    }
}

/// Every window the pages ask for, from the counts, equals the log's own count.
async fn windows_agree(store: &Store, now: i64, what: &str) {
    for since in windows(now) {
        for action in ["db.statement", "app.request"] {
            let rolled = store.rolled_counts(action, since).await.unwrap();
            let expected = counted(store, action, since).await;
            assert_eq!(
                rolled.as_ref(),
                Some(&expected),
                "{what}: {action} since {}s ago",
                (now - since) / 1_000_000
            );
            assert_eq!(store.audit_counts(action, since).await.unwrap(), expected);
        }
    }
}

async fn rollup_suite(store: &Store) {
    let now = now_us();
    append(store, 600).await;
    spread(store, 0, now).await;
    edges(store, now).await;
    assert!(
        store
            .rolled_counts("db.statement", now - HOUR_US)
            .await
            .unwrap()
            .is_none(),
        "no counts before the first step"
    );

    // The first step starts the counts 31 days back: the mark goes before the first
    // record of that time, and every record from there on is counted by the steps.
    let from = (now_us() - 31 * 24 * HOUR_US).div_euclid(HOUR_US) * HOUR_US;
    assert!(
        store.rollup_step(100).await.unwrap(),
        "600 records are more than a step"
    );
    let start = store.rollup_state().await.unwrap().unwrap();
    let after = (now_us() - 31 * 24 * HOUR_US).div_euclid(HOUR_US) * HOUR_US;
    assert!(
        [from, after].contains(&start.from_us),
        "{} on the hour 31 days back",
        start.from_us
    );
    let first: i64 = sqlx::query_scalar("SELECT MIN(seq) FROM audit_log WHERE time_us >= $1")
        .bind(start.from_us)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(start.mark, (first - 1 + 100).min(head(store).await));
    windows_agree(store, now, "mark in the middle").await;

    // A window longer than the counts reach is counted from the log: they start 31 days
    // back, and keep 40 days once they have run that long.
    let long = now - 35 * 24 * HOUR_US;
    assert!(
        store
            .rolled_counts("db.statement", long)
            .await
            .unwrap()
            .is_none()
    );
    sqlx::query("UPDATE audit_rollup SET from_us = 0")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(
        store
            .rolled_counts("db.statement", long)
            .await
            .unwrap()
            .is_some()
    );
    let older = now - 41 * 24 * HOUR_US;
    assert!(
        store
            .rolled_counts("db.statement", older)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.audit_counts("db.statement", long).await.unwrap(),
        counted(store, "db.statement", long).await
    );

    // New records after the mark, then the counts catch up with all of them.
    let before = head(store).await;
    append(store, 250).await;
    spread(store, before, now).await;
    edges(store, now).await;
    windows_agree(store, now, "records after the mark").await;
    store.audit_rollup().await.unwrap();
    assert_eq!(mark(store).await, head(store).await);
    windows_agree(store, now, "caught up").await;

    // Another node moved the mark first: a step from the old mark changes nothing.
    let at = mark(store).await;
    append(store, 10).await;
    let counts = vec![(
        now / HOUR_US,
        "db.statement".to_owned(),
        "orders-db".to_owned(),
        "user:bob".to_owned(),
        10,
    )];
    assert!(store.rollup_apply(at, at + 10, &counts).await.unwrap());
    assert!(
        !store.rollup_apply(at, at + 10, &counts).await.unwrap(),
        "the mark had moved"
    );
    assert_eq!(mark(store).await, at + 10);
    let n: i64 = sqlx::query_scalar("SELECT n FROM audit_hourly WHERE action = 'db.statement' AND hour = $1 AND subject = 'orders-db' AND actor = 'user:bob'")
        .bind(now / HOUR_US)
        .fetch_one(store.pool())
        .await
        .unwrap();
    let logged: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'db.statement' AND subject = 'orders-db' AND actor = 'user:bob' AND time_us >= $1 AND time_us < $2 AND seq <= $3")
        .bind(now / HOUR_US * HOUR_US)
        .bind((now / HOUR_US + 1) * HOUR_US)
        .bind(at)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(n, logged + 10, "the ten were added once");

    // Counts older than they are kept are removed by the next step that counts their
    // action (the one appended here is an app request).
    for action in ["app.request", "session.start"] {
        sqlx::query("INSERT INTO audit_hourly (action, hour, subject, actor, n) VALUES ($1, $2, 'old', 'user:old', 1)")
            .bind(action)
            .bind(now / HOUR_US - 41 * 24)
            .execute(store.pool())
            .await
            .unwrap();
    }
    append(store, 1).await;
    store.audit_rollup().await.unwrap();
    let old: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_hourly WHERE subject = 'old'")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(old, ["session.start"]);
}

#[tokio::test]
async fn hourly_counts_agree_with_the_log_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let store = Store::open(&url).await.unwrap();
    rollup_suite(&store).await;
}

#[tokio::test]
async fn hourly_counts_agree_with_the_log_on_postgres() {
    let pg = rampart_testkit::Postgres::start();
    let store = Store::open(pg.url()).await.unwrap();
    rollup_suite(&store).await;
    store.close().await;
}

/// The records after the mark are read along the sequence range on SQLite, not through
/// the index by action, which would walk the whole window.
#[tokio::test]
async fn the_records_after_the_mark_are_read_along_the_sequence_range() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let store = Store::open(&url).await.unwrap();
    let sql = super::rolled_sql(crate::Engine::Sqlite);
    let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
        .bind("db.statement")
        .bind(1_i64)
        .bind(2_i64)
        .bind(3_i64)
        .bind(4_i64)
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("detail"))
        .collect();
    assert!(
        plan.iter()
            .any(|d| d.contains("INTEGER PRIMARY KEY (rowid>?)")),
        "{plan:#?}"
    );
}

use super::*;
use crate::record::{Entry, Limits, prepare};
use jiff::ToSpan;
use rampart_scrub::{ScrubConfig, Scrubber};

fn line(time: Timestamp, source: &str, level: Level, message: &str) -> Line {
    Line {
        time_us: time.as_microsecond(),
        received_us: time.as_microsecond(),
        source: source.into(),
        level,
        flags: 0,
        message: message.into(),
        fields: None,
    }
}

fn noon(day: Date) -> Timestamp {
    day.at(12, 0, 0, 0)
        .to_zoned(TimeZone::UTC)
        .map(|z| z.timestamp())
        .unwrap()
}

#[tokio::test]
async fn with_a_fake_clock_a_21_day_purge_removes_day_22_and_keeps_days_15_to_21() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).await.unwrap();
    // The fake clock: a fixed "now", every day file made relative to it.
    let today = Date::constant(2026, 11, 29);
    for age in 0..=25_i64 {
        let day = today.checked_sub(age.days()).unwrap();
        store
            .append(
                &[line(noon(day), "api", Level::Info, &format!("age {age}"))],
                &[],
            )
            .await
            .unwrap();
    }
    let plan = plan_purge(
        &store.days_on_disk().unwrap(),
        today,
        RetentionDays::new(21).unwrap(),
    );
    let removed = store.purge(&plan).await.unwrap();
    let ages: Vec<i64> = removed.iter().map(|d| day_age(*d, today)).collect();
    assert_eq!(ages, vec![25, 24, 23, 22], "oldest first");
    let kept: Vec<i64> = store
        .days_on_disk()
        .unwrap()
        .iter()
        .map(|d| day_age(*d, today))
        .collect();
    for age in 15..=21 {
        assert!(kept.contains(&age), "day {age} must be kept: {kept:?}");
    }
    assert!(!kept.contains(&22));
    // A kept day is still whole and searchable.
    let hits = store
        .search(&Query {
            text: Some("21".into()),
            limit: 10,
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].message, "age 21");
}

#[test]
fn the_plan_never_removes_a_day_younger_than_15_days() {
    let today = Date::constant(2026, 11, 29);
    let days: Vec<Date> = (0..=40_i64)
        .map(|age| today.checked_sub(age.days()).unwrap())
        .collect();
    for retention in 15..=30 {
        let plan = plan_purge(&days, today, RetentionDays::new(retention).unwrap());
        assert!(
            plan.remove
                .iter()
                .all(|d| day_age(*d, today) > MIN_KEEP_DAYS)
        );
        assert!(plan.remove.iter().all(|d| day_age(*d, today) > retention));
        assert_eq!(plan.keep.len() as i64, retention + 1);
    }
}

#[tokio::test]
async fn open_finishes_an_interrupted_purge() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("2026-10-01.db.trash"), b"half purged").unwrap();
    std::fs::write(dir.path().join("2026-10-01.db-wal"), b"orphan").unwrap();
    std::fs::write(dir.path().join("2026-10-02.db"), b"").unwrap();
    std::fs::write(dir.path().join("2026-10-02.db-wal"), b"kept").unwrap();
    let store = LogStore::open(dir.path()).await.unwrap();
    assert!(!dir.path().join("2026-10-01.db.trash").exists());
    assert!(!dir.path().join("2026-10-01.db-wal").exists());
    assert!(dir.path().join("2026-10-02.db-wal").exists());
    assert_eq!(
        store.days_on_disk().unwrap(),
        vec![Date::constant(2026, 10, 2)]
    );
}

#[tokio::test]
async fn stored_and_searched_lines_are_scrubbed_and_filters_apply() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).await.unwrap();
    let scrubber = Scrubber::new(&ScrubConfig::default(), None).unwrap();
    let now = noon(Date::constant(2026, 11, 29));
    let limits = Limits {
        max_line_bytes: 4096,
        skew_us: 3_600_000_000,
    };
    let mut counts = Counts::new();
    let mut lines = Vec::new();
    for (level, text) in [
        (
            Level::Error,
            "payment failed for bob@example.com card 4111 1111 1111 1111",
        ),
        (
            Level::Info,
            "payment ok token ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        ),
        (Level::Error, "disk slow"),
    ] {
        let mut entry = Entry::message(text);
        entry.level = Some(level);
        lines.push(prepare(entry, "api", now, limits, &scrubber, &mut counts));
    }
    store
        .append(&lines, &[("api".into(), counts)])
        .await
        .unwrap();
    let all = store
        .search(&Query {
            limit: 100,
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    for l in &all {
        assert!(!l.message.contains("bob@example.com"), "{}", l.message);
        assert!(!l.message.contains("4111"), "{}", l.message);
        assert!(!l.message.contains("ghp_abc"), "{}", l.message);
    }
    let raw = std::fs::read(dir.path().join("2026-11-29.db")).unwrap_or_default();
    let raw = String::from_utf8_lossy(&raw);
    assert!(!raw.contains("bob@example.com"));
    let errors = store
        .search(&Query {
            text: Some("payment".into()),
            min_level: Some(Level::Error),
            source: Some("api".into()),
            limit: 100,
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].message.starts_with("payment failed"));
    // A search for the raw address finds nothing.
    let leaked = store
        .search(&Query {
            text: Some("bob@example.com".into()),
            limit: 10,
            ..Query::default()
        })
        .await
        .unwrap();
    assert!(leaked.is_empty());
    let scrubbed = store.scrub_counts().await.unwrap();
    assert!(
        scrubbed.keys().any(|(s, d)| s == "api" && d == "email"),
        "{scrubbed:?}"
    );
    let sources = store.source_days().await.unwrap();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].lines, 3);
    let histogram = store
        .histogram(
            now.as_microsecond() - 60_000_000,
            now.as_microsecond() + 60_000_000,
            None,
        )
        .await
        .unwrap();
    assert_eq!(histogram.iter().map(|h| h.2).sum::<i64>(), 3);
    store.close().await;
}

#[test]
fn typed_search_words_cannot_inject_fts_syntax() {
    assert_eq!(fts_match("  "), None);
    assert_eq!(
        fts_match(r#"a"b OR NEAR(x"#).as_deref(),
        Some(r#""a""b" "OR" "NEAR(x""#)
    );
}

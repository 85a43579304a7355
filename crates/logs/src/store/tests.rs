use super::*;
use crate::record::{Entry, Limits, prepare};
use jiff::ToSpan;
use rampart_scrub::{ScrubConfig, Scrubber};
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;

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
                vec![line(noon(day), "api", Level::Info, &format!("age {age}"))],
                Vec::new(),
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
        .append(lines.clone(), vec![("api".into(), counts)])
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

/// `n` lines one second apart from `start`, "line {i} of {n}", with "needle" in lines
/// whose number is a multiple of `every`.
fn numbered(start: Timestamp, n: usize, every: usize) -> Vec<Line> {
    (0..n)
        .map(|i| {
            let mut l = line(
                start + (i as i64).seconds(),
                if i % 2 == 0 { "api" } else { "web" },
                if i % 3 == 0 {
                    Level::Error
                } else {
                    Level::Info
                },
                &format!("line {i} of {n}"),
            );
            if i % every == 0 {
                l.fields = Some(format!(r#"{{"tag":"needle-{i}"}}"#));
            }
            l
        })
        .collect()
}

#[tokio::test]
async fn word_search_over_many_chunks_finds_exactly_the_matching_lines_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).await.unwrap();
    let start = Date::constant(2026, 11, 29)
        .at(1, 0, 0, 0)
        .to_zoned(TimeZone::UTC)
        .unwrap()
        .timestamp();
    // 5,000 lines in one batch (several chunks), then 200 batches of one line each (more
    // chunks than one page of a scan).
    let lines = numbered(start, 5_000, 7);
    store.append(lines.clone(), Vec::new()).await.unwrap();
    let later = numbered(start + 2.hours(), 200, 7);
    for l in &later {
        store.append(vec![l.clone()], Vec::new()).await.unwrap();
    }
    let all = |text: &str, limit: u32| Query {
        text: Some(text.into()),
        limit,
        ..Query::default()
    };
    let found = store.search(&all("needle", 10_000)).await.unwrap();
    let expected = lines
        .iter()
        .chain(&later)
        .filter(|l| l.fields.is_some())
        .count();
    assert_eq!(found.len(), expected);
    assert!(
        found.windows(2).all(|w| w[0].time_us >= w[1].time_us),
        "newest first"
    );
    assert_eq!(
        store.count(&all("needle", 1)).await.unwrap(),
        expected as i64
    );
    // A phrase: both words, next to each other, in one column.
    let one = store.search(&all("needle-4998", 10)).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].message, "line 4998 of 5000");
    assert!(
        store
            .search(&all("4998-needle", 10))
            .await
            .unwrap()
            .is_empty()
    );
    // Words in any order, each somewhere in the line.
    let both = store.search(&all("5000 line 42", 10)).await.unwrap();
    assert_eq!(both.len(), 1);
    // Filters apply inside chunks: level, source and time.
    let q = Query {
        text: Some("needle".into()),
        min_level: Some(Level::Error),
        source: Some("api".into()),
        since_us: Some(start.as_microsecond()),
        until_us: Some((start + 1000.seconds()).as_microsecond()),
        limit: 10_000,
    };
    let narrow = store.search(&q).await.unwrap();
    let want = lines
        .iter()
        .take(1000)
        .filter(|l| l.fields.is_some() && l.level == Level::Error && l.source == "api")
        .count();
    assert_eq!(narrow.len(), want);
    assert_eq!(store.count(&q).await.unwrap(), want as i64);
    // The limit keeps the newest.
    let newest = store.search(&all("needle", 3)).await.unwrap();
    assert_eq!(newest.len(), 3);
    assert_eq!(newest[0].time_us, found[0].time_us);
    // Words that are not there, and text with no word at all.
    assert!(store.search(&all("haystack", 10)).await.unwrap().is_empty());
    assert!(store.search(&all("-- ##", 10)).await.unwrap().is_empty());
    store.close().await;
}

#[tokio::test]
async fn a_day_file_with_the_older_fts_index_is_still_searched_and_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let day = Date::constant(2026, 11, 28);
    // A day file as the FTS5 version of the store wrote it.
    {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join(format!("{day}.db")))
            .create_if_missing(true);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        for statement in SCHEMA {
            sqlx::query(statement).execute(&mut conn).await.unwrap();
        }
        sqlx::query(
            "CREATE VIRTUAL TABLE lines_fts USING fts5(message, fields, content='', columnsize=0)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query("INSERT INTO lines (id, time_us, received_us, source, level, flags, message) VALUES (1, ?, ?, 'api', 3, 0, 'old disk warning')")
            .bind(noon(day).as_microsecond())
            .bind(noon(day).as_microsecond())
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO lines_fts (rowid, message, fields) VALUES (1, 'old disk warning', NULL)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let store = LogStore::open(dir.path()).await.unwrap();
    store
        .append(
            vec![line(
                noon(day) + 1.seconds(),
                "api",
                Level::Info,
                "new disk warning",
            )],
            Vec::new(),
        )
        .await
        .unwrap();
    let found = store
        .search(&Query {
            text: Some("disk warning".into()),
            limit: 10,
            ..Query::default()
        })
        .await
        .unwrap();
    let messages: Vec<&str> = found.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(messages, ["new disk warning", "old disk warning"]);
    store.close().await;
    // The older file kept its own index and got no chunk table.
    let options = SqliteConnectOptions::new().filename(dir.path().join(format!("{day}.db")));
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    let chunks: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'chunks')")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(!chunks);
}

#[tokio::test]
async fn word_search_ignores_letter_case_in_and_beyond_ascii() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).await.unwrap();
    let at = noon(Date::constant(2026, 11, 29));
    let texts = [
        "Upstream TIMEOUT after 3 s",
        "ÉCHEC de la réservation",
        // U+212A KELVIN SIGN lower-cases to an ASCII k.
        "oven at 500 \u{212a}elvin",
        "nothing to see",
    ];
    let lines: Vec<Line> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| line(at + (i as i64).seconds(), "api", Level::Info, t))
        .collect();
    store.append(lines, Vec::new()).await.unwrap();
    for (typed, want) in [
        ("timeout", texts[0]),
        ("upstream Timeout", texts[0]),
        ("échec", texts[1]),
        ("RÉSERVATION", texts[1]),
        ("kelvin", texts[2]),
    ] {
        let found = store
            .search(&Query {
                text: Some(typed.into()),
                limit: 10,
                ..Query::default()
            })
            .await
            .unwrap();
        let messages: Vec<&str> = found.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(messages, [want], "{typed}");
    }
    store.close().await;
}

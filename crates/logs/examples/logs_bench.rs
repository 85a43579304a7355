//! Benchmark helper for `bench/logs.sh` (not a test).
//!
//! - `raw FILE DB`: inserts each line of FILE as it is into a plain SQLite table (no
//!   scrubbing, no parsing, no index, no full-text): the floor an ingest path can hope for.
//!   One transaction per 1000 lines, multi-row inserts, WAL, synchronous=NORMAL, like the
//!   log store. Prints `raw: N lines in S s = R lines/s`.
//! - `search DIR LINES QUERIES`: fills one UTC day of a log store with LINES lines (word
//!   index included, no scrubbing: this measures search, not ingest) unless it already holds
//!   them, then runs QUERIES one-word queries bounded to that day and prints p50/p95/max.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::BufRead;
use std::str::FromStr;
use std::time::Instant;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use rampart_logs::store::{LogStore, Query};
use rampart_logs::{Level, Line};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("raw") => raw(&args[2], &args[3]).await,
        Some("search") => {
            search(&args[2], args[3].parse().unwrap(), args[4].parse().unwrap()).await
        }
        _ => panic!("usage: logs_bench raw FILE DB | search DIR LINES QUERIES"),
    }
}

async fn raw(file: &str, db: &str) {
    let lines: Vec<String> = std::io::BufReader::new(std::fs::File::open(file).unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    let _ = std::fs::remove_file(db);
    let options = SqliteConnectOptions::from_str(db)
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    sqlx::query("CREATE TABLE lines (received_us INTEGER NOT NULL, line TEXT NOT NULL)")
        .execute(&mut conn)
        .await
        .unwrap();
    let start = Instant::now();
    for batch in lines.chunks(1000) {
        let mut tx = conn.begin().await.unwrap();
        for chunk in batch.chunks(256) {
            let sql = format!(
                "INSERT INTO lines (received_us, line) VALUES {}",
                vec!["(?,?)"; chunk.len()].join(",")
            );
            let mut q = sqlx::query(&sql);
            let now = jiff::Timestamp::now().as_microsecond();
            for line in chunk {
                q = q.bind(now).bind(line);
            }
            q.execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "raw: {} lines in {secs:.2} s = {:.0} lines/s",
        lines.len(),
        lines.len() as f64 / secs
    );
}

const WORDS: &[&str] = &[
    "request",
    "completed",
    "user",
    "session",
    "payment",
    "invoice",
    "timeout",
    "upstream",
    "cache",
    "miss",
    "hit",
    "query",
    "slow",
    "retry",
    "worker",
    "job",
    "queue",
    "deploy",
    "healthcheck",
    "connection",
    "reset",
    "refused",
    "token",
    "expired",
    "order",
    "shipped",
];

fn message(i: u64) -> String {
    // ~200 bytes, with one rare word per 10,000 lines for the selective query.
    let mut x = i
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let mut words = Vec::new();
    while words.iter().map(|w: &String| w.len() + 1).sum::<usize>() < 150 {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        words.push(WORDS[(x % WORDS.len() as u64) as usize].to_owned());
    }
    if i % 10_000 == 7 {
        words.push("zebrafault".into());
    }
    format!(
        "{} id={:016x} took={}ms path=/api/v1/orders/{}",
        words.join(" "),
        x,
        x % 997,
        i % 100_000
    )
}

async fn search(dir: &str, lines: u64, queries: usize) {
    let store = LogStore::open(std::path::Path::new(dir)).await.unwrap();
    let day = Date::constant(2026, 11, 2);
    let start_us = day
        .at(0, 0, 0, 0)
        .to_zoned(TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_microsecond();
    let day_us = 86_400_000_000i64;
    let have = store
        .count(&Query {
            since_us: Some(start_us),
            until_us: Some(start_us + day_us),
            ..Query::default()
        })
        .await
        .unwrap();
    if (have as u64) < lines {
        let fill = Instant::now();
        let step = day_us / lines as i64;
        let mut batch = Vec::with_capacity(10_000);
        for i in have as u64..lines {
            let t = start_us + i as i64 * step;
            batch.push(Line {
                time_us: t,
                received_us: t,
                source: ["api", "web", "worker", "billing"][(i % 4) as usize].into(),
                level: if i % 50 == 0 {
                    Level::Error
                } else {
                    Level::Info
                },
                flags: 0,
                message: message(i),
                fields: None,
            });
            if batch.len() == 10_000 {
                store
                    .append(std::mem::take(&mut batch), Vec::new())
                    .await
                    .unwrap();
            }
        }
        store.append(batch, Vec::new()).await.unwrap();
        eprintln!(
            "filled {} lines in {:.0} s",
            lines - have as u64,
            fill.elapsed().as_secs_f64()
        );
    }
    // One-term queries bounded to the day: the whole day, and "since" windows ending at the
    // day's end (as `--since 1h` / `6h` ask on a live day), newest 100 lines each.
    let mut times = Vec::new();
    let terms = [
        "zebrafault",
        "timeout",
        "refused",
        "payment",
        "shipped",
        "reset",
    ];
    let windows_h = [24_i64, 6, 1];
    for q in 0..queries {
        let hours = windows_h[q % windows_h.len()];
        let query = Query {
            text: Some(terms[(q / windows_h.len()) % terms.len()].into()),
            since_us: Some(start_us + day_us - hours * 3_600_000_000),
            until_us: Some(start_us + day_us),
            limit: 100,
            ..Query::default()
        };
        let t = Instant::now();
        let found = store.search(&query).await.unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(!found.is_empty());
    }
    times.sort_by(f64::total_cmp);
    let pick = |p: f64| times[((times.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    println!(
        "search: {} one-term queries bounded to one day of {lines} lines: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        times.len(),
        pick(0.5),
        pick(0.95),
        pick(1.0),
    );
    store.close().await;
}

//! Audit append and verify throughput on a real store (`bench/audit.sh` runs it).
//!
//! usage: audit_bench [EVENTS] [WRITERS] [URL]
//! Writers append one event per call, concurrently, as request handlers do; the group
//! committer batches them. Then the whole chain is verified.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use rampart_audit::{Action, Actor, AuditEvent, Verifier};
use rampart_store::Store;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let events: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let writers: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(32);
    let dir = tempfile::tempdir().unwrap();
    let url = args.get(3).cloned().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        )
    });
    let store = Arc::new(Store::open(&url).await.expect("open store"));

    let start = Instant::now();
    let per = events / writers;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                let ev = AuditEvent::new(
                    Actor::User(format!("user{w}")),
                    Action::Authorize,
                    format!("web-{i}"),
                )
                .source(Some([10, 0, 0, 1].into()))
                .detail("login", "deploy")
                .detail("environment", "production");
                store.append_audit(&[ev]).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let appended = per * writers;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "append: {appended} events in {secs:.2} s = {:.0} events/s ({writers} concurrent writers, one event per call)",
        appended as f64 / secs
    );

    use sqlx::Row;
    let groups: i64 = sqlx::query("SELECT COUNT(DISTINCT time_us) AS n FROM audit_log")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get("n");
    println!(
        "groups: {groups} transactions, {:.1} events each",
        appended as f64 / groups as f64
    );

    // Reading alone, to tell reading from hashing.
    let start = Instant::now();
    let (mut after, mut read) = (0, 0usize);
    loop {
        let page = store.audit_page(after, 20_000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        read += page.len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "read:   {read} events in {secs:.2} s = {:.0} events/s (no hashing)",
        read as f64 / secs
    );

    let start = Instant::now();
    let (mut after, mut read) = (0, 0usize);
    loop {
        let page = store.audit_page_packed(after, 20_000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        read += page.len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "packed: {read} events in {secs:.2} s = {:.0} events/s (no hashing)",
        read as f64 / secs
    );

    let start = Instant::now();
    let mut verifier = Verifier::default();
    store
        .audit_verify(&mut verifier, |_| {})
        .await
        .unwrap()
        .expect("chain intact");
    let n = verifier.finish().expect("chain intact");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "verify: {n} events in {secs:.2} s = {:.0} events/s",
        n as f64 / secs
    );
    store.close().await;
}

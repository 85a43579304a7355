//! The rules on scripted sequences: each fires on its pattern and stays quiet on normal
//! traffic.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;

const MIN: i64 = 60_000_000;

/// A scripted record: `(minute, actor, action, subject, outcome, source)`.
fn script(lines: &[(i64, &str, &str, &str, &str, &str)]) -> Vec<AuditRecord> {
    lines
        .iter()
        .enumerate()
        .map(
            |(i, (min, actor, action, subject, outcome, source))| AuditRecord {
                seq: i as u64 + 1,
                time_us: 1_800_000_000_000_000 + min * MIN,
                actor: (*actor).into(),
                action: (*action).into(),
                subject: (*subject).into(),
                outcome: (*outcome).into(),
                source: (*source).into(),
                details: "{}".into(),
                prev_hash: String::new(),
                hash: String::new(),
            },
        )
        .collect()
}

/// The alerts of the whole sequence. Checked two more ways, as the watcher reads the log:
/// fed only the records of [`Detector::OBSERVED`] actions (every rule's test below then
/// fails if an action it needs is missing from that list), and fed each record followed by
/// a copy under an action outside that list (which must change nothing).
fn run(records: &[AuditRecord]) -> Vec<Alert> {
    let feed = |records: &mut dyn Iterator<Item = AuditRecord>| {
        let mut d = Detector::new(Thresholds::default());
        records.flat_map(|r| d.observe(&r)).collect::<Vec<Alert>>()
    };
    let all = feed(&mut records.iter().cloned());
    let observed = feed(
        &mut records
            .iter()
            .filter(|r| Detector::OBSERVED.contains(&r.action.as_str()))
            .cloned(),
    );
    assert_eq!(
        all, observed,
        "a rule needs an action missing from OBSERVED"
    );
    let others: Vec<&str> = crate::Action::ALL
        .iter()
        .map(|a| a.as_str())
        .filter(|a| !Detector::OBSERVED.contains(a))
        .collect();
    let noisy = feed(
        &mut records
            .iter()
            .zip(others.iter().cycle())
            .flat_map(|(r, other)| {
                let copy = AuditRecord {
                    action: (*other).into(),
                    ..r.clone()
                };
                [r.clone(), copy]
            }),
    );
    assert_eq!(all, noisy, "an action outside OBSERVED changed the alerts");
    // And as a restarted watcher reads it: the state saved after any record and restored
    // raises, for the records after it, exactly the alerts the running detector raised.
    for cut in 0..=records.len() {
        let (before, after) = records.split_at(cut);
        let mut d = Detector::new(Thresholds::default());
        let mut alerts: Vec<Alert> = before.iter().flat_map(|r| d.observe(r)).collect();
        let mut restored = Detector::restore(&d.save(), Thresholds::default()).unwrap();
        alerts.extend(after.iter().flat_map(|r| restored.observe(r)));
        assert_eq!(all, alerts, "restored after record {cut}");
    }
    all
}

#[test]
fn a_saved_state_of_other_rules_other_limits_or_no_state_is_not_restored() {
    let mut d = Detector::new(Thresholds::default());
    for r in &normal() {
        d.observe(r);
    }
    let saved = d.save();
    assert!(Detector::restore(&saved, Thresholds::default()).is_ok());
    let other = Thresholds {
        burst_failures: 3,
        ..Thresholds::default()
    };
    assert_eq!(
        Detector::restore(&saved, other).unwrap_err(),
        "saved with other limits"
    );
    let older = saved.replacen(RULES, "rampart 0.0.1, state 1", 1);
    assert!(
        Detector::restore(&older, Thresholds::default())
            .unwrap_err()
            .starts_with("saved by rampart 0.0.1"),
    );
    // A field the rules no longer have (a change to the fields without a new version).
    let renamed = saved.replacen("\"detector\":{", "\"detector\":{\"retired\":[],", 1);
    assert_ne!(renamed, saved);
    for junk in ["", "{}", "[1,2]", &saved[..saved.len() / 2], &renamed] {
        assert!(
            Detector::restore(junk, Thresholds::default())
                .unwrap_err()
                .starts_with("not a saved state"),
            "{junk:?}"
        );
    }
    let huge = " ".repeat(MAX_SAVED + 1);
    assert!(
        Detector::restore(&huge, Thresholds::default())
            .unwrap_err()
            .contains("more than")
    );
}

/// Ordinary days: a few typos, logins from the usual places, sessions to the usual
/// targets, an account disabled after its last session.
fn normal() -> Vec<AuditRecord> {
    let mut lines = Vec::new();
    for day in 0..5 {
        let t = day * 24 * 60;
        lines.extend([
            (
                t,
                "anonymous",
                "login.password",
                "alice",
                "failure",
                "10.0.0.5",
            ),
            (
                t + 1,
                "user:alice",
                "login.password",
                "alice",
                "success",
                "10.0.0.5",
            ),
            (
                t + 1,
                "user:alice",
                "session.start",
                "alice",
                "success",
                "10.0.0.5",
            ),
            (
                t + 2,
                "user:alice",
                "ssh.login",
                "alice",
                "success",
                "10.0.0.5",
            ),
            (
                t + 2,
                "user:alice",
                "ssh.session.start",
                "web-1",
                "success",
                "10.0.0.5",
            ),
            (
                t + 3,
                "user:bob",
                "session.start",
                "bob",
                "success",
                "10.0.0.9",
            ),
            (
                t + 4,
                "user:bob",
                "db.session.start",
                "orders-db",
                "success",
                "10.0.0.9",
            ),
            (
                t + 5,
                "user:alice",
                "login.mfa",
                "alice",
                "failure",
                "10.0.0.5",
            ),
            (
                t + 6,
                "user:alice",
                "login.mfa",
                "alice",
                "success",
                "10.0.0.5",
            ),
        ]);
    }
    lines.push((9000, "cli:root", "user.disable", "carol", "success", ""));
    script(&lines)
}

#[test]
fn normal_traffic_raises_nothing() {
    assert_eq!(run(&normal()), vec![]);
}

#[test]
fn a_burst_of_failed_logins_fires_once_per_account_and_address() {
    let mut lines = Vec::new();
    for i in 0..7 {
        lines.push((
            i,
            "anonymous",
            "login.password",
            "alice",
            "failure",
            "203.0.113.7",
        ));
    }
    let alerts = run(&script(&lines));
    let rules: Vec<Rule> = alerts.iter().map(|a| a.rule).collect();
    assert_eq!(
        rules,
        vec![Rule::FailedLoginsAccount, Rule::FailedLoginsAddress]
    );
    assert_eq!(alerts[0].subject, "alice");
    assert_eq!(alerts[0].seqs, vec![1, 2, 3, 4, 5]);
    assert_eq!(alerts[1].subject, "203.0.113.7");
    // Spread over hours, the same failures are no burst.
    let spread: Vec<_> = (0..7)
        .map(|i| {
            (
                i * 20,
                "anonymous",
                "login.password",
                "alice",
                "failure",
                "203.0.113.7",
            )
        })
        .collect();
    assert_eq!(run(&script(&spread)), vec![]);
    // Many accounts from one address (spraying) is a burst of that address only.
    let names = ["a1", "a2", "a3", "a4", "a5"];
    let spray: Vec<_> = names
        .iter()
        .map(|n| (0, "anonymous", "ssh.login", *n, "denied", "198.51.100.1"))
        .collect();
    let alerts = run(&script(&spray));
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].rule, Rule::FailedLoginsAddress);
}

#[test]
fn a_login_from_a_new_address_fires() {
    let mut records = normal();
    let more = script(&[(
        9001,
        "user:alice",
        "session.start",
        "alice",
        "success",
        "192.0.2.44",
    )]);
    let mut last = more[0].clone();
    last.seq = records.len() as u64 + 1;
    records.push(last);
    let alerts = run(&records);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].rule, Rule::NewAddress);
    assert_eq!(alerts[0].subject, "alice");
    assert!(alerts[0].summary.contains("192.0.2.44"));
    assert_eq!(alerts[0].seqs, vec![records.len() as u64]);
}

#[test]
fn a_first_access_to_a_target_fires() {
    let mut records = normal();
    let mut extra = script(&[(
        9001,
        "user:bob",
        "ssh.session.start",
        "db-admin-1",
        "success",
        "10.0.0.9",
    )])[0]
        .clone();
    extra.seq = records.len() as u64 + 1;
    records.push(extra);
    let alerts = run(&records);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].rule, Rule::FirstTarget);
    assert!(alerts[0].summary.contains("db-admin-1"), "{alerts:?}");
}

#[test]
fn sessions_to_many_targets_in_a_short_time_fire_once() {
    let mut lines = vec![(
        0,
        "user:eve",
        "ssh.session.start",
        "web-1",
        "success",
        "10.0.0.3",
    )];
    for (i, t) in ["web-2", "web-3", "db-1", "db-2", "db-3"]
        .iter()
        .enumerate()
    {
        lines.push((
            i as i64 + 1,
            "user:eve",
            "ssh.session.start",
            t,
            "success",
            "10.0.0.3",
        ));
    }
    let alerts: Vec<Alert> = run(&script(&lines))
        .into_iter()
        .filter(|a| a.rule == Rule::ManyTargets)
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].seqs, vec![1, 2, 3, 4, 5]);
    // The same five targets over a day are no burst.
    let slow: Vec<_> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (i as i64 * 60, l.1, l.2, l.3, l.4, l.5))
        .collect();
    assert!(
        run(&script(&slow))
            .iter()
            .all(|a| a.rule != Rule::ManyTargets)
    );
}

#[test]
fn a_login_from_a_new_address_after_an_mfa_reset_fires() {
    let records = script(&[
        (0, "user:dan", "session.start", "dan", "success", "10.0.0.8"),
        (10, "cli:root", "mfa.reset", "dan", "success", ""),
        (
            11,
            "user:dan",
            "session.start",
            "dan",
            "success",
            "203.0.113.50",
        ),
        // Reset again; this time dan comes back from his usual place: quiet.
        (20, "cli:root", "mfa.reset", "dan", "success", ""),
        (
            21,
            "user:dan",
            "session.start",
            "dan",
            "success",
            "10.0.0.8",
        ),
    ]);
    let alerts = run(&records);
    let rules: Vec<Rule> = alerts.iter().map(|a| a.rule).collect();
    assert_eq!(rules, vec![Rule::MfaResetNewAddress, Rule::NewAddress]);
    assert_eq!(alerts[0].seqs, vec![2, 3]);
}

#[test]
fn any_session_by_a_disabled_account_fires_and_enabling_clears_it() {
    let records = script(&[
        (
            0,
            "user:carol",
            "session.start",
            "carol",
            "success",
            "10.0.0.7",
        ),
        (1, "cli:root", "user.disable", "carol", "success", ""),
        (
            2,
            "user:carol",
            "ssh.session.start",
            "web-1",
            "success",
            "10.0.0.7",
        ),
        (3, "cli:root", "user.enable", "carol", "success", ""),
        (
            4,
            "user:carol",
            "ssh.session.start",
            "web-1",
            "success",
            "10.0.0.7",
        ),
    ]);
    let alerts = run(&records);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].rule, Rule::DisabledSession);
    assert_eq!(alerts[0].seqs, vec![3]);
}

/// A record at `min` minutes with details, numbered after `so_far`.
fn with_details(
    so_far: &[AuditRecord],
    min: i64,
    actor: &str,
    action: &str,
    subject: &str,
    details: &[(&str, &str)],
) -> AuditRecord {
    let mut r = script(&[(min, actor, action, subject, "success", "10.0.0.9")])
        .pop()
        .unwrap();
    r.seq = so_far.len() as u64 + 1;
    let map: BTreeMap<&str, &str> = details.iter().copied().collect();
    r.details = serde_json::to_string(&map).unwrap();
    r
}

#[test]
fn an_access_at_an_hour_the_account_never_uses_fires_once_then_is_learned() {
    const DAY: i64 = 24 * 60;
    // The script's clock starts at 08:00 UTC: alice works around 09:00 for 25 days.
    let mut lines = Vec::new();
    for day in 0..25 {
        lines.push((
            day * DAY + 60,
            "user:alice",
            "session.start",
            "alice",
            "success",
            "10.0.0.5",
        ));
    }
    // bob is new: a few logins at odd hours are no history to judge by.
    for (i, hour) in [0, 7, 15].iter().enumerate() {
        lines.push((
            i as i64 * DAY + hour * 60,
            "user:bob",
            "session.start",
            "bob",
            "success",
            "10.0.0.9",
        ));
    }
    let usual = script(&lines);
    assert_eq!(run(&usual), vec![], "a steady habit raises nothing");

    // 03:00 UTC on day 30; then 03:05 the next day (learned), and 10:30 (next to 09:00).
    lines.push((
        30 * DAY + 19 * 60,
        "user:alice",
        "session.start",
        "alice",
        "success",
        "10.0.0.5",
    ));
    lines.push((
        31 * DAY + 19 * 60 + 5,
        "user:alice",
        "ssh.login",
        "alice",
        "success",
        "10.0.0.5",
    ));
    lines.push((
        32 * DAY + 150,
        "user:alice",
        "session.start",
        "alice",
        "success",
        "10.0.0.5",
    ));
    let records = script(&lines);
    let alerts = run(&records);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].rule, Rule::UnusualHours);
    assert_eq!(alerts[0].subject, "alice");
    assert_eq!(alerts[0].seqs, vec![usual.len() as u64 + 1]);
    assert!(alerts[0].summary.contains("03:00"), "{}", alerts[0].summary);
}

#[test]
fn a_database_session_reading_far_more_rows_than_usual_fires_once_while_it_runs() {
    let mut r: Vec<AuditRecord> = Vec::new();
    let push = |r: &mut Vec<AuditRecord>, action: &str, target: &str, d: &[(&str, &str)]| {
        let rec = with_details(r, r.len() as i64, "user:bob", action, target, d);
        r.push(rec);
    };
    // Six ordinary sessions: 300 rows read each (writes do not count).
    for n in 0..6 {
        let id = format!("s{n}");
        push(&mut r, "db.session.start", "orders-db", &[("session", &id)]);
        for _ in 0..3 {
            push(
                &mut r,
                "db.statement",
                "orders-db",
                &[("session", &id), ("command", "SELECT"), ("rows", "100")],
            );
        }
        push(
            &mut r,
            "db.change",
            "orders-db",
            &[("session", &id), ("command", "UPDATE"), ("rows", "900000")],
        );
        push(&mut r, "db.session.end", "orders-db", &[("session", &id)]);
    }
    // A first big session on another target has no usual amount yet.
    push(
        &mut r,
        "db.session.start",
        "analytics-db",
        &[("session", "a1")],
    );
    push(
        &mut r,
        "db.statement",
        "analytics-db",
        &[("session", "a1"), ("command", "SELECT"), ("rows", "500000")],
    );
    push(
        &mut r,
        "db.session.end",
        "analytics-db",
        &[("session", "a1")],
    );
    let quiet = run(&r);
    assert!(
        quiet.iter().all(|a| a.rule != Rule::ManyRows),
        "ordinary sessions raise nothing: {quiet:?}"
    );

    // The seventh reads 100, then 5,000, then 20,000 rows (past 10,000 and 10 × 300),
    // then more; it is still running.
    push(
        &mut r,
        "db.session.start",
        "orders-db",
        &[("session", "s7")],
    );
    let first = r.len() as u64 + 1;
    for rows in ["100", "5000", "20000", "20000"] {
        push(
            &mut r,
            "db.statement",
            "orders-db",
            &[("session", "s7"), ("command", "SELECT"), ("rows", rows)],
        );
    }
    // An ordinary session afterwards is quiet.
    push(&mut r, "db.session.end", "orders-db", &[("session", "s7")]);
    push(
        &mut r,
        "db.session.start",
        "orders-db",
        &[("session", "s8")],
    );
    push(
        &mut r,
        "db.statement",
        "orders-db",
        &[("session", "s8"), ("command", "SELECT"), ("rows", "2900")],
    );
    push(&mut r, "db.session.end", "orders-db", &[("session", "s8")]);
    let alerts: Vec<Alert> = run(&r)
        .into_iter()
        .filter(|a| a.rule == Rule::ManyRows)
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].subject, "bob");
    assert_eq!(alerts[0].seqs, vec![first, first + 1, first + 2]);
    assert!(
        alerts[0].summary.contains("25100 rows") && alerts[0].summary.contains("usually read 300"),
        "{}",
        alerts[0].summary
    );
}

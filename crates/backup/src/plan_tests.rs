#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use rampart_core::Bounded;

use super::*;
use crate::config::{RetentionPolicy, Rule, Zone};

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn good(id: &str, started: Timestamp) -> Backup {
    Backup {
        id: id.into(),
        source: "app".into(),
        started,
        status: Status::Complete,
        verification: Verification::Unverified,
        pinned: false,
    }
}

fn policy(
    base: i64,
    daily: i64,
    weekly: i64,
    monthly: i64,
    rule: Rule,
    zone: &str,
) -> RetentionPolicy {
    RetentionPolicy {
        base_days: Bounded::new(base).unwrap(),
        daily_days: Bounded::new(daily).unwrap(),
        weekly_weeks: Bounded::new(weekly).unwrap(),
        monthly_months: Bounded::new(monthly).unwrap(),
        rule,
        time_zone: Zone::new(zone).unwrap(),
    }
}

fn verdict(plan: &Plan, id: &str) -> Verdict {
    plan.decisions.iter().find(|d| d.id == id).unwrap().verdict
}

#[test]
fn a_fresh_backup_is_kept_as_base_and_an_old_one_no_tier_needs_is_deleted() {
    let now = ts("2026-06-15T12:00:00Z");
    let p = policy(2, 7, 4, 13, Rule::First, "UTC");
    let backups = vec![
        good("early", ts("2026-06-10T00:00:00Z")),
        good("late", ts("2026-06-10T18:00:00Z")),
        good("fresh", ts("2026-06-15T06:00:00Z")),
    ];
    let plan = plan(&backups, &p, now);
    assert_eq!(verdict(&plan, "early"), Verdict::Keep);
    assert_eq!(verdict(&plan, "late"), Verdict::Delete);
    let late = &plan.decisions[1];
    assert_eq!(late.reasons, vec![Reason::NoTierNeedsIt]);
    let fresh = &plan.decisions[2];
    assert!(fresh.reasons.contains(&Reason::Base { days: 2 }));
    assert!(fresh.reasons.contains(&Reason::NewestGood));
    assert!(
        plan.decisions[0]
            .reasons
            .iter()
            .any(|r| matches!(r, Reason::Daily { .. }))
    );
}

#[test]
fn the_newest_rule_keeps_the_last_backup_of_a_day() {
    let now = ts("2026-06-15T12:00:00Z");
    let p = policy(2, 7, 4, 13, Rule::Newest, "UTC");
    let backups = vec![
        good("early", ts("2026-06-10T00:00:00Z")),
        good("late", ts("2026-06-10T18:00:00Z")),
        good("fresh", ts("2026-06-15T06:00:00Z")),
    ];
    let plan = plan(&backups, &p, now);
    assert_eq!(verdict(&plan, "early"), Verdict::Delete);
    assert_eq!(verdict(&plan, "late"), Verdict::Keep);
}

#[test]
fn pinned_and_newest_verified_survive_everything() {
    let now = ts("2030-01-01T00:00:00Z");
    let p = policy(2, 7, 4, 13, Rule::First, "UTC");
    let mut pinned = good("pinned", ts("2020-03-03T03:00:00Z"));
    pinned.pinned = true;
    let mut verified = good("verified", ts("2026-01-05T00:00:00Z"));
    verified.verification = Verification::Passed;
    let newer_unverified = good("newer", ts("2026-01-05T06:00:00Z"));
    let plan = plan(&[pinned, verified, newer_unverified], &p, now);
    assert_eq!(plan.decisions[0].reasons, vec![Reason::Pinned]);
    assert_eq!(plan.decisions[1].reasons, vec![Reason::NewestVerified]);
    assert_eq!(plan.decisions[2].reasons, vec![Reason::NewestGood]);
    assert!(plan.deletions().next().is_none());
}

#[test]
fn failed_backups_count_toward_no_tier() {
    let now = ts("2026-06-15T12:00:00Z");
    let p = policy(2, 7, 4, 13, Rule::First, "UTC");
    let mut failed = good("failed", ts("2026-06-12T00:00:00Z"));
    failed.status = Status::Failed;
    let mut broken = good("broken", ts("2026-06-12T00:10:00Z"));
    broken.verification = Verification::Failed;
    let mut recent_failed = good("recent", ts("2026-06-15T06:00:00Z"));
    recent_failed.status = Status::Incomplete;
    let next = good("next", ts("2026-06-12T06:00:00Z"));
    let plan = plan(&[failed, broken, recent_failed, next], &p, now);
    assert_eq!(
        plan.decisions[0].reasons,
        vec![Reason::FailedExpired { days: 2 }]
    );
    assert_eq!(plan.decisions[0].verdict, Verdict::Delete);
    assert_eq!(plan.decisions[1].verdict, Verdict::Delete);
    assert_eq!(
        plan.decisions[2].reasons,
        vec![Reason::FailedKeptAsEvidence { days: 2 }]
    );
    // The day's first *good* backup stands for it.
    assert!(
        plan.decisions[3]
            .reasons
            .iter()
            .any(|r| matches!(r, Reason::Daily { .. }))
    );
}

#[test]
fn days_are_counted_in_the_policy_time_zone() {
    // 23:30 UTC on 10 June is 01:30 on 11 June in Paris.
    let now = ts("2026-06-15T12:00:00Z");
    let p = policy(2, 7, 4, 13, Rule::First, "Europe/Paris");
    let backups = vec![
        good("a", ts("2026-06-10T23:30:00Z")),
        good("b", ts("2026-06-11T05:00:00Z")),
        good("c", ts("2026-06-15T06:00:00Z")),
    ];
    let plan = plan(&backups, &p, now);
    assert_eq!(verdict(&plan, "a"), Verdict::Keep);
    assert_eq!(verdict(&plan, "b"), Verdict::Delete);
    let d = plan.decisions[0]
        .reasons
        .iter()
        .find_map(|r| match r {
            Reason::Daily { date, .. } => Some(*date),
            _ => None,
        })
        .unwrap();
    assert_eq!(d.to_string(), "2026-06-11");
}

#[test]
fn a_week_belongs_to_its_iso_week_year() {
    // 2026-12-31 (Thursday) and 2027-01-03 (Sunday) are both in 2026-W53.
    let now = ts("2027-01-20T00:00:00Z");
    let p = policy(2, 7, 4, 13, Rule::First, "UTC");
    let backups = vec![
        good("thu", ts("2026-12-31T10:00:00Z")),
        good("sun", ts("2027-01-03T10:00:00Z")),
        good("mon", ts("2027-01-04T10:00:00Z")),
    ];
    let plan = plan(&backups, &p, now);
    let weekly: Vec<_> = plan
        .decisions
        .iter()
        .flat_map(|d| d.reasons.iter().map(move |r| (d.id.as_str(), r)))
        .filter_map(|(id, r)| match r {
            Reason::Weekly { year, week, .. } => Some((id, *year, *week)),
            _ => None,
        })
        .collect();
    assert_eq!(weekly, vec![("thu", 2026, 53), ("mon", 2027, 1)]);
    // "sun" is in a kept month (January's first) instead.
    assert!(
        plan.decisions[1]
            .reasons
            .iter()
            .any(|r| matches!(r, Reason::Monthly { .. }))
    );
}

#[test]
fn a_backup_from_the_future_is_kept() {
    let now = ts("2026-06-15T12:00:00Z");
    let p = policy(2, 7, 4, 13, Rule::First, "UTC");
    let mut skewed = good("skewed", ts("2026-06-15T12:05:00Z"));
    skewed.status = Status::Failed;
    let plan = plan(&[skewed], &p, now);
    assert_eq!(plan.decisions[0].verdict, Verdict::Keep);
    assert!(plan.decisions[0].reasons.contains(&Reason::FutureDated));
}

#[test]
fn every_reason_reads_as_a_sentence() {
    let now = ts("2026-06-15T12:00:00Z");
    let p = policy(2, 7, 4, 13, Rule::First, "UTC");
    let plan = plan(&[good("a", ts("2026-06-15T06:00:00Z"))], &p, now);
    let text: Vec<String> = plan.decisions[0]
        .reasons
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        text.contains(&"base: younger than 2 days".to_owned()),
        "{text:?}"
    );
    assert!(
        text.contains(&"daily: first of 2026-06-15, kept 7 days".to_owned()),
        "{text:?}"
    );
    assert!(text.contains(&"weekly: first of 2026-W25, kept 4 weeks".to_owned()));
    assert!(text.contains(&"monthly: first of 2026-06, kept 13 months".to_owned()));
}

/// The page's tiers, computed independently of the planner: what must be kept at `now`.
fn expected_kept(backups: &[Backup], p: &RetentionPolicy, now: Timestamp) -> BTreeSet<String> {
    let zone = p.time_zone.zone();
    let now_z = now.to_zoned(zone.clone());
    let today = now_z.date();
    let mut keep = BTreeSet::new();
    // Base: by age.
    for b in backups {
        if now.duration_since(b.started) < SignedDuration::from_hours(24 * p.base_days.get()) {
            keep.insert(b.id.clone());
        }
    }
    let pick = |group: &[&Backup]| -> String {
        let chosen = match p.rule {
            Rule::First => group.iter().min_by_key(|b| (b.started, b.id.clone())),
            Rule::Newest => group.iter().max_by_key(|b| (b.started, b.id.clone())),
        };
        chosen.unwrap().id.clone()
    };
    let mut days: BTreeMap<jiff::civil::Date, Vec<&Backup>> = BTreeMap::new();
    let mut weeks: BTreeMap<(i16, i8), Vec<&Backup>> = BTreeMap::new();
    let mut months: BTreeMap<(i16, i8), Vec<&Backup>> = BTreeMap::new();
    for b in backups {
        let d = b.started.to_zoned(zone.clone()).date();
        let iso = d.iso_week_date();
        days.entry(d).or_default().push(b);
        weeks.entry((iso.year(), iso.week())).or_default().push(b);
        months.entry((d.year(), d.month())).or_default().push(b);
    }
    for (d, group) in &days {
        // The last `daily_days` calendar days, today included.
        if today.since(*d).unwrap().get_days() < p.daily_days.get() as i32 {
            keep.insert(pick(group));
        }
    }
    let monday = |d: jiff::civil::Date| {
        d.checked_sub(jiff::Span::new().days(i64::from(d.weekday().to_monday_zero_offset())))
            .unwrap()
    };
    for group in weeks.values() {
        let start = monday(group[0].started.to_zoned(zone.clone()).date());
        let weeks_back = monday(today).since(start).unwrap().get_days() / 7;
        if i64::from(weeks_back) < p.weekly_weeks.get() {
            keep.insert(pick(group));
        }
    }
    for ((y, m), group) in &months {
        let back = (i64::from(today.year()) * 12 + i64::from(today.month()))
            - (i64::from(*y) * 12 + i64::from(*m));
        if back < p.monthly_months.get() {
            keep.insert(pick(group));
        }
    }
    // The newest backup is always kept.
    if let Some(b) = backups.iter().max_by_key(|b| (b.started, b.id.clone())) {
        keep.insert(b.id.clone());
    }
    keep
}

/// A year of 6-hourly backups with gaps (an outage of three days, a missing week, a
/// skipped run now and then), pruned after every run as `rampart serve` does: at the end
/// exactly the page's tiers remain, and each tier is as full as the history allows.
#[test]
fn a_simulated_year_of_six_hourly_backups_with_gaps_keeps_exactly_the_tiers() {
    for (rule, zone) in [
        (Rule::First, "UTC"),
        (Rule::Newest, "Europe/Paris"),
        (Rule::First, "America/New_York"),
    ] {
        let p = policy(5, 35, 12, 13, rule, zone);
        let start = ts("2026-01-01T00:00:00Z");
        let mut catalog: Vec<Backup> = Vec::new();
        let mut deleted_ever = BTreeSet::new();
        let mut all = Vec::new();
        for run in 0..(4 * 366) {
            let started = start + SignedDuration::from_hours(6 * run);
            let day = run / 4;
            let outage = (100..103).contains(&day) || (200..207).contains(&day);
            let skipped = run % 17 == 5;
            if outage || skipped {
                continue;
            }
            let b = good(&format!("b{run:05}"), started);
            catalog.push(b.clone());
            all.push(b);
            let now = started + SignedDuration::from_mins(30);
            let plan = plan(&catalog, &p, now);
            for d in plan.deletions() {
                deleted_ever.insert(d.id.clone());
            }
            catalog.retain(|b| !deleted_ever.contains(&b.id));
        }
        let now = all.last().unwrap().started + SignedDuration::from_mins(30);
        let kept: BTreeSet<String> = catalog.iter().map(|b| b.id.clone()).collect();
        // Pruning step by step ends where planning the whole history at once does.
        assert_eq!(kept, expected_kept(&all, &p, now), "{rule} {zone}");
        // And the counts are the page's: 5 days of base (4 a day, less skipped runs), one a
        // day for 35 days, one a week for 12 weeks, one a month for 13 months.
        let final_plan = plan(&catalog, &p, now);
        let count = |f: fn(&Reason) -> bool| {
            final_plan
                .decisions
                .iter()
                .filter(|d| d.reasons.iter().any(f))
                .count()
        };
        assert_eq!(count(|r| matches!(r, Reason::Daily { .. })), 35, "{zone}");
        assert_eq!(count(|r| matches!(r, Reason::Weekly { .. })), 12, "{zone}");
        // Twelve months of 2026 and one day of 2027 make 13 months.
        assert_eq!(count(|r| matches!(r, Reason::Monthly { .. })), 13, "{zone}");
        let base = count(|r| matches!(r, Reason::Base { .. }));
        assert!((18..=20).contains(&base), "{zone}: {base} base backups");
        assert!(final_plan.deletions().next().is_none());
    }
}

fn arb_history() -> impl Strategy<Value = (Vec<Backup>, Timestamp)> {
    // Times around two DST changes in Europe and the 2026/2027 ISO week-year boundary.
    let anchors = prop::sample::select(vec![
        ts("2026-03-29T01:00:00Z"),
        ts("2026-10-25T01:00:00Z"),
        ts("2026-12-31T12:00:00Z"),
        ts("2027-01-03T23:00:00Z"),
    ]);
    let one = (-2_000_i64..400, 0_u8..20, any::<bool>(), 0_u8..3);
    (
        anchors,
        prop::collection::vec(one, 0..60),
        -48_i64..24 * 400,
    )
        .prop_map(|(anchor, items, now_offset_h)| {
            let backups = items
                .into_iter()
                .enumerate()
                .map(|(i, (hours, status, pinned, source))| Backup {
                    id: format!("b{i:03}"),
                    source: format!("s{source}"),
                    started: anchor
                        + SignedDuration::from_hours(hours)
                        + SignedDuration::from_mins(7 * i as i64),
                    status: match status {
                        0 => Status::Failed,
                        1 => Status::Incomplete,
                        _ => Status::Complete,
                    },
                    verification: match status {
                        2 => Verification::Failed,
                        3..=8 => Verification::Passed,
                        _ => Verification::Unverified,
                    },
                    pinned: pinned && status == 4,
                })
                .collect();
            // Clock skew: "now" may fall before some backups.
            (backups, anchor + SignedDuration::from_hours(now_offset_h))
        })
}

fn arb_policy() -> impl Strategy<Value = RetentionPolicy> {
    (
        2_i64..=5,
        7_i64..=365,
        4_i64..=52,
        13_i64..=36,
        any::<bool>(),
        prop::sample::select(vec![
            "UTC",
            "Europe/Paris",
            "America/New_York",
            "Australia/Sydney",
        ]),
    )
        .prop_map(|(b, d, w, m, newest, zone)| {
            policy(
                b,
                d,
                w,
                m,
                if newest { Rule::Newest } else { Rule::First },
                zone,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_plan_obeys_its_guards((backups, now) in arb_history(), p in arb_policy()) {
        let plan = plan(&backups, &p, now);
        prop_assert_eq!(plan.decisions.len(), backups.len());
        for (b, d) in backups.iter().zip(&plan.decisions) {
            prop_assert_eq!(&b.id, &d.id);
            prop_assert!(!d.reasons.is_empty());
            if b.pinned || b.started > now {
                prop_assert_eq!(d.verdict, Verdict::Keep, "{:?}", d);
            }
            if !b.is_good() {
                prop_assert!(!d.reasons.iter().any(Reason::is_tier), "{:?}", d);
            }
            let keeps = d.reasons.iter().any(|r| !matches!(r, Reason::NoTierNeedsIt | Reason::FailedExpired { .. }));
            prop_assert_eq!(keeps, d.verdict == Verdict::Keep);
        }
        // The newest good and the newest verified backup of each source are kept.
        let mut sources: BTreeMap<&str, Vec<&Backup>> = BTreeMap::new();
        for b in &backups {
            sources.entry(b.source.as_str()).or_default().push(b);
        }
        for group in sources.values() {
            for f in [
                (|b: &Backup| b.is_good()) as fn(&Backup) -> bool,
                |b: &Backup| b.is_good() && b.verification == Verification::Passed,
            ] {
                if let Some(n) = group.iter().copied().filter(|b| f(b)).max_by_key(|b| (b.started, b.id.clone())) {
                    prop_assert_eq!(verdict(&plan, &n.id), Verdict::Keep);
                }
            }
        }
    }

    #[test]
    fn each_day_week_and_month_has_at_most_one_representative(
        (backups, now) in arb_history(),
        p in arb_policy(),
    ) {
        let plan = plan(&backups, &p, now);
        let mut seen = BTreeSet::new();
        for d in &plan.decisions {
            for r in &d.reasons {
                let key = match r {
                    Reason::Daily { date, .. } => format!("d{date}"),
                    Reason::Weekly { year, week, .. } => format!("w{year}-{week}"),
                    Reason::Monthly { year, month, .. } => format!("m{year}-{month}"),
                    _ => continue,
                };
                prop_assert!(seen.insert(format!("{}/{key}", d.source)), "{key} twice");
                // The label is the backup's own local period.
                let local = d.started.to_zoned(p.time_zone.zone().clone()).date();
                match r {
                    Reason::Daily { date, .. } => prop_assert_eq!(*date, local),
                    Reason::Weekly { year, week, .. } => {
                        prop_assert_eq!((*year, *week), (local.iso_week_date().year(), local.iso_week_date().week()));
                    }
                    Reason::Monthly { year, month, .. } => prop_assert_eq!((*year, *month), (local.year(), local.month())),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn pruning_is_idempotent((backups, now) in arb_history(), p in arb_policy()) {
        let first = plan(&backups, &p, now);
        let gone: BTreeSet<&str> = first.deletions().map(|d| d.id.as_str()).collect();
        let rest: Vec<Backup> = backups.iter().filter(|b| !gone.contains(b.id.as_str())).cloned().collect();
        let second = plan(&rest, &p, now);
        prop_assert_eq!(second.deletions().count(), 0);
    }

    #[test]
    fn good_single_source_histories_keep_exactly_the_tiers(
        hours in prop::collection::btree_set(0_i64..24 * 500, 1..80),
        now_offset in 0_i64..24 * 30,
        p in arb_policy(),
    ) {
        let anchor = ts("2026-01-01T00:00:00Z");
        let backups: Vec<Backup> = hours
            .iter()
            .map(|h| good(&format!("h{h:06}"), anchor + SignedDuration::from_hours(*h)))
            .collect();
        let now = anchor + SignedDuration::from_hours(hours.iter().max().copied().unwrap_or(0) + now_offset);
        let plan = plan(&backups, &p, now);
        let kept: BTreeSet<String> = plan.kept().map(|d| d.id.clone()).collect();
        prop_assert_eq!(kept, expected_kept(&backups, &p, now));
    }
}

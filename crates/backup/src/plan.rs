//! The retention planner: which backups to keep, which to delete, and why.
//!
//! [`plan`] is pure: it takes the catalog, the policy and the time, and returns a [`Plan`]
//! with one [`Decision`] per backup, each carrying every reason that applies. Pruning
//! deletes exactly the backups the plan marks [`Verdict::Delete`], and `rampart backup plan`
//! prints the same plan as a dry run.
//!
//! The tiers are the page's (BAK-1..4), grandfather-father-son promotions of base backups:
//!
//! - **base**: every good backup younger than `base_days` × 24 h;
//! - **daily**: the first (or newest) good backup of each of the last `daily_days` calendar
//!   days, today included;
//! - **weekly**: the same for the last `weekly_weeks` ISO weeks (Monday to Sunday);
//! - **monthly**: the same for the last `monthly_months` calendar months.
//!
//! Days, weeks and months are counted on the calendar of the policy's time zone, so a
//! daylight-saving change makes a 23- or 25-hour day, never two days or none, and a week
//! belongs to its ISO week-year (2026-12-31 is in week 53 of 2026, 2027-01-01 too).
//! Windows are calendar windows, not counts of backups: a day without backups is a gap in
//! the daily tier, not a reason to keep an older one.
//!
//! Guards that win over every tier: a pinned backup (legal hold) is kept; the newest good
//! backup and the newest verified backup of each source are kept; a backup dated after
//! `now` (clock skew between nodes) is kept. A failed or incomplete backup, or one whose
//! verification failed, counts toward no tier; its record is kept for the base window as
//! evidence and then deleted.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::config::{RetentionPolicy, Rule};

/// How a backup run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The object is complete and its hash recorded.
    Complete,
    /// The run failed (the source, the storage); there is no usable object.
    Failed,
    /// The run did not finish (it is still running or was killed).
    Incomplete,
}

impl Status {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Failed => "failed",
            Self::Incomplete => "incomplete",
        }
    }

    /// Parses the stored text.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "complete" => Some(Self::Complete),
            "failed" => Some(Self::Failed),
            "incomplete" => Some(Self::Incomplete),
            _ => None,
        }
    }
}

/// The last read-back check of a backup's object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Never read back since it was written.
    Unverified,
    /// Read back whole and its SHA-256 matched (or restored and its row counts matched).
    Passed,
    /// Missing, or its hash did not match.
    Failed,
}

impl Verification {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unverified => "unverified",
            Self::Passed => "passed",
            Self::Failed => "failed",
        }
    }

    /// Parses the stored text.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "unverified" => Some(Self::Unverified),
            "passed" => Some(Self::Passed),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// What the planner needs to know about one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// Catalog id.
    pub id: String,
    /// The source it is a backup of; sources are planned independently.
    pub source: String,
    /// When the dump began (its point in time).
    pub started: Timestamp,
    /// How the run ended.
    pub status: Status,
    /// The last verification.
    pub verification: Verification,
    /// Under legal hold.
    pub pinned: bool,
}

impl Backup {
    /// Complete and not known to be broken: may stand for a day, week or month.
    pub fn is_good(&self) -> bool {
        self.status == Status::Complete && self.verification != Verification::Failed
    }
}

/// Keep or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The backup stays.
    Keep,
    /// Pruning deletes the backup (its object, then its catalog row).
    Delete,
}

/// Why a backup is kept or deleted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// Pinned (legal hold): kept whatever the tiers say.
    Pinned,
    /// The newest good backup of its source: never deleted.
    NewestGood,
    /// The newest backup of its source that passed verification: never deleted.
    NewestVerified,
    /// Dated after the planning time (clock skew): kept until time catches up.
    FutureDated,
    /// Younger than the base window.
    Base {
        /// The window, in days.
        days: i64,
    },
    /// The chosen backup of a calendar day in the daily window.
    Daily {
        /// The local date.
        date: Date,
        /// First or newest.
        rule: Rule,
        /// The window, in days.
        days: i64,
    },
    /// The chosen backup of an ISO week in the weekly window.
    Weekly {
        /// ISO week-year.
        year: i16,
        /// ISO week number.
        week: i8,
        /// First or newest.
        rule: Rule,
        /// The window, in weeks.
        weeks: i64,
    },
    /// The chosen backup of a calendar month in the monthly window.
    Monthly {
        /// Year.
        year: i16,
        /// Month (1-12).
        month: i8,
        /// First or newest.
        rule: Rule,
        /// The window, in months.
        months: i64,
    },
    /// Failed, incomplete or failed verification, but younger than the base window: kept as
    /// evidence; it counts toward no tier.
    FailedKeptAsEvidence {
        /// The window, in days.
        days: i64,
    },
    /// Failed, incomplete or failed verification, and older than the base window.
    FailedExpired {
        /// The window, in days.
        days: i64,
    },
    /// Good, but older than the base window and not the chosen backup of any day, week or
    /// month still in its window.
    NoTierNeedsIt,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pinned => f.write_str("pinned (legal hold)"),
            Self::NewestGood => f.write_str("newest good backup of its source"),
            Self::NewestVerified => f.write_str("newest verified backup of its source"),
            Self::FutureDated => {
                f.write_str("dated after now (clock skew): kept until time catches up")
            }
            Self::Base { days } => write!(f, "base: younger than {days} days"),
            Self::Daily { date, rule, days } => {
                write!(f, "daily: {rule} of {date}, kept {days} days")
            }
            Self::Weekly {
                year,
                week,
                rule,
                weeks,
            } => write!(f, "weekly: {rule} of {year}-W{week:02}, kept {weeks} weeks"),
            Self::Monthly {
                year,
                month,
                rule,
                months,
            } => write!(f, "monthly: {rule} of {year}-{month:02}, kept {months} months"),
            Self::FailedKeptAsEvidence { days } => write!(
                f,
                "failed or unverifiable: counts toward no tier; record kept {days} days as evidence"
            ),
            Self::FailedExpired { days } => write!(
                f,
                "failed or unverifiable, older than {days} days: counts toward no tier"
            ),
            Self::NoTierNeedsIt => f.write_str(
                "older than the base window and not the chosen backup of any kept day, week or month",
            ),
        }
    }
}

impl Reason {
    /// Whether this reason is a tier (as opposed to a guard or a delete reason).
    pub fn is_tier(&self) -> bool {
        matches!(
            self,
            Self::Base { .. } | Self::Daily { .. } | Self::Weekly { .. } | Self::Monthly { .. }
        )
    }
}

/// The decision on one backup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// Catalog id.
    pub id: String,
    /// Source name.
    pub source: String,
    /// When the backup began.
    pub started: Timestamp,
    /// Keep or delete.
    pub verdict: Verdict,
    /// Every reason that applies (at least one).
    pub reasons: Vec<Reason>,
}

/// The whole plan, in the input's order.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Plan {
    /// One decision per backup.
    pub decisions: Vec<Decision>,
}

impl Plan {
    /// The ids to delete.
    pub fn deletions(&self) -> impl Iterator<Item = &Decision> {
        self.decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Delete)
    }

    /// The decisions to keep.
    pub fn kept(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.verdict == Verdict::Keep)
    }
}

/// Plans retention for `backups` (any order, any mix of sources) at `now`.
pub fn plan(backups: &[Backup], policy: &RetentionPolicy, now: Timestamp) -> Plan {
    let zone = policy.time_zone.zone();
    let base_days = policy.base_days.get();
    let base_us = base_days.saturating_mul(86_400_000_000);
    let now_local = local_date(now, zone);
    let today = day_number(now_local);
    let this_week = week_number(today);
    let this_month = month_number(now_local);

    let mut reasons: Vec<Vec<Reason>> = vec![Vec::new(); backups.len()];
    let mut add = |i: usize, r: Reason| {
        if let Some(list) = reasons.get_mut(i) {
            list.push(r);
        }
    };

    // Per source: the representatives of each bucket, and the newest good / verified.
    let mut by_source: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, b) in backups.iter().enumerate() {
        by_source.entry(b.source.as_str()).or_default().push(i);
    }
    for members in by_source.values() {
        let mut daily: BTreeMap<i64, usize> = BTreeMap::new();
        let mut weekly: BTreeMap<i64, usize> = BTreeMap::new();
        let mut monthly: BTreeMap<i64, usize> = BTreeMap::new();
        let mut newest_good: Option<usize> = None;
        let mut newest_verified: Option<usize> = None;
        for &i in members {
            let Some(b) = backups.get(i) else { continue };
            if !b.is_good() {
                continue;
            }
            let newer =
                |j: Option<usize>| j.and_then(|j| backups.get(j)).is_none_or(|c| later(b, c));
            if newer(newest_good) {
                newest_good = Some(i);
            }
            if b.verification == Verification::Passed && newer(newest_verified) {
                newest_verified = Some(i);
            }
            let date = local_date(b.started, zone);
            let day = day_number(date);
            for (map, key) in [
                (&mut daily, day),
                (&mut weekly, week_number(day)),
                (&mut monthly, month_number(date)),
            ] {
                let replace = match map.get(&key).and_then(|&j| backups.get(j)) {
                    None => true,
                    Some(current) => match policy.rule {
                        Rule::First => later(current, b),
                        Rule::Newest => later(b, current),
                    },
                };
                if replace {
                    map.insert(key, i);
                }
            }
        }
        if let Some(i) = newest_good {
            add(i, Reason::NewestGood);
        }
        if let Some(i) = newest_verified {
            add(i, Reason::NewestVerified);
        }
        let rule = policy.rule;
        let days = policy.daily_days.get();
        for (&day, &i) in &daily {
            if today - day < days
                && let Some(b) = backups.get(i)
            {
                let date = local_date(b.started, zone);
                add(i, Reason::Daily { date, rule, days });
            }
        }
        let weeks = policy.weekly_weeks.get();
        for (&week, &i) in &weekly {
            if this_week - week < weeks
                && let Some(b) = backups.get(i)
            {
                let iso = local_date(b.started, zone).iso_week_date();
                add(
                    i,
                    Reason::Weekly {
                        year: iso.year(),
                        week: iso.week(),
                        rule,
                        weeks,
                    },
                );
            }
        }
        let months = policy.monthly_months.get();
        for (&month, &i) in &monthly {
            if this_month - month < months
                && let Some(b) = backups.get(i)
            {
                let date = local_date(b.started, zone);
                add(
                    i,
                    Reason::Monthly {
                        year: date.year(),
                        month: date.month(),
                        rule,
                        months,
                    },
                );
            }
        }
    }

    let decisions = backups
        .iter()
        .zip(reasons)
        .map(|(b, mut why)| {
            let age_us = now
                .as_microsecond()
                .saturating_sub(b.started.as_microsecond());
            let future = b.started > now;
            if b.pinned {
                why.insert(0, Reason::Pinned);
            }
            if future {
                why.push(Reason::FutureDated);
            }
            if b.is_good() && age_us < base_us {
                // Base comes first: it is the tier that holds a fresh backup.
                let at = why.iter().position(Reason::is_tier).unwrap_or(why.len());
                why.insert(at, Reason::Base { days: base_days });
            }
            if !b.is_good() {
                if age_us < base_us {
                    why.push(Reason::FailedKeptAsEvidence { days: base_days });
                } else if why.is_empty() {
                    why.push(Reason::FailedExpired { days: base_days });
                }
            }
            let keep = why
                .iter()
                .any(|r| !matches!(r, Reason::FailedExpired { .. }));
            if why.is_empty() {
                why.push(Reason::NoTierNeedsIt);
            }
            Decision {
                id: b.id.clone(),
                source: b.source.clone(),
                started: b.started,
                verdict: if keep { Verdict::Keep } else { Verdict::Delete },
                reasons: why,
            }
        })
        .collect();
    Plan { decisions }
}

/// `a` is later than `b` (ties broken by id, so the choice never depends on input order).
fn later(a: &Backup, b: &Backup) -> bool {
    (a.started, &a.id) > (b.started, &b.id)
}

/// The calendar date of `t` in `zone`.
pub fn local_date(t: Timestamp, zone: &TimeZone) -> Date {
    t.to_zoned(zone.clone()).date()
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian; Howard Hinnant's algorithm).
fn day_number(date: Date) -> i64 {
    let (y, m, d) = (
        i64::from(date.year()),
        i64::from(date.month()),
        i64::from(date.day()),
    );
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Monday-based week number (1970-01-01 was a Thursday): days of one ISO week share it.
fn week_number(day: i64) -> i64 {
    (day + 3).div_euclid(7)
}

/// Months since year 0.
fn month_number(date: Date) -> i64 {
    i64::from(date.year()) * 12 + i64::from(date.month()) - 1
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

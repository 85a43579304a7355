//! The timeline of kept backups, as an SVG string rendered on the server (no script, no
//! inline style: presentation attributes only, which the front door's CSP allows).
//!
//! One band per source, one lane per tier (base, daily, weekly, monthly). Each lane spans
//! its own retention window ending now, so five days of base backups and three years of
//! monthly ones are both readable; the window is written at the lane's left. A kept backup
//! is a dot on every lane whose tier keeps it: green when its last verification passed,
//! grey when unverified, red when it failed; a ring marks a pin. Backups the plan deletes
//! are hollow marks on the lane of their age. Every mark has a `<title>` with the id, the
//! time and the reasons, which browsers show on hover.

use std::collections::BTreeMap;
use std::fmt::Write;

use jiff::Timestamp;

use crate::config::RetentionPolicy;
use crate::plan::{Backup, Plan, Reason, Verdict, Verification};

const WIDTH: i64 = 960;
const LEFT: i64 = 170;
const RIGHT: i64 = 16;
const LANE: i64 = 26;
const HEADER: i64 = 24;
const AXIS: i64 = 18;

const DAY_US: i64 = 86_400_000_000;

/// A lane: its name, the window it spans (µs) and the label of that window.
struct Lane {
    name: &'static str,
    span_us: i64,
    window: String,
    is: fn(&Reason) -> bool,
}

fn lanes(policy: &RetentionPolicy) -> [Lane; 4] {
    let days = |d: i64| d.saturating_mul(DAY_US);
    [
        Lane {
            name: "base",
            span_us: days(policy.base_days.get()),
            window: format!("{} days", policy.base_days),
            is: |r| matches!(r, Reason::Base { .. }),
        },
        Lane {
            name: "daily",
            span_us: days(policy.daily_days.get()),
            window: format!("{} days", policy.daily_days),
            is: |r| matches!(r, Reason::Daily { .. }),
        },
        Lane {
            name: "weekly",
            span_us: days(policy.weekly_weeks.get().saturating_mul(7)),
            window: format!("{} weeks", policy.weekly_weeks),
            is: |r| matches!(r, Reason::Weekly { .. }),
        },
        Lane {
            name: "monthly",
            // A calendar month is 28 to 31 days: the lane spans the longest.
            span_us: days(policy.monthly_months.get().saturating_mul(31)),
            window: format!("{} months", policy.monthly_months),
            is: |r| matches!(r, Reason::Monthly { .. }),
        },
    ]
}

/// The colour of a kept backup's dot.
fn colour(verification: Verification) -> &'static str {
    match verification {
        Verification::Passed => "#16a34a",
        Verification::Unverified => "#9aa5b1",
        Verification::Failed => "#dc2626",
    }
}

/// Renders the plan's decisions for `backups` as lanes per source and tier, ending at `now`.
pub fn timeline_svg(
    backups: &[Backup],
    plan: &Plan,
    policy: &RetentionPolicy,
    now: Timestamp,
) -> String {
    let by_id: BTreeMap<&str, &Backup> = backups.iter().map(|b| (b.id.as_str(), b)).collect();
    let mut sources: BTreeMap<&str, Vec<&crate::plan::Decision>> = BTreeMap::new();
    for d in &plan.decisions {
        sources.entry(d.source.as_str()).or_default().push(d);
    }
    let lanes = lanes(policy);
    let lane_count = i64::try_from(lanes.len()).unwrap_or(4);
    let band = HEADER + lane_count * LANE;
    let bands = i64::try_from(sources.len()).unwrap_or(0).max(1);
    let height = bands * band + AXIS;
    let plot = WIDTH - LEFT - RIGHT;
    let now_us = now.as_microsecond();
    let x_of = |started_us: i64, span_us: i64| -> Option<i64> {
        let age = now_us.saturating_sub(started_us);
        if span_us <= 0 || age > span_us {
            return None;
        }
        // Future-dated backups (clock skew) sit at the right edge.
        let age = age.max(0);
        Some(LEFT + plot - age.saturating_mul(plot) / span_us)
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" aria-label="Kept backups per source and tier, each lane spanning its retention window up to now" font-family="sans-serif" font-size="12"><rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>"##
    );
    if sources.is_empty() {
        let _ = write!(
            svg,
            r##"<text x="{LEFT}" y="{y}" fill="#52606d">No backups in the catalog yet.</text>"##,
            y = HEADER
        );
    }
    for (index, (source, decisions)) in sources.iter().enumerate() {
        let top = i64::try_from(index).unwrap_or(0) * band;
        let _ = write!(
            svg,
            r##"<text x="4" y="{y}" font-weight="bold" fill="#1f2933">{name}</text>"##,
            y = top + 16,
            name = escape(source)
        );
        for (lane_index, lane) in lanes.iter().enumerate() {
            let y = top + HEADER + i64::try_from(lane_index).unwrap_or(0) * LANE + LANE / 2;
            let _ = write!(
                svg,
                r##"<text x="12" y="{ty}" fill="#3e4c59">{name}</text><text x="{wx}" y="{ty}" fill="#7b8794" text-anchor="end">{window}</text><line x1="{LEFT}" y1="{y}" x2="{x2}" y2="{y}" stroke="#e4e7eb" stroke-width="8" stroke-linecap="round"/>"##,
                ty = y + 4,
                name = lane.name,
                wx = LEFT - 8,
                window = escape(&lane.window),
                x2 = LEFT + plot,
            );
            for d in decisions {
                let started_us = d.started.as_microsecond();
                let Some(x) = x_of(started_us, lane.span_us) else {
                    continue;
                };
                let backup = by_id.get(d.id.as_str());
                let verification = backup.map_or(Verification::Unverified, |b| b.verification);
                let pinned = backup.is_some_and(|b| b.pinned);
                let title = title(d, verification);
                let on_lane = d.reasons.iter().any(lane.is);
                match d.verdict {
                    Verdict::Keep if on_lane => {
                        let _ = write!(
                            svg,
                            r##"<circle cx="{x}" cy="{y}" r="5" fill="{fill}"><title>{title}</title></circle>"##,
                            fill = colour(verification)
                        );
                        if pinned {
                            let _ = write!(
                                svg,
                                r##"<circle cx="{x}" cy="{y}" r="8" fill="none" stroke="#7c3aed" stroke-width="2"><title>{title}</title></circle>"##
                            );
                        }
                    }
                    // Kept by a guard only (pin, newest, clock skew): on the base lane.
                    Verdict::Keep if lane_index == 0 && !d.reasons.iter().any(Reason::is_tier) => {
                        let _ = write!(
                            svg,
                            r##"<rect x="{rx}" y="{ry}" width="10" height="10" fill="{fill}"><title>{title}</title></rect>"##,
                            rx = x - 5,
                            ry = y - 5,
                            fill = colour(verification)
                        );
                    }
                    // To be deleted: a hollow mark on the lane where its age falls first.
                    Verdict::Delete
                        if first_lane_holding(&lanes, now_us - started_us) == Some(lane_index) =>
                    {
                        let _ = write!(
                            svg,
                            r##"<circle cx="{x}" cy="{y}" r="4" fill="none" stroke="#dc2626" stroke-width="1.5"><title>{title}</title></circle>"##
                        );
                    }
                    _ => {}
                }
            }
        }
    }
    // Axis: "now" at the right edge; the left edge is each lane's own window.
    let _ = write!(
        svg,
        r##"<text x="{x}" y="{y}" fill="#52606d" text-anchor="end">now ({now})</text><text x="{LEFT}" y="{y}" fill="#52606d">← start of each lane's window</text></svg>"##,
        x = LEFT + plot,
        y = height - 4,
        now = now.strftime("%Y-%m-%d %H:%M UTC"),
    );
    svg
}

/// The first lane whose window holds a backup of this age.
fn first_lane_holding(lanes: &[Lane], age_us: i64) -> Option<usize> {
    lanes.iter().position(|l| age_us <= l.span_us)
}

fn title(d: &crate::plan::Decision, verification: Verification) -> String {
    let reasons: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
    escape(&format!(
        "{} {} ({}, {}): {}",
        d.id,
        d.started.strftime("%Y-%m-%d %H:%M UTC"),
        match d.verdict {
            Verdict::Keep => "keep",
            Verdict::Delete => "delete",
        },
        verification.as_str(),
        reasons.join("; ")
    ))
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::plan::{Status, plan};

    fn backup(id: &str, source: &str, started: Timestamp, verification: Verification) -> Backup {
        Backup {
            id: id.into(),
            source: source.into(),
            started,
            status: Status::Complete,
            verification,
            pinned: false,
        }
    }

    fn count(svg: &str, needle: &str) -> usize {
        svg.matches(needle).count()
    }

    #[test]
    fn every_kept_backup_is_a_dot_on_each_lane_of_its_tiers() {
        let now: Timestamp = "2026-06-15T12:00:00Z".parse().unwrap();
        let policy = RetentionPolicy::default();
        // Every 6 hours for 60 days.
        let backups: Vec<Backup> = (0..240)
            .map(|i| {
                let at = now
                    .checked_sub(jiff::SignedDuration::from_hours(6 * i))
                    .unwrap();
                backup(&format!("b{i:03}"), "app", at, Verification::Passed)
            })
            .collect();
        let p = plan(&backups, &policy, now);
        let svg = timeline_svg(&backups, &p, &policy, now);
        let tier_dots: usize = p
            .kept()
            .map(|d| d.reasons.iter().filter(|r| r.is_tier()).count())
            .sum();
        assert_eq!(count(&svg, r##"r="5" fill="#16a34a""##), tier_dots);
        assert_eq!(
            count(&svg, r##"stroke="#dc2626" stroke-width="1.5""##),
            p.deletions().count()
        );
        assert!(p.deletions().count() > 0);
        assert!(svg.contains(">app</text>"));
        assert!(svg.contains(">35 days</text>"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn colours_say_the_verification_and_a_ring_says_the_pin() {
        let now: Timestamp = "2026-06-15T12:00:00Z".parse().unwrap();
        let policy = RetentionPolicy::default();
        let hour = |h: i64| {
            now.checked_sub(jiff::SignedDuration::from_hours(h))
                .unwrap()
        };
        let mut pinned = backup("p", "app", hour(30), Verification::Unverified);
        pinned.pinned = true;
        let backups = vec![
            backup("v", "app", hour(1), Verification::Passed),
            backup("f", "app", hour(7), Verification::Failed),
            pinned,
        ];
        let p = plan(&backups, &policy, now);
        let svg = timeline_svg(&backups, &p, &policy, now);
        assert!(svg.contains(r##"fill="#16a34a""##));
        assert!(svg.contains(r##"fill="#9aa5b1""##));
        assert_eq!(
            count(&svg, r##"stroke="#7c3aed""##),
            p.kept()
                .filter(|d| d.id == "p")
                .map(|d| d.reasons.iter().filter(|r| r.is_tier()).count())
                .sum::<usize>()
        );
    }

    #[test]
    fn source_names_are_escaped() {
        let now: Timestamp = "2026-06-15T12:00:00Z".parse().unwrap();
        let policy = RetentionPolicy::default();
        let backups = vec![backup("x", "<script>", now, Verification::Passed)];
        let p = plan(&backups, &policy, now);
        let svg = timeline_svg(&backups, &p, &policy, now);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
    }

    #[test]
    fn an_empty_catalog_says_so() {
        let now: Timestamp = "2026-06-15T12:00:00Z".parse().unwrap();
        let policy = RetentionPolicy::default();
        let p = plan(&[], &policy, now);
        assert!(timeline_svg(&[], &p, &policy, now).contains("No backups"));
    }
}

//! The histogram of lines per time bucket and level, as an SVG string rendered on the
//! server (no script, no CDN, no inline style: only presentation attributes, which the
//! front door's CSP allows).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::record::Level;

const WIDTH: i64 = 960;
const HEIGHT: i64 = 160;
const TOP: i64 = 10;
const BOTTOM: i64 = 24;

/// Colour of a level's bars.
fn colour(level: Level) -> &'static str {
    match level {
        Level::Debug => "#9aa5b1",
        Level::Info => "#3b82f6",
        Level::Warn => "#f59e0b",
        Level::Error => "#dc2626",
        Level::Fatal => "#7f1d1d",
    }
}

/// Renders `(minute start µs, level, count)` rows over `[since_us, until_us)` as stacked
/// bars of `bucket_minutes` each.
pub fn histogram_svg(
    rows: &[(i64, Level, i64)],
    since_us: i64,
    until_us: i64,
    bucket_minutes: i64,
) -> String {
    let bucket_us = bucket_minutes.max(1).saturating_mul(60_000_000);
    let span = until_us.saturating_sub(since_us).max(1);
    let buckets = (span / bucket_us + 1).clamp(1, 2000);
    let mut counts: BTreeMap<(i64, Level), i64> = BTreeMap::new();
    for (minute, level, n) in rows {
        if *minute < since_us - bucket_us || *minute >= until_us {
            continue;
        }
        let index = (minute.saturating_sub(since_us) / bucket_us).clamp(0, buckets - 1);
        *counts.entry((index, *level)).or_insert(0) += n;
    }
    let mut totals: BTreeMap<i64, i64> = BTreeMap::new();
    for ((index, _), n) in &counts {
        *totals.entry(*index).or_insert(0) += n;
    }
    let max = totals.values().copied().max().unwrap_or(0).max(1);
    let plot = HEIGHT - TOP - BOTTOM;
    let bar = (WIDTH / buckets).max(1);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" aria-label="Lines per {bucket_minutes} minute(s) by level, highest bar {max}"><rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/><line x1="0" y1="{y}" x2="{WIDTH}" y2="{y}" stroke="#cbd2d9"/>"##,
        y = HEIGHT - BOTTOM
    );
    for index in 0..buckets {
        let mut y = HEIGHT - BOTTOM;
        for level in Level::ALL {
            let n = counts.get(&(index, level)).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let h = (n.saturating_mul(plot) / max).max(1);
            y -= h;
            let _ = write!(
                svg,
                r##"<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{c}"><title>{n} {l}</title></rect>"##,
                x = index * bar,
                w = (bar - 1).max(1),
                c = colour(level),
                l = level.as_str(),
            );
        }
    }
    for (i, level) in Level::ALL.iter().enumerate() {
        let x = i64::try_from(i).unwrap_or(0) * 90 + 4;
        let _ = write!(
            svg,
            r##"<rect x="{x}" y="{y}" width="10" height="10" fill="{c}"/><text x="{tx}" y="{ty}" font-size="11" fill="#323f4b">{l}</text>"##,
            y = HEIGHT - 14,
            c = colour(*level),
            tx = x + 14,
            ty = HEIGHT - 5,
            l = level.as_str(),
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{x}" y="{ty}" font-size="11" text-anchor="end" fill="#323f4b">max {max} lines / {bucket_minutes} min</text></svg>"##,
        x = WIDTH - 4,
        ty = HEIGHT - 5,
    );
    svg
}

/// A bucket size (minutes) giving at most about 120 bars over `span_us`.
pub fn bucket_minutes(span_us: i64) -> i64 {
    let minutes = span_us / 60_000_000;
    ((minutes + 119) / 120).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_stack_by_level_and_scale_to_the_highest() {
        let since = 1_800_000_000_000_000;
        let rows = vec![
            (since, Level::Info, 10),
            (since, Level::Error, 30),
            (since + 60_000_000, Level::Warn, 5),
            (since + 999 * 60_000_000, Level::Error, 1_000_000), // outside: ignored
        ];
        let svg = histogram_svg(&rows, since, since + 10 * 60_000_000, 1);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("<title>30 error</title>"));
        assert!(svg.contains("<title>5 warn</title>"));
        assert!(svg.contains("highest bar 40"));
        assert!(!svg.contains("style="));
        assert_eq!(bucket_minutes(60 * 60_000_000), 1);
        assert_eq!(bucket_minutes(24 * 60 * 60_000_000), 12);
    }
}

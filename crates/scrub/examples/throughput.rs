//! Scrubs a file line by line in memory and prints MB/s: the scrubber alone, without I/O.
//! `cargo run --release -p rampart-scrub --example throughput -- FILE`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use rampart_scrub::{Counts, LineFormat, ScrubConfig, Scrubber};

fn main() {
    let path = std::env::args().nth(1).expect("usage: throughput FILE");
    let text = std::fs::read_to_string(path).unwrap();
    let scrubber = Scrubber::new(&ScrubConfig::default(), None).unwrap();
    for _ in 0..3 {
        let mut counts = Counts::new();
        let mut lines = scrubber.lines(LineFormat::Text);
        let mut changed = 0usize;
        let start = Instant::now();
        for line in text.lines() {
            if let std::borrow::Cow::Owned(_) = lines.scrub_line(line, &mut counts) {
                changed += 1;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{:.1} MB/s, {changed} lines changed, {} findings",
            text.len() as f64 / secs / 1e6,
            counts.total()
        );
    }
}

//! Precision and recall of every detector on the labelled corpus in `tests/corpus/`.
//!
//! Each corpus line marks its personal data as `⟦kind|value⟧`. A label is found when a
//! finding of the same kind covers it; a finding is correct when it covers a label of its
//! kind. Unmarked lines are hard negatives (UUIDs, hashes, timestamps, versions, ids that fail
//! Luhn, …): any finding on them costs precision. Run with `--nocapture` to see the table.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::ops::Range;

use rampart_scrub::{Counts, Detector, ScrubConfig, Scrubber};

const OPEN: char = '\u{27e6}';
const CLOSE: char = '\u{27e7}';

#[derive(Debug)]
struct Label {
    kind: String,
    range: Range<usize>,
}

/// The line without markers, and where each label sits in it.
fn parse(marked: &str) -> (String, Vec<Label>) {
    let mut text = String::new();
    let mut labels = Vec::new();
    let mut rest = marked;
    while let Some(open) = rest.find(OPEN) {
        text.push_str(&rest[..open]);
        let after = &rest[open + OPEN.len_utf8()..];
        let close = after.find(CLOSE).expect("unclosed label");
        let (kind, value) = after[..close].split_once('|').expect("label without kind");
        labels.push(Label {
            kind: kind.to_owned(),
            range: text.len()..text.len() + value.len(),
        });
        text.push_str(value);
        rest = &after[close + CLOSE.len_utf8()..];
    }
    text.push_str(rest);
    (text, labels)
}

/// The corpus kind a detector's findings are scored as.
fn kind_of(detector: &Detector) -> &'static str {
    match detector {
        Detector::Email => "email",
        Detector::Card => "card",
        Detector::Iban => "iban",
        Detector::Phone => "phone",
        Detector::Ip => "ip",
        Detector::Ssn => "ssn",
        Detector::Nino => "nino",
        Detector::Nir => "nir",
        Detector::Jwt => "jwt",
        Detector::ApiKey => "api_key",
        Detector::AuthHeader
        | Detector::UrlCredentials
        | Detector::SecretValue
        | Detector::PrivateKey => "secret",
        Detector::PersonalField | Detector::Withheld | Detector::Custom(_) => "other",
    }
}

/// Minimum (precision, recall) per kind.
const THRESHOLDS: [(&str, f64); 11] = [
    ("email", 0.99),
    ("card", 0.99),
    ("iban", 0.99),
    ("ip", 0.99),
    ("jwt", 0.99),
    ("api_key", 0.99),
    ("phone", 0.95),
    ("ssn", 0.95),
    ("nino", 0.95),
    ("nir", 0.95),
    ("secret", 0.95),
];

#[derive(Debug, Default, Clone, Copy)]
struct Score {
    labels: u32,
    found: u32,
    findings: u32,
    correct: u32,
}

impl Score {
    fn recall(&self) -> f64 {
        if self.labels == 0 {
            1.0
        } else {
            f64::from(self.found) / f64::from(self.labels)
        }
    }
    fn precision(&self) -> f64 {
        if self.findings == 0 {
            1.0
        } else {
            f64::from(self.correct) / f64::from(self.findings)
        }
    }
}

fn corpus_lines() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    let mut lines = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            if !line.is_empty() && !line.starts_with('#') {
                lines.push((name.clone(), line.to_owned()));
            }
        }
    }
    lines
}

#[test]
fn every_detector_meets_its_precision_and_recall_bar_on_the_corpus() {
    let scrubber = Scrubber::new(&ScrubConfig::default(), None).unwrap();
    let mut scores: BTreeMap<String, Score> = BTreeMap::new();
    let mut mistakes = Vec::new();
    let mut lines = 0;
    let mut leaks = Vec::new();
    for (file, marked) in corpus_lines() {
        lines += 1;
        let (text, labels) = parse(&marked);
        let findings = scrubber.find(&text);
        for label in &labels {
            let score = scores.entry(label.kind.clone()).or_default();
            score.labels += 1;
            let found = findings.iter().any(|f| {
                kind_of(&f.detector) == label.kind
                    && f.range.start <= label.range.start
                    && f.range.end >= label.range.end
            });
            if found {
                score.found += 1;
            } else {
                mistakes.push(format!(
                    "missed {} {:?} in {file}: {text}",
                    label.kind,
                    &text[label.range.clone()]
                ));
            }
        }
        for finding in &findings {
            let kind = kind_of(&finding.detector);
            let score = scores.entry(kind.to_owned()).or_default();
            score.findings += 1;
            let correct = labels.iter().any(|l| {
                l.kind == kind
                    && finding.range.start <= l.range.start
                    && finding.range.end >= l.range.end
            });
            if correct {
                score.correct += 1;
            } else {
                mistakes.push(format!(
                    "false {kind} {:?} in {file}: {text}",
                    &text[finding.range.clone()]
                ));
            }
        }
        // Nothing labelled may survive scrubbing, whatever kind it was found as.
        let scrubbed = scrubber.scrub(&text, &mut Counts::new());
        for label in &labels {
            let value = &text[label.range.clone()];
            if scrubbed.contains(value) {
                leaks.push(format!("leaked {value:?}: {scrubbed}"));
            }
        }
    }
    println!("\n{lines} corpus lines");
    println!(
        "{:<10} {:>7} {:>9} {:>7} {:>10} {:>8} {:>8}",
        "kind", "labels", "findings", "missed", "false pos", "recall", "precision"
    );
    for (kind, s) in &scores {
        println!(
            "{kind:<10} {:>7} {:>9} {:>7} {:>10} {:>8.3} {:>8.3}",
            s.labels,
            s.findings,
            s.labels - s.found,
            s.findings - s.correct,
            s.recall(),
            s.precision()
        );
    }
    for m in &mistakes {
        println!("  {m}");
    }
    for leak in &leaks {
        println!("  {leak}");
    }
    for (kind, bar) in THRESHOLDS {
        let s = scores.get(kind).copied().unwrap_or_default();
        assert!(
            s.labels >= 40,
            "{kind}: only {} labels in the corpus",
            s.labels
        );
        assert!(
            s.recall() >= bar,
            "{kind}: recall {:.3} < {bar}",
            s.recall()
        );
        assert!(
            s.precision() >= bar,
            "{kind}: precision {:.3} < {bar}",
            s.precision()
        );
    }
    if let Some(other) = scores.get("other") {
        assert_eq!(
            other.findings, 0,
            "text scan reported a personal field or custom finding"
        );
    }
    assert!(
        leaks.len() <= 2,
        "{} labelled values survived scrubbing",
        leaks.len()
    );
}

#[test]
fn corpus_markers_parse_into_spans() {
    let (text, labels) = parse("a \u{27e6}email|x@y.io\u{27e7} b");
    assert_eq!(text, "a x@y.io b");
    assert_eq!(labels.len(), 1);
    assert_eq!(&text[labels[0].range.clone()], "x@y.io");
}

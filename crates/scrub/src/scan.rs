//! The scan: one pass of the prefilter over each line, then the full rules on flagged lines.
//!
//! Compiling every rule into one automaton does not work: the digit shapes (cards, phones,
//! IPs, dates) and the identifier shapes (emails, `key=value`) overlap so much that the
//! union's lazy DFA keeps running out of cache and falls back to a slow engine (measured:
//! a few MB/s). Instead the [`prefilter`](crate::prefilter) reads each line once and names
//! the families of rules that could match on it; clean lines stop there, borrowed and
//! without allocation. On a flagged line only the woken rules run, each a small regex
//! followed by its validator, and overlaps are resolved leftmost, then longest, then by
//! rule order (earlier rules are more specific).

use std::cmp::Reverse;
use std::ops::Range;

use regex_automata::meta::Regex;
use regex_automata::{Input, MatchKind};

use crate::prefilter::{self, Families};
use crate::rules::Rule;
use crate::validate::{self, Check, Verdict};

/// Rules are tracked in a `u64` bit set, so at most this many (built-in plus custom).
pub(crate) const MAX_RULES: usize = 64;

/// The compiled rules.
#[derive(Debug)]
pub(crate) struct Engine {
    rules: Vec<Regex>,
    checks: Vec<Check>,
    /// For each rule, the prefilter families that wake it (`0`: whenever any rule runs).
    families: Vec<Families>,
    /// Rules whose matches may cross lines (the PEM block).
    multiline: u64,
    /// Some rule runs on every line (a custom pattern).
    always: bool,
}

/// A confirmed candidate, before overlaps are resolved.
#[derive(Debug)]
struct Candidate {
    start: usize,
    end: usize,
    rule: usize,
    verdict: Verdict,
}

impl Engine {
    /// Compiles rules; the error is the regex compiler's message and the rule's index.
    pub(crate) fn new(rules: &[Rule]) -> Result<Self, (usize, String)> {
        if rules.len() > MAX_RULES {
            return Err((MAX_RULES, format!("more than {MAX_RULES} rules")));
        }
        let mut compiled = Vec::with_capacity(rules.len());
        let mut multiline = 0u64;
        for (index, rule) in rules.iter().enumerate() {
            if rule.regex.contains(r"[\s\S]") {
                multiline |= 1u64 << index;
            }
            compiled.push(build(&rule.regex).map_err(|e| (index, e))?);
        }
        Ok(Self {
            rules: compiled,
            checks: rules.iter().map(|r| r.check).collect(),
            families: rules.iter().map(|r| r.families).collect(),
            multiline,
            always: rules.iter().any(|r| r.families & prefilter::ALWAYS != 0),
        })
    }

    /// Calls `found(rule, range)` for every confirmed finding, in order, never overlapping.
    /// Existing replacements are skipped silently.
    pub(crate) fn scan(&self, text: &str, mut found: impl FnMut(usize, Range<usize>)) {
        let mut line_start = 0;
        let mut skip_to = 0;
        for line in text.split('\n') {
            let range = line_start..line_start + line.len();
            line_start = range.end + 1;
            if range.start < skip_to {
                continue;
            }
            let mut families = prefilter::families(line.as_bytes());
            if self.always {
                families |= prefilter::ALWAYS;
            }
            if families != 0 {
                skip_to = self.resolve_line(text, range, families, &mut found);
            }
        }
    }

    /// Runs the rules woken on one line; returns where the last finding ended (a private
    /// key block may end on a later line).
    fn resolve_line(
        &self,
        text: &str,
        line: Range<usize>,
        families: Families,
        found: &mut impl FnMut(usize, Range<usize>),
    ) -> usize {
        let mut candidates = Vec::new();
        for (index, regex) in self.rules.iter().enumerate() {
            let wake = self.families.get(index).copied().unwrap_or(0);
            if wake == 0 || wake & families != 0 {
                let end = if self.multiline & (1u64 << index) != 0 {
                    text.len()
                } else {
                    line.end
                };
                self.candidates(regex, index, text, line.start..end, &mut candidates);
            }
        }
        candidates.sort_by_key(|c| (c.start, Reverse(c.end), c.rule));
        let mut cursor = line.start;
        for candidate in candidates {
            if candidate.start < cursor {
                continue;
            }
            if let Verdict::Redact(range) = candidate.verdict {
                found(candidate.rule, range);
            }
            cursor = candidate.end;
        }
        cursor
    }

    /// Every confirmed match of one rule in `range`. A rejected candidate is retried one
    /// character later, so a shorter valid match inside it is still found; the bytes spent
    /// on rejections are capped so that crafted input cannot make this quadratic.
    fn candidates(
        &self,
        regex: &Regex,
        rule: usize,
        text: &str,
        range: Range<usize>,
        out: &mut Vec<Candidate>,
    ) {
        let Some(check) = self.checks.get(rule).copied() else {
            return;
        };
        let mut budget = range.len().saturating_mul(8).saturating_add(1 << 16);
        let mut pos = range.start;
        while pos < range.end {
            let Some(m) = regex.find(Input::new(text).range(pos..range.end)) else {
                return;
            };
            let verdict = validate::confirm(check, text, m.start(), m.end());
            match verdict.end() {
                Some(end) => {
                    out.push(Candidate {
                        start: m.start(),
                        end,
                        rule,
                        verdict,
                    });
                    pos = end.max(m.start() + 1);
                }
                None => {
                    let spent = m.end().saturating_sub(pos).max(1);
                    if spent > budget {
                        return;
                    }
                    budget -= spent;
                    pos = crate::next_char(text, m.start());
                }
            }
        }
    }
}

/// A rule's regex, with the syntax every rule is written in.
fn build(pattern: &str) -> Result<Regex, String> {
    Regex::builder()
        .syntax(
            regex_automata::util::syntax::Config::new()
                .unicode(true)
                .utf8(true),
        )
        .configure(
            Regex::config()
                .match_kind(MatchKind::LeftmostFirst)
                .nfa_size_limit(Some(1 << 22)),
        )
        .build(pattern)
        .map_err(|e| e.to_string())
}

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

use crate::prefilter::sieve::Sieve;
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
    /// Lines it does not match wake no family (see [`prefilter::sieve`]).
    sieve: Option<Sieve>,
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
            compiled.push(build(&rule.regex, rule.literal_prefilter).map_err(|e| (index, e))?);
        }
        Ok(Self {
            rules: compiled,
            checks: rules.iter().map(|r| r.check).collect(),
            families: rules.iter().map(|r| r.families).collect(),
            multiline,
            always: rules.iter().any(|r| r.families & prefilter::ALWAYS != 0),
            sieve: prefilter::sieve::build(),
        })
    }

    /// The length of the leading complete lines of `bytes` (each ended by `\n`) on which
    /// no rule can match: the sieve over the block's lines, several at a time.
    pub(crate) fn clean_prefix(&self, bytes: &[u8]) -> usize {
        let Some(sieve) = self.sieve.as_ref().filter(|_| !self.always) else {
            return 0;
        };
        let Some(last_newline) = memchr::memrchr(b'\n', bytes) else {
            return 0;
        };
        let block = bytes.get(..=last_newline).unwrap_or(&[]);
        sieve.first_match_line(block).unwrap_or(block.len())
    }

    /// Calls `found(rule, range)` for every confirmed finding, in order, never overlapping.
    /// Existing replacements are skipped silently.
    pub(crate) fn scan(&self, text: &str, mut found: impl FnMut(usize, Range<usize>)) {
        let bytes = text.as_bytes();
        // Line ends found with `memchr` (vectorised): the caller usually hands one line, and
        // this pass must cost next to nothing beside the prefilter's.
        let ends = memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len()));
        let mut line_start = 0;
        let mut skip_to = 0;
        for line_end in ends {
            let range = line_start..line_end;
            line_start = line_end + 1;
            if range.start < skip_to {
                continue;
            }
            let line = bytes.get(range.clone()).unwrap_or(&[]);
            let mut families = if self.sieve.as_ref().is_none_or(|s| s.is_match(line)) {
                prefilter::families(line)
            } else {
                0
            };
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
    ///
    /// Each woken rule keeps its next confirmed candidate at or after the cursor; the
    /// leftmost (then longest, then earliest rule) wins, the cursor moves past it, and rules
    /// whose candidate it overtook search again from the cursor. A candidate that lost to an
    /// overlapping one is thus never allowed to hide a later match of its own rule.
    fn resolve_line(
        &self,
        text: &str,
        line: Range<usize>,
        families: Families,
        found: &mut impl FnMut(usize, Range<usize>),
    ) -> usize {
        let mut woken: Vec<Pending> = Vec::new();
        for (index, &wake) in self.families.iter().enumerate() {
            if wake == 0 || wake & families != 0 {
                let end = if self.multiline & (1u64 << index) != 0 {
                    text.len()
                } else {
                    line.end
                };
                woken.push(Pending {
                    rule: index,
                    end,
                    next: None,
                    exhausted: false,
                    budget: (end - line.start).saturating_mul(8).saturating_add(1 << 16),
                });
            }
        }
        let mut cursor = line.start;
        loop {
            for pending in &mut woken {
                let stale = pending.next.as_ref().is_none_or(|c| c.start < cursor);
                if stale && !pending.exhausted {
                    pending.next = self.next_candidate(text, cursor, pending);
                    pending.exhausted = pending.next.is_none();
                }
            }
            let best = woken
                .iter()
                .filter_map(|p| p.next.as_ref())
                .filter(|c| c.start >= cursor)
                .min_by_key(|c| (c.start, Reverse(c.end), c.rule));
            let Some(best) = best else {
                return cursor;
            };
            if let Verdict::Redact(range) = &best.verdict {
                found(best.rule, range.clone());
            }
            cursor = best.end;
        }
    }

    /// The next confirmed match of one rule at or after `from`. A rejected candidate is
    /// retried one character later, so a shorter valid match inside it is still found; the
    /// bytes spent on rejections are capped so that crafted input cannot make this quadratic.
    fn next_candidate(&self, text: &str, from: usize, pending: &mut Pending) -> Option<Candidate> {
        let regex = self.rules.get(pending.rule)?;
        let check = self.checks.get(pending.rule).copied()?;
        let mut pos = from;
        while pos < pending.end {
            let m = regex.find(Input::new(text).range(pos..pending.end))?;
            let verdict = validate::confirm(check, text, m.start(), m.end());
            match verdict.end() {
                Some(end) => {
                    return Some(Candidate {
                        start: m.start(),
                        end: end.max(m.start() + 1),
                        rule: pending.rule,
                        verdict,
                    });
                }
                None => {
                    let spent = m.end().saturating_sub(pos).max(1);
                    pending.budget = pending.budget.checked_sub(spent)?;
                    pos = crate::next_char(text, m.start());
                }
            }
        }
        None
    }
}

/// A woken rule's state during [`Engine::resolve_line`].
#[derive(Debug)]
struct Pending {
    rule: usize,
    /// Where this rule's search stops: the line end, or the text end for multi-line rules.
    end: usize,
    next: Option<Candidate>,
    exhausted: bool,
    /// Bytes this rule may still spend on rejected candidates.
    budget: usize,
}

/// A rule's regex, with the syntax every rule is written in.
fn build(pattern: &str, literal_prefilter: bool) -> Result<Regex, String> {
    Regex::builder()
        .syntax(
            regex_automata::util::syntax::Config::new()
                .unicode(true)
                .utf8(true),
        )
        .configure(
            Regex::config()
                .match_kind(MatchKind::LeftmostFirst)
                .auto_prefilter(literal_prefilter)
                .nfa_size_limit(Some(1 << 22)),
        )
        .build(pattern)
        .map_err(|e| e.to_string())
}

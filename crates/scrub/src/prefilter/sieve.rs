//! The sieve: one regular expression that matches every line on which
//! [`families`](super::families) names any family, and few others. Its lazy DFA costs
//! about 10 instructions a byte (callgrind, on the benchmark's corpus), against about 30 for
//! the byte-at-a-time prefilter, so clean lines (most of a log) are passed over at that cost
//! and only the lines it matches go through the prefilter.
//!
//! It must never miss: each part below is a necessary condition of one family's trigger in
//! the prefilter (tested against it on random lines, arbitrary bytes and the corpora). It
//! may be looser: a line it matches for nothing costs one prefilter pass, as before.
//!
//! A DFA walk is one dependent load per byte (the next state is read from a table at an
//! offset given by the current one), so a single walk is bound by the load latency, not by
//! the instructions it runs. [`Sieve::first_match_line`] therefore walks [`LANES`] lines at
//! once, each with its own cache, so that the processor overlaps their loads. A dense DFA
//! of the same pattern would not help: 12 s and 26 MB to build, and about 5 % faster than
//! the lazy one when measured alone.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use regex_automata::hybrid::LazyStateID;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::util::pool::Pool;
use regex_automata::util::{start, syntax};

/// Lines walked side by side.
pub(crate) const LANES: usize = 2;

/// The sieve's lazy DFA and its caches, so that a shared [`Sieve`] can be searched from any
/// thread: each thread keeps its own ([`LOCAL`]), and a shared pool serves the rare call
/// made while that thread's are in use.
pub(crate) struct Sieve {
    dfa: DFA,
    slots: Pool<Slots, CreateSlots>,
    /// Tells this sieve's caches apart from other sieves' in [`LOCAL`].
    id: u64,
}

/// Sieves' ids, never reused.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Sieves whose caches one thread keeps, at most: a process has one or two scrubbers.
const LOCAL_SIEVES: usize = 4;

thread_local! {
    /// This thread's caches, by sieve id. The shared pool alone cost 5 to 8 % of log ingest
    /// (its lock and cache-line traffic, twice a line), as the ingest threads are many
    /// and only the pool's first user gets its lock-free slot.
    static LOCAL: RefCell<Vec<(u64, Box<Slots>)>> = const { RefCell::new(Vec::new()) };
}

/// One lane: a cache, and the line walked with it. A state id is only valid with the cache
/// that made it (another cache's table may be shorter: a panic), so they are kept together.
#[derive(Debug)]
struct Slot {
    cache: Cache,
    lane: Option<Lane>,
}

type Slots = [Slot; LANES];
type CreateSlots =
    Box<dyn Fn() -> Slots + Send + Sync + std::panic::UnwindSafe + std::panic::RefUnwindSafe>;

impl std::fmt::Debug for Sieve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sieve").finish_non_exhaustive()
    }
}

impl Sieve {
    /// Whether the sieve matches somewhere in `line` (a line without its `\n`; `^` and `$`
    /// also match at its ends).
    pub(crate) fn is_match(&self, line: &[u8]) -> bool {
        self.with_slots(|slots| self.is_match_with(line, slots))
    }

    fn is_match_with(&self, line: &[u8], slots: &mut Slots) -> bool {
        let [Slot { cache, .. }, ..] = slots;
        let mut lane = Lane {
            start: 0,
            at: 0,
            end: line.len(),
            sid: self.line_start(cache),
        };
        loop {
            lane.walk(&self.dfa, line, cache);
            if let Some(matched) = self.advance(line, &mut lane, cache) {
                return matched;
            }
        }
    }

    /// Where the first line of `block` that the sieve matches begins, each line taken
    /// alone as by [`Sieve::is_match`]; `None` when it matches none. A last line without
    /// `\n` counts as a line.
    pub(crate) fn first_match_line(&self, block: &[u8]) -> Option<usize> {
        self.with_slots(|slots| self.first_match_line_with(block, slots))
    }

    /// Runs `f` with this thread's caches of this sieve (made on first use), or with the
    /// pool's when this thread's cannot be reached (in use, or the thread is ending).
    fn with_slots<R>(&self, mut f: impl FnMut(&mut Slots) -> R) -> R {
        let local = LOCAL.try_with(|local| {
            let mut local = local.try_borrow_mut().ok()?;
            let at = match local.iter().position(|(id, _)| *id == self.id) {
                Some(at) => at,
                None => {
                    if local.len() >= LOCAL_SIEVES {
                        local.remove(0);
                    }
                    local.push((self.id, Box::new(slots_of(&self.dfa))));
                    local.len() - 1
                }
            };
            let (_, slots) = local.get_mut(at)?;
            Some(f(slots))
        });
        match local {
            Ok(Some(out)) => out,
            _ => f(&mut self.slots.get()),
        }
    }

    fn first_match_line_with(&self, block: &[u8], slots: &mut Slots) -> Option<usize> {
        for slot in slots.iter_mut() {
            slot.lane = None;
        }
        let mut lines = Lines::new(block);
        // The first matched line found so far. Lines are handed out in order, so once one
        // matches, no later line needs walking: only the lanes on earlier lines go on.
        let mut first: Option<usize> = None;
        loop {
            for Slot { cache, lane } in slots.iter_mut() {
                if lane.is_none() && first.is_none() {
                    *lane = lines.next().map(|(start, end)| Lane {
                        start,
                        at: start,
                        end,
                        sid: self.line_start(cache),
                    });
                }
            }
            self.walk_together(block, slots);
            for Slot { cache, lane: slot } in slots.iter_mut() {
                let Some(lane) = slot.as_mut() else {
                    continue;
                };
                if let Some(matched) = self.advance(block, lane, cache) {
                    if matched && first.is_none_or(|f| lane.start < f) {
                        first = Some(lane.start);
                    }
                    *slot = None;
                }
            }
            if let Some(f) = first {
                for slot in slots.iter_mut() {
                    if slot.lane.as_ref().is_some_and(|lane| lane.start > f) {
                        slot.lane = None;
                    }
                }
            }
            let live = slots.iter().any(|slot| slot.lane.is_some());
            if !live && (first.is_some() || lines.exhausted()) {
                return first;
            }
        }
    }

    /// The fast part of [`Sieve::first_match_line`]: while no lane meets a state that
    /// needs care (a match, a state not computed yet) or the end of its line, one table
    /// lookup per lane and byte. Both lanes together when both are on a line, else each
    /// alone. Stops before the byte that needs care.
    fn walk_together(&self, block: &[u8], slots: &mut Slots) {
        let [
            Slot {
                cache: cache_a,
                lane: Some(a),
            },
            Slot {
                cache: cache_b,
                lane: Some(b),
            },
        ] = slots
        else {
            for Slot { cache, lane } in slots.iter_mut() {
                if let Some(lane) = lane {
                    lane.walk(&self.dfa, block, cache);
                }
            }
            return;
        };
        let (Some(mut sid_a), Some(mut sid_b)) = (a.sid, b.sid) else {
            return;
        };
        if sid_a.is_tagged() | sid_b.is_tagged() {
            return;
        }
        let rest_a = block.get(a.at..a.end).unwrap_or(&[]);
        let rest_b = block.get(b.at..b.end).unwrap_or(&[]);
        let mut walked = 0;
        for (&byte_a, &byte_b) in rest_a.iter().zip(rest_b) {
            let next_a = self.dfa.next_state_untagged(cache_a, sid_a, byte_a);
            let next_b = self.dfa.next_state_untagged(cache_b, sid_b, byte_b);
            if next_a.is_tagged() | next_b.is_tagged() {
                break;
            }
            (sid_a, sid_b) = (next_a, next_b);
            walked += 1;
        }
        for (lane, sid) in [(a, sid_a), (b, sid_b)] {
            lane.at += walked;
            lane.sid = Some(sid);
        }
    }

    /// One careful step of a lane: the next byte, or the end of its line. `Some(matched)`
    /// once the lane's line is decided.
    fn advance(&self, block: &[u8], lane: &mut Lane, cache: &mut Cache) -> Option<bool> {
        let Some(sid) = lane.sid else {
            // The walk could not start: the line is not known clean.
            return Some(true);
        };
        if lane.at >= lane.end {
            return Some(self.ends_matched(cache, sid));
        }
        let byte = block.get(lane.at).copied().unwrap_or(b'\n');
        lane.at += 1;
        match self.step(cache, sid, byte) {
            Step::Next(next) => {
                lane.sid = Some(next);
                None
            }
            Step::Match | Step::Failed => Some(true),
            Step::Dead => Some(false),
        }
    }

    fn step(&self, cache: &mut Cache, sid: LazyStateID, byte: u8) -> Step {
        match self.dfa.next_state(cache, sid, byte) {
            Ok(next) if next.is_match() => Step::Match,
            Ok(next) if next.is_dead() => Step::Dead,
            // A quit state never occurs (no quit bytes are configured); treated as a match.
            Ok(next) if next.is_quit() => Step::Failed,
            Ok(next) => Step::Next(next),
            Err(_) => Step::Failed,
        }
    }

    /// The start state of a line: unanchored, with nothing before it (as for a haystack
    /// that is the line alone). `None` if the DFA could not give one.
    fn line_start(&self, cache: &mut Cache) -> Option<LazyStateID> {
        self.dfa.start_state(cache, &start::Config::new()).ok()
    }

    /// Whether the walk that reached `sid` at the end of a line matched there (matches are
    /// seen one byte late, so the end of input is one more step).
    fn ends_matched(&self, cache: &mut Cache, sid: LazyStateID) -> bool {
        match self.dfa.next_eoi_state(cache, sid) {
            Ok(end) => end.is_match() || end.is_quit(),
            Err(_) => true,
        }
    }
}

/// A line being walked.
#[derive(Debug)]
struct Lane {
    start: usize,
    at: usize,
    /// The line's end, before its `\n`.
    end: usize,
    /// The state after `start..at`; `None` if the walk could not start.
    sid: Option<LazyStateID>,
}

impl Lane {
    /// The fast walk of one lane alone; see [`Sieve::walk_together`].
    fn walk(&mut self, dfa: &DFA, block: &[u8], cache: &Cache) {
        let Some(mut sid) = self.sid.filter(|sid| !sid.is_tagged()) else {
            return;
        };
        let rest = block.get(self.at..self.end).unwrap_or(&[]);
        let mut walked = 0;
        for &byte in rest {
            let next = dfa.next_state_untagged(cache, sid, byte);
            if next.is_tagged() {
                break;
            }
            sid = next;
            walked += 1;
        }
        self.at += walked;
        self.sid = Some(sid);
    }
}

enum Step {
    Next(LazyStateID),
    Match,
    Dead,
    /// The lazy DFA gave up: the line is not known clean.
    Failed,
}

/// The lines of a block: `(start, end)` with `end` at the `\n` or the block's end.
struct Lines<'a> {
    len: usize,
    newlines: memchr::Memchr<'a>,
    /// Where the next line starts.
    next: usize,
}

impl<'a> Lines<'a> {
    fn new(block: &'a [u8]) -> Self {
        Self {
            len: block.len(),
            newlines: memchr::memchr_iter(b'\n', block),
            next: 0,
        }
    }

    /// Every line has been handed out.
    fn exhausted(&self) -> bool {
        self.next >= self.len
    }
}

impl Iterator for Lines<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        let start = self.next;
        if start >= self.len {
            return None;
        }
        let end = self.newlines.next().unwrap_or(self.len);
        self.next = end + 1;
        Some((start, end))
    }
}

/// The secret words of the prefilter (`reference::SECRET_WORDS`, checked equal by a test).
pub(super) const SECRET_WORDS: [&str; 24] = [
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "accesskey",
    "access_key",
    "access-key",
    "privatekey",
    "private_key",
    "private-key",
    "secretkey",
    "secret_key",
    "secret-key",
    "credential",
    "credentials",
    "sessionid",
    "session_id",
    "session-id",
    "cookie",
];

/// Fresh caches for every lane of `dfa`.
fn slots_of(dfa: &DFA) -> Slots {
    std::array::from_fn(|_| Slot {
        cache: dfa.create_cache(),
        lane: None,
    })
}

/// Builds the sieve; `None` when the pattern does not compile within the size limits (then
/// every line goes to the prefilter, which is only slower).
pub(crate) fn build() -> Option<Sieve> {
    let dfa = DFA::builder()
        .syntax(
            syntax::Config::new()
                .unicode(false)
                .utf8(false)
                .multi_line(true),
        )
        .thompson(thompson::Config::new().nfa_size_limit(Some(1 << 22)))
        // A bigger cache than the default: the union has many states, and rebuilding
        // evicted ones showed in profiles.
        .configure(DFA::config().cache_capacity(16 << 20))
        .build(&pattern())
        .ok()?;
    let for_caches = dfa.clone();
    let create: CreateSlots = Box::new(move || slots_of(&for_caches));
    Some(Sieve {
        dfa,
        slots: Pool::new(create),
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
    })
}

/// The union of the families' triggers. `^` and `$` match at line ends (multi-line mode),
/// so a block of lines can be searched at once: no part matches across a line break, except
/// that a leading `[^0-9A-Za-z]` may be the previous line's `\n`, which only makes that line
/// look suspicious too.
pub(crate) fn pattern() -> String {
    parts().join("|")
}

/// The triggers, one family (or a few) each.
pub(crate) fn parts() -> Vec<String> {
    let words: Vec<String> = SECRET_WORDS
        .iter()
        .map(|w| regex_syntax::escape(w))
        .collect();
    vec![
        // EMAIL, URL, JWT, PEM: their bytes.
        "@".to_owned(),
        "://".to_owned(),
        "eyJ".to_owned(),
        "-----BEGIN ".to_owned(),
        // IPV6: `::`, or six colons with no byte between them that resets the count.
        r"::|(?:[0-9A-Za-z_@\t]*:){6}".to_owned(),
        // API_KEY: the key prefixes.
        "xox|gh[pousr]_|github_|sk_live_|sk_test_|rk_live_|rk_test_|whsec_|A(?:KIA|SIA|BIA|CCA|GPA|IDA|ROA|IPA|NPA|NVA|PKA|Iza)".to_owned(),
        // AUTH and SECRET: the word, an optional quote, blanks, then `:` or `=`; or
        // `Bearer`/`Basic` before a blank.
        r#"(?i:authorization)['"]?[ \t]*[:=]|(?i:bearer|basic)[ \t]"#.to_owned(),
        format!(r#"(?i:{})['"]?[ \t]*[:=]"#, words.join("|")),
        // CODE: two capitals starting a word, then a digit after at most one space.
        "(?:^|[^A-Z])[A-Z][A-Z] ?[0-9]".to_owned(),
        // IPV4: three dots that each follow a digit (or a Corsican letter, which counts as
        // one) with only digits and dots between them, then a digit.
        r"[0-9AaBb]\.[0-9.AaBb]*[0-9AaBb]\.[0-9.AaBb]*[0-9AaBb]\.[0-9]".to_owned(),
        digits(),
        // DIGITS with a Corsican department (`2A`, `2B`) counted as digits: the letter
        // after a `2` that starts its group, or that is the sixth digit of its run.
        r"(?:^|[^0-9A-Za-z])(?:[0-9]{5})?2[AaBb][ 0-9]".to_owned(),
    ]
}

/// DIGITS: nine digits counted by the prefilter's rules, loosened. A counted stretch starts
/// a group that no letter glues (so after a byte that is neither a letter nor a digit); it
/// holds either spaces or dots between its groups, never both (a dot after spaced groups
/// restarts the number, a space after dotted groups ends it); nine digits glued to a
/// letter with no separator in the run are a word, not a number; and a group directly
/// followed by `:` and a digit is an hour, which does not count.
fn digits() -> String {
    const STARTS: &str = "(?:^|[^0-9A-Za-z])";
    const ENDS: &str = "(?:[^0-9:]|:?$|:[^0-9])";
    // `x` is not a letter to the prefilter here (it may start `xox`).
    const ENDS_UNSEPARATED: &str = "(?:[^0-9A-Za-wyz:]|:?$|:[^0-9])";
    let stretch = |separators: &str| {
        let sep = format!("[{separators}]");
        // `[0-9]*` before the end: a group goes on to its last digit before the end is
        // judged.
        let mut alternatives = vec![format!("[0-9]{{9}}[0-9]*{ENDS_UNSEPARATED}")];
        for first in 1..9 {
            alternatives.push(format!(
                "[0-9]{{{first}}}{sep}+(?:{sep}*[0-9]){{{rest}}}[0-9]*{ENDS}",
                rest = 9 - first
            ));
        }
        format!("(?:{})", alternatives.join("|"))
    };
    // After an hour (`10:` then digits) the prefilter keeps the hour's group length, so
    // nine digits glued to a letter there still count.
    format!(
        "{STARTS}(?:{}|{})|:[0-9]{{9}}",
        stretch(r" \-/()+"),
        stretch(r"\-./()+")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGGED: &[u8] = b"mail bob@example.com now";
    const CLEAN: &[u8] = b"request completed in 12 ms";

    #[test]
    fn the_pool_answers_when_the_threads_caches_are_in_use() {
        let sieve = build().expect("the sieve compiles");
        // Inside `with_slots` this thread's caches are borrowed: the inner calls take the
        // pool's, and answer as the outer ones do.
        let inner = sieve.with_slots(|_| {
            (
                sieve.is_match(FLAGGED),
                sieve.is_match(CLEAN),
                sieve.first_match_line(b"a\nb\nmail bob@example.com"),
            )
        });
        assert_eq!(inner, (true, false, Some(4)));
        assert!(sieve.is_match(FLAGGED));
        assert!(!sieve.is_match(CLEAN));
    }

    #[test]
    fn more_sieves_than_a_thread_keeps_each_answer_with_their_own_caches() {
        let sieves: Vec<Sieve> = (0..LOCAL_SIEVES + 2)
            .map(|_| build().expect("the sieve compiles"))
            .collect();
        for _ in 0..3 {
            for sieve in &sieves {
                assert!(sieve.is_match(FLAGGED));
                assert!(!sieve.is_match(CLEAN));
            }
        }
        let kept = LOCAL.with(|local| local.borrow().len());
        assert_eq!(kept, LOCAL_SIEVES);
        // From other threads too, at once.
        std::thread::scope(|s| {
            for sieve in &sieves {
                s.spawn(move || {
                    assert!(sieve.is_match(FLAGGED));
                    assert_eq!(sieve.first_match_line(CLEAN), None);
                });
            }
        });
    }
}

//! The word index of a day file: the lines are stored in chunks of at most [`CHUNK_LINES`]
//! consecutive rows, and each chunk keeps one Bloom filter of the words its lines hold (in
//! message and fields). A search reads the filters of the day, newest chunk first, and
//! reads only the lines of the chunks whose filter holds every word of the query; each of
//! those lines is then checked exactly ([`TextQuery::matches`]), so a false positive of a
//! filter costs time, never a wrong result.
//!
//! Why not a per-line full-text index (FTS5, which the first version used): measured on
//! this machine, FTS5 spent more per line indexing than the whole budget of an ingest at
//! half the speed of a plain insert, because log lines are full of words seen once
//! (request ids, numbers). A filter per chunk costs a hash per word and one row per chunk.
//!
//! A word is a maximal run of alphanumeric characters (Unicode `Alphabetic` or `Numeric`),
//! lower-cased; everything else separates words. A typed search word may hold several
//! words (`alice.5@example.com` is `alice` `5` `example` `com`): they must appear next to
//! each other, in that order, within the message or within the fields, as in a phrase.
//!
//! Pure: no I/O. The hash is FNV-1a with a final mix, fixed here, because the filters are
//! stored: changing it would make stored filters lie (the format byte guards that).

/// Most lines in one chunk (one filter).
pub const CHUNK_LINES: usize = 256;
/// Filter bits per distinct word, at least (folding leaves 10 to 20): with [`PROBES`],
/// 0.2 to 1.2 % false positives.
const BITS_PER_WORD: usize = 10;
/// Bits set and tested per word: fewer than the optimum for 10 bits (7), for a cheaper
/// ingest, at a slightly higher false-positive rate (1.2 % instead of 0.8 % at 10 bits).
const PROBES: u8 = 4;
/// The first byte of a stored filter: its hash and layout.
const FORMAT: u8 = 1;
/// Most words a search takes, as before.
const MAX_WORDS: usize = 16;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(state: u64, byte: u8) -> u64 {
    (state ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
}

/// The splitmix64 finalizer: spreads FNV's weak low bits.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Calls `f` with the hash of each word of `text`, in order.
pub fn for_each_word(text: &str, mut f: impl FnMut(u64)) {
    if text.is_ascii() {
        // The common case, byte by byte; it gives the same hashes as the general path.
        let mut state = FNV_OFFSET;
        let mut in_word = false;
        for &b in text.as_bytes() {
            if b.is_ascii_alphanumeric() {
                state = fnv(state, b.to_ascii_lowercase());
                in_word = true;
            } else if in_word {
                f(mix(state));
                state = FNV_OFFSET;
                in_word = false;
            }
        }
        if in_word {
            f(mix(state));
        }
        return;
    }
    let mut state = FNV_OFFSET;
    let mut in_word = false;
    let mut utf8 = [0_u8; 4];
    for c in text.chars() {
        if c.is_alphanumeric() {
            for lower in c.to_lowercase() {
                for &b in lower.encode_utf8(&mut utf8).as_bytes() {
                    state = fnv(state, b);
                }
            }
            in_word = true;
        } else if in_word {
            f(mix(state));
            state = FNV_OFFSET;
            in_word = false;
        }
    }
    if in_word {
        f(mix(state));
    }
}

/// [`for_each_word`]'s hashes of an ASCII text, appended to `out`, without a branch per
/// byte: each byte either extends the word's hash or restarts it, and the hash is written
/// at every byte and kept (the length moved on) only where a word ends. A filter hashes
/// every byte of a chunk, and the branches at word ends were most of its cost.
fn push_ascii_words(text: &[u8], out: &mut Vec<u64>) {
    let base = out.len();
    // A word ends at most at every other byte, and once at the end.
    out.resize(base + text.len() / 2 + 2, 0);
    let mut n = base;
    let mut state = FNV_OFFSET;
    let mut in_word = false;
    for &b in text {
        let alnum = b.is_ascii_alphanumeric();
        if let Some(slot) = out.get_mut(n) {
            *slot = state;
        }
        n += usize::from(in_word & !alnum);
        let extended = fnv(state, b.to_ascii_lowercase());
        state = if alnum { extended } else { FNV_OFFSET };
        in_word = alnum;
    }
    if let Some(slot) = out.get_mut(n) {
        *slot = state;
    }
    n += usize::from(in_word);
    out.truncate(n);
    for h in out.iter_mut().skip(base) {
        *h = mix(*h);
    }
}

/// The word hashes of `text`, in order.
pub fn words(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for_each_word(text, |h| out.push(h));
    out
}

/// Builds the stored filter of a chunk from the texts of its lines.
///
/// Sized without counting distinct words (a hash set cost more than the rest of the
/// filter): every word goes into a filter large enough for all of them, a power of two
/// bits; the fill tells how many distinct words there were, and the filter is folded in
/// halves (OR of the two halves, valid because positions are taken modulo a power of two)
/// down to about [`BITS_PER_WORD`] bits per distinct word.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)] // bit counts, far below 2^52
pub fn filter<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut hashes = Vec::with_capacity(CHUNK_LINES * 32);
    for text in texts {
        if text.is_ascii() {
            push_ascii_words(text.as_bytes(), &mut hashes);
        } else {
            for_each_word(text, |h| hashes.push(h));
        }
    }
    let mut bits = (hashes.len() * BITS_PER_WORD).max(64).next_power_of_two();
    let mut words = vec![0_u64; bits / 64];
    for &h in &hashes {
        for bit in positions(h, bits as u64) {
            if let Some(w) = usize::try_from(bit / 64)
                .ok()
                .and_then(|i| words.get_mut(i))
            {
                *w |= 1 << (bit % 64);
            }
        }
    }
    // Distinct words from the fill (Swamidass and Baldi): n = -(m/k)·ln(1 - X/m).
    let set: u32 = words.iter().map(|w| w.count_ones()).sum();
    let fill = f64::from(set) / bits as f64;
    if fill < 1.0 {
        let distinct = -(bits as f64 / f64::from(PROBES)) * (1.0 - fill).ln();
        let want = ((distinct * BITS_PER_WORD as f64).ceil() as usize).max(64);
        while bits / 2 >= want {
            let (low, high) = words.split_at(bits / 128);
            words = low.iter().zip(high).map(|(a, b)| a | b).collect();
            bits /= 2;
        }
    }
    let mut out = Vec::with_capacity(2 + bits / 8);
    out.extend_from_slice(&[FORMAT, PROBES]);
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out
}

/// Whether the stored filter may hold the word: `false` is certain, `true` is not. A filter
/// in an unknown format answers `true` (the chunk is read and its lines checked).
pub fn may_hold(filter: &[u8], word: u64) -> bool {
    let (Some(&FORMAT), Some(&PROBES), Some(body)) =
        (filter.first(), filter.get(1), filter.get(2..))
    else {
        return true;
    };
    if body.is_empty() {
        return true;
    }
    let bits = body.len() as u64 * 8;
    positions(word, bits).all(|bit| get(body, bit))
}

fn positions(h: u64, bits: u64) -> impl Iterator<Item = u64> {
    // Double hashing (Kirsch and Mitzenmacher): h1 + i·h2, h2 odd.
    let step = (h >> 32) | 1;
    // Filters are a power of two bits: a mask instead of a division.
    let mask = bits.is_power_of_two().then(|| bits - 1);
    (0..u64::from(PROBES)).map(move |i| {
        let x = h.wrapping_add(i.wrapping_mul(step));
        match mask {
            Some(mask) => x & mask,
            None => x % bits,
        }
    })
}

fn get(body: &[u8], bit: u64) -> bool {
    usize::try_from(bit / 8)
        .ok()
        .and_then(|i| body.get(i))
        .is_some_and(|byte| byte & (1 << (bit % 8)) != 0)
}

/// What a search looks for: typed words, each a sequence of words that must appear in a
/// row, and all of them in the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextQuery {
    phrases: Vec<Vec<u64>>,
    probe: Option<String>,
}

impl TextQuery {
    /// The query of typed text; `None` when the text has no typed word (no text filter).
    /// Typed words with no letter or digit (`--`) can match nothing a word index holds, so a
    /// text of only such words gives a query that matches no line.
    pub fn parse(text: &str) -> Option<Self> {
        let typed: Vec<&str> = text.split_whitespace().take(MAX_WORDS).collect();
        if typed.is_empty() {
            return None;
        }
        let phrases: Vec<Vec<u64>> = typed.iter().map(|w| words(w)).collect();
        if phrases.iter().all(Vec::is_empty) {
            return Some(Self {
                phrases: vec![Vec::new()],
                probe: None,
            });
        }
        // The longest ASCII word: every matching line holds it, in any letter case.
        let probe = typed
            .iter()
            .flat_map(|w| w.split(|c: char| !c.is_alphanumeric()))
            .filter(|w| !w.is_empty() && w.is_ascii())
            .max_by_key(|w| w.len())
            .map(str::to_ascii_lowercase);
        Some(Self {
            phrases: phrases.into_iter().filter(|p| !p.is_empty()).collect(),
            probe,
        })
    }

    /// A word every matching line holds as text, lower-cased, in ASCII letters and digits
    /// only (so SQL can look for it in ASCII-lower-cased text before the exact check).
    pub fn probe(&self) -> Option<&str> {
        self.probe.as_deref()
    }

    /// Whether a chunk with this stored filter may hold a matching line.
    pub fn may_match(&self, filter: &[u8]) -> bool {
        self.phrases
            .iter()
            .all(|p| !p.is_empty() && p.iter().all(|w| may_hold(filter, *w)))
    }

    /// Whether the line matches: every phrase within its message or within its fields.
    pub fn matches(&self, message: &str, fields: Option<&str>) -> bool {
        let message = words(message);
        let fields = fields.map(words).unwrap_or_default();
        self.phrases
            .iter()
            .all(|p| !p.is_empty() && (contains_run(&message, p) || contains_run(&fields, p)))
    }
}

fn contains_run(haystack: &[u64], run: &[u64]) -> bool {
    !run.is_empty() && haystack.windows(run.len()).any(|w| w == run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The filter's branch-free hashing of ASCII gives the words search looks for.
        #[test]
        fn ascii_words_hash_as_search_hashes_them(text in "[ -~]{0,80}", prefix in 0_usize..3) {
            let mut out = vec![7; prefix];
            push_ascii_words(text.as_bytes(), &mut out);
            let mut want = vec![7; prefix];
            want.extend(words(&text));
            prop_assert_eq!(out, want);
        }
    }

    #[test]
    fn words_are_lower_cased_runs_of_letters_and_digits() {
        assert_eq!(
            words("Payment FAILED for order-42"),
            words("payment failed for order 42")
        );
        assert_eq!(words("a.b@c"), words("a b c"));
        assert_eq!(words("--"), Vec::<u64>::new());
        assert_ne!(words("order"), words("orders"));
        // The ASCII path and the Unicode path agree on ASCII words.
        assert_eq!(words("Zürich timeout"), {
            let mut w = words("zürich");
            w.extend(words("TIMEOUT"));
            w
        });
        assert_eq!(words("ÉCHEC réseau"), words("échec RÉSEAU"));
    }

    #[test]
    fn a_typed_word_matches_as_a_phrase_in_one_column() {
        let q = TextQuery::parse("alice.5@example.com").unwrap();
        assert!(q.matches("mail to alice.5@example.com sent", None));
        assert!(q.matches("x", Some(r#"{"to":"alice.5@example.com"}"#)));
        assert!(
            !q.matches("alice sent 5 mails to example com", None),
            "not in a row"
        );
        assert!(
            !q.matches("alice.5", Some(r#"{"d":"example.com"}"#)),
            "split over columns"
        );
    }

    #[test]
    fn the_probe_is_the_longest_ascii_word() {
        assert_eq!(
            TextQuery::parse("disk FULL-partition").unwrap().probe(),
            Some("partition")
        );
        assert_eq!(TextQuery::parse("échec").unwrap().probe(), None);
        assert_eq!(TextQuery::parse("--").unwrap().probe(), None);
    }

    #[test]
    fn every_typed_word_must_appear() {
        let q = TextQuery::parse("timeout  upstream").unwrap();
        assert!(q.matches("upstream timeout after 3 s", None));
        assert!(q.matches("timeout", Some(r#"{"from":"upstream"}"#)));
        assert!(!q.matches("timeout after 3 s", None));
        assert!(!q.matches("timeouts upstream", None), "whole words only");
    }

    #[test]
    fn text_without_words_filters_nothing_or_matches_nothing() {
        assert_eq!(TextQuery::parse("   "), None);
        let never = TextQuery::parse("-- ##").unwrap();
        assert!(!never.matches("-- ## anything", None));
        assert!(!never.may_match(&filter(["-- ## anything"])));
        // A wordless typed word beside a real one is dropped.
        let q = TextQuery::parse("-- timeout").unwrap();
        assert!(q.matches("timeout", None));
    }

    #[test]
    fn the_filter_holds_every_word_of_its_chunk_and_rejects_most_others() {
        let lines: Vec<String> = (0..1000)
            .map(|i| {
                format!(
                    "request {i:x} completed in {} ms path /api/v1/orders/{i}",
                    i % 97
                )
            })
            .collect();
        let f = filter(lines.iter().map(String::as_str));
        for line in &lines {
            for w in words(line) {
                assert!(may_hold(&f, w));
            }
        }
        let absent = (0..10_000)
            .filter(|i| may_hold(&f, words(&format!("zz{i}zz"))[0]))
            .count();
        assert!(
            absent < 400,
            "{absent} of 10000 absent words passed the filter"
        );
    }

    #[test]
    fn the_filter_is_sized_by_distinct_words_not_by_all_words() {
        let same = vec!["timeout upstream"; 256];
        let few = filter(same.iter().copied());
        assert_eq!(
            few.len(),
            2 + 8,
            "two distinct words fit the smallest filter"
        );
        let lines: Vec<String> = (0..256).map(|i| format!("id {i:x} n {i}")).collect();
        let many = filter(lines.iter().map(String::as_str));
        // About 514 distinct words at 10 bits each: 8192 bits, a power of two.
        assert_eq!(many.len(), 2 + 1024, "{}", many.len());
    }

    #[test]
    fn a_filter_in_an_unknown_format_lets_the_chunk_be_read() {
        assert!(may_hold(&[], 7));
        assert!(may_hold(&[9, PROBES, 0, 0], 7));
        assert!(may_hold(&[FORMAT, PROBES], 7));
    }

    proptest! {
        // The filter never hides a line the exact check would return.
        #[test]
        fn a_matching_line_is_never_filtered_out(
            lines in proptest::collection::vec("[a-zA-Z0-9 .@ÉéßΣ-]{0,40}", 1..30),
            pick in 0usize..30,
            from in 0usize..40,
            len in 1usize..12,
        ) {
            let f = filter(lines.iter().map(String::as_str));
            let line = &lines[pick % lines.len()];
            let chars: Vec<char> = line.chars().collect();
            let start = from.min(chars.len());
            let end = (start + len).min(chars.len());
            let typed: String = chars[start..end].iter().collect();
            if let Some(q) = TextQuery::parse(&typed)
                && q.matches(line, None)
            {
                prop_assert!(q.may_match(&f));
            }
        }
    }
}

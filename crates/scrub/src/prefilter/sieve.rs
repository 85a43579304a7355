//! The sieve: one regular expression that matches every line on which
//! [`families`](super::families) names any family, and few others. Its lazy DFA costs
//! about 10 instructions a byte (callgrind, on the benchmark's corpus), against about 30 for
//! the byte-at-a-time prefilter, so clean lines (most of a log) are passed over at that cost
//! and only the lines it matches go through the prefilter.
//!
//! It must never miss: each part below is a necessary condition of one family's trigger in
//! the prefilter (tested against it on random lines, arbitrary bytes and the corpora). It
//! may be looser: a line it matches for nothing costs one prefilter pass, as before.

use regex_automata::meta::Regex;
use regex_automata::util::syntax;

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

/// Builds the sieve; `None` when the pattern does not compile within the size limits (then
/// every line goes to the prefilter, which is only slower).
pub(crate) fn build() -> Option<Regex> {
    Regex::builder()
        .syntax(
            syntax::Config::new()
                .unicode(false)
                .utf8(false)
                .multi_line(true),
        )
        // A bigger lazy-DFA cache than the default: the union has many states, and
        // rebuilding evicted ones showed in profiles.
        .configure(
            Regex::config()
                .nfa_size_limit(Some(1 << 22))
                .hybrid_cache_capacity(16 << 20),
        )
        .build(&pattern())
        .ok()
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

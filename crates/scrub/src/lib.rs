//! The PII scrubber of rampart (control LOG-2: "logs never contain user information").
//!
//! Everything rampart stores that can carry user data (application log lines, PostgreSQL
//! statement text, SSH terminal output, request paths, audit details) passes through a
//! [`Scrubber`] first. It finds email addresses, card numbers, IBANs, phone numbers, IP
//! addresses, national ids, secrets and API keys, values of personal JSON fields and
//! configured patterns, and replaces each with a tag (`[EMAIL]`) or a keyed pseudonym
//! (`[EMAIL:3f9a1c0d]`), counting what it removed per [`Detector`].
//!
//! How: one hand-written pass over each line (the prefilter) names the rule families that
//! could match on it; most log lines wake none and are returned borrowed, without
//! allocation. On a flagged line only the woken rules run, each a linear-time regex whose
//! candidates go to a validator (Luhn, mod-97, NIR key, address parsers, context). A single
//! multi-pattern DFA over all rules was tried first and measured at a few MB/s: the digit
//! shapes overlap too much for a lazy DFA's cache (see `scan.rs`).
//!
//! Invariants:
//! - pure: no I/O, no clock, no global state; a `Scrubber` is immutable and `Sync`;
//! - linear time in the input (finite automata, no backtracking; bytes spent on rejected
//!   candidates are capped per rule and line, after which that rule stops on that line)
//!   and no panics on any input;
//! - valid UTF-8 in, valid UTF-8 out; bytes go through [`Scrubber::scrub_bytes`], which
//!   replaces invalid sequences with U+FFFD;
//! - idempotent: replacements are never matched again, so `scrub(scrub(x)) == scrub(x)`;
//! - overlapping findings resolve deterministically: leftmost, then longest, then the more
//!   specific rule (the order in `rules.rs`);
//! - a pseudonym is HMAC-SHA-256 under a secret key, never a plain hash.

mod config;
mod detector;
mod json;
mod lines;
mod prefilter;
mod rules;
mod scan;
#[cfg(feature = "tracing")]
mod tracing_writer;
mod validate;

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;
use std::ops::Range;

use hmac::{Hmac, Mac};
use regex_automata::meta;
use sha2::Sha256;

pub use config::{
    ConfigError, CustomPattern, KeyError, MIN_KEY_BYTES, PseudonymKey, ReplacementMode, ScrubConfig,
};
pub use detector::{Counts, Detector};
pub use lines::{LineFormat, LineScrubber};
#[cfg(feature = "tracing")]
pub use tracing_writer::{ScrubMakeWriter, ScrubWriter};

use validate::Check;

/// JSON field names whose values are personal data, normalised (lower case, no `_`, `-`, `.`).
pub const DEFAULT_PERSONAL_FIELDS: &[&str] = &[
    "email",
    "emailaddress",
    "mail",
    "phone",
    "phonenumber",
    "mobile",
    "tel",
    "telephone",
    "name",
    "firstname",
    "lastname",
    "fullname",
    "givenname",
    "familyname",
    "surname",
    "middlename",
    "displayname",
    "username",
    "address",
    "streetaddress",
    "street",
    "addressline1",
    "addressline2",
    "postalcode",
    "postcode",
    "zip",
    "zipcode",
    "city",
    "birthdate",
    "dateofbirth",
    "dob",
    "ip",
    "ipaddress",
    "clientip",
    "remoteaddr",
    "remoteip",
    "xforwardedfor",
    "useragent",
    "ssn",
    "nino",
    "nir",
    "iban",
    "cardnumber",
    "pan",
    "taxid",
    "passport",
    "passportnumber",
    "licenseplate",
];

/// Most custom patterns a configuration may hold.
pub const MAX_CUSTOM_PATTERNS: usize = 32;

/// Passes of the detectors over one text at most before it is withheld: each pass after
/// the first runs only when the one before changed something.
pub const MAX_PASSES: usize = 4;

/// What replaces a text whose redactions did not settle within [`MAX_PASSES`].
pub const WITHHELD: &str = "[WITHHELD]";

/// Finds personal data and secrets in text and replaces them. Build one from a
/// [`ScrubConfig`] at start-up and share it (`Arc<Scrubber>`); it is immutable.
#[derive(Debug)]
pub struct Scrubber {
    engine: scan::Engine,
    rules: Vec<CompiledRule>,
    replacer: Replacer,
    personal_fields: HashSet<String>,
}

impl Scrubber {
    /// Builds a scrubber, validating the custom patterns and field names. `key` is required
    /// in pseudonym mode and ignored in tag mode.
    pub fn new(config: &ScrubConfig, key: Option<PseudonymKey>) -> Result<Self, ConfigError> {
        let replacer = match (config.mode, key) {
            (ReplacementMode::Tag, _) => Replacer::Tag,
            (ReplacementMode::Pseudonym, Some(key)) => Replacer::Pseudonym(key),
            (ReplacementMode::Pseudonym, None) => return Err(ConfigError::MissingKey),
        };
        let mut rules: Vec<rules::Rule> = rules::built_in();
        let mut names = HashSet::new();
        if config.patterns.len() > MAX_CUSTOM_PATTERNS {
            return Err(ConfigError::TooManyPatterns(config.patterns.len()));
        }
        for custom in &config.patterns {
            rules.push(custom_rule(custom, &mut names)?);
        }
        let engine = scan::Engine::new(&rules).map_err(|(index, reason)| {
            match rules.get(index).map(|r| &r.detector) {
                Some(Detector::Custom(name)) => ConfigError::BadPattern {
                    name: name.to_string(),
                    reason,
                },
                _ => ConfigError::BuiltIn(reason),
            }
        })?;
        let mut personal_fields: HashSet<String> = DEFAULT_PERSONAL_FIELDS
            .iter()
            .map(|f| (*f).to_owned())
            .collect();
        for field in &config.personal_fields {
            let normalised = normalise_field(field);
            if normalised.is_empty() {
                return Err(ConfigError::BadFieldName(field.clone()));
            }
            personal_fields.insert(normalised);
        }
        let rules = rules
            .into_iter()
            .map(|r| CompiledRule {
                tag: r.detector.tag(),
                detector: r.detector,
            })
            .collect();
        Ok(Self {
            engine,
            rules,
            replacer,
            personal_fields,
        })
    }

    /// How many bytes at the start of `bytes` are complete lines (each ended by `\n`), in
    /// valid UTF-8, that hold nothing to scrub: a caller copying a stream may pass them on as
    /// they are and scrub from there. Decides as [`Scrubber::scrub`] would, only faster (one
    /// search over the block); `0` when it cannot tell (custom patterns run on every line).
    pub fn clean_prefix(&self, bytes: &[u8]) -> usize {
        let clean = self.engine.clean_prefix(bytes);
        let block = bytes.get(..clean).unwrap_or(&[]);
        match std::str::from_utf8(block) {
            Ok(_) => clean,
            // Invalid bytes are replaced on the way out: those lines take the slow path.
            Err(e) => {
                let valid = block.get(..e.valid_up_to()).unwrap_or(&[]);
                memchr::memrchr(b'\n', valid).map_or(0, |newline| newline + 1)
            }
        }
    }

    /// Scrubs free text (one line or many). Returns the input borrowed when nothing was found.
    ///
    /// The result is settled: scrubbing it again changes nothing (see [`MAX_PASSES`]).
    pub fn scrub<'a>(&self, text: &'a str, counts: &mut Counts) -> Cow<'a, str> {
        self.settled(text, counts, Self::scrub_once)
    }

    /// Applies `pass` until its output no longer changes. A redaction can change what the
    /// detectors see around it (a number that reached into an address, a domain cut short),
    /// so one pass alone is not always a fixed point; the fuzz targets keep finding such
    /// neighbourhoods. A text that has not settled after [`MAX_PASSES`] is withheld whole
    /// ([`WITHHELD`]): never stored half-scrubbed. Text with nothing to scrub, nearly all of
    /// it, takes one pass.
    fn settled<'a>(
        &self,
        text: &'a str,
        counts: &mut Counts,
        pass: for<'b> fn(&Self, &'b str, &mut Counts) -> Cow<'b, str>,
    ) -> Cow<'a, str> {
        let mut current = match pass(self, text, counts) {
            Cow::Borrowed(same) => return Cow::Borrowed(same),
            Cow::Owned(changed) => changed,
        };
        for _ in 1..MAX_PASSES {
            match pass(self, &current, counts) {
                Cow::Borrowed(_) => return Cow::Owned(current),
                Cow::Owned(next) if next == current => return Cow::Owned(current),
                Cow::Owned(next) => current = next,
            }
        }
        counts.add(&Detector::Withheld, 1);
        Cow::Owned(WITHHELD.to_owned())
    }

    /// One pass of the detectors over `text`.
    fn scrub_once<'a>(&self, text: &'a str, counts: &mut Counts) -> Cow<'a, str> {
        let mut out: Option<String> = None;
        let mut copied = 0;
        self.engine.scan(text, |index, range| {
            let Some(rule) = self.rules.get(index) else {
                return;
            };
            let out = out.get_or_insert_with(|| String::with_capacity(text.len() + 16));
            out.push_str(text.get(copied..range.start).unwrap_or(""));
            let value = text.get(range.clone()).unwrap_or("");
            self.replacer.write(&rule.detector, &rule.tag, value, out);
            counts.add(&rule.detector, 1);
            copied = range.end;
        });
        match out {
            None => Cow::Borrowed(text),
            Some(mut out) => {
                out.push_str(text.get(copied..).unwrap_or(""));
                Cow::Owned(out)
            }
        }
    }

    /// What [`scrub`](Self::scrub) would replace, without replacing it: for scans that prove
    /// stored text is clean, and for measuring the detectors.
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let mut findings = Vec::new();
        self.engine.scan(text, |index, range| {
            if let Some(rule) = self.rules.get(index) {
                findings.push(Finding {
                    detector: rule.detector.clone(),
                    range,
                });
            }
        });
        findings
    }

    /// Scrubs one JSON line: values of personal fields are replaced whole, every other string
    /// is scanned as text, and the layout of the line is kept. A line that is not JSON is
    /// scrubbed as text.
    pub fn scrub_json_line<'a>(&self, line: &'a str, counts: &mut Counts) -> Cow<'a, str> {
        self.settled(line, counts, Self::scrub_json_once)
    }

    /// One pass over a JSON line (its strings are each settled by [`Scrubber::scrub`]).
    fn scrub_json_once<'a>(&self, line: &'a str, counts: &mut Counts) -> Cow<'a, str> {
        match json::scrub(self, line, counts) {
            Some(scrubbed) => scrubbed,
            None => self.scrub_once(line, counts),
        }
    }

    /// Scrubs bytes that should be text: invalid UTF-8 becomes U+FFFD first.
    pub fn scrub_bytes<'a>(&self, bytes: &'a [u8], counts: &mut Counts) -> Cow<'a, str> {
        match String::from_utf8_lossy(bytes) {
            Cow::Borrowed(text) => self.scrub(text, counts),
            Cow::Owned(text) => Cow::Owned(self.scrub(&text, counts).into_owned()),
        }
    }

    /// A scrubber for a stream of lines, which also follows PEM blocks across lines.
    pub fn lines(&self, format: LineFormat) -> LineScrubber<'_> {
        LineScrubber::new(self, format)
    }

    fn is_personal_field(&self, key: &str) -> bool {
        self.personal_fields.contains(&normalise_field(key))
    }

    fn replacement(&self, detector: &Detector, tag: &str, value: &str) -> String {
        let mut out = String::with_capacity(tag.len() + 11);
        self.replacer.write(detector, tag, value, &mut out);
        out
    }
}

/// `text` scrubbed with the default rules and tags: for the odd piece of outside text (a
/// program's stderr, a CA's error, a reason typed in a form) on its way to the audit log.
/// The scrubber is built once per process; if it cannot be built, the text is withheld.
pub fn scrub_default(text: &str) -> String {
    scrub_default_cow(text).into_owned()
}

/// [`scrub_default`], borrowing `text` when there is nothing in it to scrub.
pub fn scrub_default_cow(text: &str) -> Cow<'_, str> {
    static SCRUBBER: std::sync::OnceLock<Option<Scrubber>> = std::sync::OnceLock::new();
    match SCRUBBER.get_or_init(|| Scrubber::new(&ScrubConfig::default(), None).ok()) {
        Some(s) => s.scrub(text, &mut Counts::new()),
        None => Cow::Borrowed("[text withheld: the scrubber is unavailable]"),
    }
}

/// One piece of personal data or secret in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What it is.
    pub detector: Detector,
    /// Where it is, in bytes; always on character boundaries.
    pub range: Range<usize>,
}

/// A rule as the scan uses it.
#[derive(Debug)]
struct CompiledRule {
    detector: Detector,
    tag: String,
}

/// How a confirmed finding is written.
#[derive(Debug)]
enum Replacer {
    Tag,
    Pseudonym(PseudonymKey),
}

impl Replacer {
    fn write(&self, detector: &Detector, tag: &str, value: &str, out: &mut String) {
        out.push('[');
        out.push_str(tag);
        if let Replacer::Pseudonym(key) = self {
            // Keyed so that a pseudonym cannot be reversed by hashing candidate values.
            if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.expose()) {
                mac.update(detector.name().as_bytes());
                mac.update(&[0]);
                mac.update(canonical(detector, value).as_bytes());
                let digest = mac.finalize().into_bytes();
                out.push(':');
                out.push_str(&hex::encode(digest.get(..4).unwrap_or(&[])));
            }
        }
        out.push(']');
    }
}

/// The form of a value under which one person gets one pseudonym whatever the formatting.
fn canonical(detector: &Detector, value: &str) -> String {
    match detector {
        Detector::Email => value.to_lowercase(),
        Detector::Card
        | Detector::Phone
        | Detector::Iban
        | Detector::Ssn
        | Detector::Nino
        | Detector::Nir => value
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect(),
        Detector::Ip => value
            .parse::<IpAddr>()
            .map_or_else(|_| value.to_owned(), |ip| ip.to_string()),
        _ => value.to_owned(),
    }
}

fn custom_rule(
    custom: &CustomPattern,
    names: &mut HashSet<String>,
) -> Result<rules::Rule, ConfigError> {
    let name = custom.name.as_str();
    let name_ok = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && name.as_bytes().first().is_some_and(u8::is_ascii_lowercase);
    if !name_ok || !names.insert(name.to_owned()) {
        return Err(ConfigError::BadPatternName(name.to_owned()));
    }
    if Detector::BUILT_IN.iter().any(|d| d.name() == name) {
        return Err(ConfigError::ReservedPatternName(name.to_owned()));
    }
    let bad = |reason: String| ConfigError::BadPattern {
        name: name.to_owned(),
        reason,
    };
    let hir = regex_syntax::Parser::new()
        .parse(&custom.regex)
        .map_err(|e| bad(e.to_string()))?;
    if hir.properties().minimum_len().is_none_or(|len| len == 0) {
        return Err(ConfigError::EmptyMatch(name.to_owned()));
    }
    meta::Regex::builder()
        .configure(meta::Regex::config().nfa_size_limit(Some(1 << 20)))
        .build(&custom.regex)
        .map_err(|e| bad(e.to_string()))?;
    Ok(rules::Rule {
        detector: Detector::Custom(name.into()),
        regex: custom.regex.clone(),
        families: prefilter::ALWAYS,
        check: Check::Custom,
        literal_prefilter: true,
    })
}

fn normalise_field(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

pub(crate) fn next_char(text: &str, at: usize) -> usize {
    let width = text
        .get(at..)
        .and_then(|rest| rest.chars().next())
        .map_or(1, char::len_utf8);
    at + width
}

#[cfg(test)]
mod tests;

//! The built-in patterns: one regex per shape, each with the validator that confirms it.
//!
//! All of them are compiled into one multi-pattern regex and found in a single scan; the
//! order below is the tie-break when two findings start at the same byte and have the same
//! length (earlier is more specific). Patterns use ASCII classes and ASCII `\b` only, so the
//! lazy DFA never has to give up on non-ASCII text, and none of them can cross a newline
//! except the PEM block, which looks for its END line.

use crate::detector::Detector;
use crate::prefilter::{self, Families};
use crate::validate::Check;

/// One pattern of the scan and how to confirm a match of it.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) detector: Detector,
    pub(crate) regex: String,
    /// The prefilter families that wake this rule; `0` for the token rule, which runs on
    /// every line that anything else runs on.
    pub(crate) families: Families,
    pub(crate) check: Check,
    /// Whether the regex engine may run a literal prefilter ahead of the automaton (see
    /// [`literal_prefilter`]).
    pub(crate) literal_prefilter: bool,
}

/// A replacement already in the text (`[EMAIL]`, `[EMAIL:3f9a1c0d]`): matched first so that a
/// second pass leaves it alone, which makes scrubbing idempotent.
pub(crate) const TOKEN: &str = r"\[[A-Z][A-Z0-9_]{0,31}(?::[0-9a-f]{8})?\]";

const HEX4: &str = "[0-9A-Fa-f]{1,4}";

/// The built-in rules, most specific first.
pub(crate) fn built_in() -> Vec<Rule> {
    let ipv4_tail = r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}";
    let ipv6 = format!(
        "(?:(?:{h}:){{6}}|(?:{h}(?::{h}){{0,4}})?::(?:{h}:){{0,5}}){v4}\
         |(?:{h}:){{7}}{h}\
         |(?:{h}(?::{h}){{0,6}})?::(?:{h}(?::{h}){{0,6}})?",
        h = HEX4,
        v4 = ipv4_tail,
    );
    let secret_keys = "password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey\
        |access[_-]?key|private[_-]?key|secret[_-]?key|client[_-]?secret|access[_-]?token\
        |refresh[_-]?token|id[_-]?token|auth[_-]?token|credentials?|session[_-]?id";
    let domain_char = r"[A-Za-z0-9\x{80}-\x{10FFFF}]";
    let rules: Vec<(Detector, String, Check, Families)> = vec![
        (Detector::PrivateKey, TOKEN.to_owned(), Check::Token, 0),
        (
            Detector::PrivateKey,
            r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----(?:[\s\S]*?-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----|[^\n]*)".to_owned(),
            Check::Plain,
            prefilter::PEM,
        ),
        (
            Detector::Jwt,
            r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*".to_owned(),
            Check::Jwt,
            prefilter::JWT,
        ),
        (
            Detector::ApiKey,
            r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}(?-u:\b)".to_owned(),
            Check::Word,
            prefilter::API_KEY,
        ),
        (
            Detector::ApiKey,
            r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})".to_owned(),
            Check::Word,
            prefilter::API_KEY,
        ),
        (
            Detector::ApiKey,
            r"(?-u:\b)(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|whsec_[A-Za-z0-9]{24,})".to_owned(),
            Check::Word,
            prefilter::API_KEY,
        ),
        (
            Detector::ApiKey,
            r"(?-u:\b)xox[abprse]-[A-Za-z0-9-]{10,}|https://hooks\.slack\.com/services/[A-Za-z0-9/]{20,}".to_owned(),
            Check::Word,
            prefilter::API_KEY | prefilter::URL,
        ),
        (
            Detector::ApiKey,
            r"(?-u:\b)AIza[0-9A-Za-z_-]{35}".to_owned(),
            Check::Word,
            prefilter::API_KEY,
        ),
        (
            Detector::UrlCredentials,
            r#"[A-Za-z][A-Za-z0-9+.-]{0,20}://[^\s/?#@:"'<>\[\]]+:[^\s/@"'<>]+@"#.to_owned(),
            Check::UrlCredentials,
            prefilter::URL,
        ),
        (
            Detector::AuthHeader,
            r#"(?i-u:proxy-authorization|authorization)["']?[ \t]*[:=][ \t]*["']?[A-Za-z]+[ \t]+[A-Za-z0-9._~+/=-]+"#.to_owned(),
            Check::AuthHeader,
            prefilter::AUTH,
        ),
        (
            Detector::AuthHeader,
            r"(?-u:\b)(?i-u:bearer|basic)[ \t]+[A-Za-z0-9._~+/-]{8,}=*".to_owned(),
            Check::BareAuth,
            prefilter::AUTH,
        ),
        (
            Detector::SecretValue,
            format!(
                r#"(?-u:\b)(?:[A-Za-z0-9]+[_.-])*(?i-u:{secret_keys})["']?[ \t]*[:=][ \t]*(?:"[^"\n]+"|'[^'\n]+'|[^\s"'&,;}}\])<>]+)"#
            ),
            Check::SecretPair,
            prefilter::SECRET,
        ),
        (
            Detector::Email,
            format!(
                r"[A-Za-z0-9_%+-][A-Za-z0-9_%+'-]*(?:\.[A-Za-z0-9_%+'-]+)*@(?:{d}[A-Za-z0-9\x{{80}}-\x{{10FFFF}}-]*\.)+(?:[A-Za-z]{{2,}}|xn--[A-Za-z0-9-]+|[\x{{80}}-\x{{10FFFF}}]{{2,}})",
                d = domain_char
            ),
            Check::Email,
            prefilter::EMAIL,
        ),
        (
            Detector::Iban,
            r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}(?-u:\b)".to_owned(),
            Check::Iban,
            prefilter::CODE,
        ),
        (
            Detector::Card,
            r"(?-u:\b)[0-9](?:[ -]?[0-9]){11,18}(?-u:\b)".to_owned(),
            Check::Card,
            prefilter::DIGITS,
        ),
        (
            Detector::Nir,
            r"(?-u:\b)[12] ?[0-9]{2} ?[0-9]{2} ?(?:[0-9]{2}|2[ABab]) ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}(?-u:\b)".to_owned(),
            Check::Nir,
            prefilter::DIGITS,
        ),
        (
            Detector::Ssn,
            r"(?-u:\b)[0-9]{3}-[0-9]{2}-[0-9]{4}(?-u:\b)".to_owned(),
            Check::Ssn,
            prefilter::DIGITS,
        ),
        (
            Detector::Nino,
            r"(?-u:\b)[A-Z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D](?-u:\b)".to_owned(),
            Check::Nino,
            prefilter::CODE,
        ),
        (Detector::Ip, ipv6, Check::Ipv6, prefilter::IPV6),
        (
            Detector::Ip,
            r"(?-u:\b)[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?-u:\b)".to_owned(),
            Check::Ipv4,
            prefilter::IPV4,
        ),
        (
            Detector::Phone,
            r"\+[1-9][0-9]{0,2}(?:[ .-]?\(0\))?(?:[ .-]?\(?[0-9]{1,5}\)?){1,6}".to_owned(),
            Check::PhoneInternational,
            prefilter::DIGITS,
        ),
        (
            Detector::Phone,
            r"(?-u:\b)00[1-9][0-9]{0,2}(?:[ .-]?\(0\))?(?:[ .-]?\(?[0-9]{1,5}\)?){1,6}".to_owned(),
            Check::PhoneZeroZero,
            prefilter::DIGITS,
        ),
        (
            Detector::Phone,
            r"(?:(?-u:\b)1[ .-])?(?:\([2-9][0-9]{2}\) ?|(?-u:\b)[2-9][0-9]{2}[ .-])[2-9][0-9]{2}[ .-][0-9]{4}(?-u:\b)".to_owned(),
            Check::PhoneUs,
            prefilter::DIGITS,
        ),
        (
            Detector::Phone,
            r"(?:\(0[1-9][0-9]{0,4}\)|(?-u:\b)0[1-9][0-9]{0,4})(?:[ ./-]?[0-9]{2,8}){1,4}(?-u:\b)".to_owned(),
            Check::PhoneTrunk,
            prefilter::DIGITS,
        ),
        (
            Detector::Phone,
            r"(?-u:\b)(?:[6-9][0-9]{2}[ -]?[0-9]{2,3}[ -][0-9]{2,3}(?:[ -][0-9]{2})?|[89][0-9] [0-9]{3} [0-9]{2} [0-9]{2}|3[0-9]{2}[ .-][0-9]{3}[ .-]?[0-9]{3,4})(?-u:\b)".to_owned(),
            Check::PhoneNoTrunk,
            prefilter::DIGITS,
        ),
    ];
    rules
        .into_iter()
        .map(|(detector, regex, check, families)| Rule {
            detector,
            regex,
            families,
            check,
            literal_prefilter: literal_prefilter(check),
        })
        .collect()
}

/// Whether a rule's regex gains from the literal prefilter regex-automata extracts from it.
///
/// A prefilter pays when its literals are rare (`[`, `+`, `@`, `eyJ`, `AKIA`). The number
/// and address shapes start with digits, capitals, `.` or `:`, which fill every log line
/// (timestamps, durations, ids): the search then stops at nearly every byte to call the
/// prefilter and restart the automaton. Measured with callgrind on the benchmark corpus,
/// those rules cost 3 to 5 times more per flagged line with their prefilter than without.
fn literal_prefilter(check: Check) -> bool {
    match check {
        Check::Iban
        | Check::Card
        | Check::Nir
        | Check::Ssn
        | Check::Nino
        | Check::Ipv4
        | Check::Ipv6
        | Check::PhoneZeroZero
        | Check::PhoneUs
        | Check::PhoneTrunk
        | Check::PhoneNoTrunk => false,
        Check::Token
        | Check::Plain
        | Check::Word
        | Check::Email
        | Check::Jwt
        | Check::UrlCredentials
        | Check::AuthHeader
        | Check::BareAuth
        | Check::SecretPair
        | Check::PhoneInternational
        | Check::Custom => true,
    }
}

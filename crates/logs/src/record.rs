//! What a parser produces ([`Entry`]) and what is stored ([`Line`]), and the limits that
//! turn one into the other: truncation, clock-skew clamp, scrubbing.

use std::borrow::Cow;

use jiff::Timestamp;
use rampart_scrub::{Counts, Scrubber};

/// Severity of a line, from the sender's own words (`warning`, `ERR`, syslog numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Debugging and tracing.
    Debug = 1,
    /// Normal operation (also: the level of lines that name none).
    Info = 2,
    /// Something unexpected that was handled.
    Warn = 3,
    /// A failure.
    Error = 4,
    /// A failure that stopped the program (fatal, critical, alert, emergency).
    Fatal = 5,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 5] = [
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];

    /// Reads a level name the way shippers spell it; unknown names are `None`.
    pub fn parse(raw: &str) -> Option<Level> {
        let lower = raw.trim().to_ascii_lowercase();
        Some(match lower.as_str() {
            "trace" | "debug" | "dbg" | "verbose" | "7" => Level::Debug,
            "info" | "information" | "informational" | "notice" | "inf" | "6" | "5" => Level::Info,
            "warn" | "warning" | "wrn" | "4" => Level::Warn,
            "error" | "err" | "eror" | "3" => Level::Error,
            "fatal" | "critical" | "crit" | "alert" | "emerg" | "emergency" | "panic" | "2"
            | "1" | "0" => Level::Fatal,
            _ => return None,
        })
    }

    /// The stored number.
    pub fn code(self) -> i64 {
        self as i64
    }

    /// From the stored number; unknown numbers read as `Info`.
    pub fn from_code(code: i64) -> Level {
        match code {
            1 => Level::Debug,
            3 => Level::Warn,
            4 => Level::Error,
            5 => Level::Fatal,
            _ => Level::Info,
        }
    }

    /// The name shown and typed.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// The syslog severity (RFC 5424 §6.2.1) as a level.
    pub fn from_syslog(severity: u8) -> Level {
        match severity {
            0..=2 => Level::Fatal,
            3 => Level::Error,
            4 => Level::Warn,
            5 | 6 => Level::Info,
            _ => Level::Debug,
        }
    }
}

/// One parsed line, before limits and scrubbing. Everything in it came from a client.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The sender's own timestamp, when it gave a readable one.
    pub time: Option<Timestamp>,
    /// The level, when the sender named one.
    pub level: Option<Level>,
    /// The message text.
    pub message: String,
    /// Other fields (labels, structured data, free fields) as a JSON object's text, as
    /// sent or as a parser wrote it; `None` when there are none.
    pub fields: Option<String>,
}

impl Entry {
    /// A message with nothing else.
    pub fn message(text: impl Into<String>) -> Self {
        Self {
            time: None,
            level: None,
            message: text.into(),
            fields: None,
        }
    }

    /// Fields given as a map: its JSON text, `None` when the map is empty.
    pub fn fields_of(map: serde_json::Map<String, serde_json::Value>) -> Option<String> {
        (!map.is_empty()).then(|| serde_json::Value::Object(map).to_string())
    }
}

/// A line of a batch that could not be read, by its position (1-based) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based position in the request (line number, or entry number).
    pub line: u64,
    /// Why, in words rampart chose (never the line's content).
    pub reason: &'static str,
}

/// What a parser made of a request: the entries it could read and the errors of the others.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// Readable entries.
    pub entries: Vec<Entry>,
    /// Unreadable ones.
    pub errors: Vec<LineError>,
}

/// Flags stored with a line.
pub mod flags {
    /// The message was longer than `logs.max_line_bytes` and was cut.
    pub const TRUNCATED: i64 = 1;
    /// The sender's timestamp was too far from the receive time and was replaced by it.
    pub const CLAMPED: i64 = 2;
    /// The sender gave no timestamp; the receive time is used.
    pub const NO_TIME: i64 = 4;
}

/// A line ready to store: limited, clamped and scrubbed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Time of the event (µs since the epoch), the sender's unless clamped.
    pub time_us: i64,
    /// Time rampart received it (µs).
    pub received_us: i64,
    /// The source name (from its token).
    pub source: String,
    /// Level.
    pub level: Level,
    /// Bitwise [`flags`].
    pub flags: i64,
    /// The scrubbed message.
    pub message: String,
    /// The scrubbed fields as JSON object text, if any.
    pub fields: Option<String>,
}

/// A log source name: 1 to 64 of `a-z`, `0-9`, `.`, `_`, `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceName(String);

/// A source name that is empty, too long or has other characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a log source name is 1 to 64 of a-z, 0-9, '.', '_' and '-', got {0:?}")]
pub struct BadSourceName(pub String);

impl SourceName {
    /// Checks a name.
    pub fn parse(raw: &str) -> Result<Self, BadSourceName> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(BadSourceName(raw.chars().take(80).collect()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Appended to a message that was cut.
pub const TRUNCATION_MARKER: &str = " …[truncated by rampart]";

/// The limits applied to every entry.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest message in bytes (before the marker).
    pub max_line_bytes: usize,
    /// Largest accepted distance between the sender's time and the receive time (µs).
    pub skew_us: i64,
}

/// Applies limits and the scrubber to one entry (pure; time comes in as `received`).
pub fn prepare(
    entry: Entry,
    source: &str,
    received: Timestamp,
    limits: Limits,
    scrubber: &Scrubber,
    counts: &mut Counts,
) -> Line {
    let received_us = received.as_microsecond();
    let mut line_flags = 0;
    let time_us = match entry.time {
        None => {
            line_flags |= flags::NO_TIME;
            received_us
        }
        Some(t) => {
            let t = t.as_microsecond();
            if t.abs_diff(received_us) > limits.skew_us.unsigned_abs() {
                line_flags |= flags::CLAMPED;
                received_us
            } else {
                t
            }
        }
    };
    let mut message = entry.message;
    if message.len() > limits.max_line_bytes {
        let mut cut = limits.max_line_bytes;
        while cut > 0 && !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str(TRUNCATION_MARKER);
        line_flags |= flags::TRUNCATED;
    }
    let message = match scrubber.scrub(&message, counts) {
        Cow::Borrowed(_) => message,
        Cow::Owned(scrubbed) => scrubbed,
    };
    let fields = entry.fields.filter(|f| !f.is_empty()).map(|mut text| {
        if text.len() > limits.max_line_bytes {
            // Too large to keep as JSON: kept as a cut string, still scrubbed below.
            let mut cut = limits.max_line_bytes;
            while cut > 0 && !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            line_flags |= flags::TRUNCATED;
            return scrubber.scrub(&text, counts).into_owned();
        }
        // JSON-aware: personal field names are replaced whole, other strings scanned.
        match scrubber.scrub_json_line(&text, counts) {
            Cow::Borrowed(_) => text,
            Cow::Owned(scrubbed) => scrubbed,
        }
    });
    Line {
        time_us,
        received_us,
        source: source.to_owned(),
        level: entry.level.unwrap_or(Level::Info),
        flags: line_flags,
        message,
        fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_scrub::ScrubConfig;

    fn scrubber() -> Scrubber {
        Scrubber::new(&ScrubConfig::default(), None).unwrap()
    }

    const LIMITS: Limits = Limits {
        max_line_bytes: 16,
        skew_us: 3_600_000_000,
    };

    #[test]
    fn long_messages_are_cut_on_a_char_boundary_with_a_marker() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let mut counts = Counts::new();
        let line = prepare(
            Entry::message("ééééééééééééééééé"),
            "api",
            now,
            LIMITS,
            &scrubber(),
            &mut counts,
        );
        assert!(line.message.ends_with(TRUNCATION_MARKER));
        assert_eq!(line.message.len(), 16 + TRUNCATION_MARKER.len());
        assert_eq!(line.flags & flags::TRUNCATED, flags::TRUNCATED);
    }

    #[test]
    fn far_timestamps_are_clamped_and_flagged() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let mut counts = Counts::new();
        for (offset, clamped) in [(-7200, true), (7200, true), (-60, false), (60, false)] {
            let mut entry = Entry::message("x");
            entry.time = Some(Timestamp::from_second(1_800_000_000 + offset).unwrap());
            let line = prepare(entry, "api", now, LIMITS, &scrubber(), &mut counts);
            assert_eq!(line.flags & flags::CLAMPED != 0, clamped, "{offset}");
            if clamped {
                assert_eq!(line.time_us, now.as_microsecond());
            }
        }
    }

    #[test]
    fn messages_and_fields_are_scrubbed_and_counted() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let mut counts = Counts::new();
        let mut entry = Entry::message("mail bob@example.com card 4111 1111 1111 1111");
        let mut fields = serde_json::Map::new();
        fields.insert("email".into(), "alice@example.org".into());
        fields.insert("note".into(), "call +33 6 12 34 56 78".into());
        entry.fields = Entry::fields_of(fields);
        let limits = Limits {
            max_line_bytes: 4096,
            ..LIMITS
        };
        let line = prepare(entry, "api", now, limits, &scrubber(), &mut counts);
        assert!(
            !line.message.contains("bob@example.com"),
            "{}",
            line.message
        );
        assert!(!line.message.contains("4111"), "{}", line.message);
        let fields = line.fields.unwrap_or_default();
        assert!(!fields.contains("alice@example.org"), "{fields}");
        assert!(counts.total() >= 3, "{counts:?}");
    }
}

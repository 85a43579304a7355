//! Syslog: RFC 5424 messages, best-effort RFC 3164 ones, and the framing of a TCP (TLS)
//! stream: octet counting (RFC 5425 §4.3, RFC 6587 §3.4.1) or, when a frame does not start
//! with a digit, newline-terminated frames (RFC 6587 §3.4.2).
//!
//! Authentication travels in the message: an SD element `[rampart@32473 token="…"]`
//! (RFC 5424 §6.3). The token is taken out of the entry and never stored.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use crate::record::{Entry, Level};

/// The SD-ID that carries rampart's token (32473 is the private enterprise number
/// reserved for documentation, RFC 5612).
pub const TOKEN_SD_ID: &str = "rampart@32473";

/// One syslog message: the entry, and the token it carried, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// What is stored (scrubbed later).
    pub entry: Entry,
    /// The `token` parameter of the [`TOKEN_SD_ID`] element.
    pub token: Option<String>,
}

/// Parses one message. Anything that does not follow RFC 5424 is read as RFC 3164, and
/// anything that does not follow that is a bare message: syslog never fails to parse.
/// `received` gives the year RFC 3164 leaves out.
pub fn parse(raw: &[u8], received: Timestamp) -> Message {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end_matches(['\n', '\r', '\0']);
    let Some((pri, rest)) = pri(text) else {
        return bare(text);
    };
    let facility = pri / 8;
    let level = Level::from_syslog(pri % 8);
    let (mut message, mut fields) = match rest.strip_prefix("1 ") {
        Some(body) => rfc5424(body).unwrap_or_else(|| rfc3164(rest, received)),
        None => rfc3164(rest, received),
    };
    message.entry.level = Some(level);
    fields.insert("facility".into(), facility.into());
    message.entry.fields = Entry::fields_of(fields);
    message
}

/// Fields as a parser collects them, before they become the entry's JSON text.
type Fields = serde_json::Map<String, serde_json::Value>;

fn bare(text: &str) -> Message {
    Message {
        entry: Entry::message(text),
        token: None,
    }
}

/// `<PRI>` (RFC 5424 §6.2.1): 1 to 3 digits, at most 191.
fn pri(text: &str) -> Option<(u8, &str)> {
    let rest = text.strip_prefix('<')?;
    let end = rest.find('>')?;
    let digits = rest.get(..end)?;
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u8 = digits.parse().ok().filter(|v| *v <= 191)?;
    Some((value, rest.get(end + 1..)?))
}

/// RFC 5424 §6: TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG].
fn rfc5424(body: &str) -> Option<(Message, Fields)> {
    let mut rest = body;
    let mut header = [""; 5];
    for slot in &mut header {
        let (word, tail) = rest.split_once(' ')?;
        *slot = word;
        rest = tail;
    }
    let [time, host, app, procid, msgid] = header;
    let (sd, msg) = structured_data(rest)?;
    let mut fields = serde_json::Map::new();
    for (key, value) in [
        ("host", host),
        ("app", app),
        ("procid", procid),
        ("msgid", msgid),
    ] {
        if value != "-" {
            fields.insert(key.into(), value.into());
        }
    }
    let mut token = None;
    let mut sd_fields = serde_json::Map::new();
    for (id, params) in sd {
        let mut element = serde_json::Map::new();
        for (name, value) in params {
            if id == TOKEN_SD_ID && name == "token" {
                token = Some(value);
            } else {
                element.insert(name, value.into());
            }
        }
        if !element.is_empty() {
            sd_fields.insert(id, element.into());
        }
    }
    if !sd_fields.is_empty() {
        fields.insert("sd".into(), sd_fields.into());
    }
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    Some((
        Message {
            entry: Entry {
                time: if time == "-" { None } else { time.parse().ok() },
                level: None,
                message: msg.to_owned(),
                fields: None,
            },
            token,
        },
        fields,
    ))
}

type Element = (String, Vec<(String, String)>);

/// STRUCTURED-DATA (RFC 5424 §6.3) and the message after it.
fn structured_data(text: &str) -> Option<(Vec<Element>, &str)> {
    if let Some(rest) = text.strip_prefix('-') {
        return Some((Vec::new(), rest.strip_prefix(' ').unwrap_or(rest)));
    }
    let mut elements = Vec::new();
    let mut rest = text;
    while let Some(body) = rest.strip_prefix('[') {
        let id_end = body.find([' ', ']'])?;
        let id = body.get(..id_end)?.to_owned();
        let mut params = Vec::new();
        let mut cursor = body.get(id_end..)?;
        loop {
            cursor = cursor.trim_start_matches(' ');
            if let Some(after) = cursor.strip_prefix(']') {
                cursor = after;
                break;
            }
            let eq = cursor.find('=')?;
            let name = cursor.get(..eq)?.to_owned();
            let mut value = String::new();
            let mut chars = cursor.get(eq + 1..)?.strip_prefix('"')?.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, next)) = chars.next() {
                            if !matches!(next, '"' | '\\' | ']') {
                                value.push('\\');
                            }
                            value.push(next);
                        }
                    }
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    other => value.push(other),
                }
            }
            let end = end?;
            cursor = cursor.get(eq + 1..)?.get(end + 2..)?;
            params.push((name, value));
            if params.len() > 64 {
                return None;
            }
        }
        elements.push((id, params));
        rest = cursor;
        if elements.len() > 64 {
            return None;
        }
    }
    if elements.is_empty() {
        return None;
    }
    Some((elements, rest.strip_prefix(' ').unwrap_or(rest)))
}

/// RFC 3164 §4.1.2, best effort: `Mmm dd hh:mm:ss HOST TAG[PID]: MSG`.
fn rfc3164(text: &str, received: Timestamp) -> (Message, Fields) {
    let mut fields = serde_json::Map::new();
    let mut time = None;
    let mut rest = text;
    if let Some(stamp) = text.get(..15)
        && let Some(tail) = text.get(15..)
    {
        let year = received.to_zoned(TimeZone::UTC).year();
        let padded = stamp.replace("  ", " 0");
        if let Ok(dt) = DateTime::strptime("%Y %b %d %H:%M:%S", format!("{year} {padded}")) {
            time = dt.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp());
            rest = tail.trim_start();
            if let Some((host, after)) = rest.split_once(' ') {
                fields.insert("host".into(), host.into());
                rest = after;
            }
        }
    }
    if let Some((tag, after)) = rest.split_once(": ")
        && !tag.is_empty()
        && tag.len() <= 48
        && !tag.contains(' ')
    {
        let (app, pid) = match tag.split_once('[') {
            Some((app, pid)) => (app, Some(pid.trim_end_matches(']'))),
            None => (tag, None),
        };
        fields.insert("app".into(), app.into());
        if let Some(pid) = pid {
            fields.insert("procid".into(), pid.into());
        }
        rest = after;
    }
    (
        Message {
            entry: Entry {
                time,
                level: None,
                message: rest.to_owned(),
                fields: None,
            },
            token: None,
        },
        fields,
    )
}

/// A frame that cannot be read: the stream must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// An octet count larger than the limit, or a line longer than it.
    #[error("a syslog frame is larger than the limit")]
    TooLarge,
    /// An octet count that is not a number.
    #[error("a syslog frame length is not a number")]
    BadLength,
}

/// Splits a byte stream into frames. Feed it with [`Framer::push`], take frames with
/// [`Framer::next_frame`]. Holds at most `max + 16` bytes beyond one read.
#[derive(Debug)]
pub struct Framer {
    buffer: Vec<u8>,
    max: usize,
}

impl Framer {
    /// A framer refusing frames larger than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buffer: Vec::new(),
            max,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame, `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        // Skip stray separators between frames.
        let start = self
            .buffer
            .iter()
            .position(|b| !matches!(b, b'\n' | b'\r' | b'\0'))
            .unwrap_or(self.buffer.len());
        self.buffer.drain(..start);
        let first = *self.buffer.first()?;
        if first.is_ascii_digit() {
            let Some(space) = self.buffer.iter().take(12).position(|b| *b == b' ') else {
                return if self.buffer.len() >= 12 {
                    Some(Err(FrameError::BadLength))
                } else {
                    None
                };
            };
            let digits = self.buffer.get(..space)?;
            let Some(len) = std::str::from_utf8(digits)
                .ok()
                .and_then(|d| d.parse::<usize>().ok())
            else {
                return Some(Err(FrameError::BadLength));
            };
            if len > self.max {
                return Some(Err(FrameError::TooLarge));
            }
            let end = space.saturating_add(1).saturating_add(len);
            if self.buffer.len() < end {
                return None;
            }
            let frame = self.buffer.get(space + 1..end)?.to_vec();
            self.buffer.drain(..end);
            Some(Ok(frame))
        } else {
            match self.buffer.iter().position(|b| *b == b'\n') {
                Some(end) => {
                    let frame: Vec<u8> = self.buffer.drain(..=end).collect();
                    let frame = frame.get(..end).unwrap_or_default().to_vec();
                    if frame.len() > self.max {
                        return Some(Err(FrameError::TooLarge));
                    }
                    Some(Ok(frame))
                }
                None if self.buffer.len() > self.max => Some(Err(FrameError::TooLarge)),
                None => None,
            }
        }
    }

    /// What is left when the stream ends (a last line without a newline).
    pub fn finish(self) -> Option<Vec<u8>> {
        let rest: Vec<u8> = self
            .buffer
            .into_iter()
            .skip_while(|b| matches!(b, b'\n' | b'\r' | b'\0'))
            .collect();
        (!rest.is_empty() && rest.len() <= self.max).then_some(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn rfc5424_with_token_and_structured_data() {
        let raw = br#"<11>1 2026-11-29T06:00:00.123Z web01 api 42 ID7 [rampart@32473 token="rlt_secret"][meta k="a\"b" ip="10.0.0.1"] payment failed"#;
        let m = parse(raw, now());
        assert_eq!(m.token.as_deref(), Some("rlt_secret"));
        assert_eq!(m.entry.level, Some(Level::Error));
        assert_eq!(m.entry.message, "payment failed");
        assert!(m.entry.time.is_some());
        let fields = m.entry.fields.unwrap();
        assert!(!fields.contains("rlt_secret"), "{fields}");
        assert!(fields.contains(r#""k":"a\"b""#), "{fields}");
        assert!(fields.contains(r#""app":"api""#), "{fields}");
    }

    #[test]
    fn rfc5424_without_structured_data() {
        let m = parse(b"<14>1 - host app - - - hello world", now());
        assert_eq!(m.entry.message, "hello world");
        assert_eq!(m.entry.level, Some(Level::Info));
        assert_eq!(m.entry.time, None);
        assert_eq!(m.token, None);
    }

    #[test]
    fn rfc3164_best_effort() {
        let m = parse(
            b"<28>Nov  9 06:01:02 web01 sshd[123]: Connection closed",
            now(),
        );
        assert_eq!(m.entry.level, Some(Level::Warn));
        assert_eq!(m.entry.message, "Connection closed");
        let t = m.entry.time.unwrap().to_zoned(TimeZone::UTC);
        assert_eq!((t.month(), t.day(), t.hour()), (11, 9, 6));
        let fields: Fields = serde_json::from_str(&m.entry.fields.unwrap()).unwrap();
        assert_eq!(fields.get("app").and_then(|v| v.as_str()), Some("sshd"));
        assert_eq!(fields.get("host").and_then(|v| v.as_str()), Some("web01"));
        // Not syslog at all: the whole line is the message.
        assert_eq!(parse(b"just text", now()).entry.message, "just text");
    }

    #[test]
    fn octet_counting_and_newline_framing() {
        let mut framer = Framer::new(100);
        framer.push(b"11 <13>1 - - -");
        assert_eq!(framer.next_frame(), Some(Ok(b"<13>1 - - -".to_vec())));
        framer.push(b"5 hel");
        assert_eq!(framer.next_frame(), None);
        framer.push(b"lo<13>a line\n<13>another");
        assert_eq!(framer.next_frame(), Some(Ok(b"hello".to_vec())));
        assert_eq!(framer.next_frame(), Some(Ok(b"<13>a line".to_vec())));
        assert_eq!(framer.next_frame(), None);
        assert_eq!(framer.finish(), Some(b"<13>another".to_vec()));
        let mut framer = Framer::new(10);
        framer.push(b"99 x");
        assert_eq!(framer.next_frame(), Some(Err(FrameError::TooLarge)));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse(&body, now());
            let mut framer = Framer::new(64);
            framer.push(&body);
            for _ in 0..600 {
                match framer.next_frame() {
                    Some(Ok(_)) => {}
                    _ => break,
                }
            }
        }
    }
}

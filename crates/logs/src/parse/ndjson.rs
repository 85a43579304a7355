//! NDJSON: one JSON object per line. Known keys give the time (`timestamp`, `time`, `ts`,
//! `@timestamp`), the level (`level`, `severity`, `lvl`) and the message (`message`, `msg`,
//! `log`); every other key is kept as a field.

use crate::record::{Entry, Level, LineError, Parsed};

const TIME_KEYS: &[&str] = &["timestamp", "time", "ts", "@timestamp", "datetime"];
const LEVEL_KEYS: &[&str] = &["level", "severity", "lvl", "log.level", "loglevel"];
const MESSAGE_KEYS: &[&str] = &["message", "msg", "log", "text"];

/// Parses a body of JSON lines. Empty lines are skipped; a line that is not UTF-8, not
/// JSON or not an object is reported by its 1-based number.
pub fn parse(body: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    for (index, raw) in body.split(|b| *b == b'\n').enumerate() {
        let number = u64::try_from(index).unwrap_or(u64::MAX).saturating_add(1);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match line(raw) {
            Ok(entry) => parsed.entries.push(entry),
            Err(reason) => parsed.errors.push(LineError {
                line: number,
                reason,
            }),
        }
    }
    parsed
}

/// One JSON object as an entry.
pub fn line(raw: &[u8]) -> Result<Entry, &'static str> {
    let text = std::str::from_utf8(raw).map_err(|_| "invalid UTF-8")?;
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| "invalid JSON")?;
    let serde_json::Value::Object(mut object) = value else {
        return Err("not a JSON object");
    };
    Ok(from_object(&mut object))
}

/// Takes the known keys out of an object; what is left becomes the fields.
pub fn from_object(object: &mut serde_json::Map<String, serde_json::Value>) -> Entry {
    let time = take_first(object, TIME_KEYS).and_then(|v| super::timestamp(&v));
    let level = take_first(object, LEVEL_KEYS).and_then(|v| match v {
        serde_json::Value::String(s) => Level::parse(&s),
        serde_json::Value::Number(n) => Level::parse(&n.to_string()),
        _ => None,
    });
    let message = match take_first(object, MESSAGE_KEYS) {
        Some(serde_json::Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let fields = std::mem::take(object);
    Entry {
        time,
        level,
        message,
        fields: (!fields.is_empty()).then_some(fields),
    }
}

fn take_first(
    object: &mut serde_json::Map<String, serde_json::Value>,
    keys: &[&str],
) -> Option<serde_json::Value> {
    keys.iter().find_map(|k| object.remove(*k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_reported_and_their_neighbours_kept() {
        let mut body = Vec::new();
        body.extend_from_slice(b"{\"ts\":\"2026-11-29T06:00:00Z\",\"level\":\"ERROR\",\"msg\":\"boom\",\"user_id\":7}\n");
        body.extend_from_slice(b"{not json\n");
        body.extend_from_slice(b"\xff\xfe{\"msg\":\"x\"}\n");
        body.extend_from_slice(b"[1,2]\r\n");
        body.extend_from_slice(b"\n");
        body.extend_from_slice(b"{\"message\":\"second\"}");
        let parsed = parse(&body);
        assert_eq!(parsed.entries.len(), 2);
        assert_eq!(parsed.entries[0].message, "boom");
        assert_eq!(parsed.entries[0].level, Some(Level::Error));
        assert!(parsed.entries[0].time.is_some());
        assert_eq!(parsed.entries[0].fields.as_ref().map(|f| f.len()), Some(1));
        assert_eq!(parsed.entries[1].message, "second");
        assert_eq!(
            parsed.errors,
            vec![
                LineError {
                    line: 2,
                    reason: "invalid JSON"
                },
                LineError {
                    line: 3,
                    reason: "invalid UTF-8"
                },
                LineError {
                    line: 4,
                    reason: "not a JSON object"
                },
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_without_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let parsed = parse(&body);
            proptest::prop_assert!(parsed.entries.len() + parsed.errors.len() <= body.len() + 1);
        }
    }
}

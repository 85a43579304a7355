//! NDJSON: one JSON object per line. Known keys give the time (`timestamp`, `time`, `ts`,
//! `@timestamp`), the level (`level`, `severity`, `lvl`) and the message (`message`, `msg`,
//! `log`); every other key is kept as a field.

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::record::{Entry, Level, LineError, Parsed};

const TIME_KEYS: &[&str] = &["timestamp", "time", "ts", "@timestamp", "datetime"];
const LEVEL_KEYS: &[&str] = &["level", "severity", "lvl", "log.level", "loglevel"];
const MESSAGE_KEYS: &[&str] = &["message", "msg", "log", "text"];

/// Parses a body of JSON lines. Empty lines are skipped; a line that is not UTF-8, not
/// JSON or not an object is reported by its 1-based number.
pub fn parse(body: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    let ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
    let mut start = 0;
    for (index, end) in ends.enumerate() {
        let raw = body.get(start..end).unwrap_or_default();
        start = end + 1;
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
///
/// The object's members are read borrowed (serde_json's `RawValue`): the known keys are
/// decoded, and every other member is copied into the fields' JSON text as it was sent, so
/// a line's fields are never built as a map and printed again (a value with an escape, an
/// object or an array is, see [`object_text`]). Of a key given twice, the last counts, as
/// when an object is read into a map; fields are in key order.
pub fn line(raw: &[u8]) -> Result<Entry, &'static str> {
    let text = std::str::from_utf8(raw).map_err(|_| "invalid UTF-8")?;
    let Members(mut members) = serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => "not a JSON object",
        _ => "invalid JSON",
    })?;
    // Stable: of equal keys, the one sent last ends its run.
    members.sort_by(|a, b| a.0.cmp(&b.0));
    let mut kept: Vec<(Cow<'_, str>, &RawValue)> = Vec::with_capacity(members.len());
    for (key, value) in members {
        match kept.last_mut() {
            Some(last) if last.0 == key => last.1 = value,
            _ => kept.push((key, value)),
        }
    }
    let time = take_first(&mut kept, TIME_KEYS)
        .and_then(|raw| serde_json::from_str::<serde_json::Value>(raw.get()).ok())
        .and_then(|v| super::timestamp(&v));
    let level = take_first(&mut kept, LEVEL_KEYS)
        .and_then(|raw| serde_json::from_str::<serde_json::Value>(raw.get()).ok())
        .and_then(|v| level_of(&v));
    let message = match take_first(&mut kept, MESSAGE_KEYS) {
        None => String::new(),
        Some(raw) if raw.get().starts_with('"') => {
            serde_json::from_str::<String>(raw.get()).unwrap_or_default()
        }
        Some(raw) => match serde_json::from_str::<serde_json::Value>(raw.get()) {
            Ok(serde_json::Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(_) => String::new(),
        },
    };
    Ok(Entry {
        time,
        level,
        message,
        fields: object_text(&kept),
    })
}

fn level_of(value: &serde_json::Value) -> Option<Level> {
    match value {
        serde_json::Value::String(s) => Level::parse(s),
        serde_json::Value::Number(n) => Level::parse(&n.to_string()),
        _ => None,
    }
}

/// Takes out the member of the first of `keys` present.
fn take_first<'a>(
    members: &mut Vec<(Cow<'_, str>, &'a RawValue)>,
    keys: &[&str],
) -> Option<&'a RawValue> {
    keys.iter().find_map(|k| {
        let at = members.iter().position(|(key, _)| key == k)?;
        Some(members.remove(at).1)
    })
}

/// The members as a JSON object's text, `None` when there are none.
fn object_text(members: &[(Cow<'_, str>, &RawValue)]) -> Option<String> {
    if members.is_empty() {
        return None;
    }
    let len = members
        .iter()
        .map(|(k, v)| k.len() + v.get().len() + 4)
        .sum::<usize>();
    let mut text = String::with_capacity(len + 2);
    text.push('{');
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        match key {
            // Read without escapes, so it needs none.
            Cow::Borrowed(key) => {
                text.push('"');
                text.push_str(key);
                text.push('"');
            }
            Cow::Owned(key) => text.push_str(&serde_json::Value::from(key.as_str()).to_string()),
        }
        text.push(':');
        let raw = value.get();
        // Escapes are written out and nested values made compact, as when the value is
        // printed from a map: the stored text is what search and the scrubber see.
        if raw.contains('\\') || raw.starts_with(['{', '[']) {
            match serde_json::from_str::<serde_json::Value>(raw) {
                Ok(v) => text.push_str(&v.to_string()),
                Err(_) => text.push_str("null"),
            }
        } else {
            text.push_str(raw);
        }
    }
    text.push('}');
    Some(text)
}

/// A JSON object's members in the order sent: keys borrowed when they hold no escape,
/// values as their JSON text.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(Key(key)) = map.next_key()? {
                    members.push((key, map.next_value()?));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// An object's key, borrowed from the line when it has no escape.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

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
        assert_eq!(
            parsed.entries[0].fields.as_deref(),
            Some(r#"{"user_id":7}"#)
        );
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

    /// What the parser did before it read members borrowed: the whole line as a map, the
    /// known keys taken out, the rest printed.
    fn through_a_map(raw: &str) -> Option<(String, Option<Level>, Option<serde_json::Value>)> {
        let serde_json::Value::Object(mut object) = serde_json::from_str(raw).ok()? else {
            return None;
        };
        let mut take = |keys: &[&str]| keys.iter().find_map(|k| object.remove(*k));
        take(TIME_KEYS);
        let level = take(LEVEL_KEYS).and_then(|v| level_of(&v));
        let message = match take(MESSAGE_KEYS) {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let fields = (!object.is_empty()).then_some(serde_json::Value::Object(object));
        Some((message, level, fields))
    }

    #[test]
    fn fields_are_the_members_left_as_json_text() {
        let raw = r#"{"z":1,"msg":"hi","a":{"k": [1, 2]},"dup":"first","level":"warn","dup":"last","q\"uote":"v","esc":"caf\u00e9 \/","n":1.50,"time":"2026-11-29T06:00:00Z","ts":"kept"}"#;
        let entry = line(raw.as_bytes()).unwrap();
        assert_eq!(entry.message, "hi");
        assert_eq!(entry.level, Some(Level::Warn));
        assert!(entry.time.is_some());
        // Key order; the last of a repeated key; escapes written out; nested values compact;
        // a second time key stays a field; numbers as sent.
        assert_eq!(
            entry.fields.as_deref(),
            Some(
                r#"{"a":{"k":[1,2]},"dup":"last","esc":"café /","n":1.50,"q\"uote":"v","ts":"kept","z":1}"#
            )
        );
        let (message, level, fields) = through_a_map(raw).unwrap();
        assert_eq!((entry.message, entry.level), (message, level));
        let stored: serde_json::Value =
            serde_json::from_str(entry.fields.as_deref().unwrap()).unwrap();
        assert_eq!(Some(stored), fields);
    }

    proptest::proptest! {
        /// On any object of scalar and nested members, the borrowed reading gives the
        /// message, level and fields the map reading gave.
        #[test]
        fn members_read_borrowed_match_a_map(
            members in proptest::collection::vec(
                (
                    proptest::prop_oneof![
                        proptest::sample::select(vec!["msg", "message", "level", "lvl", "ts", "time", "host", "k", "a\"b", "é"]).prop_map(String::from),
                        "[a-z\\u{e9}\"\\\\]{0,4}",
                    ],
                    proptest::prop_oneof![
                        "[a-zA-Z0-9 \\u{e9}\"\\\\/\\n]{0,8}".prop_map(serde_json::Value::from),
                        proptest::num::i64::ANY.prop_map(serde_json::Value::from),
                        proptest::num::f64::NORMAL.prop_map(serde_json::Value::from),
                        proptest::bool::ANY.prop_map(serde_json::Value::from),
                        proptest::strategy::Just(serde_json::Value::Null),
                        proptest::strategy::Just(serde_json::json!({"x": [1, "y", {"z": null}]})),
                        proptest::sample::select(vec!["error", "WARN", "7", "nope"]).prop_map(serde_json::Value::from),
                    ],
                ),
                0..8,
            ),
            spaced in proptest::bool::ANY,
        ) {
            let sep = if spaced { " , " } else { "," };
            let body: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{}:{}", serde_json::Value::from(k.as_str()), v))
                .collect();
            let raw = format!("{{{}}}", body.join(sep));
            let (message, level, fields) = through_a_map(&raw).unwrap();
            let entry = line(raw.as_bytes()).unwrap();
            proptest::prop_assert_eq!(entry.message, message);
            proptest::prop_assert_eq!(entry.level, level);
            let stored = entry
                .fields
                .map(|f| serde_json::from_str::<serde_json::Value>(&f).unwrap());
            proptest::prop_assert_eq!(stored, fields);
        }

        #[test]
        fn any_bytes_parse_without_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let parsed = parse(&body);
            proptest::prop_assert!(parsed.entries.len() + parsed.errors.len() <= body.len() + 1);
        }
    }
}

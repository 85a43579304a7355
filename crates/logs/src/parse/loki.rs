//! The Loki push API (`POST /loki/api/v1/push`) in both encodings shippers send:
//! JSON (`{"streams":[{"stream":{labels},"values":[["<ns>","line",{metadata}]]}]}`) and
//! `logproto.PushRequest` protobuf in a snappy block (Promtail, Alloy, Vector, Fluent Bit).
//! Labels and structured metadata become fields; a `level` (or `detected_level`,
//! `severity`) label or metadata gives the level.

use jiff::Timestamp;
use prost::Message;

use crate::record::{Entry, Level, LineError, Parsed};

/// A body that cannot be read at all (per-entry problems are [`LineError`]s instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LokiError {
    /// The snappy block is corrupt or would decompress beyond the limit.
    #[error("the body is not a snappy block within the size limit")]
    Snappy,
    /// The protobuf does not decode as a PushRequest.
    #[error("the body is not a Loki PushRequest")]
    Protobuf,
    /// The JSON is not a push request.
    #[error("the body is not a Loki JSON push request")]
    Json,
}

/// `logproto.PushRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct PushRequest {
    /// Streams.
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`.
#[derive(Clone, PartialEq, Message)]
pub struct StreamAdapter {
    /// Labels in Prometheus text form: `{app="api", level="error"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    /// Entries.
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    /// Hash of the labels (ignored).
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`. The line is bytes, so invalid UTF-8 is one entry's error.
#[derive(Clone, PartialEq, Message)]
pub struct EntryAdapter {
    /// Time of the line.
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<ProtoTimestamp>,
    /// The line.
    #[prost(bytes = "vec", tag = "2")]
    pub line: Vec<u8>,
    /// Structured metadata.
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoTimestamp {
    /// Seconds since the epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `logproto.LabelPairAdapter`.
#[derive(Clone, PartialEq, Message)]
pub struct LabelPairAdapter {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// Parses a snappy-compressed protobuf push, refusing to decompress beyond `max_bytes`.
pub fn parse_protobuf(body: &[u8], max_bytes: usize) -> Result<Parsed, LokiError> {
    let len = snap::raw::decompress_len(body).map_err(|_| LokiError::Snappy)?;
    if len > max_bytes {
        return Err(LokiError::Snappy);
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|_| LokiError::Snappy)?;
    let request = PushRequest::decode(raw.as_slice()).map_err(|_| LokiError::Protobuf)?;
    let mut parsed = Parsed::default();
    let mut number = 0u64;
    for stream in request.streams {
        let labels = parse_labels(&stream.labels);
        for entry in stream.entries {
            number = number.saturating_add(1);
            let Ok(line) = String::from_utf8(entry.line) else {
                parsed.errors.push(LineError {
                    line: number,
                    reason: "invalid UTF-8",
                });
                continue;
            };
            let time = entry
                .timestamp
                .and_then(|t| Timestamp::new(t.seconds, t.nanos.clamp(0, 999_999_999)).ok());
            let metadata = entry
                .structured_metadata
                .into_iter()
                .map(|p| (p.name, p.value));
            parsed
                .entries
                .push(entry_of(time, line, labels.iter().cloned().chain(metadata)));
        }
    }
    Ok(parsed)
}

/// Parses a JSON push.
pub fn parse_json(body: &[u8]) -> Result<Parsed, LokiError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| LokiError::Json)?;
    let streams = value
        .get("streams")
        .and_then(|s| s.as_array())
        .ok_or(LokiError::Json)?;
    let mut parsed = Parsed::default();
    let mut number = 0u64;
    for stream in streams {
        let labels: Vec<(String, String)> = stream
            .get("stream")
            .and_then(|s| s.as_object())
            .map(|o| {
                o.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let values = stream.get("values").and_then(|v| v.as_array());
        for value in values.into_iter().flatten() {
            number = number.saturating_add(1);
            let Some(parts) = value.as_array() else {
                parsed.errors.push(LineError {
                    line: number,
                    reason: "an entry is not [time, line]",
                });
                continue;
            };
            let (Some(time), Some(line)) = (
                parts.first().and_then(|t| t.as_str()),
                parts.get(1).and_then(|l| l.as_str()),
            ) else {
                parsed.errors.push(LineError {
                    line: number,
                    reason: "an entry is not [time, line]",
                });
                continue;
            };
            let time = time
                .parse::<i128>()
                .ok()
                .and_then(|ns| Timestamp::from_nanosecond(ns).ok());
            let metadata: Vec<(String, String)> = parts
                .get(2)
                .and_then(|m| m.as_object())
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            parsed.entries.push(entry_of(
                time,
                line.to_owned(),
                labels.iter().cloned().chain(metadata),
            ));
        }
    }
    Ok(parsed)
}

fn entry_of(
    time: Option<Timestamp>,
    message: String,
    labels: impl Iterator<Item = (String, String)>,
) -> Entry {
    let mut fields = serde_json::Map::new();
    let mut level = None;
    for (name, value) in labels {
        if level.is_none() && matches!(name.as_str(), "level" | "detected_level" | "severity") {
            level = Level::parse(&value);
        }
        fields.insert(name, serde_json::Value::String(value));
    }
    Entry {
        time,
        level,
        message,
        fields: Entry::fields_of(fields),
    }
}

/// Reads Prometheus label text `{a="x", b="y\"z"}`; what does not parse is dropped.
pub fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let inner = text.trim().trim_start_matches('{').trim_end_matches('}');
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut name = String::new();
        while let Some(c) = chars.peek().copied() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            name.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == '=') {
            chars.next();
        }
        if chars.next() != Some('"') {
            break;
        }
        let mut value = String::new();
        let mut closed = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => {
                    closed = true;
                    break;
                }
                other => value.push(other),
            }
        }
        if !closed || name.is_empty() {
            break;
        }
        out.push((name, value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A push built by hand the way Promtail builds it: protobuf, then a snappy block.
    pub(crate) fn promtail_body() -> Vec<u8> {
        let request = PushRequest {
            streams: vec![StreamAdapter {
                labels: r#"{app="api", level="error"}"#.into(),
                entries: vec![
                    EntryAdapter {
                        timestamp: Some(ProtoTimestamp {
                            seconds: 1_800_000_000,
                            nanos: 5,
                        }),
                        line: b"login failed for bob@example.com".to_vec(),
                        structured_metadata: vec![LabelPairAdapter {
                            name: "trace_id".into(),
                            value: "abc".into(),
                        }],
                    },
                    EntryAdapter {
                        timestamp: None,
                        line: vec![0xff, 0xfe],
                        structured_metadata: vec![],
                    },
                ],
                hash: 0,
            }],
        };
        snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .unwrap()
    }

    #[test]
    fn protobuf_snappy_push_is_read_with_labels_and_per_entry_errors() {
        let parsed = parse_protobuf(&promtail_body(), 1 << 20).unwrap();
        assert_eq!(parsed.entries.len(), 1);
        let entry = &parsed.entries[0];
        assert_eq!(entry.message, "login failed for bob@example.com");
        assert_eq!(entry.level, Some(Level::Error));
        assert_eq!(entry.time.map(|t| t.as_second()), Some(1_800_000_000));
        let fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(entry.fields.as_deref().unwrap()).unwrap();
        assert_eq!(fields.get("app").and_then(|v| v.as_str()), Some("api"));
        assert_eq!(fields.get("trace_id").and_then(|v| v.as_str()), Some("abc"));
        assert_eq!(
            parsed.errors,
            vec![LineError {
                line: 2,
                reason: "invalid UTF-8"
            }]
        );
    }

    #[test]
    fn a_snappy_bomb_is_refused_before_decompressing() {
        let big = vec![b'a'; 1 << 20];
        let body = snap::raw::Encoder::new().compress_vec(&big).unwrap();
        assert_eq!(parse_protobuf(&body, 1 << 10), Err(LokiError::Snappy));
        assert!(parse_protobuf(b"garbage", 1 << 10).is_err());
    }

    #[test]
    fn json_push_is_read() {
        let body = br#"{"streams":[{"stream":{"app":"web"},"values":[["1800000000000000000","hello",{"level":"warn"}],["x"],["1800000000000000001","two"]]}]}"#;
        let parsed = parse_json(body).unwrap();
        assert_eq!(parsed.entries.len(), 2);
        assert_eq!(parsed.entries[0].level, Some(Level::Warn));
        assert_eq!(parsed.errors.len(), 1);
        assert_eq!(parsed.errors[0].line, 2);
        assert_eq!(parse_json(b"{}"), Err(LokiError::Json));
    }

    #[test]
    fn labels_with_escapes_parse() {
        assert_eq!(
            parse_labels(r#"{a="x", b="y\"z",c = "1"}"#),
            vec![
                ("a".into(), "x".into()),
                ("b".into(), "y\"z".into()),
                ("c".into(), "1".into())
            ]
        );
        assert!(parse_labels("{broken").is_empty());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..1024)) {
            let _ = parse_protobuf(&body, 1 << 16);
            let _ = parse_json(&body);
            let _ = parse_labels(&String::from_utf8_lossy(&body));
        }
    }
}

//! Pure parsers of what shippers send. Each takes bytes and returns a [`Parsed`]: the
//! entries it could read and a [`LineError`] for each one it could not, so a bad line never
//! rejects its neighbours. None of them panics or allocates more than a bounded multiple of
//! its input.

pub mod loki;
pub mod ndjson;
pub mod syslog;

use jiff::Timestamp;

pub use crate::record::{Entry, LineError, Parsed};

/// A timestamp as shippers write it: RFC 3339 text, or a number of seconds, milliseconds,
/// microseconds or nanoseconds since the epoch (told apart by magnitude).
pub fn timestamp(value: &serde_json::Value) -> Option<Timestamp> {
    match value {
        serde_json::Value::String(text) => text
            .parse::<Timestamp>()
            .ok()
            .or_else(|| text.trim().parse::<f64>().ok().and_then(epoch_number)),
        serde_json::Value::Number(n) => n.as_f64().and_then(epoch_number),
        _ => None,
    }
}

#[allow(clippy::cast_possible_truncation)] // finite and range-checked before the cast
fn epoch_number(n: f64) -> Option<Timestamp> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let micros = if n < 1e11 {
        n * 1e6
    } else if n < 1e14 {
        n * 1e3
    } else if n < 1e17 {
        n
    } else {
        n / 1e3
    };
    if micros > 9e15 {
        return None;
    }
    Timestamp::from_microsecond(micros as i64).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_numbers_are_told_apart_by_magnitude() {
        let want = Timestamp::from_second(1_800_000_000).unwrap();
        for v in [
            serde_json::json!(1_800_000_000),
            serde_json::json!(1_800_000_000_000_u64),
            serde_json::json!(1_800_000_000_000_000_u64),
            serde_json::json!(1_800_000_000_000_000_000_u64),
            serde_json::json!("1800000000"),
            serde_json::json!("2027-01-15T08:00:00Z"),
        ] {
            let got = timestamp(&v);
            assert!(got.is_some(), "{v}");
            if !v.is_string() || v.as_str() == Some("1800000000") {
                assert_eq!(got, Some(want), "{v}");
            }
        }
        assert_eq!(timestamp(&serde_json::json!(-1)), None);
        assert_eq!(timestamp(&serde_json::json!(1e300)), None);
        assert_eq!(timestamp(&serde_json::json!("yesterday")), None);
    }
}

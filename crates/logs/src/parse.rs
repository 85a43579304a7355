//! Pure parsers of what shippers send. Each takes bytes and returns a [`Parsed`]: the
//! entries it could read and a [`LineError`] for each one it could not, so a bad line never
//! rejects its neighbours. None of them panics or allocates more than a bounded multiple of
//! its input.

pub mod loki;
pub mod ndjson;
pub mod syslog;

use jiff::Timestamp;

pub use crate::record::{Entry, LineError, Parsed};

/// Why a request body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// A `Content-Encoding` other than gzip or identity.
    #[error("unsupported Content-Encoding {0:?}: send gzip or no encoding")]
    Unsupported(String),
    /// The decoded body is larger than allowed.
    #[error("the decompressed body is larger than {0} bytes")]
    TooLarge(usize),
    /// Not valid gzip.
    #[error("the body is not valid gzip")]
    Corrupt,
}

/// The body as sent, or gunzipped when `encoding` (the `Content-Encoding` header) says
/// gzip, never more than `max` bytes once decoded (a small body may not expand without
/// bound).
pub fn decode_body<'a>(
    encoding: Option<&str>,
    body: &'a [u8],
    max: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, BodyError> {
    use std::io::Read;
    match encoding.map(str::trim) {
        None | Some("") => Ok(std::borrow::Cow::Borrowed(body)),
        Some(e) if e.eq_ignore_ascii_case("identity") => Ok(std::borrow::Cow::Borrowed(body)),
        Some(e) if e.eq_ignore_ascii_case("gzip") || e.eq_ignore_ascii_case("x-gzip") => {
            let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max));
            flate2::read::MultiGzDecoder::new(body)
                .take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|_| BodyError::Corrupt)?;
            if out.len() > max {
                return Err(BodyError::TooLarge(max));
            }
            Ok(std::borrow::Cow::Owned(out))
        }
        Some(other) => Err(BodyError::Unsupported(other.chars().take(32).collect())),
    }
}

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

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_bodies_are_decoded_within_the_limit() {
        let plain = b"{\"msg\":\"hello\"}\n".repeat(100);
        assert_eq!(
            decode_body(None, &plain, 10).unwrap().as_ref(),
            plain.as_slice()
        );
        assert_eq!(
            decode_body(Some("identity"), b"x", 10).unwrap().as_ref(),
            b"x"
        );
        let packed = gzip(&plain);
        assert_eq!(
            decode_body(Some("gzip"), &packed, plain.len())
                .unwrap()
                .as_ref(),
            plain.as_slice()
        );
        assert_eq!(
            decode_body(Some(" GZIP "), &packed, plain.len())
                .unwrap()
                .as_ref(),
            plain.as_slice()
        );
        // A bomb: 64 MiB of zeros in a few KiB stops at the limit.
        let bomb = gzip(&vec![0_u8; 64 << 20]);
        assert!(bomb.len() < 100_000);
        assert_eq!(
            decode_body(Some("gzip"), &bomb, 1 << 20),
            Err(BodyError::TooLarge(1 << 20))
        );
        assert_eq!(
            decode_body(Some("gzip"), b"not gzip", 100),
            Err(BodyError::Corrupt)
        );
        assert!(matches!(
            decode_body(Some("br"), b"x", 100),
            Err(BodyError::Unsupported(_))
        ));
    }

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

//! Scrubbing a stream of lines, one at a time, with the little state that crosses lines.
//!
//! The only finding that spans lines in a log is a PEM private key: its BEGIN line is
//! replaced by the scan, and the body lines after it (base64, at most [`MAX_KEY_LINES`]) are
//! replaced whole until its END line. Everything else is per line, so memory is bounded by
//! the longest line the caller passes in.

use std::borrow::Cow;

use crate::{Counts, Scrubber};

/// Longest PEM body followed across lines: a 16384-bit RSA key is under 200 lines.
pub const MAX_KEY_LINES: u32 = 256;

const KEY_TAG: &str = "[PRIVATE_KEY]";

/// How each line is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineFormat {
    /// Free text.
    #[default]
    Text,
    /// One JSON value per line; a line that is not JSON is scrubbed as text.
    Json,
}

/// Scrubs lines in order. Get one from [`Scrubber::lines`]; use one per stream.
#[derive(Debug)]
pub struct LineScrubber<'s> {
    scrubber: &'s Scrubber,
    format: LineFormat,
    /// Body lines of an open private key seen so far, when one is open.
    open_key: Option<u32>,
}

impl<'s> LineScrubber<'s> {
    pub(crate) fn new(scrubber: &'s Scrubber, format: LineFormat) -> Self {
        Self {
            scrubber,
            format,
            open_key: None,
        }
    }

    /// Scrubs one line, given without its line terminator.
    pub fn scrub_line<'a>(&mut self, line: &'a str, counts: &mut Counts) -> Cow<'a, str> {
        if let Some(seen) = self.open_key {
            if let Some(end) = key_end(line) {
                self.open_key = None;
                let rest = line.get(end..).unwrap_or("");
                return Cow::Owned(format!("{KEY_TAG}{}", self.scan(rest, counts)));
            }
            if seen < MAX_KEY_LINES && is_pem_body(line) {
                self.open_key = Some(seen + 1);
                return Cow::Borrowed(KEY_TAG);
            }
            self.open_key = None;
        }
        let scrubbed = self.scan(line, counts);
        if matches!(scrubbed, Cow::Owned(_)) && opens_key(line) {
            self.open_key = Some(0);
        }
        scrubbed
    }

    /// Like [`Scrubber::clean_prefix`], for this stream: none while a private key block is
    /// open or for JSON lines (whose personal fields are redacted by name, whatever they hold).
    pub fn clean_prefix(&self, bytes: &[u8]) -> usize {
        if self.open_key.is_some() || self.format == LineFormat::Json {
            return 0;
        }
        self.scrubber.clean_prefix(bytes)
    }

    fn scan<'a>(&self, text: &'a str, counts: &mut Counts) -> Cow<'a, str> {
        match self.format {
            LineFormat::Text => self.scrubber.scrub(text, counts),
            LineFormat::Json => self.scrubber.scrub_json_line(text, counts),
        }
    }
}

/// The line has a private key BEGIN marker with no END after it.
fn opens_key(line: &str) -> bool {
    line.rfind("-----BEGIN ").is_some_and(|begin| {
        let rest = line.get(begin..).unwrap_or("");
        rest.contains("PRIVATE KEY-----") && !rest.contains("-----END ")
    })
}

/// Where the END marker line of a key finishes, if this line has one.
fn key_end(line: &str) -> Option<usize> {
    let start = line.find("-----END ")?;
    let tail = line.get(start..)?;
    Some(match tail.find("KEY-----") {
        Some(at) => start + at + "KEY-----".len(),
        None => line.len(),
    })
}

/// A base64 line of a PEM body, or one of its RFC 1421 headers.
fn is_pem_body(line: &str) -> bool {
    let line = line.trim_end_matches('\r');
    line.starts_with("Proc-Type:")
        || line.starts_with("DEK-Info:")
        || (line.len() <= 80
            && line
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Detector, ScrubConfig};

    #[test]
    fn private_key_body_lines_are_replaced_until_the_end_line() {
        let scrubber = Scrubber::new(&ScrubConfig::default(), None).unwrap();
        let mut lines = scrubber.lines(LineFormat::Text);
        let mut counts = Counts::new();
        let input = [
            "config loaded: -----BEGIN RSA PRIVATE KEY-----",
            "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
            "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK",
            "-----END RSA PRIVATE KEY----- done",
            "next line 42",
        ];
        let out: Vec<String> = input
            .iter()
            .map(|l| lines.scrub_line(l, &mut counts).into_owned())
            .collect();
        assert_eq!(
            out,
            vec![
                "config loaded: [PRIVATE_KEY]",
                "[PRIVATE_KEY]",
                "[PRIVATE_KEY]",
                "[PRIVATE_KEY] done",
                "next line 42",
            ]
        );
        assert_eq!(counts.of(&Detector::PrivateKey), 1);
    }

    #[test]
    fn a_prose_line_closes_an_unterminated_key() {
        let scrubber = Scrubber::new(&ScrubConfig::default(), None).unwrap();
        let mut lines = scrubber.lines(LineFormat::Text);
        let mut counts = Counts::new();
        lines.scrub_line("-----BEGIN PRIVATE KEY-----", &mut counts);
        assert_eq!(
            lines.scrub_line("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", &mut counts),
            KEY_TAG
        );
        assert_eq!(
            lines.scrub_line("GET /health 200", &mut counts),
            "GET /health 200"
        );
    }
}

//! Session recordings in asciicast v2 (one JSON header line, then `[time, code, data]`
//! event lines; <https://docs.asciinema.org/manual/asciicast/v2/>), scrubbed before they
//! are written and sealed line by line under the master key at rest.
//!
//! Terminal output is scrubbed a line at a time: output is held until a newline (or
//! [`HOLD_MAX`] bytes, or the user typing) so that an address split across two reads is
//! still seen whole. Input is kept, also scrubbed by line, as one `i` event per line typed.
//! Each stored line is sealed with the context `recording:ID:N`, so lines cannot be
//! reordered, dropped from the middle or moved to another recording unnoticed.

use std::io::Write;
use std::path::{Path, PathBuf};

use rampart_identity::sealed::MasterKey;

/// The most output held back waiting for a newline.
pub const HOLD_MAX: usize = 8 * 1024;

/// The most bytes one recording may hold; past it, output is no longer recorded and a
/// marker says so (the session itself goes on).
pub const RECORDING_MAX: u64 = 512 * 1024 * 1024;

/// The asciicast v2 text of a session, built from the bytes that flowed (pure).
#[derive(Debug)]
pub struct Cast {
    out_hold: Vec<u8>,
    in_hold: Vec<u8>,
}

impl Cast {
    /// The header line for a terminal of `width`×`height` started at `unix_seconds`. A
    /// client without a terminal of its own (`ssh -tt` from a script) reports 0×0: that is
    /// recorded as 80×24, the size players assume, not as one cell.
    pub fn header(width: u32, height: u32, unix_seconds: i64, term: &str) -> String {
        let size = |n: u32, unknown: u32| if n == 0 { unknown } else { n.min(1000) };
        serde_json::json!({
            "version": 2,
            "width": size(width, 80),
            "height": size(height, 24),
            "timestamp": unix_seconds,
            "env": {"TERM": term.chars().take(64).collect::<String>()},
        })
        .to_string()
    }

    /// An empty cast.
    pub fn new() -> Self {
        Self {
            out_hold: Vec::new(),
            in_hold: Vec::new(),
        }
    }

    /// Terminal output at `t` seconds: the event lines that can be written now.
    pub fn output(&mut self, t: f64, bytes: &[u8]) -> Vec<String> {
        self.out_hold.extend_from_slice(bytes);
        let cut = if self.out_hold.len() >= HOLD_MAX {
            self.out_hold.len()
        } else {
            match self.out_hold.iter().rposition(|&b| b == b'\n') {
                Some(at) => at + 1,
                None => return Vec::new(),
            }
        };
        let ready: Vec<u8> = self.out_hold.drain(..cut).collect();
        event(t, "o", &ready).into_iter().collect()
    }

    /// Input typed at `t`: held output is written first (the user saw it), then each
    /// complete line typed.
    pub fn input(&mut self, t: f64, bytes: &[u8]) -> Vec<String> {
        let mut lines = self.flush_output(t);
        self.in_hold.extend_from_slice(bytes);
        let cut = if self.in_hold.len() >= HOLD_MAX {
            self.in_hold.len()
        } else {
            match self.in_hold.iter().rposition(|&b| b == b'\r' || b == b'\n') {
                Some(at) => at + 1,
                None => return lines,
            }
        };
        let ready: Vec<u8> = self.in_hold.drain(..cut).collect();
        lines.extend(event(t, "i", &ready));
        lines
    }

    /// A terminal resize.
    pub fn resize(&mut self, t: f64, width: u32, height: u32) -> Vec<String> {
        let mut lines = self.flush_output(t);
        lines.push(serde_json::json!([round(t), "r", format!("{width}x{height}")]).to_string());
        lines
    }

    /// Everything still held, at the end of the session.
    pub fn finish(&mut self, t: f64) -> Vec<String> {
        let mut lines = self.flush_output(t);
        let rest: Vec<u8> = std::mem::take(&mut self.in_hold);
        lines.extend(event(t, "i", &rest));
        lines
    }

    fn flush_output(&mut self, t: f64) -> Vec<String> {
        let held: Vec<u8> = std::mem::take(&mut self.out_hold);
        event(t, "o", &held).into_iter().collect()
    }
}

impl Default for Cast {
    fn default() -> Self {
        Self::new()
    }
}

fn event(t: f64, code: &str, bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(bytes);
    let clean = rampart_scrub::scrub_default(&text);
    Some(serde_json::json!([round(t), code, clean]).to_string())
}

fn round(t: f64) -> f64 {
    (t * 1_000_000.0).round() / 1_000_000.0
}

/// A recording could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The file system failed.
    #[error("recording file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A line does not open under the master key (altered, reordered, or another key).
    #[error("recording line {0} does not open: altered or sealed under another key")]
    Sealed(usize),
    /// The id is not a recording id.
    #[error("not a session id")]
    BadId,
}

/// Where a session's recording lives.
pub fn path_of(dir: &Path, session: &str) -> Result<PathBuf, RecordingError> {
    if session.is_empty()
        || session.len() > 64
        || !session.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
    {
        return Err(RecordingError::BadId);
    }
    Ok(dir.join(format!("{session}.cast.sealed")))
}

/// Writes sealed lines to a recording file.
#[derive(Debug)]
pub struct SealedWriter {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    session: String,
    next: u64,
    written: u64,
    full: bool,
}

impl SealedWriter {
    /// Creates the file for a new session (never overwrites one).
    pub fn create(dir: &Path, session: &str) -> Result<Self, RecordingError> {
        let path = path_of(dir, session)?;
        let io = |source| RecordingError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io)?;
        Ok(Self {
            file: std::io::BufWriter::new(file),
            path,
            session: session.to_owned(),
            next: 0,
            written: 0,
            full: false,
        })
    }

    /// Seals and appends lines.
    pub fn write_lines(&mut self, key: &MasterKey, lines: &[String]) -> Result<(), RecordingError> {
        for line in lines {
            if self.full {
                return Ok(());
            }
            let line = if self.written + line.len() as u64 > RECORDING_MAX {
                self.full = true;
                serde_json::json!([0, "m", "recording limit reached"]).to_string()
            } else {
                line.clone()
            };
            let sealed = key
                .seal(
                    &format!("recording:{}:{}", self.session, self.next),
                    line.as_bytes(),
                )
                .map_err(|_| RecordingError::Sealed(self.next as usize))?;
            self.next += 1;
            self.written += line.len() as u64;
            writeln!(self.file, "{sealed}").map_err(|source| RecordingError::Io {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) -> Result<(), RecordingError> {
        self.file.flush().map_err(|source| RecordingError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Reads a recording back as asciicast v2 text.
pub fn open(dir: &Path, session: &str, key: &MasterKey) -> Result<String, RecordingError> {
    let path = path_of(dir, session)?;
    let text = std::fs::read_to_string(&path).map_err(|source| RecordingError::Io {
        path: path.clone(),
        source,
    })?;
    let mut out = String::with_capacity(text.len() / 2);
    for (n, line) in text.lines().enumerate() {
        let plain = key
            .open(&format!("recording:{session}:{n}"), line)
            .map_err(|_| RecordingError::Sealed(n))?;
        out.push_str(&String::from_utf8_lossy(plain.expose_secret()));
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_scrubbed_even_when_an_address_is_split_across_reads() {
        let mut cast = Cast::new();
        assert!(cast.output(0.1, b"mail: alice@exa").is_empty());
        let lines = cast.output(0.2, b"mple.com\r\n$ ");
        assert_eq!(lines.len(), 1);
        assert!(!lines[0].contains("alice@example.com"), "{}", lines[0]);
        let rest = cast.finish(0.3);
        assert_eq!(rest, vec![r#"[0.3,"o","$ "]"#.to_string()]);
    }

    #[test]
    fn input_is_kept_per_line_scrubbed_and_flushes_held_output_first() {
        let mut cast = Cast::new();
        assert!(cast.output(0.0, b"$ ").is_empty());
        assert_eq!(cast.input(0.5, b"l"), vec![r#"[0.5,"o","$ "]"#.to_string()]);
        let lines = cast.input(0.6, b"s bob@example.org\r");
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with(r#"[0.6,"i","ls "#), "{}", lines[0]);
        assert!(!lines[0].contains("bob@example.org"));
    }

    #[test]
    fn a_long_line_without_newline_is_written_once_the_hold_is_full() {
        let mut cast = Cast::new();
        let lines = cast.output(1.0, &vec![b'x'; HOLD_MAX]);
        assert_eq!(lines.len(), 1);
    }

    #[test]
    fn header_is_asciicast_v2() {
        let h: serde_json::Value =
            serde_json::from_str(&Cast::header(80, 24, 1_800_000_000, "xterm")).unwrap();
        assert_eq!(h["version"], 2);
        assert_eq!(h["width"], 80);
        assert_eq!(h["env"]["TERM"], "xterm");
    }

    #[test]
    fn an_unknown_terminal_size_is_recorded_as_80_by_24_and_a_huge_one_is_capped() {
        let h: serde_json::Value = serde_json::from_str(&Cast::header(0, 0, 0, "dumb")).unwrap();
        assert_eq!(
            (h["width"].as_u64(), h["height"].as_u64()),
            (Some(80), Some(24))
        );
        let h: serde_json::Value =
            serde_json::from_str(&Cast::header(5000, 3, 0, "xterm")).unwrap();
        assert_eq!(
            (h["width"].as_u64(), h["height"].as_u64()),
            (Some(1000), Some(3))
        );
    }

    #[test]
    fn sealed_recordings_round_trip_and_a_tampered_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::from_bytes(&[7u8; 32]).unwrap();
        let id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        let mut w = SealedWriter::create(dir.path(), id).unwrap();
        let lines = vec![
            Cast::header(80, 24, 0, "xterm"),
            r#"[0.1,"o","hi"]"#.to_string(),
        ];
        w.write_lines(&key, &lines).unwrap();
        w.flush().unwrap();
        let raw = std::fs::read_to_string(path_of(dir.path(), id).unwrap()).unwrap();
        assert!(!raw.contains("hi\""));
        assert_eq!(open(dir.path(), id, &key).unwrap(), lines.join("\n") + "\n");
        let swapped: Vec<&str> = raw.lines().rev().collect();
        std::fs::write(path_of(dir.path(), id).unwrap(), swapped.join("\n")).unwrap();
        assert!(matches!(
            open(dir.path(), id, &key),
            Err(RecordingError::Sealed(0))
        ));
        assert!(matches!(
            path_of(dir.path(), "../x"),
            Err(RecordingError::BadId)
        ));
    }
}

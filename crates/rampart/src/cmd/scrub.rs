//! `rampart scrub`: scrubs personal data from a file or standard input (LOG-2).
//!
//! Streams line by line with a bounded line length, so memory does not depend on the input
//! size. A line longer than [`MAX_LINE_BYTES`] keeps its first part, scrubbed and cut at a
//! space near the limit so that no token is split, followed by ` [TRUNCATED]`; the rest of
//! that line is dropped unread into memory, because half of an email address or a card
//! number split across two chunks would no longer be recognised.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use rampart_scrub::{
    Counts, LineFormat, MIN_KEY_BYTES, PseudonymKey, ReplacementMode, ScrubConfig, Scrubber,
};

/// Longest line scrubbed whole.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Environment variable holding the pseudonym key, in hex.
const KEY_ENV: &str = "RAMPART_SCRUB_KEY";

/// Marker written in place of the dropped end of an over-long line.
const TRUNCATED: &str = " [TRUNCATED]";

/// How far back from the limit a cut looks for a space.
const CUT_WINDOW: usize = 4096;

/// `sysexits.h`: bad usage or configuration, missing input, I/O failure.
const EX_USAGE: u8 = 64;
const EX_NOINPUT: u8 = 66;
const EX_IOERR: u8 = 74;

/// Arguments of `rampart scrub`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// File to scrub; standard input when absent.
    file: Option<PathBuf>,
    /// Treat each line as JSON: values of personal fields are replaced whole.
    #[arg(long)]
    json: bool,
    /// Print how many findings each detector replaced to standard error.
    #[arg(long)]
    stats: bool,
    /// Replace findings with a type tag (`[EMAIL]`) or a keyed pseudonym (`[EMAIL:3f9a1c0d]`).
    #[arg(long, value_enum, default_value_t = Mode::Tag)]
    mode: Mode,
    /// File holding the pseudonym key in hex (at least 16 bytes); otherwise the
    /// RAMPART_SCRUB_KEY environment variable is used.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
}

/// Replacement mode on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Tag,
    Pseudonym,
}

/// Runs `rampart scrub`.
pub fn run(args: Args) -> ExitCode {
    let scrubber = match build_scrubber(&args) {
        Ok(scrubber) => scrubber,
        Err(message) => {
            eprintln!("rampart scrub: {message}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let input: Box<dyn BufRead> = match &args.file {
        None => Box::new(BufReader::with_capacity(1 << 16, io::stdin().lock())),
        Some(path) => match File::open(path) {
            Ok(file) => Box::new(BufReader::with_capacity(1 << 16, file)),
            Err(e) => {
                eprintln!("rampart scrub: cannot open {}: {e}", path.display());
                return ExitCode::from(EX_NOINPUT);
            }
        },
    };
    let format = if args.json {
        LineFormat::Json
    } else {
        LineFormat::Text
    };
    let mut counts = Counts::new();
    let output = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let result = scrub_stream(&scrubber, format, input, output, &mut counts);
    if args.stats {
        print_stats(&counts);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`| head`): not an error of ours.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rampart scrub: {e}");
            ExitCode::from(EX_IOERR)
        }
    }
}

fn build_scrubber(args: &Args) -> Result<Scrubber, String> {
    let (mode, key) = match args.mode {
        Mode::Tag => (ReplacementMode::Tag, None),
        Mode::Pseudonym => (ReplacementMode::Pseudonym, Some(read_key(args)?)),
    };
    let config = ScrubConfig {
        mode,
        ..ScrubConfig::default()
    };
    Scrubber::new(&config, key).map_err(|e| e.to_string())
}

/// The key from `--key-file`, else from the environment. Messages never echo key material.
fn read_key(args: &Args) -> Result<PseudonymKey, String> {
    let hex = match &args.key_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?,
        None => std::env::var(KEY_ENV).map_err(|_| {
            format!(
                "--mode pseudonym needs a key: --key-file PATH or {KEY_ENV} \
                 (hex, at least {MIN_KEY_BYTES} bytes)"
            )
        })?,
    };
    PseudonymKey::from_hex(&hex).map_err(|e| e.to_string())
}

fn scrub_stream(
    scrubber: &Scrubber,
    format: LineFormat,
    mut input: impl BufRead,
    mut output: impl Write,
    counts: &mut Counts,
) -> io::Result<()> {
    let mut lines = scrubber.lines(format);
    let mut buf = Vec::with_capacity(1 << 12);
    loop {
        // Whole clean lines go straight from the reader's buffer to the output. Only the
        // first MAX_LINE_BYTES are looked at, so no line copied here needs cutting.
        let available = match input.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let window = available.get(..MAX_LINE_BYTES).unwrap_or(available);
        let clean = lines.clean_prefix(window);
        if clean > 0 {
            output.write_all(available.get(..clean).unwrap_or(&[]))?;
            input.consume(clean);
            continue;
        }
        // The next line may hold something (or is incomplete, or not UTF-8): one line the
        // careful way.
        let Some(read) = read_bounded_line(&mut input, &mut buf)? else {
            break;
        };
        let mut body: &[u8] = &buf;
        let mut ending: &[u8] = b"";
        if read.newline {
            let cut = body
                .len()
                .saturating_sub(if body.ends_with(b"\r\n") { 2 } else { 1 });
            (body, ending) = body.split_at(cut);
        }
        if read.truncated {
            body = cut_at_space(body);
        }
        // Valid UTF-8 (nearly every line) is checked by the fast validator and borrowed;
        // `from_utf8_lossy` walks the bytes several times slower, so it only sees the rest.
        let text = match std::str::from_utf8(body) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(body),
        };
        let scrubbed = lines.scrub_line(&text, counts);
        output.write_all(scrubbed.as_bytes())?;
        if read.truncated {
            output.write_all(TRUNCATED.as_bytes())?;
            ending = b"\n";
        }
        output.write_all(ending)?;
    }
    output.flush()
}

/// What [`read_bounded_line`] read.
#[derive(Debug, Clone, Copy)]
struct LineRead {
    /// The line ended with `\n` (kept in the buffer).
    newline: bool,
    /// The line was longer than [`MAX_LINE_BYTES`]; the buffer holds its beginning.
    truncated: bool,
}

/// Reads one line into `buf`, keeping at most [`MAX_LINE_BYTES`] of it and discarding the
/// rest without buffering it. `None` at end of input.
fn read_bounded_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Option<LineRead>> {
    buf.clear();
    let mut seen_any = false;
    let mut truncated = false;
    loop {
        let available = match input.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            let read = LineRead {
                newline: false,
                truncated,
            };
            return Ok(seen_any.then_some(read));
        }
        seen_any = true;
        let newline_at = memchr::memchr(b'\n', available);
        let chunk_len = newline_at.map_or(available.len(), |i| i + 1);
        let room = (MAX_LINE_BYTES + 2).saturating_sub(buf.len());
        let keep = chunk_len.min(room);
        buf.extend_from_slice(available.get(..keep).unwrap_or(&[]));
        input.consume(chunk_len);
        if keep < chunk_len || buf.len() > MAX_LINE_BYTES + 1 {
            truncated = true;
        }
        if newline_at.is_some() {
            if truncated {
                buf.truncate(MAX_LINE_BYTES);
            }
            let newline = !truncated;
            return Ok(Some(LineRead { newline, truncated }));
        }
    }
}

/// The start of an over-long line, cut after its last space in the final [`CUT_WINDOW`]
/// bytes (or at the limit when there is none).
fn cut_at_space(body: &[u8]) -> &[u8] {
    let body = body.get(..MAX_LINE_BYTES.min(body.len())).unwrap_or(body);
    let window_start = body.len().saturating_sub(CUT_WINDOW);
    let space = body
        .get(window_start..)
        .and_then(|w| w.iter().rposition(|b| b.is_ascii_whitespace()));
    match space {
        Some(at) => body.get(..window_start + at).unwrap_or(body),
        None => body,
    }
}

fn print_stats(counts: &Counts) {
    let mut stderr = io::stderr().lock();
    let _ = writeln!(stderr, "{:<16} {:>12}", "detector", "replaced");
    for (detector, n) in counts.iter() {
        let _ = writeln!(stderr, "{:<16} {n:>12}", detector.name());
    }
    let _ = writeln!(stderr, "{:<16} {:>12}", "total", counts.total());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn run_on(input: &[u8]) -> (String, Counts) {
        let scrubber = Scrubber::new(&ScrubConfig::default(), None).unwrap();
        let mut out = Vec::new();
        let mut counts = Counts::new();
        scrub_stream(&scrubber, LineFormat::Text, input, &mut out, &mut counts).unwrap();
        (String::from_utf8(out).unwrap(), counts)
    }

    #[test]
    fn lines_and_their_endings_are_kept() {
        let (out, counts) = run_on(b"a alice@example.com\r\nb\nlast 10.1.2.3");
        assert_eq!(out, "a [EMAIL]\r\nb\nlast [IP]");
        assert_eq!(counts.total(), 2);
    }

    #[test]
    fn over_long_line_is_cut_at_a_space_and_marked() {
        let mut input = "word ".repeat(MAX_LINE_BYTES / 5 + 100).into_bytes();
        input.extend_from_slice(b"bob@example.com\nnext\n");
        let (out, _) = run_on(&input);
        let mut out_lines = out.lines();
        let first = out_lines.next().unwrap();
        assert!(first.len() <= MAX_LINE_BYTES + TRUNCATED.len());
        assert!(first.ends_with("word [TRUNCATED]"));
        assert_eq!(out_lines.next(), Some("next"));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let (out, _) = run_on(b"caf\xe9 bob@example.com\n");
        assert_eq!(out, "caf\u{fffd} [EMAIL]\n");
    }
}

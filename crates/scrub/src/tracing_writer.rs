//! A `tracing_subscriber` writer that scrubs rampart's own log output (feature `tracing`).
//!
//! `tracing_subscriber::fmt` formats each event into one buffer and writes it through a
//! writer made for that event; this wrapper holds bytes until a newline, scrubs each
//! complete line and passes it on, and scrubs what is left when the writer is flushed or
//! dropped. A line is therefore never split across two scans.

use std::io::{self, Write};
use std::sync::Arc;

use tracing_subscriber::fmt::MakeWriter;

use crate::{Counts, Scrubber};

/// Wraps a `MakeWriter` so that every line written through it is scrubbed first.
///
/// ```
/// # use std::sync::Arc;
/// # use rampart_scrub::{Scrubber, ScrubConfig, ScrubMakeWriter};
/// let scrubber = Arc::new(Scrubber::new(&ScrubConfig::default(), None)?);
/// let subscriber = tracing_subscriber::fmt()
///     .with_writer(ScrubMakeWriter::new(scrubber, std::io::stderr))
///     .finish();
/// # drop(subscriber);
/// # Ok::<(), rampart_scrub::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ScrubMakeWriter<M> {
    scrubber: Arc<Scrubber>,
    inner: M,
}

impl<M> ScrubMakeWriter<M> {
    /// Scrubs what `inner`'s writers receive.
    pub fn new(scrubber: Arc<Scrubber>, inner: M) -> Self {
        Self { scrubber, inner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for ScrubMakeWriter<M> {
    type Writer = ScrubWriter<'a, M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubWriter::new(&self.scrubber, self.inner.make_writer())
    }

    fn make_writer_for(&'a self, meta: &tracing_core::Metadata<'_>) -> Self::Writer {
        ScrubWriter::new(&self.scrubber, self.inner.make_writer_for(meta))
    }
}

/// An `io::Write` that scrubs each line before passing it to the inner writer.
#[derive(Debug)]
pub struct ScrubWriter<'s, W: Write> {
    scrubber: &'s Scrubber,
    inner: W,
    pending: Vec<u8>,
}

impl<'s, W: Write> ScrubWriter<'s, W> {
    /// Scrubs what is written to `inner`.
    pub fn new(scrubber: &'s Scrubber, inner: W) -> Self {
        Self {
            scrubber,
            inner,
            pending: Vec::new(),
        }
    }

    fn write_pending(&mut self, upto: usize) -> io::Result<()> {
        let line: Vec<u8> = self.pending.drain(..upto).collect();
        let scrubbed = self.scrubber.scrub_bytes(&line, &mut Counts::new());
        self.inner.write_all(scrubbed.as_bytes())
    }
}

impl<W: Write> Write for ScrubWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(newline) = self.pending.iter().position(|b| *b == b'\n') {
            self.write_pending(newline + 1)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.write_pending(self.pending.len())?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for ScrubWriter<'_, W> {
    fn drop(&mut self) {
        // Drop cannot report an error; a log line that cannot be written is lost either way.
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Mutex;

    use super::*;
    use crate::ScrubConfig;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn tracing_event_with_an_email_is_written_as_a_tag() {
        let scrubber = Arc::new(Scrubber::new(&ScrubConfig::default(), None).unwrap());
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(ScrubMakeWriter::new(scrubber, captured.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                user = "alice.martin+billing@example.com",
                "password reset sent"
            );
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("password reset sent"), "{text}");
        assert!(text.contains("[EMAIL]"), "{text}");
        assert!(!text.contains("alice.martin"), "{text}");
    }
}

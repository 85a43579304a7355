//! Row counts read off a `pg_dump -Fc -Z0` stream as it passes, so that a backup does not
//! scan every table a second time to count its rows.
//!
//! The custom archive format (PostgreSQL's `pg_backup_archiver.c` and `pg_backup_custom.c`):
//! a header, the table of contents (one entry per object: dump id, tag, description,
//! namespace, …), then data blocks. A table's block is `1`, its dump id, then chunks of
//! `length, bytes` ended by a zero length; the bytes are `COPY … TO STDOUT` text, one line
//! per row (a newline inside a value is written `\n`). Integers are a sign byte and
//! `int_size` little-endian bytes; strings are an integer length (-1: null) and the bytes.
//!
//! The counter is fed every byte of the stream ([`ArchiveCounter::feed`]) and never fails
//! the backup: anything it does not understand (another format version, compression, a
//! table of contents over [`MAX_TOC`]) makes it give up, and the caller counts in the
//! dump's snapshot instead.

use std::collections::BTreeMap;

/// Bytes kept from the end of a table's data: enough for `\n\\.` and blank lines.
const TAIL: usize = 8;

/// Largest header and table of contents kept while waiting for its end.
pub const MAX_TOC: usize = 64 << 20;

/// The archive versions this reads: 1.12 (PostgreSQL 11) to 1.16 (17).
const OLDEST: u32 = version(1, 12, 0);
const NEWEST: u32 = version(1, 16, 0);

const fn version(major: u32, minor: u32, rev: u32) -> u32 {
    (major * 256 + minor) * 256 + rev
}

/// Rows per table, keyed by (schema, table) as the catalog spells them.
pub type Counts = BTreeMap<(String, String), i64>;

/// Counts COPY lines per table in a custom-format archive stream.
#[derive(Debug)]
pub struct ArchiveCounter {
    state: State,
    /// The header and table of contents so far, or the bytes of an integer being read.
    pending: Vec<u8>,
    /// Try to parse the table of contents again once this many bytes are pending.
    next_try: usize,
    int_size: usize,
    /// Dump id of each `TABLE DATA` entry → (schema, table).
    tables: BTreeMap<i64, (String, String)>,
    counts: Counts,
    /// The table whose data block is being read.
    current: Option<(String, String)>,
    /// The last bytes of that block, to recognize its end-of-data marker.
    tail: Vec<u8>,
    failed: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Toc,
    BlockType,
    BlockId { blobs: bool },
    ChunkLen { blobs: bool },
    Chunk { remaining: u64, blobs: bool },
    BlobOid,
    Failed,
}

impl Default for ArchiveCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl ArchiveCounter {
    /// A counter at the start of a stream.
    pub fn new() -> Self {
        Self {
            state: State::Toc,
            pending: Vec::new(),
            next_try: 4096,
            int_size: 4,
            tables: BTreeMap::new(),
            counts: BTreeMap::new(),
            current: None,
            tail: Vec::new(),
            failed: None,
        }
    }

    /// Takes the next bytes of the stream.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.state {
                State::Failed => return,
                State::Toc => {
                    self.pending.extend_from_slice(data);
                    data = &[];
                    if self.pending.len() >= self.next_try {
                        self.try_toc();
                    }
                }
                State::Chunk { remaining, blobs } => {
                    let take = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    let (now, rest) = data.split_at(take);
                    if !blobs && let Some(table) = &self.current {
                        let lines = i64::try_from(memchr::memchr_iter(b'\n', now).count())
                            .unwrap_or(i64::MAX);
                        if let Some(n) = self.counts.get_mut(table) {
                            *n = n.saturating_add(lines);
                        }
                        self.tail.extend_from_slice(
                            now.get(now.len().saturating_sub(TAIL)..)
                                .unwrap_or_default(),
                        );
                        let cut = self.tail.len().saturating_sub(TAIL);
                        self.tail.drain(..cut);
                    }
                    data = rest;
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        State::ChunkLen { blobs }
                    } else {
                        State::Chunk {
                            remaining: left,
                            blobs,
                        }
                    };
                }
                State::BlockType => {
                    let (kind, rest) = data.split_at(1);
                    data = rest;
                    self.state = match kind.first() {
                        Some(1) => State::BlockId { blobs: false },
                        Some(3) => State::BlockId { blobs: true },
                        other => {
                            self.fail(format!("unknown data block type {other:?}"));
                            return;
                        }
                    };
                }
                State::BlockId { .. } | State::ChunkLen { .. } | State::BlobOid => {
                    let need = 1 + self.int_size - self.pending.len();
                    let take = need.min(data.len());
                    let (now, rest) = data.split_at(take);
                    self.pending.extend_from_slice(now);
                    data = rest;
                    if self.pending.len() == 1 + self.int_size {
                        let value = decode_int(&self.pending);
                        self.pending.clear();
                        self.on_int(value);
                    }
                }
            }
        }
    }

    /// The counts once the stream has ended, or why they are not known.
    pub fn finish(mut self) -> Result<Counts, String> {
        if self.state == State::Toc {
            self.try_toc();
        }
        if let Some(why) = self.failed.take() {
            return Err(why);
        }
        match self.state {
            State::BlockType => Ok(self.counts),
            State::Toc => Err("the stream ended inside its table of contents".into()),
            _ => Err("the stream ended inside a data block".into()),
        }
    }

    fn on_int(&mut self, value: i64) {
        self.state = match self.state {
            State::BlockId { blobs: false } => {
                self.current = self.tables.get(&value).cloned();
                if let Some(table) = &self.current {
                    self.counts.entry(table.clone()).or_insert(0);
                }
                State::ChunkLen { blobs: false }
            }
            State::BlockId { blobs: true } => {
                self.current = None;
                State::BlobOid
            }
            State::BlobOid if value == 0 => State::BlockType,
            State::BlobOid => State::ChunkLen { blobs: true },
            State::ChunkLen { blobs } if value == 0 => {
                if blobs {
                    State::BlobOid
                } else {
                    self.end_of_table();
                    State::BlockType
                }
            }
            State::ChunkLen { blobs } => match u64::try_from(value) {
                Ok(remaining) => State::Chunk { remaining, blobs },
                Err(_) => {
                    self.fail(format!("negative chunk length {value}"));
                    return;
                }
            },
            other => other,
        };
    }

    /// pg_dump ends a table's COPY data with the line `\.` and blank lines: those are not
    /// rows. (A row is never `\.`: COPY writes a backslash in a value as `\\`.)
    fn end_of_table(&mut self) {
        if let Some(table) = self.current.take() {
            let tail = std::mem::take(&mut self.tail);
            let blank = tail.iter().rev().take_while(|b| **b == b'\n').count();
            let body = tail.get(..tail.len() - blank).unwrap_or_default();
            let marker = body.ends_with(b"\\.")
                && (body.len() == 2 || body.get(body.len() - 3) == Some(&b'\n'));
            if marker
                && blank > 0
                && let Some(n) = self.counts.get_mut(&table)
            {
                *n -= i64::try_from(blank).unwrap_or(0);
            }
        }
    }

    fn fail(&mut self, why: String) {
        self.failed.get_or_insert(why);
        self.state = State::Failed;
        self.pending = Vec::new();
    }

    /// Parses the header and table of contents if all of it is here.
    fn try_toc(&mut self) {
        match parse_toc(&self.pending) {
            Ok(Some(toc)) => {
                self.int_size = toc.int_size;
                self.tables = toc.tables;
                let rest = self.pending.split_off(toc.consumed);
                self.pending.clear();
                self.state = State::BlockType;
                self.feed(&rest);
            }
            Ok(None) if self.pending.len() > MAX_TOC => {
                self.fail("the table of contents is larger than the limit".into());
            }
            Ok(None) => self.next_try = self.pending.len().saturating_mul(2).min(MAX_TOC + 1),
            Err(why) => self.fail(why),
        }
    }
}

fn decode_int(bytes: &[u8]) -> i64 {
    let Some((sign, digits)) = bytes.split_first() else {
        return 0;
    };
    let mut value: i64 = 0;
    for (i, b) in digits.iter().enumerate().take(8) {
        value |= i64::from(*b) << (8 * i);
    }
    if *sign == 0 {
        value
    } else {
        value.wrapping_neg()
    }
}

/// What the table of contents says.
struct Toc {
    consumed: usize,
    int_size: usize,
    tables: BTreeMap<i64, (String, String)>,
}

/// A cursor over the pending bytes; `None` from a read means "not here yet".
struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
    int_size: usize,
}

impl Cursor<'_> {
    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.data.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    fn byte(&mut self) -> Option<u8> {
        self.bytes(1)?.first().copied()
    }

    fn int(&mut self) -> Option<i64> {
        let n = 1 + self.int_size;
        self.bytes(n).map(decode_int)
    }

    /// A string; `Some(None)` is a null.
    fn string(&mut self) -> Option<Option<Vec<u8>>> {
        let len = self.int()?;
        if len < 0 {
            return Some(None);
        }
        let len = usize::try_from(len).ok()?;
        self.bytes(len).map(|b| Some(b.to_vec()))
    }
}

/// Parses the header and table of contents: `Ok(None)` when more bytes are needed, `Err`
/// for an archive this does not read.
fn parse_toc(data: &[u8]) -> Result<Option<Toc>, String> {
    let mut c = Cursor {
        data,
        at: 0,
        int_size: 4,
    };
    macro_rules! need {
        ($e:expr) => {
            match $e {
                Some(v) => v,
                None => return Ok(None),
            }
        };
    }
    if need!(c.bytes(5)) != b"PGDMP" {
        return Err("not a custom-format archive".into());
    }
    let (major, minor, rev) = (need!(c.byte()), need!(c.byte()), need!(c.byte()));
    let v = version(u32::from(major), u32::from(minor), u32::from(rev));
    if !(OLDEST..=NEWEST).contains(&v) {
        return Err(format!(
            "archive version {major}.{minor}.{rev} is not known"
        ));
    }
    let int_size = usize::from(need!(c.byte()));
    if !(1..=8).contains(&int_size) {
        return Err(format!("integer size {int_size}"));
    }
    c.int_size = int_size;
    let _offset_size = need!(c.byte());
    if need!(c.byte()) != 1 {
        return Err("not the custom format".into());
    }
    let compressed = if v >= version(1, 15, 0) {
        need!(c.byte()) != 0
    } else {
        need!(c.int()) != 0
    };
    if compressed {
        return Err("the archive is compressed (rampart dumps with -Z0)".into());
    }
    for _ in 0..7 {
        need!(c.int());
    }
    need!(c.string()); // database name
    need!(c.string()); // server version
    need!(c.string()); // pg_dump version
    let count = need!(c.int());
    if !(0..=10_000_000).contains(&count) {
        return Err(format!("{count} entries in the table of contents"));
    }
    let mut tables = BTreeMap::new();
    for _ in 0..count {
        let id = need!(c.int());
        need!(c.int()); // had dumper
        need!(c.string()); // table oid
        need!(c.string()); // oid
        let tag = need!(c.string());
        let desc = need!(c.string());
        need!(c.int()); // section
        need!(c.string()); // definition
        need!(c.string()); // drop statement
        need!(c.string()); // copy statement
        let namespace = need!(c.string());
        need!(c.string()); // tablespace
        need!(c.string()); // table access method
        if v >= version(1, 16, 0) {
            need!(c.int()); // relkind
        }
        need!(c.string()); // owner
        need!(c.string()); // "false" (formerly WITH OIDS)
        loop {
            if need!(c.string()).is_none() {
                break; // end of the dependencies
            }
        }
        need!(c.byte()); // the data offset's flag
        need!(c.bytes(usize::from(_offset_size)));
        if desc.as_deref() == Some(b"TABLE DATA")
            && let (Some(tag), Some(namespace)) = (tag, namespace)
        {
            let name = |b: Vec<u8>| String::from_utf8(b).map_err(|_| "a name is not UTF-8");
            tables.insert(id, (name(namespace)?, name(tag)?));
        }
    }
    Ok(Some(Toc {
        consumed: c.at,
        int_size,
        tables,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn int(v: i64) -> Vec<u8> {
        let mut out = vec![u8::from(v < 0)];
        out.extend_from_slice(&v.unsigned_abs().to_le_bytes()[..4]);
        out
    }

    fn string(s: Option<&str>) -> Vec<u8> {
        match s {
            None => int(-1),
            Some(s) => {
                let mut out = int(i64::try_from(s.len()).unwrap());
                out.extend_from_slice(s.as_bytes());
                out
            }
        }
    }

    fn entry(id: i64, tag: &str, desc: &str, namespace: &str) -> Vec<u8> {
        let mut out = int(id);
        out.extend(int(1));
        for s in [Some("0"), Some("0"), Some(tag), Some(desc)] {
            out.extend(string(s));
        }
        out.extend(int(2));
        for s in [
            Some(""),
            Some(""),
            Some(""),
            Some(namespace),
            Some(""),
            Some("heap"),
        ] {
            out.extend(string(s));
        }
        for s in [Some("owner"), Some("false"), Some("3"), None] {
            out.extend(string(s));
        }
        out.push(1);
        out.extend_from_slice(&[0; 8]);
        out
    }

    /// An archive as pg_dump 15 writes it (version 1.14, 4-byte ints, 8-byte offsets).
    fn archive(blocks: &[(i64, &[&str])]) -> Vec<u8> {
        let mut out = b"PGDMP".to_vec();
        out.extend_from_slice(&[1, 14, 0, 4, 8, 1]);
        out.extend(int(0));
        for _ in 0..7 {
            out.extend(int(1));
        }
        for s in ["app", "15.8", "15.8"] {
            out.extend(string(Some(s)));
        }
        out.extend(int(3));
        out.extend(entry(1, "ENCODING", "ENCODING", ""));
        out.extend(entry(7, "items", "TABLE DATA", "public"));
        out.extend(entry(8, "Invoices", "TABLE DATA", "billing"));
        for (id, chunks) in blocks {
            out.push(1);
            out.extend(int(*id));
            for chunk in *chunks {
                out.extend(int(i64::try_from(chunk.len()).unwrap()));
                out.extend_from_slice(chunk.as_bytes());
            }
            out.extend(int(0));
        }
        out
    }

    #[test]
    fn rows_are_counted_per_table_whatever_the_feeding() {
        let bytes = archive(&[
            (7, &["1\ta\n2\tb\n", "3\tline\\nbreak\n", "\\.\n\n\n"]),
            (8, &["1\n\\", ".\n\n", "\n"]),
        ]);
        for step in [1, 3, 7, 4096, bytes.len()] {
            let mut counter = ArchiveCounter::new();
            for piece in bytes.chunks(step) {
                counter.feed(piece);
            }
            let counts = counter.finish().unwrap();
            assert_eq!(counts[&("public".into(), "items".into())], 3, "step {step}");
            assert_eq!(counts[&("billing".into(), "Invoices".into())], 1);
        }
    }

    #[test]
    fn an_empty_table_counts_zero_and_a_missing_block_is_absent() {
        let mut counter = ArchiveCounter::new();
        counter.feed(&archive(&[(7, &["\\.\n\n\n"])]));
        let counts = counter.finish().unwrap();
        assert_eq!(counts[&("public".into(), "items".into())], 0);
        assert!(!counts.contains_key(&("billing".into(), "Invoices".into())));
    }

    proptest::proptest! {
        /// Any corruption of a valid archive, fed in any pieces: an answer or an error,
        /// never a panic.
        #[test]
        fn corrupted_archives_never_panic(
            flips in proptest::collection::vec((0_usize..400, proptest::num::u8::ANY), 0..6),
            step in 1_usize..64,
        ) {
            let mut bytes = archive(&[(7, &["1\n2\n", "\\.\n\n\n"]), (8, &["3\n"])]);
            for (at, value) in flips {
                let len = bytes.len();
                if let Some(b) = bytes.get_mut(at % len) {
                    *b = value;
                }
            }
            let mut counter = ArchiveCounter::new();
            for piece in bytes.chunks(step) {
                counter.feed(piece);
            }
            let _ = counter.finish();
        }
    }

    #[test]
    fn what_it_does_not_read_is_an_error_never_a_guess() {
        let mut bad = archive(&[]);
        bad[5] = 9; // version 9.14
        let mut counter = ArchiveCounter::new();
        counter.feed(&bad);
        counter.feed(&[0; 8192]);
        assert!(counter.finish().unwrap_err().contains("version"));

        let mut cut = ArchiveCounter::new();
        let bytes = archive(&[(7, &["1\n2\n"])]);
        cut.feed(&bytes[..bytes.len() - 3]);
        assert!(cut.finish().is_err());

        let mut text = ArchiveCounter::new();
        text.feed(&[b'x'; 10_000]);
        assert!(text.finish().is_err());
    }
}

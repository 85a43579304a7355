//! Watches an SFTP subsystem stream (draft-ietf-secsh-filexfer-02, version 3, which
//! OpenSSH speaks) to audit file operations: which path was opened for reading or writing,
//! how many bytes moved before it was closed, and removals, renames and directories.
//!
//! Only packet headers are read; file data is counted and skipped, never buffered. A packet
//! longer than [`MAX_PACKET`] or malformed stops the watching (the relay goes on; the
//! stream is the target's business), and says so once.

use std::collections::HashMap;

/// The longest packet header looked at: names and handles fit, data is skipped.
const HEADER_MAX: usize = 8 * 1024;
/// The longest packet accepted (OpenSSH's own limit is 256 KiB).
pub const MAX_PACKET: u32 = 256 * 1024;
/// Open handles and pending requests tracked at most.
const TRACK_MAX: usize = 4096;

const FXP_OPEN: u8 = 3;
const FXP_CLOSE: u8 = 4;
const FXP_READ: u8 = 5;
const FXP_WRITE: u8 = 6;
const FXP_REMOVE: u8 = 13;
const FXP_MKDIR: u8 = 14;
const FXP_RMDIR: u8 = 15;
const FXP_RENAME: u8 = 18;
const FXP_HANDLE: u8 = 102;
const FXP_DATA: u8 = 103;
const PFLAG_WRITE: u32 = 0x02;

/// A file operation to audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A file was opened, moved `bytes`, and was closed.
    File {
        /// The path as the client named it.
        path: String,
        /// `upload` (opened for writing) or `download`.
        direction: &'static str,
        /// Bytes written or read through the handle.
        bytes: u64,
    },
    /// A path was removed, made, or renamed.
    Path {
        /// `remove`, `mkdir`, `rmdir` or `rename`.
        what: &'static str,
        /// The path (for a rename: `from -> to`).
        path: String,
    },
    /// The stream could not be followed any further.
    Lost,
}

/// Which way bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Client to target (requests).
    Request,
    /// Target to client (replies).
    Reply,
}

#[derive(Debug, Default)]
struct Half {
    header: Vec<u8>,
    /// Bytes of the current packet still to skip after its header.
    skip: u64,
    /// Length of the current packet (after the length field), once known.
    len: Option<u32>,
}

#[derive(Debug)]
struct OpenFile {
    path: String,
    write: bool,
    bytes: u64,
}

/// Follows both directions of one SFTP stream.
#[derive(Debug, Default)]
pub struct Watcher {
    request: Half,
    reply: Half,
    lost: bool,
    /// OPEN request id → (path, write).
    opening: HashMap<u32, (String, bool)>,
    /// READ request id → handle.
    reading: HashMap<u32, Vec<u8>>,
    files: HashMap<Vec<u8>, OpenFile>,
}

impl Watcher {
    /// Feeds bytes that flowed one way; returns the operations completed by them.
    pub fn feed(&mut self, side: Side, mut bytes: &[u8]) -> Vec<Op> {
        let mut ops = Vec::new();
        while !bytes.is_empty() && !self.lost {
            let half = match side {
                Side::Request => &mut self.request,
                Side::Reply => &mut self.reply,
            };
            if half.skip > 0 {
                let n = bytes
                    .len()
                    .min(usize::try_from(half.skip).unwrap_or(usize::MAX));
                half.skip -= n as u64;
                bytes = bytes.get(n..).unwrap_or(&[]);
                continue;
            }
            let want = match half.len {
                None => 4,
                Some(len) => usize::try_from(len).unwrap_or(HEADER_MAX).min(HEADER_MAX),
            };
            let n = (want - half.header.len().min(want)).min(bytes.len());
            half.header.extend_from_slice(bytes.get(..n).unwrap_or(&[]));
            bytes = bytes.get(n..).unwrap_or(&[]);
            if half.header.len() < want {
                continue;
            }
            match half.len {
                None => {
                    let len = u32::from_be_bytes([
                        half.header.first().copied().unwrap_or(0),
                        half.header.get(1).copied().unwrap_or(0),
                        half.header.get(2).copied().unwrap_or(0),
                        half.header.get(3).copied().unwrap_or(0),
                    ]);
                    half.header.clear();
                    if len == 0 || len > MAX_PACKET {
                        self.lost = true;
                        ops.push(Op::Lost);
                        break;
                    }
                    half.len = Some(len);
                }
                Some(len) => {
                    let header = std::mem::take(&mut half.header);
                    half.skip = u64::from(len) - header.len() as u64;
                    half.len = None;
                    if let Some(op) = self.packet(side, len, &header) {
                        ops.push(op);
                    }
                }
            }
        }
        ops
    }

    fn packet(&mut self, side: Side, len: u32, p: &[u8]) -> Option<Op> {
        let mut r = Reader(p);
        let kind = r.u8()?;
        let id = r.u32()?;
        match (side, kind) {
            (Side::Request, FXP_OPEN) => {
                let path = r.text()?;
                let flags = r.u32()?;
                if self.opening.len() < TRACK_MAX {
                    self.opening.insert(id, (path, flags & PFLAG_WRITE != 0));
                }
                None
            }
            (Side::Reply, FXP_HANDLE) => {
                let handle = r.bytes()?.to_vec();
                let (path, write) = self.opening.remove(&id)?;
                if self.files.len() < TRACK_MAX {
                    self.files.insert(
                        handle,
                        OpenFile {
                            path,
                            write,
                            bytes: 0,
                        },
                    );
                }
                None
            }
            (Side::Request, FXP_WRITE) => {
                let handle = r.bytes()?;
                let header = 1 + 4 + 4 + handle.len() as u64 + 8 + 4;
                if let Some(f) = self.files.get_mut(handle) {
                    f.bytes += u64::from(len).saturating_sub(header);
                }
                None
            }
            (Side::Request, FXP_READ) => {
                let handle = r.bytes()?.to_vec();
                if self.reading.len() < TRACK_MAX {
                    self.reading.insert(id, handle);
                }
                None
            }
            (Side::Reply, FXP_DATA) => {
                let handle = self.reading.remove(&id)?;
                if let Some(f) = self.files.get_mut(&handle) {
                    f.bytes += u64::from(len).saturating_sub(1 + 4 + 4);
                }
                None
            }
            (Side::Request, FXP_CLOSE) => {
                let handle = r.bytes()?;
                let f = self.files.remove(handle)?;
                Some(Op::File {
                    path: f.path,
                    direction: if f.write { "upload" } else { "download" },
                    bytes: f.bytes,
                })
            }
            (Side::Request, FXP_REMOVE | FXP_MKDIR | FXP_RMDIR) => Some(Op::Path {
                what: match kind {
                    FXP_REMOVE => "remove",
                    FXP_MKDIR => "mkdir",
                    _ => "rmdir",
                },
                path: r.text()?,
            }),
            (Side::Request, FXP_RENAME) => {
                let from = r.text()?;
                let to = r.text()?;
                Some(Op::Path {
                    what: "rename",
                    path: format!("{from} -> {to}"),
                })
            }
            _ => {
                // A reply to a READ that is not DATA (EOF status) ends that request.
                if side == Side::Reply {
                    self.reading.remove(&id);
                }
                None
            }
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_at_checked(4)?;
        self.0 = rest;
        Some(u32::from_be_bytes(head.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(head)
    }

    fn text(&mut self) -> Option<String> {
        let b = self.bytes()?;
        Some(String::from_utf8_lossy(b).chars().take(1024).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(kind: u8, id: u32, body: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&((1 + 4 + body.len()) as u32).to_be_bytes());
        p.push(kind);
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(body);
        p
    }

    fn string(s: &[u8]) -> Vec<u8> {
        let mut v = (s.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(s);
        v
    }

    #[test]
    fn an_upload_is_seen_with_its_path_and_size_even_byte_by_byte() {
        let mut open = string(b"/tmp/x.bin");
        open.extend_from_slice(&(0x02u32 | 0x08).to_be_bytes());
        open.extend_from_slice(&0u32.to_be_bytes());
        let mut requests = packet(FXP_OPEN, 1, &open);
        let mut write = string(b"h1");
        write.extend_from_slice(&0u64.to_be_bytes());
        write.extend_from_slice(&string(&vec![7u8; 100_000]));
        requests.extend(packet(FXP_WRITE, 2, &write));
        requests.extend(packet(FXP_WRITE, 3, &write));
        requests.extend(packet(FXP_CLOSE, 4, &string(b"h1")));
        let mut w = Watcher::default();
        let (open_part, rest) = requests.split_at(4 + 1 + 4 + 14 + 8);
        assert!(w.feed(Side::Request, open_part).is_empty());
        assert!(
            w.feed(Side::Reply, &packet(FXP_HANDLE, 1, &string(b"h1")))
                .is_empty()
        );
        let mut ops = Vec::new();
        for b in rest {
            ops.extend(w.feed(Side::Request, std::slice::from_ref(b)));
        }
        assert_eq!(
            ops,
            vec![Op::File {
                path: "/tmp/x.bin".into(),
                direction: "upload",
                bytes: 200_000
            }]
        );
    }

    #[test]
    fn a_download_counts_data_replies() {
        let mut w = Watcher::default();
        let mut open = string(b"/etc/hosts");
        open.extend_from_slice(&1u32.to_be_bytes());
        open.extend_from_slice(&0u32.to_be_bytes());
        w.feed(Side::Request, &packet(FXP_OPEN, 1, &open));
        w.feed(Side::Reply, &packet(FXP_HANDLE, 1, &string(b"h")));
        let mut read = string(b"h");
        read.extend_from_slice(&0u64.to_be_bytes());
        read.extend_from_slice(&32768u32.to_be_bytes());
        w.feed(Side::Request, &packet(FXP_READ, 2, &read));
        w.feed(Side::Reply, &packet(FXP_DATA, 2, &string(&[1u8; 500])));
        let ops = w.feed(Side::Request, &packet(FXP_CLOSE, 3, &string(b"h")));
        assert_eq!(
            ops,
            vec![Op::File {
                path: "/etc/hosts".into(),
                direction: "download",
                bytes: 500
            }]
        );
        let ops = w.feed(Side::Request, &packet(FXP_REMOVE, 4, &string(b"/tmp/old")));
        assert_eq!(
            ops,
            vec![Op::Path {
                what: "remove",
                path: "/tmp/old".into()
            }]
        );
    }

    #[test]
    fn an_oversized_packet_stops_watching_once() {
        let mut w = Watcher::default();
        let ops = w.feed(Side::Request, &(MAX_PACKET + 1).to_be_bytes());
        assert_eq!(ops, vec![Op::Lost]);
        assert!(w.feed(Side::Request, &[0u8; 64]).is_empty());
    }
}

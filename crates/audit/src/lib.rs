//! The tamper-evident audit log of rampart (LOG-3).
//!
//! Every login, failure, lockout, MFA change, session and admin action becomes an
//! [`AuditEvent`]. Events are sealed into [`AuditRecord`]s by a [`Chain`]: each record carries
//! the SHA-256 of a canonical encoding of itself and of the previous record's hash, so a row
//! changed or deleted in the database breaks the chain at a named sequence number
//! ([`Verifier`]). A signed [`Checkpoint`] of the chain head, exported elsewhere, also
//! detects a truncated tail.
//!
//! Invariants: sealing and verifying are pure; the hash covers exactly the bytes that are
//! stored; details hold only text rampart produced itself or text that went through the
//! scrubber.

pub mod anomaly;
mod checkpoint;
mod event;

pub use checkpoint::{Checkpoint, CheckpointError, SigningKey};
pub use event::{
    Action, Actor, AuditEvent, Detail, Outcome, address_text, details_json, user_actor,
};

use sha2::{Digest, Sha256};

/// A hash of the chain.
pub type Hash = [u8; 32];

/// The hash that the first record links to.
pub const GENESIS: Hash = [0u8; 32];

/// An event as stored: with its place in the chain and its hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1 without gaps.
    pub seq: u64,
    /// When it happened, microseconds since the Unix epoch (exact in every store).
    pub time_us: i64,
    /// Who acted.
    pub actor: String,
    /// What was done (`login.success`, `user.create`, …).
    pub action: String,
    /// What it was done to.
    pub subject: String,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    /// The client address, when there was one.
    pub source: String,
    /// Extra fields as a JSON object with sorted keys.
    pub details: String,
    /// The previous record's hash, hex.
    pub prev_hash: String,
    /// This record's hash, hex.
    pub hash: String,
}

/// A record borrowed from storage: what verification reads, without copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Position in the chain.
    pub seq: u64,
    /// Time in microseconds.
    pub time_us: i64,
    /// Who acted.
    pub actor: &'a str,
    /// What was done.
    pub action: &'a str,
    /// What it was done to.
    pub subject: &'a str,
    /// How it ended.
    pub outcome: &'a str,
    /// The client address.
    pub source: &'a str,
    /// Details JSON.
    pub details: &'a str,
    /// Previous hash, hex.
    pub prev_hash: &'a str,
    /// This hash, hex.
    pub hash: &'a str,
}

impl AuditRecord {
    /// The text of `event` as a record, not yet sealed: no sequence number, time or
    /// hashes until [`Chain::seal_record`].
    pub fn unsealed(event: &AuditEvent) -> Self {
        Self::unsealed_from(
            event.actor.text(),
            event.action,
            &event.subject,
            event.outcome,
            event.source,
            event.details_json(),
        )
    }

    /// A record not yet sealed, from its parts: what [`AuditRecord::unsealed`] makes of an
    /// event with these fields, for the busiest records, made without the event. `actor`
    /// is the stored text ([`Actor::text`], [`user_actor`]); `details` the JSON
    /// ([`details_json`]).
    pub fn unsealed_from(
        actor: String,
        action: Action,
        subject: &str,
        outcome: Outcome,
        source: Option<std::net::IpAddr>,
        details: String,
    ) -> Self {
        Self {
            seq: 0,
            time_us: 0,
            actor,
            action: action.as_str().to_owned(),
            subject: subject.to_owned(),
            outcome: outcome.as_str().to_owned(),
            source: source.map(address_text).unwrap_or_default(),
            details,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    /// The record as a borrowed view.
    pub fn view(&self) -> RecordView<'_> {
        RecordView {
            seq: self.seq,
            time_us: self.time_us,
            actor: &self.actor,
            action: &self.action,
            subject: &self.subject,
            outcome: &self.outcome,
            source: &self.source,
            details: &self.details,
            prev_hash: &self.prev_hash,
            hash: &self.hash,
        }
    }
}

/// The head of a chain: what the next record links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    /// Sequence number of the last record (0 when empty).
    pub seq: u64,
    /// Hash of the last record ([`GENESIS`] when empty).
    pub hash: Hash,
}

impl Default for Chain {
    fn default() -> Self {
        Self {
            seq: 0,
            hash: GENESIS,
        }
    }
}

impl Chain {
    /// The head after `record`; fails when the record's hash is not valid hex.
    pub fn after(record: &AuditRecord) -> Result<Self, ChainBreak> {
        Ok(Self {
            seq: record.seq,
            hash: decode_hash(&record.hash).ok_or(ChainBreak {
                seq: record.seq,
                kind: BreakKind::Malformed,
            })?,
        })
    }

    /// Seals `event` at `time_us` as the next record and advances the head.
    pub fn seal(&mut self, event: &AuditEvent, time_us: i64) -> AuditRecord {
        let mut record = AuditRecord::unsealed(event);
        self.seal_record(&mut record, time_us);
        record
    }

    /// Seals a record made by [`AuditRecord::unsealed`] at `time_us` as the next record
    /// (its sequence number, time and both hashes) and advances the head. Only this part
    /// must run in chain order; the text of the record can be made beforehand, anywhere.
    pub fn seal_record(&mut self, record: &mut AuditRecord, time_us: i64) {
        record.seq = self.seq + 1;
        record.time_us = time_us;
        record.prev_hash = rampart_core::hex(&self.hash);
        let hash = record_hash(&self.hash, &record.view());
        record.hash = rampart_core::hex(&hash);
        self.seq = record.seq;
        self.hash = hash;
    }
}

/// Where and how a chain is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at sequence {seq}: {kind}")]
pub struct ChainBreak {
    /// The first sequence number that does not verify.
    pub seq: u64,
    /// What is wrong there.
    pub kind: BreakKind,
}

/// What is wrong at a break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    /// The record's contents do not match its hash: it was changed.
    Altered,
    /// The record does not link to the one before: one or more records are missing.
    Missing,
    /// A stored hash is not 64 hex digits.
    Malformed,
    /// The chain ends before a signed checkpoint: its tail was cut off.
    Truncated,
    /// The record at the checkpoint's sequence has another hash than the signed one.
    CheckpointMismatch,
}

impl std::fmt::Display for BreakKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Altered => "the record was altered (its hash does not match its contents)",
            Self::Missing => "records are missing before it (it does not link to its predecessor)",
            Self::Malformed => "a stored hash is malformed",
            Self::Truncated => {
                "records at and after it were removed (a signed checkpoint names it)"
            }
            Self::CheckpointMismatch => "it differs from the signed checkpoint",
        })
    }
}

/// Checks records in order, one at a time, in constant memory.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    head: Chain,
    checkpoint: Option<(u64, Hash)>,
}

impl Verifier {
    /// A verifier that also requires the chain to reach a signed checkpoint (already
    /// verified with [`Checkpoint::verify`]).
    pub fn with_checkpoint(checkpoint: &Checkpoint) -> Self {
        Self {
            head: Chain::default(),
            checkpoint: Some((checkpoint.seq, checkpoint.hash)),
        }
    }

    /// Checks the next record.
    pub fn push(&mut self, record: &AuditRecord) -> Result<(), ChainBreak> {
        self.push_view(&record.view())
    }

    /// Checks the next record, borrowed from wherever it was read.
    pub fn push_view(&mut self, record: &RecordView<'_>) -> Result<(), ChainBreak> {
        let at = |kind| ChainBreak {
            seq: record.seq,
            kind,
        };
        let prev = decode_hash(record.prev_hash).ok_or(at(BreakKind::Malformed))?;
        let stored = decode_hash(record.hash).ok_or(at(BreakKind::Malformed))?;
        if record.seq != self.head.seq + 1 || prev != self.head.hash {
            // A gap names the first missing number, the place a reader looks.
            return Err(ChainBreak {
                seq: self.head.seq + 1,
                kind: BreakKind::Missing,
            });
        }
        if record_hash(&prev, record) != stored {
            return Err(at(BreakKind::Altered));
        }
        if let Some((seq, hash)) = self.checkpoint
            && seq == record.seq
            && hash != stored
        {
            return Err(at(BreakKind::CheckpointMismatch));
        }
        self.head = Chain {
            seq: record.seq,
            hash: stored,
        };
        Ok(())
    }

    /// Ends verification: the number of records checked, or the truncation a checkpoint
    /// reveals.
    pub fn finish(self) -> Result<u64, ChainBreak> {
        match self.checkpoint {
            Some((seq, _)) if seq > self.head.seq => Err(ChainBreak {
                seq: self.head.seq + 1,
                kind: BreakKind::Truncated,
            }),
            _ => Ok(self.head.seq),
        }
    }

    /// The head verified so far.
    pub fn head(&self) -> Chain {
        self.head
    }
}

/// SHA-256 over a length-prefixed encoding of every stored field: no two different
/// records encode to the same bytes.
fn record_hash(prev: &Hash, r: &RecordView<'_>) -> Hash {
    let mut h = Sha256::new();
    h.update(b"rampart-audit-v1\0");
    h.update(prev);
    h.update(r.seq.to_be_bytes());
    h.update(r.time_us.to_be_bytes());
    for field in [r.actor, r.action, r.subject, r.outcome, r.source, r.details] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().into()
}

fn decode_hash(text: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn chain_of(n: usize) -> Vec<AuditRecord> {
        let mut chain = Chain::default();
        (0..n)
            .map(|i| {
                let ev = AuditEvent::new(Actor::System, Action::UserCreate, format!("user-{i}"));
                chain.seal(&ev, 1_700_000_000_000_000 + i as i64)
            })
            .collect()
    }

    fn verify(records: &[AuditRecord]) -> Result<u64, ChainBreak> {
        let mut v = Verifier::default();
        for r in records {
            v.push(r)?;
        }
        v.finish()
    }

    #[test]
    fn an_untouched_chain_verifies() {
        assert_eq!(verify(&chain_of(50)), Ok(50));
    }

    #[test]
    fn a_changed_field_is_found_at_its_sequence() {
        let mut records = chain_of(10);
        records[6].subject = "someone-else".into();
        assert_eq!(
            verify(&records),
            Err(ChainBreak {
                seq: 7,
                kind: BreakKind::Altered
            })
        );
    }

    #[test]
    fn a_deleted_record_is_found_as_missing() {
        let mut records = chain_of(10);
        records.remove(3);
        assert_eq!(
            verify(&records),
            Err(ChainBreak {
                seq: 4,
                kind: BreakKind::Missing
            })
        );
    }

    #[test]
    fn a_rehashed_forgery_still_breaks_the_next_link() {
        let mut records = chain_of(5);
        records[2].outcome = "success-forged".into();
        let prev = decode_hash(&records[2].prev_hash).unwrap();
        records[2].hash = hex::encode(record_hash(&prev, &records[2].view()));
        assert_eq!(
            verify(&records),
            Err(ChainBreak {
                seq: 4,
                kind: BreakKind::Missing
            })
        );
    }

    #[test]
    fn a_cut_tail_is_found_with_a_checkpoint() {
        let records = chain_of(10);
        let cp = Checkpoint {
            seq: 10,
            hash: decode_hash(&records[9].hash).unwrap(),
            time_us: 0,
            signature: Vec::new(),
        };
        let mut v = Verifier::with_checkpoint(&cp);
        for r in &records[..8] {
            v.push(r).unwrap();
        }
        assert_eq!(
            v.finish(),
            Err(ChainBreak {
                seq: 9,
                kind: BreakKind::Truncated
            })
        );
        assert_eq!(
            verify(&records[..8]),
            Ok(8),
            "without a checkpoint a cut is invisible"
        );
    }
}

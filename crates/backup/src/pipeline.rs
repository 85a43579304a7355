//! The streaming pipelines, with bounded memory: a few chunks in flight between stages,
//! never the whole backup.
//!
//! Writing: source bytes → zstd (its own thread, which also reads the source) → age (X25519 recipients)
//! and SHA-256 (another thread) → a multipart upload (async). The upload is completed only
//! when the caller says the source ended well ([`Upload::commit`]); otherwise it is aborted.
//!
//! Reading: object stream → SHA-256 → age → zstd → a sink (pg_restore's stdin, a file), with
//! the hash compared at the end. age authenticates every 64 KiB chunk and the end of the
//! stream, so altered or truncated ciphertext stops the restore before its plaintext is
//! released; the SHA-256 check then names the object as altered.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::BackupError;
use crate::config::Recipient;
use crate::storage::{Storage, storage_error};

/// Bytes read from the source per chunk.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between two stages.
const DEPTH: usize = 8;
/// Size of one multipart part.
const PART: usize = 16 << 20;
/// Parts uploaded at once.
const PARTS_IN_FLIGHT: usize = 4;

/// What the writing pipeline produced, before the upload is completed.
#[derive(Debug)]
pub struct Upload {
    writer: BufWriter,
    /// SHA-256 of the stored object, hex.
    pub sha256: String,
    /// Bytes stored.
    pub size: u64,
    /// Bytes read from the source.
    pub raw: u64,
}

impl Upload {
    /// Completes the object: only now does it exist in storage.
    pub async fn commit(mut self) -> Result<(), BackupError> {
        self.writer
            .shutdown()
            .await
            .map_err(|e| BackupError::Storage(format!("cannot complete the upload: {e}")))
    }

    /// Abandons the upload: no object is left (a staged upload is removed).
    pub async fn abort(mut self) {
        let _ = self.writer.abort().await;
    }
}

/// Streams `source` through zstd and age into a new object at `key`. Returns once every
/// byte is handed to the upload; the caller then commits or aborts it.
///
/// The source is read with blocking reads on the compressing thread, as `zstd` reads its
/// stdin in a shell pipeline: a program's pipe delivers a few KiB per write, and an async
/// reader would pay a wake-up per write.
pub async fn write(
    source: impl Read + Send + 'static,
    storage: &Storage,
    key: &str,
    recipients: &[Recipient],
    level: i32,
) -> Result<Upload, BackupError> {
    if recipients.is_empty() {
        return Err(BackupError::NoRecipients);
    }
    let keys: Vec<age::x25519::Recipient> = recipients.iter().map(|r| r.key().clone()).collect();
    let (zst_tx, zst_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(DEPTH);
    let (enc_tx, mut enc_rx) = mpsc::channel::<Bytes>(DEPTH);

    let compress = tokio::task::spawn_blocking(move || compress(source, zst_tx, level));
    let encrypt = tokio::task::spawn_blocking(move || -> Result<(String, u64), BackupError> {
        let encryptor =
            age::Encryptor::with_recipients(keys.iter().map(|k| k as &dyn age::Recipient))
                .map_err(|e| BackupError::Internal(format!("age: {e}")))?;
        let sink = HashSend {
            tx: enc_tx,
            hash: Sha256::new(),
            buf: Vec::with_capacity(CHUNK),
            size: 0,
        };
        let mut out = encryptor.wrap_output(sink).map_err(io_internal)?;
        while let Ok(chunk) = zst_rx.recv() {
            out.write_all(&chunk).map_err(io_internal)?;
        }
        let mut sink = out.finish().map_err(io_internal)?;
        sink.flush().map_err(io_internal)?;
        Ok((hex::encode(sink.hash.finalize()), sink.size))
    });
    let store = storage.store().clone();
    let path = ObjectPath::from(key);
    let upload = tokio::spawn(async move {
        let mut writer =
            BufWriter::with_capacity(store, path, PART).with_max_concurrency(PARTS_IN_FLIGHT);
        while let Some(chunk) = enc_rx.recv().await {
            if let Err(e) = writer.write_all(&chunk).await {
                let _ = writer.abort().await;
                return Err(BackupError::Storage(format!("upload failed: {e}")));
            }
        }
        Ok(writer)
    });

    let compressed = compress
        .await
        .map_err(|e| BackupError::Internal(e.to_string()))?;
    let encrypted = encrypt
        .await
        .map_err(|e| BackupError::Internal(e.to_string()))?;
    let uploaded = upload
        .await
        .map_err(|e| BackupError::Internal(e.to_string()))?;
    // The most telling error first: storage, then the source, then encryption.
    let mut writer = uploaded?;
    let checked = (|| {
        let raw = match compressed {
            Ok(raw) => raw,
            Err(Compress::Source(e)) => return Err(e),
            Err(Compress::Stage(e)) => {
                encrypted?;
                return Err(BackupError::Internal(format!("zstd: {e}")));
            }
        };
        let (sha256, size) = encrypted?;
        Ok((sha256, size, raw))
    })();
    match checked {
        Ok((sha256, size, raw)) => Ok(Upload {
            writer,
            sha256,
            size,
            raw,
        }),
        Err(e) => {
            let _ = writer.abort().await;
            Err(e)
        }
    }
}

/// Why the compressing stage stopped early.
enum Compress {
    /// Reading the source failed.
    Source(BackupError),
    /// zstd failed, or the next stage stopped (its own error says why).
    Stage(std::io::Error),
}

/// Reads `source` to its end into zstd, whose output goes to the encrypting stage. Returns
/// the bytes read.
fn compress(
    mut source: impl Read,
    out: std::sync::mpsc::SyncSender<Vec<u8>>,
    level: i32,
) -> Result<u64, Compress> {
    let mut encoder =
        zstd::stream::write::Encoder::new(SyncSend(out), level).map_err(Compress::Stage)?;
    // The dump program and its database server take about a core; zstd gets the rest.
    let workers = std::thread::available_parallelism()
        .map(|n| n.get() / 2)
        .unwrap_or(1)
        .clamp(1, 8);
    if workers > 1 {
        encoder
            .multithread(u32::try_from(workers).unwrap_or(1))
            .map_err(Compress::Stage)?;
    }
    let mut buf = vec![0_u8; CHUNK];
    let mut raw = 0_u64;
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Compress::Source(BackupError::Source(format!(
                    "reading the dump: {e}"
                ))));
            }
        };
        raw += n as u64;
        encoder
            .write_all(buf.get(..n).unwrap_or_default())
            .map_err(Compress::Stage)?;
    }
    encoder
        .finish()
        .and_then(|mut w| w.flush())
        .map_err(Compress::Stage)?;
    Ok(raw)
}

/// Where decrypted, decompressed bytes go.
pub type Sink = Box<dyn AsyncWrite + Unpin + Send>;

/// What a read-back found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBack {
    /// SHA-256 of the stored object, hex.
    pub sha256: String,
    /// Bytes read from storage.
    pub size: u64,
    /// Bytes after decryption and decompression (0 when only hashed).
    pub plain: u64,
}

/// Reads the object at `key` whole and hashes it (no key needed). `progress` counts bytes.
pub async fn hash_object(
    storage: &Storage,
    key: &str,
    progress: Arc<AtomicU64>,
) -> Result<ReadBack, BackupError> {
    let got = storage
        .store()
        .get(&ObjectPath::from(key))
        .await
        .map_err(storage_error)?;
    let mut stream = got.into_stream();
    let mut hash = Sha256::new();
    let mut size = 0_u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(storage_error)?;
        hash.update(&chunk);
        size += chunk.len() as u64;
        progress.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    Ok(ReadBack {
        sha256: hex::encode(hash.finalize()),
        size,
        plain: 0,
    })
}

/// Reads the object at `key`, decrypts it with `identities`, decompresses it into `sink`,
/// and hashes the stored bytes on the way. `progress` counts stored bytes read.
pub async fn read(
    storage: &Storage,
    key: &str,
    identities: Vec<age::x25519::Identity>,
    mut sink: Sink,
    progress: Arc<AtomicU64>,
) -> Result<ReadBack, BackupError> {
    let got = storage
        .store()
        .get(&ObjectPath::from(key))
        .await
        .map_err(storage_error)?;
    let mut stream = got.into_stream();
    let (cipher_tx, cipher_rx) = std::sync::mpsc::sync_channel::<Bytes>(DEPTH);
    let (plain_tx, mut plain_rx) = mpsc::channel::<Vec<u8>>(DEPTH);
    let decode = tokio::task::spawn_blocking(move || -> Result<u64, BackupError> {
        let input = ChanReader {
            rx: cipher_rx,
            current: Bytes::new(),
        };
        let decryptor = age::Decryptor::new(input).map_err(decrypt_error)?;
        let plain = decryptor
            .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
            .map_err(decrypt_error)?;
        let mut decoder = zstd::stream::read::Decoder::new(plain)
            .map_err(|e| BackupError::Corrupt(format!("zstd: {e}")))?;
        let mut total = 0_u64;
        loop {
            let mut buf = vec![0_u8; CHUNK];
            let n = decoder.read(&mut buf).map_err(|e| {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    BackupError::Corrupt(
                        "the object was altered or truncated (its encryption does not authenticate)"
                            .into(),
                    )
                } else {
                    BackupError::Corrupt(format!("decoding the backup: {e}"))
                }
            })?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            total += n as u64;
            if plain_tx.blocking_send(buf).is_err() {
                return Err(BackupError::Sink(
                    "the restore target stopped reading".into(),
                ));
            }
        }
        Ok(total)
    });
    let write_out = tokio::spawn(async move {
        while let Some(chunk) = plain_rx.recv().await {
            if let Err(e) = sink.write_all(&chunk).await {
                return Err(BackupError::Sink(e.to_string()));
            }
        }
        sink.shutdown()
            .await
            .map_err(|e| BackupError::Sink(e.to_string()))
    });
    let mut hash = Sha256::new();
    let mut size = 0_u64;
    let mut fetch_error = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                hash.update(&chunk);
                size += chunk.len() as u64;
                progress.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                if cipher_tx.send(chunk).is_err() {
                    break;
                }
            }
            Err(e) => {
                fetch_error = Some(storage_error(e));
                break;
            }
        }
    }
    drop(cipher_tx);
    let decoded = decode
        .await
        .map_err(|e| BackupError::Internal(e.to_string()))?;
    let written = write_out
        .await
        .map_err(|e| BackupError::Internal(e.to_string()))?;
    if let Some(e) = fetch_error {
        return Err(e);
    }
    let plain = decoded?;
    written?;
    Ok(ReadBack {
        sha256: hex::encode(hash.finalize()),
        size,
        plain,
    })
}

fn decrypt_error(e: age::DecryptError) -> BackupError {
    match e {
        age::DecryptError::NoMatchingKeys => BackupError::WrongIdentity,
        age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => {
            BackupError::Corrupt("the object is not an age file (altered or not a backup)".into())
        }
        other => BackupError::Corrupt(format!("cannot decrypt: {other}")),
    }
}

fn io_internal(e: std::io::Error) -> BackupError {
    BackupError::Internal(e.to_string())
}

/// A `Write` that sends what it is given to the next stage.
struct SyncSend(std::sync::mpsc::SyncSender<Vec<u8>>);

impl Write for SyncSend {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "stage stopped"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `Write` that hashes and counts what it is given and sends it on in chunks.
struct HashSend {
    tx: mpsc::Sender<Bytes>,
    hash: Sha256,
    buf: Vec<u8>,
    size: u64,
}

impl Write for HashSend {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.hash.update(data);
        self.size += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "upload stopped"))
    }
}

/// A `Read` over chunks arriving on a channel.
struct ChanReader {
    rx: std::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChanReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.recv() {
                Ok(next) => self.current = next,
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        let head = self.current.split_to(n);
        if let Some(dst) = out.get_mut(..n) {
            dst.copy_from_slice(&head);
        }
        Ok(n)
    }
}

//! The streaming pipelines, with bounded memory: a few chunks in flight between stages,
//! never the whole backup.
//!
//! Writing: source bytes → zstd (its own thread, which also reads the source) → age (X25519 recipients)
//! and SHA-256 (another thread) → the object: a staged file in a directory, or a multipart
//! upload to S3 (async). The object is completed only when the caller says the source ended
//! well ([`Upload::commit`]); otherwise it is aborted.
//!
//! Reading: object stream → SHA-256 → age → zstd → a sink (pg_restore's stdin, a file), with
//! the hash compared at the end. age authenticates every 64 KiB chunk and the end of the
//! stream, so altered or truncated ciphertext stops the restore before its plaintext is
//! released; the SHA-256 check then names the object as altered.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStoreExt;
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
    writer: ObjectWriter,
    /// SHA-256 of the stored object, hex.
    pub sha256: String,
    /// Bytes stored.
    pub size: u64,
    /// Bytes read from the source.
    pub raw: u64,
}

impl Upload {
    /// Completes the object: only now does it exist in storage.
    pub async fn commit(self) -> Result<(), BackupError> {
        self.writer.commit().await
    }

    /// Abandons the upload: no object is left (a staged upload is removed).
    pub async fn abort(self) {
        self.writer.abort().await;
    }
}

/// Writes one object: into a staged file for a directory ([`DirWriter`]), or with S3's
/// multipart API directly, so that an upload's id is written down (a marker object, see
/// [`crate::storage::UPLOADS`]) before its first part goes up. An object smaller than one
/// part is a single PUT and leaves nothing behind if the run dies.
enum ObjectWriter {
    Dir(DirWriter),
    S3(Box<S3Writer>),
}

impl std::fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Dir(_) => "ObjectWriter::Dir",
            Self::S3(_) => "ObjectWriter::S3",
        })
    }
}

impl ObjectWriter {
    fn open(storage: &Storage, key: &str) -> Result<Self, BackupError> {
        let path = ObjectPath::from(key);
        if let Some(dir) = storage.local() {
            let dest = dir.path_to_filesystem(&path).map_err(storage_error)?;
            return Ok(Self::Dir(DirWriter::new(dest)));
        }
        match storage.s3() {
            Some(s3) => Ok(Self::S3(Box::new(S3Writer {
                s3: s3.clone(),
                store: storage.store().clone(),
                marker: storage.marker_for(key, ""),
                marker_of: (storage.clone(), key.to_owned()),
                path,
                upload: None,
                buf: Vec::with_capacity(PART),
                next_part: 0,
                in_flight: tokio::task::JoinSet::new(),
                done: Vec::new(),
            }))),
            None => Err(BackupError::Internal(
                "the storage is neither a directory nor a bucket".into(),
            )),
        }
    }

    async fn write(&mut self, chunk: Bytes) -> Result<(), BackupError> {
        match self {
            Self::Dir(w) => w.write(chunk).await,
            Self::S3(w) => w.write(&chunk).await,
        }
    }

    async fn commit(self) -> Result<(), BackupError> {
        match self {
            Self::Dir(w) => w.commit().await,
            Self::S3(w) => w.commit().await,
        }
    }

    async fn abort(self) {
        match self {
            Self::Dir(w) => w.abort().await,
            Self::S3(w) => w.abort().await,
        }
    }
}

/// An object in a directory, written as its chunks arrive into a staged file `KEY#N` (the
/// name `object_store` gives its own uploads, which [`Storage::list`] finds if the run dies),
/// then synced and renamed into place at the commit, and its directory synced: the catalog
/// must not name an object a power cut can lose. `object_store`'s buffered writer held up to
/// a part (16 MiB) in memory and wrote it all at the commit.
///
/// Asking the kernel to write each chunk out at once (`POSIX_FADV_DONTNEED`) was tried, so
/// that the commit's sync would have less to wait for (0.3 ms instead of 3.6 ms for a 6.6 MB
/// object). In the backup of a 1 GB database the database server then took 45–65 ms more
/// CPU, and the backup up to 6 % longer, for reasons not found; so the sync does it all.
struct DirWriter {
    dest: PathBuf,
    /// The staged file and its path, once the first chunk has created it.
    staged: Option<(std::fs::File, PathBuf)>,
}

impl DirWriter {
    fn new(dest: PathBuf) -> Self {
        Self { dest, staged: None }
    }

    async fn write(&mut self, chunk: Bytes) -> Result<(), BackupError> {
        let (staged, dest) = (self.staged.take(), self.dest.clone());
        let (staged, result) = tokio::task::spawn_blocking(move || {
            let (mut file, path) = match staged {
                Some(staged) => staged,
                None => match create_staged(&dest) {
                    Ok(staged) => staged,
                    Err(e) => return (None, Err(e)),
                },
            };
            let result = file.write_all(&chunk);
            (Some((file, path)), result)
        })
        .await
        .map_err(|e| BackupError::Internal(e.to_string()))?;
        self.staged = staged;
        result.map_err(|e| {
            BackupError::Storage(format!("cannot write {}: {e}", self.dest.display()))
        })?;
        Ok(())
    }

    async fn commit(mut self) -> Result<(), BackupError> {
        let staged = self.staged.take();
        let dest = self.dest.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let (file, path) = match staged {
                Some(staged) => staged,
                // An empty object: nothing was written, the file is made now.
                None => create_staged(&dest)?,
            };
            let published = file
                .sync_all()
                .and_then(|()| std::fs::rename(&path, &dest))
                .and_then(|()| sync_parent(&dest));
            if published.is_err() {
                let _ = std::fs::remove_file(&path);
            }
            published
        })
        .await
        .map_err(|e| BackupError::Internal(e.to_string()))?
        .map_err(|e| {
            BackupError::Storage(format!(
                "cannot complete the upload of {}: {e}",
                self.dest.display()
            ))
        })
    }

    async fn abort(mut self) {
        if let Some((file, path)) = self.staged.take() {
            drop(file);
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
        }
    }
}

impl Drop for DirWriter {
    /// Neither committed nor aborted (the run's future was dropped): the staged file goes.
    fn drop(&mut self) {
        if let Some((file, path)) = self.staged.take() {
            drop(file);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Creates `DEST#N` with the first free N, and DEST's directories when missing.
fn create_staged(dest: &Path) -> std::io::Result<(std::fs::File, PathBuf)> {
    let mut n = 1_u32;
    let mut made_dirs = false;
    loop {
        let mut name = dest.as_os_str().to_owned();
        name.push(format!("#{n}"));
        let path = PathBuf::from(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !made_dirs => {
                make_dirs(dest.parent().ok_or(e)?)?;
                made_dirs = true;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Creates `dir` and its missing ancestors, each synced with the directory that holds it.
fn make_dirs(dir: &Path) -> std::io::Result<()> {
    let existing = dir.ancestors().find(|a| a.is_dir()).map(Path::to_path_buf);
    std::fs::create_dir_all(dir)?;
    for made in dir.ancestors() {
        std::fs::File::open(made)?.sync_all()?;
        if Some(made) == existing.as_deref() {
            break;
        }
    }
    Ok(())
}

/// Syncs the directory that holds `path` (the working directory for a bare file name), so
/// that a new entry in it survives a power cut.
pub(crate) fn sync_parent(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

/// An S3 object in parts of [`PART`] bytes, [`PARTS_IN_FLIGHT`] at once.
struct S3Writer {
    s3: Arc<object_store::aws::AmazonS3>,
    store: Arc<dyn object_store::ObjectStore>,
    path: ObjectPath,
    /// The storage and key, to name the marker once the upload id is known.
    marker_of: (Storage, String),
    marker: ObjectPath,
    upload: Option<String>,
    buf: Vec<u8>,
    next_part: usize,
    in_flight: tokio::task::JoinSet<(usize, object_store::Result<object_store::multipart::PartId>)>,
    done: Vec<(usize, object_store::multipart::PartId)>,
}

impl S3Writer {
    async fn write(&mut self, mut chunk: &[u8]) -> Result<(), BackupError> {
        while !chunk.is_empty() {
            let room = PART - self.buf.len();
            let (now, later) = chunk.split_at(room.min(chunk.len()));
            self.buf.extend_from_slice(now);
            chunk = later;
            if self.buf.len() == PART {
                let part = std::mem::replace(&mut self.buf, Vec::with_capacity(PART));
                self.send(part).await?;
            }
        }
        Ok(())
    }

    /// Starts the upload (and writes its marker) on the first part; uploads a part.
    async fn send(&mut self, part: Vec<u8>) -> Result<(), BackupError> {
        use object_store::multipart::MultipartStore;
        let upload = match &self.upload {
            Some(id) => id.clone(),
            None => {
                let id = self
                    .s3
                    .create_multipart(&self.path)
                    .await
                    .map_err(storage_error)?;
                let (storage, key) = &self.marker_of;
                self.marker = storage.marker_for(key, &id);
                let marker = serde_json::to_vec(&crate::storage::Marker {
                    key: key.clone(),
                    upload_id: id.clone(),
                })
                .map_err(|e| BackupError::Internal(e.to_string()))?;
                self.upload = Some(id.clone());
                self.store
                    .put(&self.marker, marker.into())
                    .await
                    .map_err(storage_error)?;
                id
            }
        };
        while self.in_flight.len() >= PARTS_IN_FLIGHT {
            self.collect_one().await?;
        }
        let (s3, path, index) = (self.s3.clone(), self.path.clone(), self.next_part);
        self.next_part += 1;
        self.in_flight.spawn(async move {
            let result = s3.put_part(&path, &upload, index, part.into()).await;
            (index, result)
        });
        Ok(())
    }

    async fn collect_one(&mut self) -> Result<(), BackupError> {
        if let Some(joined) = self.in_flight.join_next().await {
            let (index, result) = joined.map_err(|e| BackupError::Internal(e.to_string()))?;
            self.done.push((index, result.map_err(storage_error)?));
        }
        Ok(())
    }

    async fn commit(mut self) -> Result<(), BackupError> {
        use object_store::multipart::MultipartStore;
        if self.upload.is_none() {
            // Smaller than one part: one PUT, nothing to clean up if it fails.
            let body = std::mem::take(&mut self.buf);
            return self
                .store
                .put(&self.path, body.into())
                .await
                .map(|_| ())
                .map_err(|e| BackupError::Storage(format!("cannot complete the upload: {e}")));
        }
        let result = async {
            if !self.buf.is_empty() {
                let last = std::mem::take(&mut self.buf);
                self.send(last).await?;
            }
            while !self.in_flight.is_empty() {
                self.collect_one().await?;
            }
            self.done.sort_by_key(|(index, _)| *index);
            let parts = self.done.iter().map(|(_, p)| p.clone()).collect();
            let id = self.upload.clone().unwrap_or_default();
            self.s3
                .complete_multipart(&self.path, &id, parts)
                .await
                .map_err(|e| BackupError::Storage(format!("cannot complete the upload: {e}")))
        }
        .await;
        match result {
            Ok(_) => {
                let _ = self.store.delete(&self.marker).await;
                Ok(())
            }
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    async fn abort(mut self) {
        use object_store::multipart::MultipartStore;
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        if let Some(id) = &self.upload
            && self.s3.abort_multipart(&self.path, id).await.is_ok()
        {
            // The marker goes only once its upload is gone: else the next run retries.
            let _ = self.store.delete(&self.marker).await;
        }
    }
}

/// Streams `source` through zstd and age into a new object at `key`. Returns once every
/// byte is handed to the upload; the caller then commits or aborts it.
///
/// The source is read with blocking reads on the compressing thread, as `zstd` reads its
/// stdin in a shell pipeline: a program's pipe delivers a few KiB per write, a blocking
/// read is woken by the kernel directly, and an async reader would add the reactor's epoll
/// and a task wake-up to each of those writes.
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

    // A thread of its own rather than one of the runtime's blocking threads: it is marked as
    // batch work, and a pooled thread would carry that on to later tasks.
    let (compressed_tx, compressed_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(COMPRESSING_THREAD.into())
        .spawn(move || {
            batch_work();
            let _ = compressed_tx.send(compress(source, zst_tx, level));
        })
        .map_err(|e| BackupError::Internal(format!("cannot start the compressing thread: {e}")))?;
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
    let mut writer = ObjectWriter::open(storage, key)?;
    let upload = tokio::spawn(async move {
        while let Some(chunk) = enc_rx.recv().await {
            if let Err(e) = writer.write(chunk).await {
                writer.abort().await;
                return Err(e);
            }
        }
        Ok(writer)
    });

    let compressed = compressed_rx
        .await
        .map_err(|_| BackupError::Internal("the compressing thread stopped".into()))?;
    let encrypted = encrypt
        .await
        .map_err(|e| BackupError::Internal(e.to_string()))?;
    let uploaded = upload
        .await
        .map_err(|e| BackupError::Internal(e.to_string()))?;
    // The most telling error first: storage, then the source, then encryption.
    let writer = uploaded?;
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
            writer.abort().await;
            Err(e)
        }
    }
}

/// The name of the thread that reads the source and feeds zstd.
const COMPRESSING_THREAD: &str = "rampart-zstd";

/// Marks the calling thread as batch work: Linux's `SCHED_BATCH`, its nice value kept.
///
/// pg_dump writes 4 KiB at a time, and each write wakes the thread that reads it. As a
/// normal thread, the reader then preempted pg_dump or the database server on their core,
/// well over a hundred thousand times in the backup of a 1 GB database. A batch thread
/// does not preempt the thread that woke it: it runs on a free core, or when the writer
/// blocks. The backup of a 1 GB database (pgbench scale 70) took 7–10 % less time on two
/// cores. zstd's worker threads, started from this thread, inherit the policy.
///
/// Where the system refuses, the thread stays a normal one: slower, never wrong.
fn batch_work() {
    #[cfg(target_os = "linux")]
    if scheduler::set_self_policy(scheduler::Policy::Batch, 0).is_err() {
        tracing::debug!("the compressing thread stays a normal thread: SCHED_BATCH refused");
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
    // The dump program and its database server take about a core; zstd gets the rest. At
    // least one worker, as the zstd CLI's default (-T1): compression runs on a thread of its
    // own, overlapping this thread's reads and row counting.
    let workers = std::thread::available_parallelism()
        .map(|n| n.get() / 2)
        .unwrap_or(1)
        .clamp(1, 8);
    encoder
        .multithread(u32::try_from(workers).unwrap_or(1))
        .map_err(Compress::Stage)?;
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

    use super::*;
    use crate::config::StorageConfig;

    /// Each read of the source: whether the thread was batch work, and its name.
    type Reads = Arc<Mutex<Vec<(bool, Option<String>)>>>;

    /// A source that notes, at each read, whether the reading thread is batch work and
    /// what it is called.
    struct Watched {
        data: std::io::Cursor<Vec<u8>>,
        readers: Reads,
    }

    impl Read for Watched {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let batch = matches!(scheduler::get_self_policy(), Ok(scheduler::Policy::Batch));
            let name = std::thread::current().name().map(str::to_owned);
            self.readers.lock().unwrap().push((batch, name));
            // A pipe's few KiB at a time, so that the source is read many times.
            let n = buf.len().min(4096);
            self.data.read(buf.get_mut(..n).unwrap_or_default())
        }
    }

    /// The source is read on a thread of its own marked as batch work, the runtime's
    /// blocking threads stay normal ones, and every byte comes back out of the object.
    #[tokio::test]
    async fn the_source_is_read_by_a_batch_thread_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(
            &StorageConfig {
                path: dir.path().join("objects"),
                ..StorageConfig::default()
            },
            dir.path(),
        )
        .unwrap();
        let identity = age::x25519::Identity::generate();
        let recipient = Recipient::parse(&identity.to_public().to_string()).unwrap();
        let data: Vec<u8> = (0..300_000_u32).flat_map(|i| i.to_le_bytes()).collect();
        let readers = Arc::new(Mutex::new(Vec::new()));
        let source = Watched {
            data: std::io::Cursor::new(data.clone()),
            readers: readers.clone(),
        };

        let upload = write(source, &storage, "t/one", &[recipient], 3)
            .await
            .unwrap();
        upload.commit().await.unwrap();

        let readers = readers.lock().unwrap().clone();
        assert!(readers.len() > 100, "{} reads", readers.len());
        for (batch, name) in &readers {
            assert!(batch, "a read on a normal thread");
            assert_eq!(name.as_deref(), Some(COMPRESSING_THREAD));
        }
        let pooled_is_normal = tokio::task::spawn_blocking(|| {
            matches!(scheduler::get_self_policy(), Ok(scheduler::Policy::Other))
        })
        .await
        .unwrap();
        assert!(
            pooled_is_normal,
            "a blocking thread of the runtime became batch work"
        );

        let out = dir.path().join("plain");
        let sink: Sink = Box::new(tokio::fs::File::create(&out).await.unwrap());
        let back = read(
            &storage,
            "t/one",
            vec![identity],
            sink,
            Arc::new(AtomicU64::new(0)),
        )
        .await
        .unwrap();
        assert_eq!(back.plain, data.len() as u64);
        assert_eq!(std::fs::read(&out).unwrap(), data);
    }

    fn dir_storage(dir: &Path) -> Storage {
        Storage::open(
            &StorageConfig {
                path: dir.join("objects"),
                ..StorageConfig::default()
            },
            dir,
        )
        .unwrap()
    }

    /// What the storage lists under the prefix: (key, staged, size).
    async fn listed(storage: &Storage) -> Vec<(String, bool, u64)> {
        let mut found: Vec<_> = storage
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|f| (f.key, f.staged, f.size))
            .collect();
        found.sort();
        found
    }

    /// In a directory, each chunk is in the staged file as soon as it is written (not held
    /// back for the end), the object exists only once committed, and nothing staged is left.
    #[tokio::test]
    async fn a_directory_object_is_written_as_it_arrives_and_appears_at_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir_storage(dir.path());
        // The source's directory does not exist yet: the writer makes it.
        let key = storage.key_for("db", jiff::Timestamp::now(), "id1", "pgdump");
        let mut writer = ObjectWriter::open(&storage, &key).unwrap();
        let first = Bytes::from(vec![1_u8; 300_000]);
        let second = Bytes::from(vec![2_u8; 5]);

        writer.write(first.clone()).await.unwrap();
        let staged = format!("{key}#1");
        assert_eq!(
            listed(&storage).await,
            vec![(staged.clone(), true, 300_000)]
        );
        writer.write(second.clone()).await.unwrap();
        assert_eq!(listed(&storage).await, vec![(staged, true, 300_005)]);
        let missing = storage.store().get(&ObjectPath::from(key.as_str())).await;
        assert!(
            matches!(missing, Err(object_store::Error::NotFound { .. })),
            "the object exists before its commit"
        );

        writer.commit().await.unwrap();
        assert_eq!(listed(&storage).await, vec![(key.clone(), false, 300_005)]);
        let got = storage
            .store()
            .get(&ObjectPath::from(key.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(got, [first, second].concat());
    }

    /// An aborted object, and one whose writer is dropped halfway, leave no file; an empty
    /// object is still an object.
    #[tokio::test]
    async fn a_directory_object_not_committed_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir_storage(dir.path());
        let chunk = Bytes::from(vec![7_u8; 1000]);

        let mut aborted = ObjectWriter::open(&storage, "rampart/db/a").unwrap();
        aborted.write(chunk.clone()).await.unwrap();
        aborted.abort().await;
        assert_eq!(listed(&storage).await, vec![]);

        let mut dropped = ObjectWriter::open(&storage, "rampart/db/b").unwrap();
        dropped.write(chunk).await.unwrap();
        assert_eq!(listed(&storage).await.len(), 1);
        drop(dropped);
        assert_eq!(listed(&storage).await, vec![]);

        let empty = ObjectWriter::open(&storage, "rampart/db/c").unwrap();
        empty.commit().await.unwrap();
        assert_eq!(
            listed(&storage).await,
            vec![("rampart/db/c".to_owned(), false, 0)]
        );
    }
}

//! Where backup objects live: a local directory or an S3-compatible bucket, through
//! `object_store`, with the keys rampart gives them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use jiff::Timestamp;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::BackupError;
use crate::config::{StorageConfig, StorageKind};

/// An opened storage.
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    label: String,
    prefix: String,
    /// The directory, for `dir` storage: staged uploads of a killed run live there as
    /// `KEY#N` files, which `object_store` does not list.
    root: Option<PathBuf>,
    /// The directory's object store, for `dir` storage: where a key's file is.
    local: Option<Arc<LocalFileSystem>>,
    /// The bucket, for `s3` storage: large objects go up as multipart uploads whose ids
    /// are written down in marker objects first ([`UPLOADS`]), so that the parts of a run
    /// killed halfway can be aborted by the next run.
    s3: Option<Arc<AmazonS3>>,
}

/// Where, under the prefix, the markers of multipart uploads in progress are kept.
pub const UPLOADS: &str = "uploads-in-progress";

/// An object found in storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its key.
    pub key: String,
    /// Last modified.
    pub modified: Timestamp,
    /// Size in bytes.
    pub size: u64,
    /// A staged, never completed upload (directory storage).
    pub staged: bool,
}

impl Storage {
    /// Opens the configured storage. A relative directory is under `data_dir`. S3
    /// credentials come from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
    pub fn open(config: &StorageConfig, data_dir: &Path) -> Result<Self, BackupError> {
        match config.kind {
            StorageKind::Dir => {
                let root = data_dir.join(&config.path);
                std::fs::create_dir_all(&root).map_err(|e| {
                    BackupError::Storage(format!(
                        "cannot create the backup directory {}: {e}",
                        root.display()
                    ))
                })?;
                // A backup is catalogued once its object is complete, so "complete" must
                // survive a crash or a power cut: a file is synced before it is renamed into
                // place and its directory after. The pipeline's `DirWriter` does so for the
                // backups; object_store, which does neither by default, is told to for
                // anything else written through it.
                let store = Arc::new(
                    LocalFileSystem::new_with_prefix(&root)
                        .map_err(|e| BackupError::Storage(e.to_string()))?
                        .with_fsync(true),
                );
                Ok(Self {
                    store: store.clone(),
                    label: "dir".into(),
                    prefix: config.prefix.clone(),
                    root: Some(root),
                    local: Some(store),
                    s3: None,
                })
            }
            StorageKind::S3 => {
                let bucket = config.bucket.clone().unwrap_or_default();
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(&bucket)
                    .with_region(&config.region)
                    .with_allow_http(config.dangerous_allow_http);
                if let Some(endpoint) = &config.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                let store = Arc::new(
                    builder
                        .build()
                        .map_err(|e| BackupError::Storage(e.to_string()))?,
                );
                Ok(Self {
                    store: store.clone(),
                    label: format!("s3:{bucket}"),
                    prefix: config.prefix.clone(),
                    root: None,
                    local: None,
                    s3: Some(store),
                })
            }
        }
    }

    /// `dir` or `s3:BUCKET`, as recorded in the catalog.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The directory's object store, for `dir` storage.
    pub(crate) fn local(&self) -> Option<&Arc<LocalFileSystem>> {
        self.local.as_ref()
    }

    /// The bucket's multipart API, for `s3` storage.
    pub(crate) fn s3(&self) -> Option<&Arc<AmazonS3>> {
        self.s3.as_ref()
    }

    /// The marker of a multipart upload of `key` with `upload_id`.
    pub(crate) fn marker_for(&self, key: &str, upload_id: &str) -> ObjectPath {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{key}\n{upload_id}").as_bytes());
        ObjectPath::from(format!(
            "{}/{UPLOADS}/{}",
            self.prefix,
            hex::encode(digest.get(..16).unwrap_or_default())
        ))
    }

    /// The key of a new backup object.
    pub fn key_for(&self, source: &str, started: Timestamp, id: &str, ext: &str) -> String {
        let stamp = started.strftime("%Y%m%dT%H%M%SZ");
        format!("{}/{source}/{stamp}-{id}.{ext}.zst.age", self.prefix)
    }

    /// Every object under the prefix, with staged uploads in a directory.
    pub async fn list(&self) -> Result<Vec<Found>, BackupError> {
        let prefix = ObjectPath::from(self.prefix.as_str());
        let mut found: Vec<Found> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| {
                let key = m.location.to_string();
                Found {
                    // A multipart marker stands for an upload never completed.
                    staged: key.contains(&format!("/{UPLOADS}/")),
                    key,
                    modified: Timestamp::from_millisecond(m.last_modified.timestamp_millis())
                        .unwrap_or(Timestamp::UNIX_EPOCH),
                    size: m.size,
                }
            })
            .try_collect()
            .await
            .map_err(storage_error)?;
        if let Some(root) = &self.root {
            let base = root.clone();
            let dir = root.join(&self.prefix);
            let staged = tokio::task::spawn_blocking(move || staged_files(&base, &dir))
                .await
                .map_err(|e| BackupError::Internal(e.to_string()))?;
            found.extend(staged);
        }
        Ok(found)
    }

    /// Deletes an object (or a staged upload). A missing object is not an error.
    pub async fn delete(&self, found_key: &str, staged: bool) -> Result<(), BackupError> {
        if staged {
            if let Some(root) = &self.root {
                let path = root.join(found_key);
                return match tokio::fs::remove_file(&path).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(BackupError::Storage(format!(
                        "cannot remove {}: {e}",
                        path.display()
                    ))),
                };
            }
            if let Some(s3) = &self.s3 {
                return abort_marked(s3, &self.store, found_key).await;
            }
            return Ok(());
        }
        match self.store.delete(&ObjectPath::from(found_key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_error(e)),
        }
    }
}

/// What a multipart marker holds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Marker {
    /// The object being uploaded.
    pub key: String,
    /// The upload's id.
    pub upload_id: String,
}

/// Aborts the multipart upload a marker names (its parts are freed), then removes the
/// marker. An upload already gone is not an error.
async fn abort_marked(
    s3: &AmazonS3,
    store: &Arc<dyn ObjectStore>,
    marker_key: &str,
) -> Result<(), BackupError> {
    use object_store::multipart::MultipartStore;
    let marker_path = ObjectPath::from(marker_key);
    let bytes = match store.get(&marker_path).await {
        Ok(got) => got.bytes().await.map_err(storage_error)?,
        Err(object_store::Error::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(storage_error(e)),
    };
    if bytes.len() <= 64 * 1024
        && let Ok(marker) = serde_json::from_slice::<Marker>(&bytes)
    {
        match s3
            .abort_multipart(&ObjectPath::from(marker.key.as_str()), &marker.upload_id)
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(storage_error(e)),
        }
    }
    match store.delete(&marker_path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(storage_error(e)),
    }
}

/// `KEY#digits` files under `dir`, keyed relative to `base`.
fn staged_files(base: &Path, dir: &Path) -> Vec<Found> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    // Bounded walk: rampart's own layout is prefix/source/file.
    let mut budget = 100_000_usize;
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                return out;
            }
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let staged = name
                .rsplit_once('#')
                .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !staged {
                continue;
            }
            let Ok(rel) = path.strip_prefix(base) else {
                continue;
            };
            let modified = meta
                .modified()
                .ok()
                .and_then(|m| Timestamp::try_from(m).ok())
                .unwrap_or(Timestamp::UNIX_EPOCH);
            out.push(Found {
                key: rel.to_string_lossy().into_owned(),
                modified,
                size: meta.len(),
                staged: true,
            });
        }
    }
    out
}

/// A storage failure as one sentence.
pub(crate) fn storage_error(e: object_store::Error) -> BackupError {
    match e {
        object_store::Error::NotFound { path, .. } => {
            BackupError::Missing(format!("the object {path} is missing from storage"))
        }
        other => BackupError::Storage(other.to_string()),
    }
}

//! Certificates for the HTTPS listener: self-signed by default, or files that are reloaded
//! when they change. TLS 1.2 and 1.3 only (rustls implements nothing older).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// Where the certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// A certificate rampart made for itself at init (`tls/self-signed.pem`).
    #[default]
    SelfSigned,
    /// `cert_file` and `key_file`, reloaded when they change on disk.
    Files,
    /// Issued by an ACME CA (`[tls.acme]`), HTTP-01 on the HTTP listener, renewed before expiry.
    Acme,
}

/// The `[tls]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// `self-signed` (default) or `files`.
    pub mode: TlsMode,
    /// PEM certificate chain (mode `files`).
    pub cert_file: Option<PathBuf>,
    /// PEM private key (mode `files`).
    pub key_file: Option<PathBuf>,
    /// ACME settings (mode `acme`).
    pub acme: crate::acme::AcmeConfig,
}

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no certificate or key.
    #[error("{0} holds no PEM certificate or private key")]
    Empty(PathBuf),
    /// rustls refused the pair.
    #[error("the certificate and key in {0} cannot be used: {1}")]
    Invalid(PathBuf, rustls::Error),
    /// A certificate could not be generated.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    /// `mode = "files"` without both paths.
    #[error("tls.mode = \"files\" needs both tls.cert_file and tls.key_file")]
    MissingPaths,
}

/// The certificate and key files in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    /// PEM chain.
    pub cert: PathBuf,
    /// PEM key.
    pub key: PathBuf,
}

impl TlsConfig {
    /// The files to serve now, given the data directory. In ACME mode these are the
    /// self-signed pair until the first certificate has been issued.
    pub fn paths(&self, data_dir: &Path) -> Result<CertPaths, TlsError> {
        let self_signed = CertPaths {
            cert: data_dir.join("tls").join("self-signed.pem"),
            key: data_dir.join("tls").join("self-signed.key"),
        };
        match self.mode {
            TlsMode::SelfSigned => Ok(self_signed),
            TlsMode::Acme => {
                let issued = crate::acme::paths(data_dir);
                Ok(if issued.cert.exists() && issued.key.exists() {
                    issued
                } else {
                    self_signed
                })
            }
            TlsMode::Files => match (&self.cert_file, &self.key_file) {
                (Some(cert), Some(key)) => Ok(CertPaths {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => Err(TlsError::MissingPaths),
            },
        }
    }
}

/// Writes a self-signed certificate for `hosts` (plus localhost and loopback addresses).
pub fn generate_self_signed(hosts: &[String], paths: &CertPaths) -> Result<(), TlsError> {
    let mut names: Vec<String> = hosts.to_vec();
    for extra in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n == extra) {
            names.push(extra.to_owned());
        }
    }
    let made =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    if let Some(dir) = paths.cert.parent() {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Read {
            path: dir.to_owned(),
            source,
        })?;
    }
    write_private(&paths.key, made.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&paths.cert, made.cert.pem()).map_err(|source| TlsError::Read {
        path: paths.cert.clone(),
        source,
    })
}

/// Loads the pair into a rustls server config: TLS 1.3 and 1.2, HTTP/2 and HTTP/1.1.
pub fn server_config(paths: &CertPaths) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = read_certs(&paths.cert)?;
    let key = read_key(&paths.key)?;
    let mut config = ServerConfig::builder_with_protocol_versions(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ])
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| TlsError::Invalid(paths.cert.clone(), e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The DER of the first certificate in the chain (the probe pins it).
pub fn leaf_der(paths: &CertPaths) -> Result<Vec<u8>, TlsError> {
    read_certs(&paths.cert)?
        .into_iter()
        .next()
        .map(|c| c.as_ref().to_vec())
        .ok_or_else(|| TlsError::Empty(paths.cert.clone()))
}

/// What a reload hands over: the new config and the DER of its leaf certificate.
pub type Apply = Box<dyn Fn(Arc<ServerConfig>, Vec<u8>) + Send + Sync>;

/// Polls the files every `every` and hands a fresh config to `apply` when either changed.
/// A broken new pair is logged and the old one kept.
pub async fn watch(paths: CertPaths, every: Duration, apply: std::sync::Arc<Apply>) {
    let stamp = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen: (Option<SystemTime>, Option<SystemTime>) =
        (stamp(&paths.cert), stamp(&paths.key));
    loop {
        tokio::time::sleep(every).await;
        let now = (stamp(&paths.cert), stamp(&paths.key));
        if now == seen {
            continue;
        }
        seen = now;
        match server_config(&paths).and_then(|c| Ok((c, leaf_der(&paths)?))) {
            Ok((config, leaf)) => {
                apply(config, leaf);
                tracing::info!(cert = %paths.cert.display(), "reloaded TLS certificate");
            }
            Err(e) => tracing::warn!(error = %e, "kept the previous TLS certificate"),
        }
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty(path.to_owned()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::Empty(path.to_owned()))
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
    f.write_all(bytes).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

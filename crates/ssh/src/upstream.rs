//! rampart as an SSH client of a target: a fresh ed25519 key and a certificate for it from
//! rampart's user CA, valid for this session only, and the target's host key checked
//! against the pinned one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::{PrivateKey, PublicKeyOrCertificate};

use crate::keys::{self, CertRequest, HostKeyDecision};

/// Channel flow control towards targets: the same sizes as towards clients.
pub(crate) fn client_config(host_cas: bool) -> client::Config {
    let mut preferred = russh::Preferred::DEFAULT;
    if host_cas {
        preferred.host_key_certificates = std::borrow::Cow::Borrowed(&[
            russh::keys::Algorithm::Ed25519,
            russh::keys::Algorithm::Ecdsa {
                curve: russh::keys::EcdsaCurve::NistP256,
            },
            russh::keys::Algorithm::Rsa {
                hash: Some(russh::keys::HashAlg::Sha512),
            },
        ]);
    }
    client::Config {
        window_size: crate::server::WINDOW,
        maximum_packet_size: crate::server::PACKET,
        channel_buffer_size: crate::server::CHANNEL_BUFFER,
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(60)),
        keepalive_max: 3,
        nodelay: true,
        // Towards targets: every algorithm russh considers safe, so that older servers work.
        preferred,
        ..Default::default()
    }
}

/// Why a target could not be reached. The client is told [`UpstreamError::client_text`].
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// TCP or SSH failed, or it took too long.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The host key does not match the pinned one.
    #[error("the host key {presented} does not match the pinned {expected}")]
    HostKeyMismatch {
        /// The pinned fingerprint.
        expected: String,
        /// What the target showed.
        presented: String,
    },
    /// The target's host certificate did not check out.
    #[error("the host certificate was refused: {0}")]
    HostCert(&'static str),
    /// The target did not accept the certificate.
    #[error("the target refused the certificate for login {0}")]
    Refused(String),
    /// A key or certificate could not be made.
    #[error("{0}")]
    Key(#[from] keys::KeyError),
}

impl UpstreamError {
    /// What the client may read.
    pub fn client_text(&self) -> &'static str {
        match self {
            Self::Connect(_) => "the target is unreachable",
            Self::HostKeyMismatch { .. } => {
                "the target's host key changed; an administrator must confirm it"
            }
            Self::Refused(_) => "the target refused rampart's certificate",
            Self::HostCert(_) => "the target's host certificate is not trusted",
            Self::Key(_) => "internal error",
        }
    }
}

/// A logged-in connection to a target.
pub(crate) struct Connected {
    pub handle: client::Handle<Checker>,
    /// The host key fingerprint and line when nothing was pinned yet.
    pub pin_new: Option<(String, String)>,
    /// Whether the target's static key was used because it refused the certificate.
    pub static_key: bool,
}

/// Checks the target's host key during key exchange.
pub(crate) struct Checker {
    pinned: Option<String>,
    seen: Arc<Mutex<Option<(String, String)>>>,
    host_cas: Arc<Vec<russh::keys::PublicKey>>,
    host: String,
    cert_refusal: Arc<Mutex<Option<&'static str>>>,
}

impl client::Handler for Checker {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            PublicKeyOrCertificate::Certificate(cert) => {
                let now = u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or(0);
                let verdict = keys::check_host_cert(cert, &self.host_cas, &self.host, now);
                if let (Err(why), Ok(mut slot)) = (verdict, self.cert_refusal.lock()) {
                    *slot = Some(why);
                }
                return Ok(verdict.is_ok());
            }
        };
        let fp = keys::fingerprint(key);
        let decision = keys::host_key_decision(self.pinned.as_deref(), &fp);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some((fp, keys::public_line(key)));
        }
        Ok(!matches!(decision, HostKeyDecision::Mismatch { .. }))
    }
}

/// Connects to `address` and logs in as `login` with a fresh certificate.
pub(crate) async fn connect(
    address: &str,
    host_cas: Arc<Vec<russh::keys::PublicKey>>,
    pinned: Option<String>,
    ca: &PrivateKey,
    req: &CertRequest<'_>,
    fallback: Option<PrivateKey>,
    timeout: Duration,
) -> Result<Connected, UpstreamError> {
    let seen = Arc::new(Mutex::new(None));
    let cert_refusal = Arc::new(Mutex::new(None));
    let host = address
        .rsplit_once(':')
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or(address)
        .to_owned();
    let with_cas = !host_cas.is_empty();
    let checker = Checker {
        pinned: pinned.clone(),
        seen: seen.clone(),
        host_cas,
        host,
        cert_refusal: cert_refusal.clone(),
    };
    let session_key = keys::generate_ed25519("rampart session")?;
    let cert = keys::sign_user_cert(ca, session_key.public_key(), req)?;
    let attempt = async {
        let mut handle = client::connect(Arc::new(client_config(with_cas)), address, checker)
            .await
            .map_err(|e| match cert_refusal.lock().ok().and_then(|r| *r) {
                Some(why) => UpstreamError::HostCert(why),
                None => mismatch_or(&pinned, &seen, e),
            })?;
        let auth = handle
            .authenticate_openssh_cert(req.login, Arc::new(session_key), cert)
            .await
            .map_err(|e| UpstreamError::Connect(e.to_string()))?;
        if auth.success() {
            return Ok((handle, false));
        }
        // The fallback for a target that does not trust the CA: its own static key.
        if let Some(key) = fallback {
            let key = russh::keys::PrivateKeyWithHashAlg::new(Arc::new(key), None);
            let auth = handle
                .authenticate_publickey(req.login, key)
                .await
                .map_err(|e| UpstreamError::Connect(e.to_string()))?;
            if auth.success() {
                return Ok((handle, true));
            }
        }
        Err(UpstreamError::Refused(req.login.to_owned()))
    };
    let (handle, static_key) = tokio::time::timeout(timeout, attempt).await.map_err(|_| {
        UpstreamError::Connect(format!("no answer within {} s", timeout.as_secs()))
    })??;
    // A certified host is not pinned: the CA vouches for it, also after a key rotation.
    let certified = seen.lock().ok().is_some_and(|s| s.is_none());
    let pin_new = if pinned.is_none() && !certified {
        seen.lock().ok().and_then(|s| s.clone())
    } else {
        None
    };
    Ok(Connected {
        handle,
        pin_new,
        static_key,
    })
}

fn mismatch_or(
    pinned: &Option<String>,
    seen: &Mutex<Option<(String, String)>>,
    e: russh::Error,
) -> UpstreamError {
    let presented = seen
        .lock()
        .ok()
        .and_then(|s| s.as_ref().map(|(fp, _)| fp.clone()));
    match (pinned, presented) {
        (Some(expected), Some(presented)) if *expected != presented => {
            UpstreamError::HostKeyMismatch {
                expected: expected.clone(),
                presented,
            }
        }
        _ => UpstreamError::Connect(e.to_string()),
    }
}

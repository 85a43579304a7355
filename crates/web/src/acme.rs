//! Certificates from an ACME CA (RFC 8555) with HTTP-01 challenges answered on rampart's
//! own HTTP listener, renewed before they expire.
//!
//! Until the first certificate arrives the HTTPS listener serves the self-signed one, so
//! the front door never goes dark. Files live in `tls/acme/` of the data directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rampart_audit::{Action, Actor, AuditEvent, Outcome};
use rampart_core::Bounded;
use rampart_store::Store;
use serde::Deserialize;

use crate::tls::{self, CertPaths};

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The `[tls.acme]` section (used when `tls.mode = "acme"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeConfig {
    /// Directory URL of the ACME CA.
    pub directory: String,
    /// Contact email given to the CA (expiry notices).
    pub contact: Option<String>,
    /// PEM file of the root that signs the ACME server's own HTTPS certificate, when it is
    /// not publicly trusted (a private CA, or pebble in tests).
    pub ca_file: Option<PathBuf>,
    /// Names on the certificate; default: `web.public_host`.
    pub domains: Vec<String>,
    /// Renew this many days before expiry (1 to 60).
    pub renew_before_days: Bounded<1, 60>,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        Self {
            directory: LETS_ENCRYPT.into(),
            contact: None,
            ca_file: None,
            domains: Vec::new(),
            renew_before_days: Bounded::clamped(30),
        }
    }
}

/// Pending HTTP-01 answers: token → key authorization.
pub type Challenges = Arc<RwLock<HashMap<String, String>>>;

/// Why an issuance failed.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The CA or the protocol failed.
    #[error("ACME: {0}")]
    Protocol(#[from] instant_acme::Error),
    /// A file could not be read or written.
    #[error("ACME files: {0}")]
    Io(#[from] std::io::Error),
    /// The order ended in a state other than ready or valid.
    #[error("ACME order ended as {0}")]
    Order(String),
    /// The issued pair is unusable.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Where the ACME files live.
pub fn paths(data_dir: &Path) -> CertPaths {
    CertPaths {
        cert: data_dir.join("tls").join("acme").join("cert.pem"),
        key: data_dir.join("tls").join("acme").join("key.pem"),
    }
}

/// Seconds since the epoch at which the first certificate in `pem` expires.
pub fn not_after(pem: &str) -> Option<i64> {
    let der = rustls_pemfile::certs(&mut pem.as_bytes()).next()?.ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Keeps a valid certificate in place: issues when missing or due, hands each new pair to
/// `apply`, then checks again every 12 hours; failures retry with backoff up to an hour.
pub async fn keep_renewed(
    config: AcmeConfig,
    domains: Vec<String>,
    data_dir: PathBuf,
    challenges: Challenges,
    store: Arc<Store>,
    apply: Arc<tls::Apply>,
) {
    let files = paths(&data_dir);
    let mut retry = Duration::from_secs(30);
    loop {
        let due = std::fs::read_to_string(&files.cert)
            .ok()
            .and_then(|pem| not_after(&pem))
            .is_none_or(|end| {
                end - jiff::Timestamp::now().as_second() < config.renew_before_days.get() * 86_400
            });
        if !due {
            retry = Duration::from_secs(30);
            tokio::time::sleep(Duration::from_secs(12 * 3600)).await;
            continue;
        }
        let outcome = issue(&config, &domains, &data_dir, &challenges).await;
        let event = AuditEvent::new(Actor::System, Action::CertificateIssue, domains.join(","));
        match outcome.and_then(|()| Ok((tls::server_config(&files)?, tls::leaf_der(&files)?))) {
            Ok((server_config, leaf)) => {
                apply(server_config, leaf);
                tracing::info!(domains = %domains.join(","), "installed a certificate from the ACME CA");
                if let Err(e) = store.append_audit(&[event]).await {
                    tracing::error!(error = %e, "could not audit the certificate issuance");
                }
                retry = Duration::from_secs(30);
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?retry, "ACME issuance failed");
                let event = event
                    .outcome(Outcome::Failure)
                    .detail("error", crate::scrubbed(&e.to_string()));
                if let Err(e) = store.append_audit(&[event]).await {
                    tracing::error!(error = %e, "could not audit the failed issuance");
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(3600));
            }
        }
    }
}

/// One issuance: account (created once, then reused), order, HTTP-01, finalize, files.
pub async fn issue(
    config: &AcmeConfig,
    domains: &[String],
    data_dir: &Path,
    challenges: &Challenges,
) -> Result<(), AcmeError> {
    let dir = data_dir.join("tls").join("acme");
    std::fs::create_dir_all(&dir)?;
    let builder = || match &config.ca_file {
        Some(root) => Account::builder_with_root(root),
        None => Account::builder(),
    };
    let creds_path = dir.join("account.json");
    let account = match std::fs::read(&creds_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<AccountCredentials>(&b).ok())
    {
        Some(creds) => builder()?.from_credentials(creds).await?,
        None => {
            let contact = config.contact.as_ref().map(|c| format!("mailto:{c}"));
            let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
            let (account, creds) = builder()?
                .create(
                    &NewAccount {
                        contact: &contacts,
                        terms_of_service_agreed: true,
                        only_return_existing: false,
                    },
                    config.directory.clone(),
                    None,
                )
                .await?;
            let json = serde_json::to_vec(&creds).map_err(std::io::Error::other)?;
            tls::write_private(&creds_path, &json)?;
            account
        }
    };
    let identifiers: Vec<Identifier> = domains.iter().map(|d| Identifier::Dns(d.clone())).collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let mut tokens = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(result) = authorizations.next().await {
        let mut authz = result?;
        if authz.status == AuthorizationStatus::Valid {
            continue;
        }
        let Some(mut challenge) = authz.challenge(ChallengeType::Http01) else {
            return Err(AcmeError::Order("offered no http-01 challenge".into()));
        };
        let answer = challenge.key_authorization().as_str().to_owned();
        if let Ok(mut map) = challenges.write() {
            map.insert(challenge.token.clone(), answer);
        }
        tokens.push(challenge.token.clone());
        challenge.set_ready().await?;
    }
    let retries = RetryPolicy::new().timeout(Duration::from_secs(120));
    let status = order.poll_ready(&retries).await;
    if let Ok(mut map) = challenges.write() {
        for t in &tokens {
            map.remove(t);
        }
    }
    let status = status?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Order(format!("{status:?}")));
    }
    let key_pem = order.finalize().await?;
    let chain_pem = order.poll_certificate(&retries).await?;
    let files = paths(data_dir);
    // Key first, certificate last: the watcher reloads on the certificate's change.
    tls::write_private(&files.key, key_pem.as_bytes())?;
    std::fs::write(&files.cert, chain_pem)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_read_from_a_certificate() {
        let made = rcgen::generate_simple_self_signed(vec!["example.test".into()]).unwrap();
        let end = not_after(&made.cert.pem()).unwrap();
        // rcgen's default validity ends in 4096.
        assert!(end > 4_000_000_000, "{end}");
        assert_eq!(not_after("not a certificate"), None);
    }
}

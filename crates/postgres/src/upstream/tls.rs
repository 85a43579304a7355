//! TLS towards the database server (PostgreSQL docs 55.2.10): `SSLRequest`, then a rustls
//! client handshake, with the certificate checked against the configured CA (verify) or
//! not at all (require).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::config::{PostgresConfig, UpstreamTls};

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA file cannot be read or holds no certificate.
    #[error("postgres.upstream_ca_file {0}: {1}")]
    Ca(String, String),
}

/// The upstream TLS policy and the rustls config it needs.
#[derive(Clone)]
pub struct UpstreamTlsConfig {
    mode: UpstreamTls,
    client: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for UpstreamTlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTlsConfig")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl UpstreamTlsConfig {
    /// Builds the rustls client config for `config.upstream_tls`.
    pub fn new(config: &PostgresConfig) -> Result<Self, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError::Ca(String::new(), e.to_string()))?;
        let client = match config.upstream_tls {
            UpstreamTls::Off => None,
            UpstreamTls::Prefer | UpstreamTls::Require => Some(
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                    .with_no_client_auth(),
            ),
            UpstreamTls::Verify => {
                let path = config.upstream_ca_file.clone().unwrap_or_default();
                let shown = path.display().to_string();
                let pem = std::fs::read(&path)
                    .map_err(|e| TlsSetupError::Ca(shown.clone(), e.to_string()))?;
                let mut roots = RootCertStore::empty();
                for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                    let cert = cert.map_err(|e| TlsSetupError::Ca(shown.clone(), e.to_string()))?;
                    roots
                        .add(cert)
                        .map_err(|e| TlsSetupError::Ca(shown.clone(), e.to_string()))?;
                }
                if roots.is_empty() {
                    return Err(TlsSetupError::Ca(
                        shown,
                        "no certificate in the file".into(),
                    ));
                }
                Some(builder.with_root_certificates(roots).with_no_client_auth())
            }
        };
        Ok(Self {
            mode: config.upstream_tls,
            client: client.map(Arc::new),
        })
    }

    /// Plaintext only (tests of the pure parts).
    pub fn off() -> Self {
        Self {
            mode: UpstreamTls::Off,
            client: None,
        }
    }

    /// Negotiates TLS on `tcp` as the policy says; `host` is checked against the
    /// certificate in verify mode.
    pub async fn wrap(&self, mut tcp: TcpStream, host: &str) -> std::io::Result<Stream> {
        let Some(client) = &self.client else {
            return Ok(Stream::Plain(tcp));
        };
        tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await?;
        let answer = tcp.read_u8().await?;
        match (answer, self.mode) {
            (b'S', _) => {
                let name = ServerName::try_from(host.to_owned()).map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("{host} is not a host name or address for TLS"),
                    )
                })?;
                let tls = tokio_rustls::TlsConnector::from(client.clone())
                    .connect(name, tcp)
                    .await?;
                Ok(Stream::Tls(Box::new(tls)))
            }
            (b'N', UpstreamTls::Prefer) => Ok(Stream::Plain(tcp)),
            (b'N', _) => Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "the database server does not offer TLS (postgres.upstream_tls requires it)",
            )),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the database server answered SSLRequest with neither S nor N",
            )),
        }
    }
}

/// The connection to the server: plaintext or TLS.
#[derive(Debug)]
pub enum Stream {
    /// Plaintext TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(_))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// `upstream_tls = "require"`: encryption without authentication of the server, as
/// libpq's `sslmode=require`. Signatures are still checked, so the handshake is sound.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

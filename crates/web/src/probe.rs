//! The live ENC-2 probe: asks rampart's own HTTP listener for a page with a hostile Host
//! header and expects a 308 to the configured https URL with the same path and query; then
//! fetches `/healthz` over TLS (pinning the served certificate) and expects HSTS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rampart_core::ControlId;
use rampart_report::Finding;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(5);
const PROBE_PATH: &str = "/rampart-probe?check=enc-2&x=1";

/// Runs the probe against listeners at `http` and `https` (unspecified addresses are
/// probed on loopback) and returns the ENC-2 finding.
pub async fn enc2(
    http: SocketAddr,
    https: SocketAddr,
    public_origin: &str,
    leaf_der: &[u8],
) -> Finding {
    let mut evidence = Vec::new();
    let mut pass = true;
    let expected = format!("{public_origin}{PROBE_PATH}");
    match tokio::time::timeout(TIMEOUT, http_probe(loopback(http))).await {
        Ok(Ok((status, location))) => {
            let ok = status == 308 && location.as_deref() == Some(expected.as_str());
            pass &= ok;
            evidence.push(format!(
                "http://{}{PROBE_PATH} with Host: probe.invalid answered {status} → {}{}",
                loopback(http),
                location.as_deref().unwrap_or("(no Location)"),
                if ok {
                    ""
                } else {
                    " (expected 308 to the configured https URL)"
                }
            ));
        }
        Ok(Err(e)) => {
            pass = false;
            evidence.push(format!(
                "HTTP listener {} not reachable: {e}",
                loopback(http)
            ));
        }
        Err(_) => {
            pass = false;
            evidence.push(format!(
                "HTTP listener {} did not answer within 5 s",
                loopback(http)
            ));
        }
    }
    match tokio::time::timeout(TIMEOUT, https_probe(loopback(https), leaf_der.to_vec())).await {
        Ok(Ok((status, hsts, version))) => {
            let ok = status == 200 && hsts.as_deref() == Some(crate::HSTS);
            pass &= ok;
            evidence.push(format!(
                "https://{}/healthz answered {status} over {version}, Strict-Transport-Security: {}",
                loopback(https),
                hsts.as_deref().unwrap_or("(missing)")
            ));
        }
        Ok(Err(e)) => {
            pass = false;
            evidence.push(format!(
                "HTTPS listener {} not reachable: {e}",
                loopback(https)
            ));
        }
        Err(_) => {
            pass = false;
            evidence.push(format!(
                "HTTPS listener {} did not answer within 5 s",
                loopback(https)
            ));
        }
    }
    evidence.push(
        "protocol versions offered: TLS 1.3 and TLS 1.2 only (rustls implements nothing older)"
            .into(),
    );
    Finding::new(
        ControlId::Enc2,
        pass,
        if pass {
            "HTTP redirects to HTTPS with path and query kept; HTTPS sends HSTS."
        } else {
            "The live probe of the front door failed."
        },
        evidence,
    )
}

fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    }
}

async fn http_probe(addr: SocketAddr) -> std::io::Result<(u16, Option<String>)> {
    let mut stream = TcpStream::connect(addr).await?;
    let head = request(&mut stream, "probe.invalid", PROBE_PATH).await?;
    Ok((status(&head), header(&head, "location")))
}

async fn https_probe(
    addr: SocketAddr,
    pinned: Vec<u8>,
) -> std::io::Result<(u16, Option<String>, String)> {
    let config = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned(pinned)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let name =
        ServerName::try_from("localhost").map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut tls = connector.connect(name, tcp).await?;
    let version = tls
        .get_ref()
        .1
        .protocol_version()
        .map(|v| format!("{v:?}").replace("TLSv1_", "TLS 1."))
        .unwrap_or_default();
    let head = request(&mut tls, "localhost", "/healthz").await?;
    Ok((
        status(&head),
        header(&head, "strict-transport-security"),
        version,
    ))
}

async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    host: &str,
    path: &str,
) -> std::io::Result<String> {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: rampart-probe\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    // Only the head matters; stop at its end or at 16 KiB.
    while buf.len() < 16 * 1024 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn status(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
}

/// Accepts exactly the certificate rampart serves; signatures still checked.
#[derive(Debug)]
struct Pinned(Vec<u8>);

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.0.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "certificate differs from the one rampart serves".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_heads_are_read() {
        let head = "HTTP/1.1 308 Permanent Redirect\r\nlocation: https://gw:8443/a?b=1\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(status(head), 308);
        assert_eq!(
            header(head, "Location").as_deref(),
            Some("https://gw:8443/a?b=1")
        );
        assert_eq!(header(head, "strict-transport-security"), None);
    }
}

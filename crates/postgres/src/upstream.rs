//! The connection to the real server: TCP, startup as the database role, and password,
//! MD5 or SCRAM-SHA-256 authentication (PostgreSQL docs 55.3 "SASL Authentication") with
//! the credential opened from its seal, up to the first `ReadyForQuery`.

use bytes::BytesMut;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::codec::{self, CodecError, i32_at};

pub mod tls;

pub use tls::{Stream, UpstreamTlsConfig};

/// An authenticated upstream session, ready for queries.
#[derive(Debug)]
pub struct Upstream {
    /// The connection, plaintext or TLS.
    pub stream: Stream,
    /// `ParameterStatus` and `NoticeResponse` messages, as received, for the client.
    pub greeting: BytesMut,
    /// The server's `BackendKeyData` (pid, secret), for cancel requests.
    pub key: Option<(i32, i32)>,
    /// Transaction status of the first `ReadyForQuery`.
    pub status: u8,
}

/// Why the upstream session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The server could not be reached.
    #[error("cannot reach the database server: {0}")]
    Connect(std::io::Error),
    /// TLS to the server failed (not offered when required, or its certificate is not
    /// signed by the configured CA for its name).
    #[error("TLS to the database server failed: {0}")]
    Tls(std::io::Error),
    /// The server refused: its `ErrorResponse`, forwarded to the client unchanged.
    #[error("the database server refused the session")]
    Refused(BytesMut),
    /// The server asked for an authentication method the gateway does not speak.
    #[error("the database server asked for an unsupported authentication method ({0})")]
    Method(i32),
    /// The SCRAM exchange failed (wrong credential, or a server that is not who it says).
    #[error("SCRAM authentication with the database server failed: {0}")]
    Scram(std::io::Error),
    /// The server asked for more SCRAM iterations than the gateway computes.
    #[error(
        "the database server asks for {0} SCRAM iterations; rampart computes at most {MAX_SCRAM_ITERATIONS}"
    )]
    ScramIterations(u64),
    /// The server broke the protocol.
    #[error("the database server broke the protocol: {0}")]
    Protocol(#[from] CodecError),
}

/// Most SCRAM iterations the gateway computes for a server. PostgreSQL's default is 4096;
/// OWASP's advice for PBKDF2-HMAC-SHA256 (600,000) fits. The server chooses the count:
/// a server asking for billions would take a core for many minutes at every login.
pub const MAX_SCRAM_ITERATIONS: u64 = 1_000_000;

/// The iteration count (`i=`) of a SCRAM server-first-message, if it has one.
fn scram_iterations(message: &[u8]) -> Option<u64> {
    message
        .split(|&b| b == b',')
        .find_map(|attr| attr.strip_prefix(b"i="))
        .and_then(|digits| std::str::from_utf8(digits).ok())
        .and_then(|digits| digits.parse().ok())
}

/// Connects to `addr` and logs in as `user` with `password`; `params` go into the startup
/// packet (`database`, `application_name`, …).
pub async fn connect(
    addr: &str,
    user: &str,
    password: &[u8],
    params: &[(String, String)],
    limit: usize,
    tls: &UpstreamTlsConfig,
) -> Result<Upstream, UpstreamError> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(UpstreamError::Connect)?;
    tcp.set_nodelay(true).map_err(UpstreamError::Connect)?;
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let mut stream = tls.wrap(tcp, host).await.map_err(UpstreamError::Tls)?;
    let mut startup: Vec<(&str, &str)> = vec![("user", user)];
    startup.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    send_raw(&mut stream, &codec::startup_message(&startup))
        .await
        .map_err(UpstreamError::Connect)?;
    let mut scram: Option<ScramSha256> = None;
    loop {
        let (tag, body) = codec::read_message(&mut stream, limit).await?;
        match tag {
            b'R' => {
                let code = i32_at(&body, 0).ok_or(CodecError::Malformed("short authentication"))?;
                let data = body.get(4..).unwrap_or_default();
                match code {
                    0 => break,
                    3 => {
                        let mut p = password.to_vec();
                        p.push(0);
                        send(&mut stream, b'p', &p).await?;
                    }
                    5 => {
                        let salt: [u8; 4] = data
                            .get(..4)
                            .and_then(|s| s.try_into().ok())
                            .ok_or(CodecError::Malformed("short MD5 salt"))?;
                        let mut p = md5_hash(user.as_bytes(), password, salt).into_bytes();
                        p.push(0);
                        send(&mut stream, b'p', &p).await?;
                    }
                    10 => {
                        let offers_scram = data
                            .split(|&b| b == 0)
                            .any(|m| m == SCRAM_SHA_256.as_bytes());
                        if !offers_scram {
                            return Err(UpstreamError::Method(code));
                        }
                        let s = ScramSha256::new(password, ChannelBinding::unsupported());
                        let first = s.message();
                        let mut p = Vec::with_capacity(first.len() + 32);
                        p.extend_from_slice(SCRAM_SHA_256.as_bytes());
                        p.push(0);
                        p.extend_from_slice(&i32::try_from(first.len()).unwrap_or(0).to_be_bytes());
                        p.extend_from_slice(first);
                        send(&mut stream, b'p', &p).await?;
                        scram = Some(s);
                    }
                    11 => {
                        let mut s = scram
                            .take()
                            .ok_or(CodecError::Malformed("SASL continue without start"))?;
                        let iterations = scram_iterations(data)
                            .ok_or(CodecError::Malformed("SCRAM challenge without iterations"))?;
                        if iterations > MAX_SCRAM_ITERATIONS {
                            return Err(UpstreamError::ScramIterations(iterations));
                        }
                        // The key derivation (PBKDF2, a few milliseconds) runs off the
                        // thread the gateway's sessions share.
                        let challenge = data.to_vec();
                        let s =
                            tokio::task::spawn_blocking(move || s.update(&challenge).map(|()| s))
                                .await
                                .map_err(|e| UpstreamError::Scram(std::io::Error::other(e)))?
                                .map_err(UpstreamError::Scram)?;
                        let reply = s.message().to_vec();
                        send(&mut stream, b'p', &reply).await?;
                        scram = Some(s);
                    }
                    12 => {
                        let s = scram
                            .as_mut()
                            .ok_or(CodecError::Malformed("SASL final without start"))?;
                        s.finish(data).map_err(UpstreamError::Scram)?;
                    }
                    other => return Err(UpstreamError::Method(other)),
                }
            }
            b'E' => return Err(UpstreamError::Refused(codec::message(tag, &body))),
            b'N' => {}
            b'v' => {}
            _ => {
                return Err(
                    CodecError::Malformed("unexpected message during authentication").into(),
                );
            }
        }
    }
    let mut greeting = BytesMut::new();
    let mut key = None;
    loop {
        let (tag, body) = codec::read_message(&mut stream, limit).await?;
        match tag {
            b'S' | b'N' => codec::put_message(&mut greeting, tag, &body),
            b'K' => {
                key = i32_at(&body, 0).zip(i32_at(&body, 4));
            }
            b'Z' => {
                let status = body.first().copied().unwrap_or(b'I');
                return Ok(Upstream {
                    stream,
                    greeting,
                    key,
                    status,
                });
            }
            b'E' => return Err(UpstreamError::Refused(codec::message(tag, &body))),
            b'v' => {}
            _ => {
                return Err(
                    CodecError::Malformed("unexpected message before ReadyForQuery").into(),
                );
            }
        }
    }
}

/// Forwards a cancel request for the upstream key to `addr` (a new connection, as the
/// protocol wants; the server answers nothing).
pub async fn cancel(addr: &str, pid: i32, secret: i32) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(&codec::cancel_request(pid, secret))
        .await?;
    stream.shutdown().await
}

async fn send(stream: &mut Stream, tag: u8, body: &[u8]) -> Result<(), UpstreamError> {
    let done = async {
        stream.write_all(&codec::message(tag, body)).await?;
        stream.flush().await
    };
    done.await
        .map_err(|e| UpstreamError::Protocol(CodecError::Io(e)))
}

async fn send_raw(stream: &mut Stream, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// The text of `ErrorResponse` field `M`, for logs (never stored: it may hold values).
pub fn error_message(error: &[u8]) -> String {
    let body = error.get(5..).unwrap_or_default();
    codec::error_field(body, b'M')
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_iteration_count_is_read_from_the_server_first_message() {
        assert_eq!(scram_iterations(b"r=abc,s=c2FsdA==,i=4096"), Some(4096));
        assert_eq!(
            scram_iterations(b"r=abc,s=c2FsdA==,i=2000000000"),
            Some(2_000_000_000)
        );
        assert_eq!(scram_iterations(b"r=abc,s=c2FsdA=="), None);
        assert_eq!(scram_iterations(b"r=abc,s=c2FsdA==,i=many"), None);
        assert_eq!(scram_iterations(b"r=i=4096,s=c2FsdA=="), None);
    }
}

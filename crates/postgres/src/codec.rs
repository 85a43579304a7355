//! PostgreSQL frontend/backend protocol 3.0 framing (PostgreSQL docs, "Frontend/Backend
//! Protocol", 55.2 message flow and 55.7 message formats): the startup packet, tagged
//! messages with a size limit, and the few message bodies the gateway reads or writes.
//!
//! Nothing here trusts a length: every read is bounded, a length outside its range is an
//! error, and bodies are parsed with checked slicing.

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Protocol 3.0 in a startup packet.
pub const PROTOCOL_3_0: i32 = 196_608;
/// `SSLRequest` code.
pub const SSL_REQUEST: i32 = 80_877_103;
/// `GSSENCRequest` code.
pub const GSSENC_REQUEST: i32 = 80_877_104;
/// `CancelRequest` code.
pub const CANCEL_REQUEST: i32 = 80_877_102;
/// PostgreSQL's own limit on a startup packet (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP: usize = 10_000;

/// A framing or format error. Each one ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A message is larger than the configured limit.
    #[error("a message of {len} bytes is larger than the limit of {limit} bytes")]
    TooLarge {
        /// Its announced length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A message does not have the format its type requires.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// The startup packet names a protocol other than 3.x.
    #[error("unsupported frontend protocol {}.{}", .0 >> 16, .0 & 0xffff)]
    UnknownProtocol(i32),
    /// The socket failed or closed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
}

/// The first packet of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    /// Asks for TLS.
    Ssl,
    /// Asks for GSSAPI encryption.
    GssEnc,
    /// Cancels the query running on another connection.
    Cancel {
        /// Backend process id, as the gateway announced it.
        pid: i32,
        /// Its secret key.
        secret: i32,
    },
    /// Starts a session with protocol 3.`minor` and these parameters (`user`, `database`, …).
    Startup {
        /// Minor protocol version asked for.
        minor: u16,
        /// Parameters in the order sent.
        params: Vec<(String, String)>,
    },
}

/// Reads and parses one startup packet (length-prefixed, no type byte).
pub async fn read_startup<R: AsyncRead + Unpin>(r: &mut R) -> Result<Startup, CodecError> {
    let len = r.read_i32().await?;
    let len = usize::try_from(len).map_err(|_| CodecError::Malformed("negative length"))?;
    if len < 8 {
        return Err(CodecError::Malformed("startup packet shorter than 8 bytes"));
    }
    if len > MAX_STARTUP {
        return Err(CodecError::TooLarge {
            len,
            limit: MAX_STARTUP,
        });
    }
    let mut body = vec![0u8; len - 4];
    r.read_exact(&mut body).await?;
    parse_startup(&body)
}

/// Parses a startup packet's body (after the length).
pub fn parse_startup(body: &[u8]) -> Result<Startup, CodecError> {
    let code = i32_at(body, 0).ok_or(CodecError::Malformed("no protocol code"))?;
    match code {
        SSL_REQUEST => Ok(Startup::Ssl),
        GSSENC_REQUEST => Ok(Startup::GssEnc),
        CANCEL_REQUEST => {
            let pid = i32_at(body, 4).ok_or(CodecError::Malformed("short cancel request"))?;
            let secret = i32_at(body, 8).ok_or(CodecError::Malformed("short cancel request"))?;
            Ok(Startup::Cancel { pid, secret })
        }
        v if v >> 16 == 3 => {
            let mut params = Vec::new();
            let mut pos = 4;
            loop {
                let (key, next) = cstr(body, pos).ok_or(CodecError::Malformed(
                    "startup parameters are not terminated",
                ))?;
                if key.is_empty() {
                    break;
                }
                let (value, next) = cstr(body, next)
                    .ok_or(CodecError::Malformed("startup parameter without a value"))?;
                let key = std::str::from_utf8(key)
                    .map_err(|_| CodecError::Malformed("startup parameter name is not UTF-8"))?;
                let value = std::str::from_utf8(value)
                    .map_err(|_| CodecError::Malformed("startup parameter value is not UTF-8"))?;
                params.push((key.to_owned(), value.to_owned()));
                pos = next;
            }
            Ok(Startup::Startup {
                minor: u16::try_from(v & 0xffff).unwrap_or(0),
                params,
            })
        }
        other => Err(CodecError::UnknownProtocol(other)),
    }
}

/// The tag and total size (tag + length + body) of the first complete message in `buf`;
/// `None` while it is incomplete.
pub fn frame(buf: &[u8], limit: usize) -> Result<Option<(u8, usize)>, CodecError> {
    let (Some(&tag), Some(len)) = (buf.first(), i32_at(buf, 1)) else {
        return Ok(None);
    };
    let len = usize::try_from(len).map_err(|_| CodecError::Malformed("negative length"))?;
    if len < 4 {
        return Err(CodecError::Malformed("message length below 4"));
    }
    if len > limit {
        return Err(CodecError::TooLarge { len, limit });
    }
    if buf.len() < len + 1 {
        return Ok(None);
    }
    Ok(Some((tag, len + 1)))
}

/// Reads one whole tagged message (during startup, where no streaming is needed).
pub async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
    limit: usize,
) -> Result<(u8, Vec<u8>), CodecError> {
    let tag = r.read_u8().await?;
    let len = r.read_i32().await?;
    let len = usize::try_from(len).map_err(|_| CodecError::Malformed("negative length"))?;
    if len < 4 {
        return Err(CodecError::Malformed("message length below 4"));
    }
    if len > limit {
        return Err(CodecError::TooLarge { len, limit });
    }
    let mut body = vec![0u8; len - 4];
    r.read_exact(&mut body).await?;
    Ok((tag, body))
}

/// A NUL-terminated string at `pos` and the position after its NUL.
pub fn cstr(body: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = body.get(pos..)?;
    let nul = rest.iter().position(|&b| b == 0)?;
    Some((rest.get(..nul)?, pos + nul + 1))
}

/// A big-endian `i32` at `pos`.
pub fn i32_at(body: &[u8], pos: usize) -> Option<i32> {
    let b = body.get(pos..pos.checked_add(4)?)?;
    Some(i32::from_be_bytes([
        *b.first()?,
        *b.get(1)?,
        *b.get(2)?,
        *b.get(3)?,
    ]))
}

/// The first field of type `field` (`C` SQLSTATE, `M` message, `S` severity) of an
/// ErrorResponse or NoticeResponse body.
pub fn error_field(body: &[u8], field: u8) -> Option<&[u8]> {
    let mut pos = 0;
    loop {
        let &code = body.get(pos)?;
        if code == 0 {
            return None;
        }
        let (value, next) = cstr(body, pos + 1)?;
        if code == field {
            return Some(value);
        }
        pos = next;
    }
}

/// Appends a message with `tag` and `body` to `out`.
pub fn put_message(out: &mut BytesMut, tag: u8, body: &[u8]) {
    out.put_u8(tag);
    out.put_i32(i32::try_from(body.len() + 4).unwrap_or(i32::MAX));
    out.put_slice(body);
}

/// A whole message as bytes.
pub fn message(tag: u8, body: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(body.len() + 5);
    put_message(&mut out, tag, body);
    out
}

/// An `ErrorResponse` with severity, SQLSTATE and message.
pub fn error_response(severity: &str, code: &str, text: &str) -> BytesMut {
    let mut body = Vec::with_capacity(text.len() + 32);
    for (field, value) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', text),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    message(b'E', &body)
}

/// An `Authentication*` request with `code` and extra data.
pub fn authentication(code: i32, data: &[u8]) -> BytesMut {
    let mut body = Vec::with_capacity(4 + data.len());
    body.extend_from_slice(&code.to_be_bytes());
    body.extend_from_slice(data);
    message(b'R', &body)
}

/// `BackendKeyData`.
pub fn backend_key_data(pid: i32, secret: i32) -> BytesMut {
    let mut body = [0u8; 8];
    body[..4].copy_from_slice(&pid.to_be_bytes());
    body[4..].copy_from_slice(&secret.to_be_bytes());
    message(b'K', &body)
}

/// A startup packet for protocol 3.0 with `params`.
pub fn startup_message(params: &[(&str, &str)]) -> BytesMut {
    let mut body = Vec::new();
    body.extend_from_slice(&PROTOCOL_3_0.to_be_bytes());
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = BytesMut::with_capacity(body.len() + 4);
    out.put_i32(i32::try_from(body.len() + 4).unwrap_or(i32::MAX));
    out.put_slice(&body);
    out
}

/// A `CancelRequest` packet.
pub fn cancel_request(pid: i32, secret: i32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&16i32.to_be_bytes());
    out[4..8].copy_from_slice(&CANCEL_REQUEST.to_be_bytes());
    out[8..12].copy_from_slice(&pid.to_be_bytes());
    out[12..].copy_from_slice(&secret.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_parameters_are_read_in_order() {
        let packet = startup_message(&[("user", "alice#db"), ("database", "orders")]);
        let parsed = parse_startup(&packet[4..]).unwrap();
        assert_eq!(
            parsed,
            Startup::Startup {
                minor: 0,
                params: vec![
                    ("user".into(), "alice#db".into()),
                    ("database".into(), "orders".into())
                ]
            }
        );
    }

    #[test]
    fn cancel_request_round_trips() {
        let packet = cancel_request(7, -9);
        assert_eq!(
            parse_startup(&packet[4..]).unwrap(),
            Startup::Cancel { pid: 7, secret: -9 }
        );
    }

    #[test]
    fn unknown_protocol_and_truncated_parameters_are_errors() {
        assert!(matches!(
            parse_startup(&(2i32 << 16).to_be_bytes()),
            Err(CodecError::UnknownProtocol(_))
        ));
        let mut body = PROTOCOL_3_0.to_be_bytes().to_vec();
        body.extend_from_slice(b"user\0ali");
        assert!(matches!(
            parse_startup(&body),
            Err(CodecError::Malformed(_))
        ));
        let mut body = PROTOCOL_3_0.to_be_bytes().to_vec();
        body.extend_from_slice(b"user\0\xff\0\0");
        assert!(matches!(
            parse_startup(&body),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn frame_waits_for_a_whole_message_and_enforces_the_limit() {
        let m = message(b'Q', b"SELECT 1\0");
        assert_eq!(frame(&m[..4], 100).unwrap(), None);
        assert_eq!(frame(&m[..8], 100).unwrap(), None);
        assert_eq!(frame(&m, 100).unwrap(), Some((b'Q', m.len())));
        assert!(matches!(
            frame(&m, 8),
            Err(CodecError::TooLarge { len: 13, limit: 8 })
        ));
        assert!(matches!(
            frame(&[b'Q', 0, 0, 0, 2], 100),
            Err(CodecError::Malformed(_))
        ));
        assert!(matches!(
            frame(&[b'Q', 0xff, 0, 0, 2], 100),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn error_fields_are_found_and_garbage_is_none() {
        let e = error_response("ERROR", "42P01", "no such table");
        assert_eq!(error_field(&e[5..], b'C'), Some(&b"42P01"[..]));
        assert_eq!(error_field(&e[5..], b'M'), Some(&b"no such table"[..]));
        assert_eq!(error_field(b"Cabc", b'C'), None);
    }

    #[tokio::test]
    async fn oversized_startup_packet_is_refused_before_reading_it() {
        let mut input: &[u8] = &[0, 1, 0, 0];
        assert!(matches!(
            read_startup(&mut input).await,
            Err(CodecError::TooLarge { .. })
        ));
    }
}

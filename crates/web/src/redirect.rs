//! The plain-HTTP listener (ENC-2). Every request gets one answer: 308 to the same path and
//! query on the configured public origin, except the answers to pending ACME HTTP-01
//! challenges (RFC 8555 §8.3). The client's Host header is ignored, so this is never an
//! open redirect.
//!
//! A small HTTP/1.1 server of its own rather than hyper: a request head is parsed in place
//! with `httparse`, the answer is appended to one output buffer, and every request already
//! received (pipelined or not) is answered before one write. Per request that is a read, a
//! parse and a write, the work nginx does for its `return 308`.
//!
//! Limits: a head of at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers (else 431), at
//! most [`MAX_CONNECTIONS`] open connections (more wait in the kernel's backlog), an idle
//! kept-alive connection closed after [`IDLE_TIMEOUT`], a started request or a pending answer
//! given up after [`IO_TIMEOUT`]. A request's body is never needed: one of at most
//! [`MAX_DISCARD`] bytes with a `Content-Length` is read and dropped so the connection can
//! go on; a larger or chunked one ends the connection after the answer. Conflicting
//! `Content-Length` values are refused (400), as is any request-target that is not a path
//! or an absolute URL of visible ASCII.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::acme::Challenges;

/// The largest request head (request line and headers) read; a longer one gets 431.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers in one request; more get 431.
pub const MAX_HEADERS: usize = 64;
/// The largest body read and dropped to keep a connection open.
pub const MAX_DISCARD: u64 = 64 * 1024;
/// Open connections at most.
pub const MAX_CONNECTIONS: usize = 4096;
/// How long a kept-alive connection may wait for its next request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the rest of a started request, or the taking of an answer, may take.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a closing connection may go on sending before it is closed (see `linger`).
pub const LINGER: Duration = Duration::from_secs(2);
/// How much a closing connection may still send before it is closed.
pub const LINGER_BYTES: usize = 1024 * 1024;

/// The first read's buffer; it grows up to [`MAX_HEAD`] for a longer head.
const FIRST_BUFFER: usize = 4096;

/// What the listener answers with.
#[derive(Debug, Clone)]
pub struct Redirect {
    /// `https://host[:port]`: the start of every Location.
    pub origin: Arc<str>,
    /// Pending ACME HTTP-01 challenges: token → key authorization.
    pub challenges: Challenges,
}

/// Serves `listener` until `stopping` turns true, on threads of its own: one per core (at
/// most 8), each with a single-threaded runtime that accepts from the shared socket and
/// keeps its connections, as nginx's workers do. A connection's reads, parses and writes
/// then never cross threads. Returns once every thread has ended: after `stopping`, when
/// the connections have finished the answer they were writing (idle ones close at once),
/// or on the first thread that could not start.
pub async fn serve(
    listener: std::net::TcpListener,
    redirect: Redirect,
    stopping: watch::Receiver<bool>,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut starts: Vec<crate::front::Start> = Vec::new();
    for _ in 0..crate::front::threads() {
        let listener = listener.try_clone()?;
        let (redirect, stopping, permits) = (redirect.clone(), stopping.clone(), permits.clone());
        starts.push(Box::new(move || {
            Box::pin(async move {
                let listener = TcpListener::from_std(listener)?;
                accept(listener, redirect, stopping, permits).await;
                Ok(())
            })
        }));
    }
    crate::front::on_own_threads("rampart-http", starts).await
}

/// One thread's accept loop; when stopping, it waits (at most [`IO_TIMEOUT`]) for the
/// connections of every thread to end, running its own meanwhile.
async fn accept(
    listener: TcpListener,
    redirect: Redirect,
    stopping: watch::Receiver<bool>,
    permits: Arc<Semaphore>,
) {
    let mut stop = stopping.clone();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = stopped(&mut stop) => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors or a connection reset before it was taken:
                    // the listener itself is fine, so wait a little and go on.
                    tracing::warn!(error = %e, "HTTP listener: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let redirect = redirect.clone();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            // An error here is the client's connection failing; there is nobody to tell.
            let _ = connection(stream, &redirect, stopping).await;
            drop(permit);
        });
    }
    drop(listener);
    let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(IO_TIMEOUT, permits.acquire_many(all)).await;
}

/// Returns once `stopping` is true (or its sender is gone).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await;
}

/// What a connection does after an answer.
#[derive(Debug, PartialEq, Eq)]
enum After {
    /// Read the next request.
    Keep,
    /// Drop this many body bytes first.
    Discard(u64),
    /// Close once the answers are written.
    Close,
}

async fn connection(
    mut stream: TcpStream,
    redirect: &Redirect,
    stopping: watch::Receiver<bool>,
) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    // One wait for the stop per connection, not one per read.
    let mut until_stopped = stopping.clone();
    let stop = async move { stopped(&mut until_stopped).await };
    tokio::pin!(stop);
    let mut buf = vec![0u8; FIRST_BUFFER];
    let mut out = Vec::with_capacity(512);
    let (mut start, mut end) = (0usize, 0usize);
    let mut discard = 0u64;
    loop {
        let mut close = false;
        loop {
            let owed = usize::try_from(discard)
                .unwrap_or(usize::MAX)
                .min(end - start);
            start += owed;
            discard -= owed as u64;
            if discard > 0 || start == end {
                break;
            }
            let pending = buf.get(start..end).unwrap_or_default();
            match respond(pending, redirect, *stopping.borrow(), &mut out) {
                Parsed::Answered(used, after) => {
                    start += used;
                    match after {
                        After::Keep => {}
                        After::Discard(n) => discard = n,
                        After::Close => {
                            close = true;
                            break;
                        }
                    }
                }
                Parsed::Partial => break,
                Parsed::Refused => {
                    close = true;
                    break;
                }
            }
        }
        if !out.is_empty() {
            tokio::time::timeout(IO_TIMEOUT, stream.write_all(&out))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
            out.clear();
        }
        if close {
            linger(stream).await;
            return Ok(());
        }
        if start > 0 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        if end == buf.len() {
            if buf.len() >= MAX_HEAD {
                status_only(&mut out, "431 Request Header Fields Too Large");
                let _ = tokio::time::timeout(IO_TIMEOUT, stream.write_all(&out)).await;
                linger(stream).await;
                return Ok(());
            }
            buf.resize((buf.len() * 2).min(MAX_HEAD), 0);
        }
        let idle = end == 0 && discard == 0;
        let wait = if idle { IDLE_TIMEOUT } else { IO_TIMEOUT };
        let Some(room) = buf.get_mut(end..) else {
            return Ok(());
        };
        let read = tokio::select! {
            read = tokio::time::timeout(wait, stream.read(room)) => read,
            () = &mut stop, if idle => return Ok(()),
        };
        match read {
            Ok(Ok(0)) | Err(_) => return Ok(()),
            Ok(Ok(n)) => end += n,
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// Closes after a last answer without losing it: the lingering close of the front door
/// ([`crate::linger::Linger`]) with this server's bounds, [`LINGER_BYTES`] for at most
/// [`LINGER`]. Closing a socket with unread bytes (the rest of a body or of a head) makes
/// the kernel send a reset, which can destroy the answer before the client has read it.
async fn linger(stream: TcpStream) {
    let _ = crate::linger::Linger::with_limits(stream, LINGER, LINGER_BYTES)
        .shutdown()
        .await;
}

/// The outcome of looking at the start of the unanswered bytes.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// A whole head was this many bytes; its answer is in the output.
    Answered(usize, After),
    /// The head is not complete yet.
    Partial,
    /// Not HTTP, or too many headers: the refusal is in the output; close.
    Refused,
}

/// Parses one request head at the start of `pending` and appends its answer to `out`.
fn respond(pending: &[u8], redirect: &Redirect, stopping: bool, out: &mut Vec<u8>) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(pending) {
        Ok(httparse::Status::Complete(used)) => {
            Parsed::Answered(used, answer(&request, redirect, stopping, out))
        }
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            status_only(out, "431 Request Header Fields Too Large");
            Parsed::Refused
        }
        Err(_) => {
            status_only(out, "400 Bad Request");
            Parsed::Refused
        }
    }
}

/// The answer to one complete request head.
fn answer(
    request: &httparse::Request<'_, '_>,
    redirect: &Redirect,
    stopping: bool,
    out: &mut Vec<u8>,
) -> After {
    // HTTP/1.0 closes after each answer; so does everything once the server is stopping.
    let mut close = request.version != Some(1) || stopping;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok());
            match (value, length) {
                (Some(v), None) => length = Some(v),
                (Some(v), Some(seen)) if v == seen => {}
                // Two different lengths, or one that is not a number: the body's end is
                // unknown, and guessing it is how requests are smuggled.
                _ => {
                    status_only(out, "400 Bad Request");
                    return After::Close;
                }
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if header.name.eq_ignore_ascii_case("connection") {
            close |= header
                .value
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    let body = length.unwrap_or(0);
    let after = if chunked || body > MAX_DISCARD || close {
        After::Close
    } else if body > 0 {
        After::Discard(body)
    } else {
        After::Keep
    };
    let Some(target) = request.path.and_then(path_and_query) else {
        status_only(out, "400 Bad Request");
        return After::Close;
    };
    let path = target.split('?').next().unwrap_or(target);
    if let Some(token) = path.strip_prefix("/.well-known/acme-challenge/") {
        let found = redirect
            .challenges
            .read()
            .ok()
            .and_then(|m| m.get(token).cloned());
        if let Some(key_authorization) = found {
            head(out, "200 OK", after == After::Close);
            out.extend_from_slice(b"content-type: application/octet-stream\r\ncontent-length: ");
            out.extend_from_slice(key_authorization.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(key_authorization.as_bytes());
            return after;
        }
    }
    head(out, "308 Permanent Redirect", after == After::Close);
    out.extend_from_slice(b"location: ");
    out.extend_from_slice(redirect.origin.as_bytes());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: 0\r\n\r\n");
    after
}

/// The path and query of a request-target in origin form (`/a?b`) or absolute form
/// (`http://host/a?b`); `None` for the asterisk and authority forms, or for anything that is
/// not visible ASCII (it could not be a Location value).
fn path_and_query(target: &str) -> Option<&str> {
    if !target.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    if target.starts_with('/') {
        return Some(target);
    }
    let (scheme, rest) = target.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    match rest.find(['/', '?']) {
        Some(at) => rest
            .get(at..)
            .filter(|pq| pq.starts_with('/'))
            .or(Some("/")),
        None => Some("/"),
    }
}

/// The status line, the date, and `connection: close` when the connection ends.
fn head(out: &mut Vec<u8>, status: &str, close: bool) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\r\ndate: ");
    DATE.with_borrow_mut(|(second, text)| {
        let now = SystemTime::now();
        let this = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if *second != this || text.is_empty() {
            *second = this;
            *text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(text.as_bytes());
    });
    out.extend_from_slice(b"\r\n");
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
}

/// A refusal with no body; the connection closes after it.
fn status_only(out: &mut Vec<u8>, status: &str) {
    head(out, status, true);
    out.extend_from_slice(b"content-length: 0\r\n\r\n");
}

thread_local! {
    /// The `Date` value, formatted once a second per thread.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::RwLock;

    fn redirect() -> Redirect {
        let mut pending = HashMap::new();
        pending.insert("tok123".to_owned(), "tok123.thumb".to_owned());
        Redirect {
            origin: Arc::from("https://gateway.test"),
            challenges: Arc::new(RwLock::new(pending)),
        }
    }

    fn one(request: &str) -> (Parsed, String) {
        let mut out = Vec::new();
        let parsed = respond(request.as_bytes(), &redirect(), false, &mut out);
        (parsed, String::from_utf8(out).unwrap())
    }

    fn location(answer: &str) -> Option<&str> {
        answer
            .lines()
            .find_map(|l| l.strip_prefix("location: "))
            .map(str::trim_end)
    }

    #[test]
    fn a_request_is_sent_to_the_same_path_and_query_on_the_public_origin() {
        let req = "GET /a/b?c=1&d=%20 HTTP/1.1\r\nHost: evil.example\r\n\r\n";
        let (parsed, answer) = one(req);
        assert_eq!(parsed, Parsed::Answered(req.len(), After::Keep));
        assert!(answer.starts_with("HTTP/1.1 308 Permanent Redirect\r\n"));
        assert_eq!(
            location(&answer),
            Some("https://gateway.test/a/b?c=1&d=%20")
        );
        assert!(answer.contains("\r\ncontent-length: 0\r\n\r\n"));
        assert!(answer.contains("\r\ndate: "));
        assert!(!answer.contains("connection: close"));
    }

    #[test]
    fn an_absolute_url_keeps_only_its_path_and_query() {
        for (target, want) in [
            ("http://other.example/x?y=1", "https://gateway.test/x?y=1"),
            ("HTTP://other.example", "https://gateway.test/"),
            ("http://other.example?q", "https://gateway.test/"),
        ] {
            let (_, answer) = one(&format!("GET {target} HTTP/1.1\r\n\r\n"));
            assert_eq!(location(&answer), Some(want), "{target}");
        }
    }

    #[test]
    fn targets_that_are_not_paths_are_refused() {
        for target in ["*", "gateway.test:443", "ftp://x/y", "/caf\u{e9}"] {
            let (parsed, answer) = one(&format!("GET {target} HTTP/1.1\r\n\r\n"));
            assert!(
                answer.starts_with("HTTP/1.1 400 ") || parsed == Parsed::Refused,
                "{target}: {answer}"
            );
            assert!(location(&answer).is_none(), "{target}");
        }
    }

    #[test]
    fn a_pending_acme_challenge_is_answered_and_an_unknown_one_redirected() {
        let (_, answer) = one("GET /.well-known/acme-challenge/tok123 HTTP/1.1\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\ncontent-length: 12\r\n\r\ntok123.thumb"));
        let (_, answer) = one("GET /.well-known/acme-challenge/other HTTP/1.1\r\n\r\n");
        assert_eq!(
            location(&answer),
            Some("https://gateway.test/.well-known/acme-challenge/other")
        );
    }

    #[test]
    fn bodies_are_dropped_small_and_end_the_connection_large_chunked_or_ambiguous() {
        let (parsed, _) = one("POST /login HTTP/1.1\r\nContent-Length: 3\r\n\r\nx=1");
        assert!(matches!(parsed, Parsed::Answered(_, After::Discard(3))));
        let big = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_DISCARD + 1
        );
        let (parsed, answer) = one(&big);
        assert!(matches!(parsed, Parsed::Answered(_, After::Close)));
        assert!(answer.contains("connection: close\r\n"));
        let (parsed, _) = one("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(matches!(parsed, Parsed::Answered(_, After::Close)));
        for lengths in ["1\r\nContent-Length: 2", "1, 2", "-1", "+4", ""] {
            let (parsed, answer) = one(&format!(
                "POST / HTTP/1.1\r\nContent-Length: {lengths}\r\n\r\n"
            ));
            assert!(
                matches!(parsed, Parsed::Answered(_, After::Close)),
                "{lengths}"
            );
            assert!(answer.starts_with("HTTP/1.1 400 "), "{lengths}: {answer}");
        }
    }

    #[test]
    fn http_1_0_connection_close_and_stopping_end_the_connection() {
        let (parsed, answer) = one("GET / HTTP/1.0\r\n\r\n");
        assert!(matches!(parsed, Parsed::Answered(_, After::Close)));
        assert!(answer.contains("connection: close\r\n"));
        let (parsed, _) = one("GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n");
        assert!(matches!(parsed, Parsed::Answered(_, After::Close)));
        let mut out = Vec::new();
        let parsed = respond(b"GET / HTTP/1.1\r\n\r\n", &redirect(), true, &mut out);
        assert!(matches!(parsed, Parsed::Answered(_, After::Close)));
    }

    #[test]
    fn a_partial_head_waits_and_garbage_or_too_many_headers_are_refused() {
        assert_eq!(one("GET / HTTP/1.1\r\nHost: a\r\n").0, Parsed::Partial);
        let mut out = Vec::new();
        let hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
        assert_eq!(
            respond(hello, &redirect(), false, &mut out),
            Parsed::Refused
        );
        assert!(out.starts_with(b"HTTP/1.1 400 "));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let (parsed, answer) = one(&format!("GET / HTTP/1.1\r\n{many}\r\n"));
        assert_eq!(parsed, Parsed::Refused);
        assert!(answer.starts_with("HTTP/1.1 431 "));
    }

    /// Over a real socket: pipelined requests, a dropped body between them, a head longer
    /// than the limit, and the end of an idle connection when the server stops.
    #[tokio::test]
    async fn a_connection_answers_pipelined_requests_and_refuses_an_oversized_head() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopping) = watch::channel(false);
        let server = tokio::spawn(serve(listener, redirect(), stopping));

        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(
                b"GET /one HTTP/1.1\r\n\r\nPOST /two HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
                  GET /three HTTP/1.1\r\n\r\n",
            )
            .await
            .unwrap();
        let mut seen = String::new();
        let mut chunk = [0u8; 4096];
        while seen.matches("308 Permanent Redirect").count() < 3 {
            let n = client.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed early: {seen}");
            seen.push_str(std::str::from_utf8(&chunk[..n]).unwrap());
        }
        let locations: Vec<_> = seen
            .lines()
            .filter_map(|l| l.strip_prefix("location: "))
            .collect();
        assert_eq!(
            locations,
            [
                "https://gateway.test/one",
                "https://gateway.test/two",
                "https://gateway.test/three"
            ]
        );

        let mut long = TcpStream::connect(addr).await.unwrap();
        let filler = "a".repeat(MAX_HEAD);
        long.write_all(format!("GET / HTTP/1.1\r\nX-Long: {filler}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        long.shutdown().await.unwrap();
        let mut answer = Vec::new();
        long.read_to_end(&mut answer).await.unwrap();
        assert!(
            String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 431 "),
            "{}",
            String::from_utf8_lossy(&answer)
        );

        // A body too large to drop: the answer comes first, marked `connection: close`; the
        // client may still send its body, then reads the end of the connection.
        let mut upload = TcpStream::connect(addr).await.unwrap();
        upload
            .write_all(b"POST /up HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        while !answer.ends_with(b"\r\n\r\n") {
            let n = upload.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before the answer");
            answer.extend_from_slice(&chunk[..n]);
        }
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 308 "), "{answer}");
        assert!(
            answer.contains("location: https://gateway.test/up\r\n"),
            "{answer}"
        );
        assert!(answer.contains("connection: close\r\n"), "{answer}");
        upload.write_all(&vec![b'x'; 200_000]).await.unwrap();
        upload.shutdown().await.unwrap();
        let mut rest = Vec::new();
        upload.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());

        // Stopping ends the idle kept-alive connection and the accept loop.
        stop.send_replace(true);
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut chunk))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0);
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

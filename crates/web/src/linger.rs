//! The front door's TCP connections, closed the way HTTP servers close them: a lingering
//! close (as nginx's `lingering_close`), with Nagle's algorithm off.
//!
//! When rampart answers before it has read the whole request (431 for oversized headers,
//! 413 for a body over the limit, 400 for a malformed request) and then closes, the
//! client may still be sending. Bytes that arrive at a closed socket make the kernel
//! answer with a reset, and a reset can reach the client before it has read the answer:
//! it then reports "connection reset" instead of the status that says what was wrong.
//! So after its side is shut down, a connection keeps reading, and throwing away, what
//! the client still sends: until the client closes, for at most [`LINGER_TIME`] and
//! [`LINGER_BYTES`]. (The HTTP redirect closes its connections through [`Linger`] too,
//! with smaller bounds: only request heads reach it, where here whole uploads may.)

use std::future::{Future, Ready};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The longest a closed connection keeps reading what its client still sends.
pub const LINGER_TIME: Duration = Duration::from_secs(5);
/// The most a closed connection reads (and throws away) from its client.
pub const LINGER_BYTES: usize = 16 << 20;

/// Wraps each accepted connection in a [`Linger`] (inside the TLS acceptor).
#[derive(Debug, Clone, Copy, Default)]
pub struct LingerAcceptor;

impl<S> axum_server::accept::Accept<TcpStream, S> for LingerAcceptor {
    type Stream = Linger<TcpStream>;
    type Service = S;
    type Future = Ready<io::Result<(Self::Stream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        // An answer written in several pieces (a streamed body) is not held back until
        // the client acknowledges the last piece (nginx's `tcp_nodelay on`).
        let _ = stream.set_nodelay(true);
        std::future::ready(Ok((Linger::new(stream), service)))
    }
}

/// A connection that, once shut down, drains what its peer still sends (see the module
/// docs). Reads and writes pass straight through.
#[derive(Debug)]
pub struct Linger<S> {
    inner: S,
    drain: Option<Drain>,
    time: Duration,
    bytes: usize,
}

#[derive(Debug)]
struct Drain {
    until: Pin<Box<tokio::time::Sleep>>,
    left: usize,
}

impl<S> Linger<S> {
    pub fn new(inner: S) -> Self {
        Self::with_limits(inner, LINGER_TIME, LINGER_BYTES)
    }

    /// As [`Linger::new`], with other bounds (the HTTP redirect's).
    pub(crate) fn with_limits(inner: S, time: Duration, bytes: usize) -> Self {
        Self {
            inner,
            drain: None,
            time,
            bytes,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Linger<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Linger<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// Shuts the sending side, then reads until the peer closes, [`LINGER_TIME`] has
    /// passed or [`LINGER_BYTES`] have been read (the limits of [`Linger::new`]). The
    /// drain ends without error whichever comes first: the answer is already sent.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let drain = match &mut this.drain {
            Some(drain) => drain,
            None => {
                ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
                this.drain.insert(Drain {
                    until: Box::pin(tokio::time::sleep(this.time)),
                    left: this.bytes,
                })
            }
        };
        let mut scratch = [0u8; 8192];
        loop {
            if drain.until.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut this.inner).poll_read(cx, &mut buf)) {
                Ok(()) if !buf.filled().is_empty() => {
                    drain.left = drain.left.saturating_sub(buf.filled().len());
                    if drain.left == 0 {
                        return Poll::Ready(Ok(()));
                    }
                }
                // The peer closed (or the connection failed): nothing is left to drain.
                Ok(()) | Err(_) => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (Linger<TcpStream>, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Linger::new(server), client)
    }

    const EARLY: &[u8] = b"HTTP/1.1 413 Payload Too Large\r\n\r\n";

    /// A client sends 4 MiB (far more than the socket buffers hold, so most of it arrives
    /// after the server has closed), then reads; the server answers [`EARLY`] after the
    /// first KiB and closes. What the client read, or the first error it met.
    async fn answer_early<S: AsyncRead + AsyncWrite + Unpin>(
        mut server: S,
        mut client: TcpStream,
    ) -> io::Result<Vec<u8>> {
        let sender = tokio::spawn(async move {
            client.write_all(&vec![b'z'; 4 << 20]).await?;
            client.shutdown().await?;
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await?;
            Ok(answer)
        });
        let mut head = [0u8; 1024];
        server.read_exact(&mut head).await.unwrap();
        server.write_all(EARLY).await.unwrap();
        server.shutdown().await.unwrap();
        drop(server);
        sender.await.unwrap()
    }

    /// The case the module exists for: the server answers early and closes while the
    /// client is still sending; the client still reads the whole answer.
    #[tokio::test]
    async fn an_early_answer_reaches_a_client_still_sending() {
        let (server, client) = pair().await;
        assert_eq!(answer_early(server, client).await.unwrap(), EARLY);
    }

    /// Without the drain, the same exchange ends in a reset: the test above would fail
    /// without [`Linger`], which is what makes it a test of the drain.
    #[tokio::test]
    async fn a_plain_close_resets_a_client_still_sending() {
        let (server, client) = pair().await;
        let answer = answer_early(server.inner, client).await;
        assert!(answer.is_err(), "the client saw no reset: {answer:?}");
    }

    /// A client that keeps sending does not keep the connection: the drain stops after
    /// its byte limit (here 1 MiB; the time limit is far away).
    #[tokio::test]
    async fn the_drain_is_bounded_in_bytes() {
        const LIMIT: usize = 1 << 20;
        let (server, mut client) = pair().await;
        let mut server = Linger::with_limits(server.inner, Duration::from_secs(3600), LIMIT);
        let sender = tokio::spawn(async move {
            let chunk = vec![b'z'; 64 << 10];
            let mut sent = 0usize;
            // Stops when the server closes (a reset) or, were the drain unbounded, after
            // 256 MiB: far more than the limit and the socket buffers together.
            while sent < 256 << 20 && client.write_all(&chunk).await.is_ok() {
                sent += chunk.len();
            }
            sent
        });
        tokio::time::timeout(Duration::from_secs(600), server.shutdown())
            .await
            .expect("the drain ended")
            .unwrap();
        drop(server);
        let sent = sender.await.unwrap();
        assert!(
            sent < 64 << 20,
            "the client could send {sent} bytes: the drain went past its limit"
        );
    }

    /// A client that sends nothing and never closes holds the drain no longer than its
    /// time limit (here 50 ms; the test waits for the end, not for a moment).
    #[tokio::test]
    async fn the_drain_is_bounded_in_time() {
        let (server, client) = pair().await;
        let mut server = Linger::with_limits(server.inner, Duration::from_millis(50), LINGER_BYTES);
        tokio::time::timeout(Duration::from_secs(600), server.shutdown())
            .await
            .expect("the drain ended while the client stayed open")
            .unwrap();
        drop(client);
    }
}

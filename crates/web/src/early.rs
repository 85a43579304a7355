//! Early answers over HTTP/2: a request body left unread is read to its end.
//!
//! rampart may answer before it has read a request's body: 413 when the declared length is
//! over a limit, 401 or 403 before the body matters. Over HTTP/2, a request body dropped
//! unread resets its stream once the answer has been sent (`RST_STREAM` with `NO_ERROR`,
//! as RFC 9113 §8.1 allows). Clients that are still sending may take that reset as an
//! error: curl 7.88 (Debian 12's) reported "stream error" (exit 92) instead of rampart's
//! 413, while nginx, which reads and discards the rest of such a body, got its 413 to the
//! same curl.
//!
//! So over HTTP/2 a body a handler drops before its end is read to its end and thrown
//! away, on a task of its own, within the bounds of the lingering close
//! ([`crate::linger::LINGER_TIME`], [`crate::linger::LINGER_BYTES`]); past them it is
//! dropped and the stream reset as before. Over HTTP/1.1 the connection's lingering close
//! ([`crate::linger`]) does this job.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};

use crate::linger::{LINGER_BYTES, LINGER_TIME};

/// The request body as a handler gets it over HTTP/2: dropped before its end, the rest
/// is read and thrown away (see the module docs).
pub(crate) fn discarding(body: Body) -> Body {
    Body::new(Discarding::with_limits(body, LINGER_TIME, LINGER_BYTES))
}

/// See [`discarding`].
struct Discarding {
    inner: Option<Body>,
    time: Duration,
    bytes: usize,
}

impl Discarding {
    fn with_limits(body: Body, time: Duration, bytes: usize) -> Self {
        Self {
            inner: Some(body),
            time,
            bytes,
        }
    }
}

impl HttpBody for Discarding {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for Discarding {
    fn drop(&mut self) {
        let Some(mut body) = self.inner.take().filter(|b| !b.is_end_stream()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (time, mut left) = (self.time, self.bytes);
        runtime.spawn(async move {
            let _ = tokio::time::timeout(time, async {
                while let Some(Ok(frame)) = body.frame().await {
                    left = left.saturating_sub(frame.data_ref().map_or(0, Bytes::len));
                    if left == 0 {
                        break;
                    }
                }
            })
            .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A request body the client is still sending: `frames` KiB frames then the end
    /// (`None`: no end; after 1 MiB it waits). Counts what was read and says when it is
    /// dropped.
    struct Sending {
        frames: Option<usize>,
        read: Arc<AtomicUsize>,
        dropped: Arc<AtomicBool>,
    }

    impl HttpBody for Sending {
        type Data = Bytes;
        type Error = axum::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
            match self.frames {
                Some(0) => return Poll::Ready(None),
                Some(n) => self.frames = Some(n - 1),
                None if self.read.load(Ordering::SeqCst) >= 1 << 20 => return Poll::Pending,
                None => {}
            }
            self.read.fetch_add(1024, Ordering::SeqCst);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'z'; 1024])))))
        }
    }

    impl Drop for Sending {
        fn drop(&mut self) {
            self.dropped.store(true, Ordering::SeqCst);
        }
    }

    struct Probe {
        read: Arc<AtomicUsize>,
        dropped: Arc<AtomicBool>,
    }

    impl Probe {
        fn read(&self) -> usize {
            self.read.load(Ordering::SeqCst)
        }
        /// Waits (bounded) for the body to be let go.
        async fn gone(&self) {
            for _ in 0..6000 {
                if self.dropped.load(Ordering::SeqCst) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the request body was never let go");
        }
    }

    /// A handler's request body, as [`discarding`] makes it, within the given limits.
    fn sending(frames: Option<usize>, time: Duration, bytes: usize) -> (Body, Probe) {
        let (read, dropped) = (Arc::default(), Arc::default());
        let body = Body::new(Sending {
            frames,
            read: Arc::clone(&read),
            dropped: Arc::clone(&dropped),
        });
        let body = Body::new(Discarding::with_limits(body, time, bytes));
        (body, Probe { read, dropped })
    }

    /// The handler answers without reading and drops the body: the rest is read to its
    /// end (so the client's stream ends without a reset).
    #[tokio::test]
    async fn a_body_dropped_unread_is_read_to_its_end() {
        let (body, probe) = sending(Some(100), LINGER_TIME, LINGER_BYTES);
        drop(body);
        probe.gone().await;
        assert_eq!(probe.read(), 100 * 1024);
    }

    /// A client that keeps sending is not read past the byte limit.
    #[tokio::test]
    async fn the_discard_is_bounded_in_bytes() {
        let (body, probe) = sending(None, Duration::from_secs(3600), 64 * 1024);
        drop(body);
        probe.gone().await;
        assert_eq!(probe.read(), 64 * 1024);
    }

    /// A client that stops sending without ending its body is let go after the time
    /// limit (here 50 ms; the test waits for the end, not for a moment).
    #[tokio::test]
    async fn the_discard_is_bounded_in_time() {
        let (body, probe) = sending(None, Duration::from_millis(50), usize::MAX);
        drop(body);
        probe.gone().await;
        assert_eq!(probe.read(), 1 << 20, "it was read while it was sent");
    }

    /// A body the handler read itself is passed through whole.
    #[tokio::test]
    async fn a_body_read_by_its_handler_is_passed_through() {
        let (body, probe) = sending(Some(3), LINGER_TIME, LINGER_BYTES);
        let read = body.collect().await.unwrap().to_bytes();
        assert_eq!(read.len(), 3 * 1024);
        assert_eq!(probe.read(), 3 * 1024);
    }
}

//! Early answers over HTTP/2: the request body outlives the answer.
//!
//! rampart may answer before it has read a request's body: 413 when the declared length is
//! over a limit, 403 or a redirect before the body matters. Over HTTP/2, dropping a request
//! body that the client is still sending resets the stream: `CANCEL` while the answer is
//! not yet sent in full, `NO_ERROR` after (RFC 9113 §8.1). Handlers drop the request, body
//! included, as they return their answer, so clients got `CANCEL` and reported a stream
//! error instead of the answer; and some clients (curl 7.88, Debian 12's) take even
//! `NO_ERROR` as an error while they are still sending (exit 92, where nginx's 413 reached
//! the same curl).
//!
//! So for an HTTP/2 request, the body a handler drops unread is [`Held`] by the answer's
//! body until the end of the answer was sent; then it is read to its end and thrown away,
//! as nginx discards the body of a request it answered early, within the bounds of the
//! lingering close ([`crate::linger::LINGER_TIME`], [`crate::linger::LINGER_BYTES`]): the
//! stream then ends cleanly. Over HTTP/1.1 nothing changes: there the connection's
//! lingering close ([`crate::linger`]) does this job.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::response::Response;
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};

use crate::linger::{LINGER_BYTES, LINGER_TIME};

/// Where an HTTP/2 request's unread body waits for its answer to be sent.
#[derive(Debug, Clone)]
pub(crate) struct Held(Arc<Slot>);

#[derive(Debug)]
struct Slot {
    body: Mutex<Option<Body>>,
    time: Duration,
    bytes: usize,
}

impl Default for Held {
    fn default() -> Self {
        Self::with_limits(LINGER_TIME, LINGER_BYTES)
    }
}

impl Held {
    fn with_limits(time: Duration, bytes: usize) -> Self {
        Self(Arc::new(Slot {
            body: Mutex::new(None),
            time,
            bytes,
        }))
    }

    /// The request body as the handler gets it: dropped before its end while the answer
    /// is on its way, it leaves the rest here.
    pub(crate) fn request_body(&self, body: Body) -> Body {
        Body::new(Holding {
            inner: Some(body),
            held: self.clone(),
        })
    }

    /// The answer, whose body, once dropped (its end sent), discards what the request
    /// left.
    pub(crate) fn answer(self, response: Response) -> Response {
        response.map(|body| {
            Body::new(Releasing {
                inner: body,
                held: self,
            })
        })
    }

    /// Reads `body` to its end and drops it, on its own task, within the limits (then the
    /// stream is reset with `NO_ERROR`).
    fn discard(&self, mut body: Body) {
        let (time, mut left) = (self.0.time, self.0.bytes);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let _ = tokio::time::timeout(time, async {
                while let Some(Ok(frame)) = body.frame().await {
                    let n = frame.data_ref().map_or(0, Bytes::len);
                    left = left.saturating_sub(n);
                    if left == 0 {
                        break;
                    }
                }
            })
            .await;
        });
    }
}

/// See [`Held::request_body`].
struct Holding {
    inner: Option<Body>,
    held: Held,
}

impl HttpBody for Holding {
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

impl Drop for Holding {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take().filter(|b| !b.is_end_stream()) else {
            return;
        };
        // This is the last hold: the answer has been sent (and dropped) already.
        if Arc::strong_count(&self.held.0) == 1 {
            self.held.discard(inner);
        } else if let Ok(mut slot) = self.held.0.body.lock() {
            *slot = Some(inner);
        }
    }
}

/// See [`Held::answer`].
struct Releasing {
    inner: Body,
    held: Held,
}

impl HttpBody for Releasing {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Releasing {
    fn drop(&mut self) {
        let left = self
            .held
            .0
            .body
            .lock()
            .ok()
            .and_then(|mut slot| slot.take());
        if let Some(body) = left {
            self.held.discard(body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A request body the client is still sending: `frames` KiB frames then the end
    /// (`None`: no end, and after the frames it waits). Counts what was read and says when
    /// it is dropped.
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

    fn sending(frames: Option<usize>) -> (Body, Probe) {
        let (read, dropped) = (Arc::default(), Arc::default());
        let body = Body::new(Sending {
            frames,
            read: Arc::clone(&read),
            dropped: Arc::clone(&dropped),
        });
        (body, Probe { read, dropped })
    }

    impl Probe {
        fn dropped(&self) -> bool {
            self.dropped.load(Ordering::SeqCst)
        }
        fn read(&self) -> usize {
            self.read.load(Ordering::SeqCst)
        }
        /// Waits (bounded) for the discarding task to let the body go.
        async fn gone(&self) {
            for _ in 0..6000 {
                if self.dropped() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the request body was never let go");
        }
    }

    /// The handler answers without reading and drops the request: the body stays until
    /// the answer was sent, then it is read to its end (the client's stream ends cleanly).
    #[tokio::test]
    async fn an_unread_body_waits_for_the_answer_then_is_read_to_its_end() {
        let held = Held::default();
        let (body, probe) = sending(Some(100));
        let request_body = held.request_body(body);
        let answer = held.answer(Response::new(Body::from("413")));
        drop(request_body);
        assert!(!probe.dropped(), "the request body went with the handler");
        let sent = answer.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(sent, "413");
        probe.gone().await;
        assert_eq!(probe.read(), 100 * 1024, "the rest was not read to its end");
    }

    /// The request body is dropped after the answer (a proxied exchange streaming both
    /// ways): it is discarded at once.
    #[tokio::test]
    async fn a_body_dropped_after_its_answer_is_discarded_at_once() {
        let held = Held::default();
        let (body, probe) = sending(Some(10));
        let request_body = held.request_body(body);
        drop(held.answer(Response::new(Body::from("ok"))));
        drop(request_body);
        probe.gone().await;
        assert_eq!(probe.read(), 10 * 1024);
    }

    /// A client that keeps sending is not read past the byte limit.
    #[tokio::test]
    async fn the_discard_is_bounded_in_bytes() {
        let held = Held::with_limits(Duration::from_secs(3600), 64 * 1024);
        let (body, probe) = sending(None);
        drop(held.request_body(body));
        drop(held.answer(Response::new(Body::empty())));
        probe.gone().await;
        assert_eq!(probe.read(), 64 * 1024);
    }

    /// A client that stops sending without ending its body is let go after the time
    /// limit (here 50 ms; the test waits for the end, not for a moment).
    #[tokio::test]
    async fn the_discard_is_bounded_in_time() {
        let held = Held::with_limits(Duration::from_millis(50), usize::MAX);
        let (body, probe) = sending(None);
        drop(held.request_body(body));
        drop(held.answer(Response::new(Body::empty())));
        probe.gone().await;
        assert_eq!(probe.read(), 1 << 20, "it was read while it sent");
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_is_not_held() {
        let held = Held::default();
        let request_body = held.request_body(Body::from("all of it"));
        let read = request_body.collect().await.unwrap().to_bytes();
        assert_eq!(read, "all of it");
        assert!(held.0.body.lock().unwrap().is_none());
    }
}

//! The response body as it passes through: every frame is handed on as it
//! arrives (no buffering) and shown to the call's [`Meter`] on the way.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use costtrace_providers::{End, Meter};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

pin_project_lite::pin_project! {
    /// An upstream body that meters itself. Dropped before its end (the
    /// client hung up), the meter records the call as partial.
    pub struct MeteredBody {
        #[pin]
        inner: Incoming,
        meter: Option<Meter>,
    }
}

impl MeteredBody {
    pub(crate) fn new(inner: Incoming, meter: Meter) -> MeteredBody {
        MeteredBody {
            inner,
            meter: Some(meter),
        }
    }
}

impl Body for MeteredBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        let polled = ready!(this.inner.as_mut().poll_frame(cx));
        match &polled {
            Some(Ok(frame)) => {
                if let (Some(m), Some(data)) = (this.meter.as_mut(), frame.data_ref()) {
                    m.data(data);
                }
                // With a known length the server may never poll for the end.
                if this.inner.is_end_stream()
                    && let Some(mut m) = this.meter.take()
                {
                    m.finish(End::Complete);
                }
            }
            Some(Err(e)) => {
                if let Some(mut m) = this.meter.take() {
                    m.finish(End::Upstream(e.to_string()));
                }
            }
            None => {
                if let Some(mut m) = this.meter.take() {
                    m.finish(End::Complete);
                }
            }
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

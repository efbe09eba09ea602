//! Request bodies as the upstream client sends them, and telling a fault of the client's body
//! apart from a fault of the upstream when an exchange fails.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{LengthLimitError, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// A request body as forwarded: none (so the request can be sent again), as received, or
/// counted against the route's limit.
#[derive(Debug)]
pub enum RequestBody {
    Empty,
    Streamed(Incoming),
    Limited(Limited<Incoming>),
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        // Every variant is Unpin.
        match self.get_mut() {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Streamed(b) => Pin::new(b).poll_frame(cx).map_err(|e| e.into()),
            RequestBody::Limited(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Streamed(b) => b.is_end_stream(),
            RequestBody::Limited(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Streamed(b) => b.size_hint(),
            RequestBody::Limited(b) => b.size_hint(),
        }
    }
}

/// What the client's request body did to a failed upstream exchange, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    /// It passed the route's limit (413).
    TooLarge,
    /// Reading it from the client failed: bad chunked framing, early close (400).
    Broken,
}

/// Tells body faults apart from upstream faults by walking the error's causes.
pub fn body_fault(error: &(dyn std::error::Error + 'static)) -> Option<BodyFault> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut user_body = false;
    while let Some(e) = cause {
        if e.is::<LengthLimitError>() {
            return Some(BodyFault::TooLarge);
        }
        // hyper reports an error of the body it was sending as a "user" error.
        user_body |= e
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_user);
        cause = e.source();
    }
    user_body.then_some(BodyFault::Broken)
}

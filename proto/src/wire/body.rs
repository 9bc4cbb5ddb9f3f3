//! An HTTP body of ready chunks (each becomes a DATA frame, none is copied) and optional
//! trailers.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};

/// Chunks sent as they are, then trailers if any.
#[derive(Debug, Default)]
pub struct ChunkBody {
    chunks: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    remaining: u64,
}

impl ChunkBody {
    /// A body of `chunks` without trailers (a request).
    pub fn new(chunks: Vec<Bytes>) -> Self {
        Self::with_trailers(chunks, None)
    }

    /// A body of `chunks` then `trailers` (a gRPC response carries its status there).
    pub fn with_trailers(chunks: Vec<Bytes>, trailers: Option<HeaderMap>) -> Self {
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        Self {
            chunks: chunks.into_iter().filter(|c| !c.is_empty()).collect(),
            trailers,
            remaining,
        }
    }
}

impl http_body::Body for ChunkBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(chunk) = this.chunks.pop_front() {
            this.remaining -= chunk.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

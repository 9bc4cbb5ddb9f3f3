//! The request body of a hand-framed client stream: messages queued by the sender, each
//! sent as its chunks (one DATA frame per chunk, none copied).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use tokio::sync::mpsc;

/// A body that ends when the sender is dropped.
pub struct QueueBody {
    queue: mpsc::Receiver<Vec<Bytes>>,
    pending: VecDeque<Bytes>,
}

impl QueueBody {
    /// A body of the messages `queue` receives.
    pub fn new(queue: mpsc::Receiver<Vec<Bytes>>) -> Self {
        Self {
            queue,
            pending: VecDeque::new(),
        }
    }
}

impl http_body::Body for QueueBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        loop {
            if let Some(chunk) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            match this.queue.poll_recv(cx) {
                Poll::Ready(Some(message)) => this
                    .pending
                    .extend(message.into_iter().filter(|c| !c.is_empty())),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

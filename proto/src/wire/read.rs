//! Reads the one message of a unary gRPC call (and the trailers) from an HTTP body,
//! keeping the frames as they arrived.

use std::future::poll_fn;
use std::pin::Pin;

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;

use super::{Chunks, GRPC_PREFIX};

/// A unary call's body as received.
#[derive(Debug, Default)]
pub struct Received {
    /// The message without its gRPC prefix; `None` if the body carried no bytes.
    pub message: Option<Chunks>,
    /// Trailers, if the body ended with them.
    pub trailers: Option<HeaderMap>,
}

/// Why a body did not hold one well-framed message.
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E> {
    /// The body itself failed (connection reset, stream refused...).
    #[error("body: {0}")]
    Body(E),
    /// The prefix announces more bytes than allowed; the rest is not read.
    #[error("message length too large: found {len} bytes, the limit is {max} bytes")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The compressed flag is set (or not 0 or 1): strata negotiates no compression.
    #[error("compressed flag set, but no message encoding was negotiated")]
    Compressed,
    /// The body ended inside the prefix or the message.
    #[error("body ended after {got} of {want} bytes")]
    Incomplete {
        /// Bytes received.
        got: usize,
        /// Bytes the prefix announced (with the prefix).
        want: usize,
    },
    /// Bytes after the message: a unary call carries exactly one.
    #[error("more than one message in a unary call")]
    Extra,
}

/// Reads the gRPC length-prefixed messages of an HTTP body as they arrive, each as the
/// frames it came in (a frame holding the end of one message and the start of the next
/// is shared by both, not copied).
pub struct MessageReader<B> {
    body: B,
    buffered: Chunks,
    /// Small frames copied together (they follow every byte of `buffered`).
    small: BytesMut,
    max: usize,
    trailers: Option<HeaderMap>,
    ended: bool,
}

/// Frames shorter than this are copied together instead of kept one by one, so a peer that
/// sends a message in tiny frames costs the memory and parsing of one that does not.
const SMALL_FRAME: usize = 16 << 10;

impl<B> MessageReader<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    /// A reader of `body` refusing messages over `max` bytes.
    pub fn new(body: B, max: usize) -> Self {
        Self {
            body,
            buffered: Chunks::new(),
            small: BytesMut::new(),
            max,
            trailers: None,
            ended: false,
        }
    }

    /// The next message (without its prefix), or `None` when the body ended between
    /// messages.
    pub async fn next_message(&mut self) -> Result<Option<Chunks>, ReadError<B::Error>> {
        loop {
            let available = self.buffered.len() + self.small.len();
            let mut want = GRPC_PREFIX;
            if available >= GRPC_PREFIX {
                if self.buffered.len() < GRPC_PREFIX {
                    self.flush_small();
                }
                want += message_len(&self.buffered, self.max)?;
                if available >= want {
                    self.flush_small();
                    self.buffered.advance(GRPC_PREFIX);
                    return Ok(Some(self.buffered.split_to(want - GRPC_PREFIX)));
                }
            }
            if self.ended {
                return if available == 0 {
                    Ok(None)
                } else {
                    Err(ReadError::Incomplete {
                        got: available,
                        want,
                    })
                };
            }
            self.read_frame().await?;
        }
    }

    /// Reads the body to its end, refusing any further bytes (a unary call's one message).
    pub async fn finish(&mut self) -> Result<(), ReadError<B::Error>> {
        while self.buffered.is_empty() && self.small.is_empty() && !self.ended {
            self.read_frame().await?;
        }
        if self.buffered.is_empty() && self.small.is_empty() {
            Ok(())
        } else {
            Err(ReadError::Extra)
        }
    }

    /// The trailers, once the body ended with them.
    pub fn take_trailers(&mut self) -> Option<HeaderMap> {
        self.trailers.take()
    }

    fn flush_small(&mut self) {
        if !self.small.is_empty() {
            self.buffered.push(self.small.split().freeze());
        }
    }

    async fn read_frame(&mut self) -> Result<(), ReadError<B::Error>> {
        let body = &mut self.body;
        match poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await {
            None => self.ended = true,
            Some(frame) => match frame.map_err(ReadError::Body)?.into_data() {
                Ok(bytes) if bytes.len() < SMALL_FRAME => {
                    self.small.extend_from_slice(&bytes);
                    if self.small.len() >= SMALL_FRAME {
                        self.flush_small();
                    }
                }
                Ok(bytes) => {
                    self.flush_small();
                    self.buffered.push(bytes);
                }
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        self.trailers = Some(t);
                    }
                }
            },
        }
        Ok(())
    }
}

/// Reads `body` to its end: at most one message of at most `max` bytes.
pub async fn read_unary<B>(body: &mut B, max: usize) -> Result<Received, ReadError<B::Error>>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let mut reader = MessageReader::new(body, max);
    let message = reader.next_message().await?;
    reader.finish().await?;
    Ok(Received {
        message,
        trailers: reader.take_trailers(),
    })
}

/// The message length the prefix announces, checked against `max`.
fn message_len<E>(data: &Chunks, max: usize) -> Result<usize, ReadError<E>> {
    let mut prefix = [0u8; GRPC_PREFIX];
    if !data.copy_to(0, &mut prefix) {
        return Err(ReadError::Incomplete {
            got: data.len(),
            want: GRPC_PREFIX,
        });
    }
    if prefix[0] != 0 {
        return Err(ReadError::Compressed);
    }
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    if len > max {
        return Err(ReadError::TooLarge { len, max });
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ChunkBody;
    use std::convert::Infallible;

    fn body(parts: &[&'static [u8]], trailers: bool) -> ChunkBody {
        let mut t = HeaderMap::new();
        t.insert("grpc-status", http::HeaderValue::from_static("0"));
        ChunkBody::with_trailers(
            parts.iter().map(|p| Bytes::from_static(p)).collect(),
            trailers.then_some(t),
        )
    }

    fn read(parts: &[&'static [u8]], max: usize) -> Result<Received, ReadError<Infallible>> {
        let mut b = body(parts, true);
        block_on(read_unary(&mut b, max))
    }

    /// A minimal executor: the body never pends.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn one_message_over_several_frames() {
        let r = read(&[&[0, 0, 0], &[0, 3, b'a'], b"bc"], 10).expect("valid");
        let m = r.message.expect("a message");
        assert_eq!(m.bytes(0..3).as_deref(), Some(&b"abc"[..]));
        assert!(r.trailers.is_some());
    }

    #[test]
    fn a_stream_of_messages_sharing_frames() {
        let parts: &[&'static [u8]] = &[
            &[0, 0, 0, 0, 2, b'a'],
            &[b'b', 0, 0, 0],
            &[0, 1, b'c', 0, 0, 0, 0, 0],
        ];
        let mut b = body(parts, false);
        let mut reader = MessageReader::new(&mut b, 10);
        let mut got = Vec::new();
        while let Some(m) = block_on(reader.next_message()).expect("valid") {
            got.push(m.bytes(0..m.len()).expect("whole").to_vec());
        }
        assert_eq!(got, vec![b"ab".to_vec(), b"c".to_vec(), Vec::new()]);
        let mut cut = body(&[&[0, 0, 0, 0, 2, b'a']], false);
        let mut reader = MessageReader::new(&mut cut, 10);
        assert!(matches!(
            block_on(reader.next_message()),
            Err(ReadError::Incomplete { got: 6, want: 7 })
        ));
    }

    #[test]
    fn tiny_frames_are_gathered_and_large_ones_kept() {
        // A 40 000-byte message: one byte per frame, then the same in one large frame.
        let mut parts: Vec<Bytes> = vec![Bytes::from_static(&[0, 0, 0, 0x9c, 0x40])];
        parts.extend((0..40_000).map(|i| Bytes::from(vec![(i % 251) as u8])));
        let large = Bytes::from((0..40_000).map(|i| (i % 251) as u8).collect::<Vec<_>>());
        parts.push(Bytes::from_static(&[0, 0, 0, 0x9c, 0x40]));
        parts.push(large.clone());
        let mut b = ChunkBody::new(parts);
        let mut reader = MessageReader::new(&mut b, 1 << 20);
        let tiny = block_on(reader.next_message())
            .expect("valid")
            .expect("message");
        assert!(tiny.parts() <= 4, "{} parts", tiny.parts());
        assert_eq!(tiny.bytes(0..40_000).expect("whole"), large);
        let one = block_on(reader.next_message())
            .expect("valid")
            .expect("message");
        assert_eq!(one.parts(), 1);
        assert_eq!(
            one.contiguous(0..40_000).expect("one frame").as_ptr(),
            large.as_ptr()
        );
        assert!(block_on(reader.next_message()).expect("end").is_none());
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            read(&[&[0, 0, 0, 1, 0]], 255),
            Err(ReadError::TooLarge { len: 256, max: 255 })
        ));
        assert!(matches!(
            read(&[&[1, 0, 0, 0, 0]], 9),
            Err(ReadError::Compressed)
        ));
        assert!(matches!(
            read(&[&[0, 0, 0, 0, 2, 9]], 9),
            Err(ReadError::Incomplete { got: 6, want: 7 })
        ));
        assert!(matches!(
            read(&[&[0, 0]], 9),
            Err(ReadError::Incomplete { got: 2, want: 5 })
        ));
        assert!(matches!(
            read(&[&[0, 0, 0, 0, 1, 9, 9]], 9),
            Err(ReadError::Extra)
        ));
        let r = read(&[], 9).expect("trailers only");
        assert!(r.message.is_none() && r.trailers.is_some());
        let empty = read(&[&[0, 0, 0, 0, 0]], 9).expect("empty message");
        assert!(empty.message.expect("present").is_empty());
    }
}

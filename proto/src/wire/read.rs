//! Reads the one message of a unary gRPC call (and the trailers) from an HTTP body,
//! keeping the frames as they arrived.

use std::future::poll_fn;
use std::pin::Pin;

use bytes::Bytes;
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
    /// The compressed flag is set (strata does not negotiate compression).
    #[error("compressed messages are not supported")]
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

/// Reads `body` to its end: at most one message of at most `max` bytes.
pub async fn read_unary<B>(body: &mut B, max: usize) -> Result<Received, ReadError<B::Error>>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let mut data = Chunks::new();
    let mut want: Option<usize> = None;
    let mut trailers = None;
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await {
        let frame = frame.map_err(ReadError::Body)?;
        let frame = match frame.into_data() {
            Ok(bytes) => {
                data.push(bytes);
                if want.is_none() && data.len() >= GRPC_PREFIX {
                    want = Some(GRPC_PREFIX + message_len(&data, max)?);
                }
                if want.is_some_and(|w| data.len() > w) {
                    return Err(ReadError::Extra);
                }
                continue;
            }
            Err(frame) => frame,
        };
        if let Ok(t) = frame.into_trailers() {
            trailers = Some(t);
        }
    }
    if data.is_empty() {
        return Ok(Received {
            message: None,
            trailers,
        });
    }
    let want = want.unwrap_or(GRPC_PREFIX);
    if data.len() < want {
        return Err(ReadError::Incomplete {
            got: data.len(),
            want,
        });
    }
    data.split_to(GRPC_PREFIX);
    Ok(Received {
        message: Some(data),
        trailers,
    })
}

/// The message length the prefix announces, checked against `max`.
fn message_len<E>(data: &Chunks, max: usize) -> Result<usize, ReadError<E>> {
    let mut prefix = [0u8; GRPC_PREFIX];
    data.copy_to(0, &mut prefix);
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

//! Builds one gRPC message as chunks: keys, lengths and small fields are written into
//! small buffers, large payloads are passed on as the `Bytes` they already are.

use bytes::Bytes;
use prost::encoding::{encode_key, encode_varint, WireType};

use super::{WireError, GRPC_PREFIX};

/// Payloads shorter than this are copied next to their key instead of becoming a chunk.
const INLINE_BYTES: usize = 512;

enum Part {
    Own(Vec<u8>),
    Shared(Bytes),
}

/// A message written field by field (in field-number order it equals prost's encoding),
/// finished as the gRPC length-prefixed chunks of an HTTP/2 body.
pub struct MessageWriter {
    parts: Vec<Part>,
    head: Vec<u8>,
    len: usize,
}

impl Default for MessageWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageWriter {
    /// An empty message.
    pub fn new() -> Self {
        Self {
            parts: Vec::new(),
            head: vec![0; GRPC_PREFIX],
            len: 0,
        }
    }

    /// A `string` field (omitted when empty, as proto3 encodes it).
    pub fn string(&mut self, field: u32, value: &str) -> &mut Self {
        if !value.is_empty() {
            self.key_len(field, value.len());
            self.head.extend_from_slice(value.as_bytes());
            self.len += value.len();
        }
        self
    }

    /// A `uint64`/`uint32` field (omitted when 0).
    pub fn uint(&mut self, field: u32, value: u64) -> &mut Self {
        if value != 0 {
            let before = self.head.len();
            encode_key(field, WireType::Varint, &mut self.head);
            encode_varint(value, &mut self.head);
            self.len += self.head.len() - before;
        }
        self
    }

    /// A `bytes` field (omitted when empty); a large payload is not copied.
    pub fn bytes(&mut self, field: u32, payload: Bytes) -> &mut Self {
        if payload.is_empty() {
            return self;
        }
        self.key_len(field, payload.len());
        self.len += payload.len();
        if payload.len() < INLINE_BYTES {
            self.head.extend_from_slice(&payload);
        } else {
            let head = std::mem::take(&mut self.head);
            if !head.is_empty() {
                self.parts.push(Part::Own(head));
            }
            self.parts.push(Part::Shared(payload));
        }
        self
    }

    /// Bytes of the message (without the gRPC prefix).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no field was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The gRPC prefix (uncompressed, length) and the message, as body chunks.
    pub fn finish(mut self) -> Result<Vec<Bytes>, WireError> {
        let len = u32::try_from(self.len).map_err(|_| WireError::TooLong(self.len))?;
        if !self.head.is_empty() {
            self.parts.push(Part::Own(std::mem::take(&mut self.head)));
        }
        let mut chunks = Vec::with_capacity(self.parts.len());
        for (i, part) in self.parts.into_iter().enumerate() {
            chunks.push(match part {
                Part::Own(mut buf) => {
                    if i == 0 {
                        buf[0] = 0;
                        buf[1..GRPC_PREFIX].copy_from_slice(&len.to_be_bytes());
                    }
                    Bytes::from(buf)
                }
                Part::Shared(bytes) => bytes,
            });
        }
        Ok(chunks)
    }

    fn key_len(&mut self, field: u32, len: usize) {
        let before = self.head.len();
        encode_key(field, WireType::LengthDelimited, &mut self.head);
        encode_varint(len as u64, &mut self.head);
        self.len += self.head.len() - before;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1 as pb;
    use prost::Message;

    fn concat(chunks: &[Bytes]) -> Vec<u8> {
        chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    fn framed(encoded: Vec<u8>) -> Vec<u8> {
        let mut out = vec![0u8];
        out.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
        out.extend(encoded);
        out
    }

    #[test]
    fn equals_prost_with_payloads_left_in_place() {
        let grads = Bytes::from(vec![3u8; 4096]);
        let req = pb::PushRequest {
            table: "emb".into(),
            ids: Bytes::from(vec![1u8; 64]),
            grads: grads.clone(),
            epoch: 9,
            client_id: String::new(),
            seq: 0,
            acked_below: 0,
            resend_after_ms: 0,
        };
        let mut w = MessageWriter::new();
        w.string(1, &req.table)
            .bytes(2, req.ids.clone())
            .bytes(3, grads.clone())
            .uint(4, req.epoch)
            .string(5, "")
            .uint(6, 0);
        assert_eq!(w.len(), req.encoded_len());
        let chunks = w.finish().expect("small");
        assert_eq!(concat(&chunks), framed(req.encode_to_vec()));
        // The large payload is the caller's buffer, not a copy.
        assert!(chunks.iter().any(|c| c.as_ptr() == grads.as_ptr()));
    }

    #[test]
    fn empty_message_is_just_the_prefix() {
        let chunks = MessageWriter::new().finish().expect("empty");
        assert_eq!(concat(&chunks), vec![0, 0, 0, 0, 0]);
    }

    #[test]
    fn response_with_payload_first() {
        let resp = pb::PullResponse {
            values: Bytes::from(vec![5u8; 1000]),
            dim: 64,
        };
        let mut w = MessageWriter::new();
        w.bytes(1, resp.values.clone()).uint(2, 64);
        assert_eq!(
            concat(&w.finish().expect("small")),
            framed(resp.encode_to_vec())
        );
    }
}

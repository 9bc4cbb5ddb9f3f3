//! The payload messages of `Pull` and `Push`: read from [`Chunks`] (small fields decoded,
//! payload fields left where they are, as ranges into the message) and written with a
//! [`MessageWriter`] (payloads passed on as the `Bytes` they are). The field numbers of
//! these messages live here only.
//!
//! Protobuf rules apply: fields in any order, unknown fields skipped, the last occurrence
//! of a field wins, absent fields take their default, and every occurrence of a string field
//! must be UTF-8 (prost refuses the message otherwise, even when a later occurrence wins).

use std::ops::Range;

use bytes::Bytes;

use super::fields::{FieldReader, FieldValue};
use super::{Chunks, MessageWriter, WireError};

/// `strata.v1.PullRequest` with `ids` in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullRequestView {
    /// Table name.
    pub table: String,
    /// Packed u64 LE ids.
    pub ids: Range<usize>,
    /// Routing epoch (0 = unchecked).
    pub epoch: u64,
}

/// `strata.v1.PushRequest` with `ids` and `grads` in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushRequestView {
    /// Table name.
    pub table: String,
    /// Packed u64 LE ids.
    pub ids: Range<usize>,
    /// Packed f32 LE gradients, row-major.
    pub grads: Range<usize>,
    /// Routing epoch (0 = unchecked).
    pub epoch: u64,
    /// The client's id, for exactly-once pushes (empty: none).
    pub client_id: String,
    /// The push's sequence number within the client.
    pub seq: u64,
    /// Every seq of the client below this one has a known outcome.
    pub acked_below: u64,
    /// On a copy sent again: milliseconds since the first copy (0: the first).
    pub resend_after_ms: u64,
}

/// `strata.v1.PullResponse` with `values` in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullResponseView {
    /// Packed f32 LE rows, row-major.
    pub values: Range<usize>,
    /// Row width.
    pub dim: u32,
}

impl PullRequestView {
    /// Reads the message.
    pub fn parse(message: &Chunks) -> Result<Self, WireError> {
        const NAME: &str = "PullRequest";
        let mut view = Self::default();
        for_each_field(message, |number, value| {
            match number {
                1 => view.table = string(message, NAME, 1, len(NAME, 1, value)?)?,
                2 => view.ids = len(NAME, 2, value)?,
                3 => view.epoch = varint(NAME, 3, value)?,
                _ => {}
            }
            Ok(())
        })?;
        Ok(view)
    }
}

impl PushRequestView {
    /// Reads the message.
    pub fn parse(message: &Chunks) -> Result<Self, WireError> {
        const NAME: &str = "PushRequest";
        let mut view = Self::default();
        for_each_field(message, |number, value| {
            match number {
                1 => view.table = string(message, NAME, 1, len(NAME, 1, value)?)?,
                2 => view.ids = len(NAME, 2, value)?,
                3 => view.grads = len(NAME, 3, value)?,
                4 => view.epoch = varint(NAME, 4, value)?,
                5 => view.client_id = string(message, NAME, 5, len(NAME, 5, value)?)?,
                6 => view.seq = varint(NAME, 6, value)?,
                7 => view.acked_below = varint(NAME, 7, value)?,
                8 => view.resend_after_ms = varint(NAME, 8, value)?,
                _ => {}
            }
            Ok(())
        })?;
        Ok(view)
    }
}

impl PullResponseView {
    /// Reads the message.
    pub fn parse(message: &Chunks) -> Result<Self, WireError> {
        const NAME: &str = "PullResponse";
        let mut view = Self::default();
        for_each_field(message, |number, value| {
            match number {
                1 => view.values = len(NAME, 1, value)?,
                // uint32 fields keep the low 32 bits of the varint, as protobuf says.
                2 => view.dim = varint(NAME, 2, value)? as u32,
                _ => {}
            }
            Ok(())
        })?;
        Ok(view)
    }
}

/// A `PullRequest`: `ids` are packed u64 LE.
pub fn pull_request(table: &str, ids: Bytes, epoch: u64) -> MessageWriter {
    let mut w = MessageWriter::new();
    w.string(1, table).bytes(2, ids).uint(3, epoch);
    w
}

/// A `PushRequest`: `ids` packed u64 LE, `grads` packed f32 LE rows in the order of `ids`.
pub fn push_request(table: &str, ids: Bytes, grads: Bytes, epoch: u64) -> MessageWriter {
    let mut w = MessageWriter::new();
    w.string(1, table)
        .bytes(2, ids)
        .bytes(3, grads)
        .uint(4, epoch);
    w
}

/// Who sends a push, for exactly-once delivery (fields 5–7 of `PushRequest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushOnce<'a> {
    /// The client's id.
    pub client_id: &'a str,
    /// The push's sequence number.
    pub seq: u64,
    /// Every seq below this one has a known outcome.
    pub acked_below: u64,
    /// On a copy sent again: milliseconds since the first copy (0: the first).
    pub resend_after_ms: u64,
}

/// A `PushRequest` for exactly-once delivery: [`push_request`] with the sender's `once`.
pub fn push_request_once(
    table: &str,
    ids: Bytes,
    grads: Bytes,
    epoch: u64,
    once: PushOnce<'_>,
) -> MessageWriter {
    let mut w = push_request(table, ids, grads, epoch);
    w.string(5, once.client_id)
        .uint(6, once.seq)
        .uint(7, once.acked_below)
        .uint(8, once.resend_after_ms);
    w
}

/// A `PullResponse`: `values` packed f32 LE rows of width `dim`.
pub fn pull_response(values: Bytes, dim: u32) -> MessageWriter {
    let mut w = MessageWriter::new();
    w.bytes(1, values).uint(2, u64::from(dim));
    w
}

/// A `PushResponse`.
pub fn push_response(applied: u64) -> MessageWriter {
    let mut w = MessageWriter::new();
    w.uint(1, applied);
    w
}

/// Calls `on` with each field of `message` in order.
fn for_each_field(
    message: &Chunks,
    mut on: impl FnMut(u32, FieldValue) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let mut fields = FieldReader::new(message);
    while let Some(field) = fields.next_field()? {
        on(field.number, field.value)?;
    }
    Ok(())
}

fn len(message: &'static str, field: u32, value: FieldValue) -> Result<Range<usize>, WireError> {
    match value {
        FieldValue::Len(range) => Ok(range),
        _ => Err(WireError::WrongType { message, field }),
    }
}

fn varint(message: &'static str, field: u32, value: FieldValue) -> Result<u64, WireError> {
    match value {
        FieldValue::Varint(v) => Ok(v),
        _ => Err(WireError::WrongType { message, field }),
    }
}

fn string(
    chunks: &Chunks,
    message: &'static str,
    field: u32,
    range: Range<usize>,
) -> Result<String, WireError> {
    let bytes = chunks
        .bytes(range.clone())
        .ok_or(WireError::Truncated(range.start))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| WireError::NotUtf8 { message, field })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1 as pb;
    use bytes::Bytes;
    use prost::Message;

    /// `encoded` cut at `at` (two buffers), and cut into 3-byte buffers.
    fn cuts(encoded: &[u8]) -> Vec<Chunks> {
        let mut out = Vec::new();
        for at in 0..=encoded.len() {
            let mut c = Chunks::new();
            c.push(Bytes::copy_from_slice(&encoded[..at]));
            c.push(Bytes::copy_from_slice(&encoded[at..]));
            out.push(c);
        }
        let mut c = Chunks::new();
        for piece in encoded.chunks(3) {
            c.push(Bytes::copy_from_slice(piece));
        }
        out.push(c);
        out
    }

    fn range_bytes(c: &Chunks, r: &Range<usize>) -> Vec<u8> {
        c.bytes(r.clone()).expect("in range").to_vec()
    }

    #[test]
    fn push_request_matches_prost_at_every_cut() {
        let req = pb::PushRequest {
            table: "emb".into(),
            ids: Bytes::from((0u8..24).collect::<Vec<_>>()),
            grads: Bytes::from((0u8..48).rev().collect::<Vec<_>>()),
            epoch: 300,
            client_id: "trainer-7".into(),
            seq: u64::MAX,
            acked_below: 12,
            resend_after_ms: 40,
        };
        for c in cuts(&req.encode_to_vec()) {
            let v = PushRequestView::parse(&c).expect("valid");
            assert_eq!(v.table, req.table);
            assert_eq!(range_bytes(&c, &v.ids), req.ids.to_vec());
            assert_eq!(range_bytes(&c, &v.grads), req.grads.to_vec());
            assert_eq!(
                (
                    v.epoch,
                    v.client_id.as_str(),
                    v.seq,
                    v.acked_below,
                    v.resend_after_ms
                ),
                (300, "trainer-7", u64::MAX, 12, 40)
            );
        }
    }

    #[test]
    fn pull_messages_match_prost_with_unknown_fields_and_repeats() {
        let req = pb::PullRequest {
            table: "t".into(),
            ids: Bytes::from(vec![1u8; 16]),
            epoch: 5,
        };
        let mut encoded = req.encode_to_vec();
        // An unknown field 9 (bytes) and a repeated epoch: the last one wins.
        encoded.extend_from_slice(&[0x4a, 2, 0xde, 0xad, 0x18, 6]);
        for c in cuts(&encoded) {
            let v = PullRequestView::parse(&c).expect("valid");
            assert_eq!((v.table.as_str(), v.epoch), ("t", 6));
            assert_eq!(range_bytes(&c, &v.ids), vec![1u8; 16]);
        }
        let resp = pb::PullResponse {
            values: Bytes::from(vec![7u8; 40]),
            dim: 10,
        };
        for c in cuts(&resp.encode_to_vec()) {
            let v = PullResponseView::parse(&c).expect("valid");
            assert_eq!(v.dim, 10);
            assert_eq!(range_bytes(&c, &v.values), vec![7u8; 40]);
        }
    }

    fn encoded(w: MessageWriter) -> Vec<u8> {
        let all: Vec<u8> = w
            .finish()
            .expect("small")
            .iter()
            .flat_map(|c| c.iter().copied())
            .collect();
        all[crate::wire::GRPC_PREFIX..].to_vec()
    }

    #[test]
    fn encoders_equal_prost() {
        let ids = Bytes::from(vec![3u8; 800]);
        let grads = Bytes::from(vec![4u8; 1600]);
        let pull = pb::PullRequest {
            table: "t".into(),
            ids: ids.clone(),
            epoch: 9,
        };
        assert_eq!(
            encoded(pull_request("t", ids.clone(), 9)),
            pull.encode_to_vec()
        );
        let push = pb::PushRequest {
            table: "t".into(),
            ids: ids.clone(),
            grads: grads.clone(),
            epoch: 2,
            ..Default::default()
        };
        assert_eq!(
            encoded(push_request("t", ids, grads.clone(), 2)),
            push.encode_to_vec()
        );
        let resp = pb::PullResponse {
            values: grads.clone(),
            dim: 100,
        };
        assert_eq!(encoded(pull_response(grads, 100)), resp.encode_to_vec());
        let ack = pb::PushResponse { applied: 77 };
        assert_eq!(encoded(push_response(77)), ack.encode_to_vec());
    }

    #[test]
    fn refuses_wrong_types_and_bad_strings() {
        let mut c = Chunks::new();
        c.push(Bytes::from_static(&[0x10, 1])); // ids as a varint
        assert_eq!(
            PullRequestView::parse(&c),
            Err(WireError::WrongType {
                message: "PullRequest",
                field: 2
            })
        );
        // A table that is not UTF-8, then one that is: refused, as prost refuses it.
        let mut c = Chunks::new();
        c.push(Bytes::from_static(&[0x0a, 1, 0xe7, 0x0a, 1, b't']));
        assert_eq!(
            PullRequestView::parse(&c),
            Err(WireError::NotUtf8 {
                message: "PullRequest",
                field: 1
            })
        );
        let mut c = Chunks::new();
        c.push(Bytes::from_static(&[0x0a, 1, 0xff])); // table not UTF-8
        assert_eq!(
            PushRequestView::parse(&c),
            Err(WireError::NotUtf8 {
                message: "PushRequest",
                field: 1
            })
        );
    }
}

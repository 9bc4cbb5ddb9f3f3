//! The `wire_decode` fuzz target's body (`fuzz/fuzz_targets/wire_decode.rs`), also replayed
//! by this crate's tests over the seed corpus and every kept crash input.
//!
//! It feeds arbitrary bytes to each hand-framed decoder the server and the client run on
//! received bytes (gRPC framing, the `Pull`/`Push` message views, packed payloads) and
//! asserts their properties: a panic here is a finding, not a refusal.
//!
//! Input layout: byte 0 chooses how the rest is cut into received frames (0: one frame),
//! the rest is the bytes as received.

use std::borrow::Cow;
use std::convert::Infallible;
use std::ops::Range;

use bytes::Bytes;
use prost::Message;

use crate::v1 as pb;
use crate::wire::payload::{f32s_from_chunks, ids_from_chunks};
use crate::wire::{
    self, ChunkBody, Chunks, MessageReader, PullRequestView, PullResponseView, PushRequestView,
    ReadError, GRPC_PREFIX,
};

/// Runs every wire decoder over `data` and checks their properties (panics on a violation).
pub fn wire_decode(data: &[u8]) {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let parts = frames(rest, cut);
    framing(rest, &parts, cut);
    let split = chunks(&parts);
    let whole = chunks(&[Bytes::copy_from_slice(rest)]);
    pull_request(rest, &split, &whole);
    push_request(rest, &split, &whole, cut);
    pull_response(rest, &split, &whole);
}

/// `bytes` cut into frames whose lengths alternate between the two nibbles of `cut` (+1).
fn frames(bytes: &[u8], cut: u8) -> Vec<Bytes> {
    if cut == 0 {
        return vec![Bytes::copy_from_slice(bytes)];
    }
    let lens = [usize::from(cut & 0x0f) + 1, usize::from(cut >> 4) + 1];
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let end = (at + lens[out.len() % 2]).min(bytes.len());
        out.push(Bytes::copy_from_slice(&bytes[at..end]));
        at = end;
    }
    out
}

fn chunks(parts: &[Bytes]) -> Chunks {
    let mut c = Chunks::new();
    for p in parts {
        c.push(p.clone());
    }
    c
}

/// Polls a future whose body never pends (a [`ChunkBody`]) to its end.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// gRPC framing: the unary reader and the message stream reader.
fn framing(stream: &[u8], parts: &[Bytes], cut: u8) {
    // A limit from the input, so that both refusal and acceptance are reached.
    let max = if cut & 1 == 0 {
        usize::MAX
    } else {
        usize::from(cut) * 16
    };
    let mut body = ChunkBody::new(parts.to_vec());
    match block_on(wire::read_unary(&mut body, max)) {
        Ok(received) => match received.message {
            None => assert!(stream.is_empty(), "bytes but no message"),
            Some(m) => {
                assert_eq!(m.len() + GRPC_PREFIX, stream.len(), "unary length");
                assert!(m.len() <= max);
                assert_eq!(whole(&m), stream[GRPC_PREFIX..], "unary content");
            }
        },
        Err(ReadError::TooLarge { len, max: limit }) => assert!(len > limit && limit == max),
        Err(ReadError::Incomplete { got, want }) => {
            assert!(got < want && got <= stream.len(), "incomplete {got}/{want}")
        }
        Err(ReadError::Compressed | ReadError::Extra) => {}
        Err(ReadError::Body(never)) => match never {},
    }
    // The same bytes as a stream of messages: each one is the bytes after its prefix.
    let mut body = ChunkBody::new(parts.to_vec());
    let mut reader = MessageReader::new(&mut body, max);
    let mut at = 0;
    loop {
        let next: Result<Option<Chunks>, ReadError<Infallible>> = block_on(reader.next_message());
        match next {
            Ok(Some(m)) => {
                let start = at + GRPC_PREFIX;
                assert!(start + m.len() <= stream.len(), "message past the input");
                assert_eq!(whole(&m), stream[start..start + m.len()], "stream content");
                at = start + m.len();
            }
            Ok(None) => {
                assert_eq!(at, stream.len(), "stream ended early");
                break;
            }
            Err(_) => break,
        }
    }
}

fn whole(c: &Chunks) -> Vec<u8> {
    c.bytes(0..c.len())
        .expect("a whole message is in range")
        .to_vec()
}

/// `range` of `c`, which a view returned: always inside the message.
fn field(c: &Chunks, range: &Range<usize>, len: usize) -> Bytes {
    assert!(
        range.start <= range.end && range.end <= len,
        "{range:?} past {len}"
    );
    c.bytes(range.clone())
        .expect("a view's range is in the message")
}

fn pull_request(bytes: &[u8], split: &Chunks, whole: &Chunks) {
    let got = PullRequestView::parse(split);
    assert_eq!(
        got,
        PullRequestView::parse(whole),
        "frames changed the result"
    );
    let prost = pb::PullRequest::decode(bytes);
    assert_eq!(
        got.is_ok(),
        prost.is_ok(),
        "prost disagrees: {got:?} {prost:?}"
    );
    let (Ok(view), Ok(prost)) = (got, prost) else {
        return;
    };
    let ids = field(split, &view.ids, bytes.len());
    assert_eq!(
        (&view.table, &ids, view.epoch),
        (&prost.table, &prost.ids, prost.epoch)
    );
    check_ids(split, &view.ids);
    // Re-encoded, it reads back the same, and equals prost's encoding.
    let again = encoded(wire::pull_request(&view.table, ids, view.epoch));
    assert_eq!(again, prost.encode_to_vec(), "writer differs from prost");
    let back = PullRequestView::parse(&chunks(&[Bytes::from(again.clone())])).expect("round trip");
    assert_eq!(back.table, view.table);
    assert_eq!(back.epoch, view.epoch);
    assert_eq!(again[back.ids.clone()], prost.ids[..]);
}

fn push_request(bytes: &[u8], split: &Chunks, whole: &Chunks, cut: u8) {
    let got = PushRequestView::parse(split);
    assert_eq!(
        got,
        PushRequestView::parse(whole),
        "frames changed the result"
    );
    let prost = pb::PushRequest::decode(bytes);
    assert_eq!(
        got.is_ok(),
        prost.is_ok(),
        "prost disagrees: {got:?} {prost:?}"
    );
    let (Ok(view), Ok(prost)) = (got, prost) else {
        return;
    };
    let ids = field(split, &view.ids, bytes.len());
    let grads = field(split, &view.grads, bytes.len());
    assert_eq!(
        (
            &view.table,
            &ids,
            &grads,
            view.epoch,
            &view.client_id,
            view.seq,
            view.acked_below,
            view.resend_after_ms
        ),
        (
            &prost.table,
            &prost.ids,
            &prost.grads,
            prost.epoch,
            &prost.client_id,
            prost.seq,
            prost.acked_below,
            prost.resend_after_ms
        )
    );
    check_ids(split, &view.ids);
    // Rows of 0..4 floats: width 0 is always refused.
    check_f32s(split, &view.grads, 4 * usize::from(cut % 5));
    let again = encoded(wire::push_request(&view.table, ids, grads, view.epoch));
    let back = PushRequestView::parse(&chunks(&[Bytes::from(again.clone())])).expect("round trip");
    assert_eq!((&back.table, back.epoch), (&view.table, view.epoch));
    assert_eq!(again[back.ids.clone()], prost.ids[..]);
    assert_eq!(again[back.grads.clone()], prost.grads[..]);
}

fn pull_response(bytes: &[u8], split: &Chunks, whole: &Chunks) {
    let got = PullResponseView::parse(split);
    assert_eq!(
        got,
        PullResponseView::parse(whole),
        "frames changed the result"
    );
    let prost = pb::PullResponse::decode(bytes);
    assert_eq!(
        got.is_ok(),
        prost.is_ok(),
        "prost disagrees: {got:?} {prost:?}"
    );
    let (Ok(view), Ok(prost)) = (got, prost) else {
        return;
    };
    let values = field(split, &view.values, bytes.len());
    assert_eq!((&values, view.dim), (&prost.values, prost.dim));
    check_f32s(split, &view.values, 4 * view.dim as usize);
    let again = encoded(wire::pull_response(values, view.dim));
    assert_eq!(again, prost.encode_to_vec(), "writer differs from prost");
}

/// The message a writer produced, without its gRPC prefix.
fn encoded(w: wire::MessageWriter) -> Vec<u8> {
    let all: Vec<u8> = w
        .finish()
        .expect("a message read from the input fits a gRPC prefix")
        .iter()
        .flat_map(|c| c.iter().copied())
        .collect();
    let len = u32::from_be_bytes([all[1], all[2], all[3], all[4]]) as usize;
    assert_eq!((all[0], len), (0, all.len() - GRPC_PREFIX), "gRPC prefix");
    all[GRPC_PREFIX..].to_vec()
}

/// Packed ids: accepted exactly when whole, and equal to an element-wise decode.
fn check_ids(c: &Chunks, range: &Range<usize>) {
    let raw = field(c, range, c.len());
    match ids_from_chunks(c, range.clone()) {
        Ok(ids) => {
            assert_eq!(ids.len() * 8, raw.len(), "ids length");
            let expect = raw
                .chunks_exact(8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
            assert!(ids.iter().copied().eq(expect), "ids content");
            assert_borrowed_only_in_one_frame(c, range, ids);
        }
        Err(e) => assert!(!raw.len().is_multiple_of(8), "whole ids refused: {e}"),
    }
}

/// Packed f32 rows of `unit` bytes: accepted exactly when whole rows, bit-exact.
fn check_f32s(c: &Chunks, range: &Range<usize>, unit: usize) {
    let raw = field(c, range, c.len());
    match f32s_from_chunks("values", c, range.clone(), unit) {
        Ok(v) => {
            assert!(unit != 0 && raw.len().is_multiple_of(unit) && raw.len().is_multiple_of(4));
            assert_eq!(v.len() * 4, raw.len(), "values length");
            let expect = raw
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
            assert!(v.iter().map(|f| f.to_bits()).eq(expect), "values content");
            assert_borrowed_only_in_one_frame(c, range, v);
        }
        Err(e) => {
            assert!(
                unit == 0 || !raw.len().is_multiple_of(unit) || !raw.len().is_multiple_of(4),
                "{e}"
            );
        }
    }
}

/// A borrowed decode points into a received frame, never at a copy.
fn assert_borrowed_only_in_one_frame<T: Clone>(c: &Chunks, range: &Range<usize>, v: Cow<'_, [T]>) {
    if matches!(v, Cow::Borrowed(s) if !s.is_empty()) {
        assert!(
            c.contiguous(range.clone()).is_some(),
            "borrowed across frames"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(kind: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz")
            .join(kind)
            .join("wire_decode")
    }

    /// Runs every file of `fuzz/<kind>/wire_decode` (hidden files aside); returns how many.
    fn replay(kind: &str) -> usize {
        let Ok(entries) = std::fs::read_dir(dir(kind)) else {
            return 0;
        };
        let mut n = 0;
        for entry in entries {
            let file = entry.expect("directory entry").path();
            if file
                .file_name()
                .is_some_and(|f| f.as_encoded_bytes().starts_with(b"."))
            {
                continue;
            }
            wire_decode(&std::fs::read(&file).expect("readable input"));
            n += 1;
        }
        n
    }

    fn framed(w: wire::MessageWriter) -> Vec<u8> {
        w.finish()
            .expect("small")
            .iter()
            .flat_map(|c| c.iter().copied())
            .collect()
    }

    /// Regenerates the seed corpus from the writers:
    /// `cargo test -p strata-proto write_wire_decode_seeds -- --ignored`.
    #[test]
    #[ignore = "writes fuzz/corpus/wire_decode"]
    fn write_wire_decode_seeds() {
        let ids = || Bytes::from((1u64..=3).flat_map(u64::to_le_bytes).collect::<Vec<_>>());
        let grads = || {
            Bytes::from(
                (0..6)
                    .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
                    .collect::<Vec<_>>(),
            )
        };
        let push = || wire::push_request("emb", ids(), grads(), 7);
        let mut two = framed(wire::pull_request("t", ids(), 1));
        two.extend(framed(wire::push_response(3)));
        let mut extra = encoded(wire::pull_request("emb", ids(), 2));
        // An unknown bytes field 9 and a group 10 { field 1 = 5 }: skipped.
        extra.extend_from_slice(&[0x4a, 2, 0xde, 0xad, 0x53, 0x08, 5, 0x54]);
        let seeds: Vec<(&str, u8, Vec<u8>)> = vec![
            ("push-request", 0, encoded(push())),
            ("push-request-frames", 0x21, encoded(push())),
            (
                "pull-request",
                0,
                encoded(wire::pull_request("emb", ids(), 42)),
            ),
            (
                "pull-response",
                0x13,
                encoded(wire::pull_response(grads(), 2)),
            ),
            ("push-response", 0, encoded(wire::push_response(3))),
            ("framed-push", 0x32, framed(push())),
            ("framed-two", 0x45, two),
            ("unknown-fields", 0x07, extra),
        ];
        let out = dir("corpus");
        std::fs::create_dir_all(&out).expect("corpus directory");
        for (name, cut, bytes) in seeds {
            let mut input = vec![cut];
            input.extend(bytes);
            std::fs::write(out.join(name), input).expect("write seed");
        }
    }

    #[test]
    fn wire_decode_corpus_and_regressions_replay() {
        assert!(replay("corpus") > 0, "empty seed corpus");
        replay("regressions");
    }

    #[test]
    fn wire_decode_survives_short_and_cut_inputs() {
        let msg = encoded(wire::push_request(
            "emb",
            Bytes::from(vec![1u8; 16]),
            Bytes::from(vec![2u8; 32]),
            7,
        ));
        for cut in [0u8, 1, 0x21, 0xff] {
            let mut input = vec![cut];
            input.extend_from_slice(&msg);
            for end in 0..=input.len() {
                wire_decode(&input[..end]);
            }
        }
    }
}

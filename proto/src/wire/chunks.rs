//! A received message as the frames it arrived in: ranges of it are read or copied out
//! without gathering the frames into one buffer first.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

/// Bytes spread over several shared buffers (received HTTP/2 frames), in order.
#[derive(Debug, Clone, Default)]
pub struct Chunks {
    parts: VecDeque<Bytes>,
    len: usize,
}

impl Chunks {
    /// No bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a buffer (not copied).
    pub fn push(&mut self, part: Bytes) {
        if !part.is_empty() {
            self.len += part.len();
            self.parts.push_back(part);
        }
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many buffers the bytes are spread over.
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// The `i`-th buffer.
    pub(super) fn part(&self, i: usize) -> Option<&Bytes> {
        self.parts.get(i)
    }

    /// Removes the first `n` bytes (`n <= len`) and returns them (no copy).
    pub fn split_to(&mut self, n: usize) -> Chunks {
        let n = n.min(self.len);
        let mut head = Chunks::new();
        let mut left = n;
        while left > 0 {
            let first = &mut self.parts[0];
            if first.len() <= left {
                left -= first.len();
                if let Some(part) = self.parts.pop_front() {
                    head.push(part);
                }
            } else {
                head.push(first.split_to(left));
                left = 0;
            }
        }
        self.len -= n;
        head
    }

    /// `range` as one slice when it lies inside one buffer (always for an empty range).
    pub fn contiguous(&self, range: Range<usize>) -> Option<&[u8]> {
        if range.is_empty() {
            return Some(&[]);
        }
        let (part, offset) = self.locate(range.start)?;
        let buf = &self.parts[part];
        (offset + range.len() <= buf.len()).then(|| &buf[offset..offset + range.len()])
    }

    /// Copies `out.len()` bytes starting at `start` into `out`; false if they are not all there.
    pub fn copy_to(&self, start: usize, out: &mut [u8]) -> bool {
        if start
            .checked_add(out.len())
            .is_none_or(|end| end > self.len)
        {
            return false;
        }
        if out.is_empty() {
            return true;
        }
        let Some((mut part, mut offset)) = self.locate(start) else {
            return false;
        };
        let mut written = 0;
        while written < out.len() {
            let buf = &self.parts[part];
            let n = (buf.len() - offset).min(out.len() - written);
            out[written..written + n].copy_from_slice(&buf[offset..offset + n]);
            written += n;
            part += 1;
            offset = 0;
        }
        true
    }

    /// `range` as one `Bytes`: shared when it lies inside one buffer, else copied.
    pub fn bytes(&self, range: Range<usize>) -> Option<Bytes> {
        if range.end > self.len || range.start > range.end {
            return None;
        }
        if range.is_empty() {
            return Some(Bytes::new());
        }
        let (part, offset) = self.locate(range.start)?;
        let buf = &self.parts[part];
        if offset + range.len() <= buf.len() {
            return Some(buf.slice(offset..offset + range.len()));
        }
        let mut out = BytesMut::zeroed(range.len());
        self.copy_to(range.start, &mut out).then(|| out.freeze())
    }

    /// The buffer holding `pos` and the offset of `pos` in it.
    fn locate(&self, pos: usize) -> Option<(usize, usize)> {
        let mut base = 0;
        for (i, part) in self.parts.iter().enumerate() {
            if pos < base + part.len() {
                return Some((i, pos - base));
            }
            base += part.len();
        }
        None
    }
}

/// Reading from the front, for prost: `bytes` fields that lie inside one buffer are
/// shared (`copy_to_bytes` slices), not copied.
impl Buf for Chunks {
    fn remaining(&self) -> usize {
        self.len
    }

    fn chunk(&self) -> &[u8] {
        self.parts.front().map_or(&[], |p| &p[..])
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.len, "advance past the end of the chunks");
        self.len -= cnt;
        while cnt > 0 {
            let Some(first) = self.parts.front_mut() else {
                return;
            };
            if first.len() > cnt {
                first.advance(cnt);
                return;
            }
            cnt -= first.len();
            self.parts.pop_front();
        }
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        assert!(len <= self.len, "copy_to_bytes past the end of the chunks");
        match self.parts.front_mut() {
            Some(first) if first.len() >= len => {
                let out = first.split_to(len);
                if first.is_empty() {
                    self.parts.pop_front();
                }
                self.len -= len;
                out
            }
            _ => {
                let mut out = BytesMut::zeroed(len);
                self.copy_to(0, &mut out);
                self.advance(len);
                out.freeze()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Chunks {
        let mut c = Chunks::new();
        c.push(Bytes::from_static(b"abc"));
        c.push(Bytes::new());
        c.push(Bytes::from_static(b"defg"));
        c.push(Bytes::from_static(b"h"));
        c
    }

    #[test]
    fn reads_across_buffers() {
        let c = three();
        assert_eq!((c.len(), c.parts()), (8, 3));
        assert_eq!(c.contiguous(3..4), Some(&b"d"[..]));
        assert_eq!(c.bytes(8..9), None);
        assert_eq!(c.contiguous(3..7), Some(&b"defg"[..]));
        assert_eq!(c.contiguous(2..4), None);
        let mut out = [0u8; 6];
        assert!(c.copy_to(1, &mut out));
        assert_eq!(&out, b"bcdefg");
        assert!(!c.copy_to(4, &mut out));
        assert_eq!(c.bytes(1..8).as_deref(), Some(&b"bcdefgh"[..]));
        assert_eq!(c.bytes(4..6).as_deref(), Some(&b"ef"[..]));
        assert_eq!(c.bytes(4..9), None);
    }

    #[test]
    fn prost_shares_fields_inside_one_buffer() {
        use prost::Message;
        let payload = Bytes::from(vec![7u8; 1000]);
        let msg = crate::v1::PullResponse {
            values: payload,
            dim: 3,
        };
        let encoded = Bytes::from(msg.encode_to_vec());
        let mut one = Chunks::new();
        one.push(encoded.clone());
        let decoded = crate::v1::PullResponse::decode(one).expect("decode");
        assert_eq!(decoded, msg);
        // The field points into the received buffer.
        let start = encoded.as_ptr() as usize;
        let field = decoded.values.as_ptr() as usize;
        assert!(field > start && field < start + encoded.len());
        // Split anywhere, the message still decodes (copying what straddles buffers).
        for at in [1, 2, 3, 500, encoded.len() - 1] {
            let mut c = Chunks::new();
            c.push(encoded.slice(..at));
            c.push(encoded.slice(at..));
            assert_eq!(crate::v1::PullResponse::decode(c).expect("decode"), msg);
        }
    }

    #[test]
    fn split_to_keeps_the_rest() {
        let mut c = three();
        let head = c.split_to(4);
        assert_eq!(head.bytes(0..4).as_deref(), Some(&b"abcd"[..]));
        assert_eq!(c.len(), 4);
        assert_eq!(c.bytes(0..4).as_deref(), Some(&b"efgh"[..]));
    }
}

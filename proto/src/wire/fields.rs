//! Protobuf fields of a message held in [`Chunks`]: keys and varints are decoded in
//! place, length-delimited values are returned as ranges (read or copied by the caller).

use std::ops::Range;

use super::{Chunks, WireError};

/// Nested groups skipped at most (prost's recursion limit).
const MAX_GROUP_DEPTH: u32 = 100;

/// The value of one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: where the bytes are in the message.
    Len(Range<usize>),
    /// Wire type 5.
    Fixed32(u32),
    /// Wire types 3..4: a (deprecated) group, skipped.
    Group,
}

/// One field: its number and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Field number (≥ 1).
    pub number: u32,
    /// Its value.
    pub value: FieldValue,
}

/// Reads the fields of one message in order, walking its buffers once (a message spread
/// over many frames costs no more than one in a single frame).
pub struct FieldReader<'a> {
    message: &'a Chunks,
    pos: usize,
    /// The buffer holding `pos` and where it starts in the message.
    part: usize,
    part_start: usize,
}

impl<'a> FieldReader<'a> {
    /// A reader at the start of `message`.
    pub fn new(message: &'a Chunks) -> Self {
        Self {
            message,
            pos: 0,
            part: 0,
            part_start: 0,
        }
    }

    /// The next field, or `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<Field>, WireError> {
        if self.pos >= self.message.len() {
            return Ok(None);
        }
        let at = self.pos;
        let (number, wire_type, key) = self.key()?;
        let value = match wire_type {
            3 => {
                self.skip_group(number, 1)?;
                FieldValue::Group
            }
            4 => return Err(WireError::BadKey { key, at }),
            _ => self.value(wire_type, key, at)?,
        };
        Ok(Some(Field { number, value }))
    }

    /// A field key: number, wire type, and the raw key.
    fn key(&mut self) -> Result<(u32, u64, u64), WireError> {
        let at = self.pos;
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(WireError::BadKey { key, at });
        }
        Ok((number as u32, key & 7, key))
    }

    /// A value of wire type 0, 1, 2 or 5.
    fn value(&mut self, wire_type: u64, key: u64, at: usize) -> Result<FieldValue, WireError> {
        Ok(match wire_type {
            0 => FieldValue::Varint(self.varint()?),
            1 => FieldValue::Fixed64(u64::from_le_bytes(self.fixed::<8>()?)),
            2 => {
                let len = self.varint()?;
                let start = self.pos;
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|len| start.checked_add(len))
                    .filter(|&end| end <= self.message.len())
                    .ok_or(WireError::Truncated(start))?;
                self.pos = end;
                FieldValue::Len(start..end)
            }
            5 => FieldValue::Fixed32(u32::from_le_bytes(self.fixed::<4>()?)),
            _ => return Err(WireError::BadKey { key, at }),
        })
    }

    /// Skips a group's fields up to its end key (`number`, wire type 4).
    fn skip_group(&mut self, number: u32, depth: u32) -> Result<(), WireError> {
        if depth > MAX_GROUP_DEPTH {
            return Err(WireError::TooDeep);
        }
        loop {
            if self.pos >= self.message.len() {
                return Err(WireError::Truncated(self.pos));
            }
            let at = self.pos;
            let (inner, wire_type, key) = self.key()?;
            match wire_type {
                3 => self.skip_group(inner, depth + 1)?,
                4 if inner == number => return Ok(()),
                4 => return Err(WireError::BadKey { key, at }),
                _ => {
                    self.value(wire_type, key, at)?;
                }
            }
        }
    }

    /// The byte at `pos`, moving the buffer cursor forward as needed.
    fn next_byte(&mut self) -> Option<u8> {
        loop {
            let part = self.message.part(self.part)?;
            debug_assert!(self.pos >= self.part_start, "the reader only moves forward");
            if self.pos < self.part_start + part.len() {
                let byte = part[self.pos - self.part_start];
                self.pos += 1;
                return Some(byte);
            }
            self.part_start += part.len();
            self.part += 1;
        }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self.next_byte().ok_or(WireError::Truncated(start))?;
            // The tenth byte holds only the top bit of a u64.
            if i == 9 && byte > 1 {
                return Err(WireError::BadVarint(start));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(WireError::BadVarint(start))
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let start = self.pos;
        let mut out = [0u8; N];
        for b in out.iter_mut() {
            *b = self.next_byte().ok_or(WireError::Truncated(start))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn split_everywhere(encoded: &[u8]) -> Chunks {
        let mut c = Chunks::new();
        for b in encoded {
            c.push(Bytes::copy_from_slice(&[*b]));
        }
        c
    }

    #[test]
    fn reads_every_wire_type_across_one_byte_buffers() {
        // field 1 varint 300, field 2 fixed64 7, field 3 bytes "hi", field 4 fixed32 9
        let encoded = [
            0x08, 0xac, 0x02, 0x11, 7, 0, 0, 0, 0, 0, 0, 0, 0x1a, 2, b'h', b'i', 0x25, 9, 0, 0, 0,
        ];
        let c = split_everywhere(&encoded);
        let mut r = FieldReader::new(&c);
        let mut fields = Vec::new();
        while let Some(f) = r.next_field().expect("valid") {
            fields.push((f.number, f.value));
        }
        assert_eq!(
            fields,
            vec![
                (1, FieldValue::Varint(300)),
                (2, FieldValue::Fixed64(7)),
                (3, FieldValue::Len(14..16)),
                (4, FieldValue::Fixed32(9)),
            ]
        );
    }

    #[test]
    fn skips_groups_like_prost() {
        // field 1 = group { field 2 varint 5, field 3 = group {} }, then field 4 varint 7.
        let encoded = [0x0b, 0x10, 5, 0x1b, 0x1c, 0x0c, 0x20, 7];
        let c = split_everywhere(&encoded);
        let mut r = FieldReader::new(&c);
        assert_eq!(
            r.next_field().expect("valid").map(|f| f.value),
            Some(FieldValue::Group)
        );
        let f = r.next_field().expect("valid").expect("field 4");
        assert_eq!((f.number, f.value), (4, FieldValue::Varint(7)));
        assert_eq!(r.next_field(), Ok(None));
        // Nested too deep.
        let mut deep = vec![0x0b; 101];
        deep.extend(vec![0x0c; 101]);
        let c = split_everywhere(&deep);
        assert_eq!(FieldReader::new(&c).next_field(), Err(WireError::TooDeep));
    }

    #[test]
    fn refuses_malformed_messages() {
        let bad = |encoded: &[u8]| {
            let c = split_everywhere(encoded);
            let mut r = FieldReader::new(&c);
            loop {
                match r.next_field() {
                    Ok(Some(_)) => continue,
                    Ok(None) => return None,
                    Err(e) => return Some(e),
                }
            }
        };
        assert_eq!(bad(&[0x1a, 5, 1, 2]), Some(WireError::Truncated(2)));
        assert_eq!(bad(&[0x08, 0x80]), Some(WireError::Truncated(1)));
        assert_eq!(
            bad(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1]),
            Some(WireError::BadVarint(1))
        );
        assert_eq!(bad(&[0x00]), Some(WireError::BadKey { key: 0, at: 0 }));
        // An end-group key without its start.
        assert_eq!(bad(&[0x0c]), Some(WireError::BadKey { key: 12, at: 0 }));
        // A group that never ends, and one ended by another field's end key.
        assert_eq!(bad(&[0x0b, 0x08, 1]), Some(WireError::Truncated(3)));
        assert_eq!(
            bad(&[0x0b, 0x14]),
            Some(WireError::BadKey { key: 20, at: 1 })
        );
        // A tenth varint byte above 1 overflows a u64.
        assert_eq!(
            bad(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            Some(WireError::BadVarint(1))
        );
        assert_eq!(bad(&[0x11, 1, 2]), Some(WireError::Truncated(1)));
        assert_eq!(bad(&[]), None);
    }
}

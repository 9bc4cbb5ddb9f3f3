//! Protobuf fields of a message held in [`Chunks`]: keys and varints are decoded in
//! place, length-delimited values are returned as ranges (read or copied by the caller).

use std::ops::Range;

use super::{Chunks, WireError};

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
}

/// One field: its number and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Field number (≥ 1).
    pub number: u32,
    /// Its value.
    pub value: FieldValue,
}

/// Reads the fields of one message in order.
pub struct FieldReader<'a> {
    message: &'a Chunks,
    pos: usize,
}

impl<'a> FieldReader<'a> {
    /// A reader at the start of `message`.
    pub fn new(message: &'a Chunks) -> Self {
        Self { message, pos: 0 }
    }

    /// The next field, or `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<Field>, WireError> {
        if self.pos >= self.message.len() {
            return Ok(None);
        }
        let at = self.pos;
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(WireError::BadKey { key, at });
        }
        let value = match key & 7 {
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
        };
        Ok(Some(Field {
            number: number as u32,
            value,
        }))
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self
                .message
                .byte(self.pos)
                .ok_or(WireError::Truncated(start))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(WireError::BadVarint(start))
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        if !self.message.copy_to(self.pos, &mut out) {
            return Err(WireError::Truncated(self.pos));
        }
        self.pos += N;
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
        assert_eq!(bad(&[0x0b]), Some(WireError::BadKey { key: 11, at: 0 }));
        assert_eq!(bad(&[0x11, 1, 2]), Some(WireError::Truncated(1)));
        assert_eq!(bad(&[]), None);
    }
}

//! Packed little-endian payloads (`ids`, `values`, `grads`) ↔ typed slices, for both ends:
//! servers decode requests without a per-element loop (borrowing aligned frames), clients
//! move their vectors into `Bytes` without a copy.

use std::borrow::Cow;

use std::ops::Range;

use bytes::Bytes;

use super::Chunks;
use thiserror::Error;

/// Decodes `n × u64 LE`; borrows when the buffer is aligned, copies otherwise.
pub fn ids_from_bytes(bytes: &[u8]) -> Result<Cow<'_, [u64]>, PayloadError> {
    check_length("ids", bytes.len(), 8)?;
    Ok(match bytemuck::try_cast_slice::<u8, u64>(bytes) {
        Ok(ids) => Cow::Borrowed(ids),
        // Unaligned (the usual case inside a received frame): one copy, no zeroing first.
        Err(_) => Cow::Owned(copy_unaligned(bytes)),
    })
}

/// Decodes `n × f32 LE` whose length must be a multiple of `unit` bytes.
pub fn f32s_from_bytes<'a>(
    field: &'static str,
    bytes: &'a [u8],
    unit: usize,
) -> Result<Cow<'a, [f32]>, PayloadError> {
    check_length(field, bytes.len(), unit)?;
    check_length(field, bytes.len(), 4)?;
    Ok(match bytemuck::try_cast_slice::<u8, f32>(bytes) {
        Ok(v) => Cow::Borrowed(v),
        Err(_) => Cow::Owned(copy_unaligned(bytes)),
    })
}

/// [`ids_from_bytes`] of `range` of a received message: borrowed when the ids lie aligned
/// in one frame, else copied once.
pub fn ids_from_chunks(
    chunks: &Chunks,
    range: Range<usize>,
) -> Result<Cow<'_, [u64]>, PayloadError> {
    if let Some(bytes) = chunks.contiguous(range.clone()) {
        return ids_from_bytes(bytes);
    }
    check_length("ids", range.len(), 8)?;
    let mut ids = vec![0u64; range.len() / 8];
    copy_range(chunks, range, bytemuck::cast_slice_mut(&mut ids))?;
    Ok(Cow::Owned(ids))
}

/// [`f32s_from_bytes`] of `range` of a received message: borrowed when the values lie
/// aligned in one frame, else copied once.
pub fn f32s_from_chunks<'a>(
    field: &'static str,
    chunks: &'a Chunks,
    range: Range<usize>,
    unit: usize,
) -> Result<Cow<'a, [f32]>, PayloadError> {
    if let Some(bytes) = chunks.contiguous(range.clone()) {
        return f32s_from_bytes(field, bytes, unit);
    }
    check_length(field, range.len(), unit)?;
    check_length(field, range.len(), 4)?;
    let mut values = vec![0f32; range.len() / 4];
    copy_range(chunks, range, bytemuck::cast_slice_mut(&mut values))?;
    Ok(Cow::Owned(values))
}

/// Copies packed little-endian `T`s (whole elements: the caller checked the length) into a
/// new vector with one `memcpy` and no zeroing first; a per-element decode loop cost 6% of
/// the server's CPU under W1.
fn copy_unaligned<T: bytemuck::Pod>(bytes: &[u8]) -> Vec<T> {
    const {
        assert!(
            cfg!(target_endian = "little"),
            "packed payloads are little-endian"
        )
    };
    let n = bytes.len() / size_of::<T>();
    let mut out = Vec::<T>::with_capacity(n);
    // SAFETY: `out` has room for `n` elements, i.e. at least `n · size_of::<T>()` bytes, and
    // does not overlap `bytes`; every bit pattern is a valid `T` (`Pod`) and the host is
    // little-endian, so the copied bytes are the decoded values of the first `n` elements.
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            out.as_mut_ptr().cast::<u8>(),
            n * size_of::<T>(),
        );
        out.set_len(n);
    }
    out
}

/// A packed payload whose byte length is not a multiple of its element size.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{field} has {len} bytes, not a multiple of {unit}")]
pub struct PayloadError {
    /// The field ("ids", "grads").
    pub field: &'static str,
    /// Its byte length.
    pub len: usize,
    /// Bytes per element (8 for ids, 4·dim for rows).
    pub unit: usize,
}

/// The payload-length error unless `len` is a positive-unit multiple.
fn check_length(field: &'static str, len: usize, unit: usize) -> Result<(), PayloadError> {
    if unit != 0 && len.is_multiple_of(unit) {
        Ok(())
    } else {
        Err(PayloadError { field, len, unit })
    }
}

/// Copies `range` of `chunks` into `out` (the range was taken from the same message).
fn copy_range(chunks: &Chunks, range: Range<usize>, out: &mut [u8]) -> Result<(), PayloadError> {
    if chunks.copy_to(range.start, out) {
        Ok(())
    } else {
        Err(PayloadError {
            field: "message",
            len: chunks.len(),
            unit: 1,
        })
    }
}

/// An owned f32 buffer exposed as little-endian bytes without a copy.
struct F32Bytes(Vec<f32>);

impl AsRef<[u8]> for F32Bytes {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// Moves an f32 vector into `Bytes` (little-endian host: no copy).
pub fn f32s_into_bytes(values: Vec<f32>) -> Bytes {
    Bytes::from_owner(F32Bytes(values))
}

/// An owned id buffer exposed as little-endian bytes without a copy.
struct U64Bytes(Vec<u64>);

impl AsRef<[u8]> for U64Bytes {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// Moves ids into `Bytes` (little-endian host: no copy).
pub fn ids_into_bytes(ids: Vec<u64>) -> Bytes {
    Bytes::from_owner(U64Bytes(ids))
}

/// Copies packed f32 LE bytes into `out`, which holds exactly as many values (one
/// `memcpy` whatever the alignment of `bytes`).
pub fn copy_f32s(bytes: &[u8], out: &mut [f32]) {
    bytemuck::cast_slice_mut::<f32, u8>(out).copy_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unaligned_ids_are_copied_correctly() {
        let mut raw = [0u8; 17];
        raw[1..9].copy_from_slice(&7u64.to_le_bytes());
        raw[9..17].copy_from_slice(&u64::MAX.to_le_bytes());
        let ids = ids_from_bytes(&raw[1..]).expect("decode");
        assert_eq!(&*ids, &[7, u64::MAX]);
        assert!(ids_from_bytes(&raw[..7]).is_err());
    }

    #[test]
    fn unaligned_f32s_are_copied_correctly() {
        let values = [1.5f32, -2.25, f32::MIN_POSITIVE, 3.0e38];
        // A 4-aligned buffer, read from its second byte: misaligned for f32 wherever it lies.
        let mut backing = [0u32; 5];
        let raw: &mut [u8] = bytemuck::cast_slice_mut(&mut backing);
        for (i, v) in values.iter().enumerate() {
            raw[1 + 4 * i..5 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        let decoded = f32s_from_bytes("grads", &raw[1..17], 8).expect("decode");
        assert!(
            matches!(decoded, Cow::Owned(_)),
            "an unaligned buffer is copied"
        );
        assert_eq!(&*decoded, &values);
        assert!(f32s_from_bytes("grads", &raw[1..13], 8).is_err());
    }

    #[test]
    fn f32_round_trip() {
        let b = f32s_into_bytes(vec![1.5, -2.0]);
        assert_eq!(
            &*f32s_from_bytes("grads", &b, 8).expect("decode"),
            &[1.5, -2.0]
        );
        assert!(f32s_from_bytes("grads", &b, 12).is_err());
        assert_eq!(
            &*ids_from_bytes(&ids_into_bytes(vec![7, u64::MAX])).expect("decode"),
            &[7, u64::MAX]
        );
    }
}

//! Packed little-endian payloads (`ids`, `values`, `grads`) ↔ typed slices.

use std::borrow::Cow;

use bytes::Bytes;

use super::EngineError;

/// Decodes `n × u64 LE`; borrows when the buffer is aligned, copies otherwise.
pub fn ids_from_bytes(bytes: &[u8]) -> Result<Cow<'_, [u64]>, EngineError> {
    if !bytes.len().is_multiple_of(8) {
        return Err(EngineError::PayloadLength {
            field: "ids",
            len: bytes.len(),
            unit: 8,
        });
    }
    Ok(match bytemuck::try_cast_slice::<u8, u64>(bytes) {
        Ok(ids) => Cow::Borrowed(ids),
        Err(_) => {
            // Unaligned (the usual case inside a decoded message): one memcpy.
            let mut ids = vec![0u64; bytes.len() / 8];
            bytemuck::cast_slice_mut::<u64, u8>(&mut ids).copy_from_slice(bytes);
            Cow::Owned(ids)
        }
    })
}

/// Decodes `n × f32 LE` whose length must be a multiple of `unit` bytes.
pub fn f32s_from_bytes<'a>(
    field: &'static str,
    bytes: &'a [u8],
    unit: usize,
) -> Result<Cow<'a, [f32]>, EngineError> {
    if unit == 0 || !bytes.len().is_multiple_of(unit) || !bytes.len().is_multiple_of(4) {
        return Err(EngineError::PayloadLength {
            field,
            len: bytes.len(),
            unit,
        });
    }
    Ok(match bytemuck::try_cast_slice::<u8, f32>(bytes) {
        Ok(v) => Cow::Borrowed(v),
        Err(_) => {
            let mut values = vec![0f32; bytes.len() / 4];
            bytemuck::cast_slice_mut::<f32, u8>(&mut values).copy_from_slice(bytes);
            Cow::Owned(values)
        }
    })
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

/// Checks that every value is finite; names the first that is not.
pub fn check_finite(values: &[f32]) -> Result<(), EngineError> {
    if values.iter().all(|v| v.is_finite()) {
        return Ok(());
    }
    let (index, &value) = values
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite())
        .unwrap_or((0, &f32::NAN));
    Err(EngineError::NonFinite { index, value })
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
    fn f32_round_trip_and_finite_check() {
        let b = f32s_into_bytes(vec![1.5, -2.0]);
        assert_eq!(
            &*f32s_from_bytes("grads", &b, 8).expect("decode"),
            &[1.5, -2.0]
        );
        assert!(f32s_from_bytes("grads", &b, 12).is_err());
        assert_eq!(
            check_finite(&[0.0, f32::INFINITY]),
            Err(EngineError::NonFinite {
                index: 1,
                value: f32::INFINITY
            })
        );
    }
}

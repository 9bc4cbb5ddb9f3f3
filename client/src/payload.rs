//! Packed little-endian payloads without per-row copies where the layout allows.

use bytes::Bytes;

struct U64Bytes(Vec<u64>);

impl AsRef<[u8]> for U64Bytes {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

struct F32Bytes(Vec<f32>);

impl AsRef<[u8]> for F32Bytes {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// Moves ids into `Bytes` (little-endian host: no copy).
pub fn ids_to_bytes(ids: Vec<u64>) -> Bytes {
    Bytes::from_owner(U64Bytes(ids))
}

/// Moves f32 values into `Bytes` (little-endian host: no copy).
pub fn f32s_to_bytes(values: Vec<f32>) -> Bytes {
    Bytes::from_owner(F32Bytes(values))
}

/// Copies packed f32 LE bytes into `out` (which must hold exactly as many values).
pub fn copy_f32s(bytes: &[u8], out: &mut [f32]) {
    match bytemuck::try_cast_slice::<u8, f32>(bytes) {
        Ok(v) => out.copy_from_slice(v),
        Err(_) => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
    }
}

#[cfg(target_endian = "big")]
compile_error!("strata's packed payloads assume a little-endian host");

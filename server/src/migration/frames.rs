//! Rows of a move on the wire: [`RowBlock`]s ↔ `ImportChunk` messages, without copies.

use bytes::Bytes;
use strata_proto::v1 as pb;

use super::MigrationError;
use crate::checkpoint::RowBlock;
use crate::engine::payload::{f32s_into_bytes, ids_from_bytes};

/// An owned id vector exposed as little-endian bytes.
struct U64Bytes(Vec<u64>);

impl AsRef<[u8]> for U64Bytes {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// Moves a block of rows of `table` into a chunk (ids and rows are not copied).
pub fn chunk_of(table: &str, row_floats: usize, block: RowBlock) -> pb::ImportChunk {
    pb::ImportChunk {
        table: table.to_string(),
        row_floats: row_floats as u32,
        ids: Bytes::from_owner(U64Bytes(block.ids)),
        rows: f32s_into_bytes(block.rows),
        ..Default::default()
    }
}

/// Payload bytes of a chunk.
pub fn chunk_bytes(chunk: &pb::ImportChunk) -> u64 {
    (chunk.ids.len() + chunk.rows.len() + chunk.dense_data.len()) as u64
}

/// The ids of a chunk and its rows as packed bytes (not copied), checked against the
/// receiving table's row width.
pub fn packed_of(
    chunk: &pb::ImportChunk,
    row_floats: usize,
) -> Result<(Vec<u64>, bytes::Bytes), MigrationError> {
    if chunk.row_floats as usize != row_floats {
        return Err(MigrationError::BadStream(format!(
            "table {:?} rows are {} words here but {} at the source",
            chunk.table, row_floats, chunk.row_floats
        )));
    }
    let ids = ids_from_bytes(&chunk.ids)?.into_owned();
    if chunk.rows.len() != ids.len() * row_floats * 4 {
        return Err(MigrationError::BadStream(format!(
            "{} ids but {} row bytes (rows of {row_floats} words)",
            ids.len(),
            chunk.rows.len()
        )));
    }
    Ok((ids, chunk.rows.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_and_wrong_widths_are_refused() {
        let block = RowBlock {
            ids: vec![3, 9],
            rows: vec![1.0, 2.0, 3.0, 4.0],
        };
        let chunk = chunk_of("t", 2, block.clone());
        assert_eq!(chunk_bytes(&chunk), 16 + 16);
        let (ids, rows) = packed_of(&chunk, 2).expect("packed");
        assert_eq!(ids, block.ids);
        assert_eq!(&rows[..], bytemuck::cast_slice::<f32, u8>(&block.rows));
        assert!(packed_of(&chunk, 4).is_err());
    }
}

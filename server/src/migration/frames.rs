//! Rows of a move on the wire: [`RowBlock`]s ↔ `ImportChunk` messages, without copies.

use bytes::Bytes;
use strata_proto::v1 as pb;
use strata_proto::wire::MessageWriter;

use super::MigrationError;
use strata_engine::checkpoint::RowBlock;
use strata_proto::wire::payload::{f32s_into_bytes, ids_from_bytes};

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

/// A chunk as the chunks of a gRPC message: the same bytes as prost's encoding, with ids,
/// rows and dense data passed on as they are.
pub fn encode(chunk: pb::ImportChunk) -> Result<Vec<Bytes>, MigrationError> {
    let mut w = MessageWriter::new();
    w.string(1, &chunk.migration_id)
        .uint(2, chunk.slot_start.into())
        .uint(3, chunk.slot_end.into())
        .string(4, &chunk.table)
        .uint(5, chunk.row_floats.into())
        .bytes(6, chunk.ids)
        .bytes(7, chunk.rows)
        .string(8, &chunk.dense)
        .bytes(9, chunk.dense_data)
        .uint(10, chunk.done.into());
    w.finish()
        .map_err(|e| MigrationError::BadStream(e.to_string()))
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

    #[test]
    fn encoding_equals_prost() {
        use prost::Message;
        let mut chunk = chunk_of(
            "emb",
            2,
            RowBlock {
                ids: (0..100).collect(),
                rows: (0..200).map(|i| i as f32).collect(),
            },
        );
        chunk.migration_id = "m-1".into();
        chunk.slot_start = 7;
        chunk.slot_end = 300;
        chunk.dense = "d".into();
        chunk.dense_data = Bytes::from_static(&[1, 2, 3, 4]);
        chunk.done = true;
        let encoded = chunk.encode_to_vec();
        let mut expected = vec![0u8];
        expected.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
        expected.extend(encoded);
        let chunks = encode(chunk).expect("small");
        let got: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(got, expected);
    }
}

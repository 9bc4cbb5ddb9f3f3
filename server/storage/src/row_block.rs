//! Rows copied out of a tier: what snapshots and migrations carry.

/// Rows copied out of one storage stripe: `rows` holds `ids.len() * row_floats` f32 words.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RowBlock {
    /// Row ids, in arena order.
    pub ids: Vec<u64>,
    /// Row payloads (values, optimizer state, metadata words), `row_floats` each.
    pub rows: Vec<f32>,
}

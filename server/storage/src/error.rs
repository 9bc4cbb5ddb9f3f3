//! Errors of the storage layer.

use thiserror::Error;

/// Why a tier refused a request. A refused request changed nothing.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum StorageError {
    /// Creating `new_rows` rows would exceed the node's memory budget.
    #[error("memory budget exhausted: {new_rows} new rows need {needed} bytes, {used} of {limit} bytes in use")]
    MemoryBudget {
        /// Rows the request would create.
        new_rows: u64,
        /// Bytes those rows need.
        needed: u64,
        /// Bytes in use now.
        used: u64,
        /// The budget.
        limit: u64,
    },
    /// A restored block does not match the table's row layout.
    #[error("restored block has {got} floats for {rows} rows; expected {row_floats} per row")]
    BadBlock {
        /// Rows in the block.
        rows: usize,
        /// Floats in the block.
        got: usize,
        /// Floats per row of the table.
        row_floats: usize,
    },
    /// The device table of the GPU tier failed; no acknowledged update was lost.
    #[error("GPU tier: {0}")]
    Device(String),
}

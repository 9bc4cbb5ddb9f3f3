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
    /// A push whose step would leave a weight or optimizer state NaN or infinite; the rows
    /// it had stepped were put back (but for `not_undone`: rows a concurrent push has
    /// stepped since, which keep both steps).
    #[error(
        "push refused: the optimizer step of {count} row(s) would leave a weight or optimizer \
         state non-finite (ids {ids:?}); nothing was applied{}",
        undone_note(*not_undone_count, not_undone)
    )]
    NonFiniteResult {
        /// The first offending ids.
        ids: Vec<u64>,
        /// Offending rows in all.
        count: u64,
        /// The first rows left stepped because a concurrent push stepped them since.
        not_undone: Vec<u64>,
        /// Such rows in all.
        not_undone_count: u64,
    },
    /// The device table of the GPU tier failed; no acknowledged update was lost.
    #[error("GPU tier: {0}")]
    Device(String),
}

/// The refusal's note on rows that could not be put back.
fn undone_note(count: u64, ids: &[u64]) -> String {
    if count == 0 {
        return String::new();
    }
    format!(" but to {count} row(s) a concurrent push had stepped since (ids {ids:?})")
}

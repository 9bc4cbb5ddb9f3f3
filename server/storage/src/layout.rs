//! The layout of one row in a tier: values, optimizer state and metadata side by side.

/// Metadata words at the end of each row: step count, last update (s), access count, spare.
pub const META_WORDS: usize = 4;

/// Index of the optimizer step count among the metadata words.
pub const META_STEP: usize = 0;
/// Index of the last-update time (seconds since the Unix epoch, u32).
pub const META_LAST_UPDATE: usize = 1;
/// Index of the access count (saturating; counted by pushes, so pulls stay read-only).
pub const META_ACCESS: usize = 2;

/// Where a row's parts sit in its slot of f32 words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowLayout {
    /// Row width.
    pub dim: usize,
    /// Optimizer state words (`state_slots * dim`).
    pub state: usize,
}

impl RowLayout {
    /// f32 words per row: values, state, metadata.
    pub fn row_floats(&self) -> usize {
        self.dim + self.state + META_WORDS
    }

    /// Bytes a row costs against the budget: its slot, its id, its change stamp (the epoch
    /// incremental checkpoints read) and its index entry.
    pub fn accounted_bytes(&self) -> u64 {
        (self.row_floats() * 4 + 8 + CHANGE_STAMP_BYTES + INDEX_BYTES_PER_ROW) as u64
    }

    /// Raw size of a row as the issue counts it: 8 B id + 4·dim·(1 + state slots).
    pub fn raw_bytes(&self) -> u64 {
        (8 + 4 * (self.dim + self.state)) as u64
    }
}

/// Bytes of a row's change stamp (kept beside its id).
pub const CHANGE_STAMP_BYTES: usize = 4;

/// Bytes of the index per row: a 16-byte entry at the index's mean load (3/8 to 3/4).
pub const INDEX_BYTES_PER_ROW: usize = 28;

//! Table and dense-tensor specifications: the domain types behind `CreateTable`/`CreateDense`.

use serde::{Deserialize, Serialize};

use crate::optimizer::OptimizerConfig;

/// Largest row width a table may have.
pub const MAX_DIM: u32 = 4096;

/// How a new row (or dense tensor) is initialized, deterministically from (seed, id).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InitializerConfig {
    /// All zeros.
    Zeros,
    /// Uniform in `[-scale, scale)`.
    Uniform {
        /// Half-width of the interval.
        scale: f32,
    },
    /// Normal with mean 0 and standard deviation `std`.
    Normal {
        /// Standard deviation.
        std: f32,
    },
}

/// Which memory tier holds a table's hot rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TierKind {
    /// Host memory only (authoritative).
    #[default]
    Host,
    /// GPU memory for hot rows in front of host memory.
    Gpu,
}

/// A sparse embedding table: u64 id → row of `dim` f32 plus optimizer state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSpec {
    /// Unique table name.
    pub name: String,
    /// Row width, 1..=4096.
    pub dim: u32,
    /// Server-side optimizer and its hyperparameters.
    pub optimizer: OptimizerConfig,
    /// Initializer of new rows.
    pub initializer: InitializerConfig,
    /// Seed of the initializer.
    pub seed: u64,
    /// Tier of the hot rows.
    pub tier: TierKind,
}

/// A named fixed-shape dense f32 tensor kept on the servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseSpec {
    /// Unique dense tensor name.
    pub name: String,
    /// Shape; the tensor holds the product of its entries.
    pub shape: Vec<u32>,
    /// Server-side optimizer and its hyperparameters.
    pub optimizer: OptimizerConfig,
    /// Initializer of the values.
    pub initializer: InitializerConfig,
    /// Seed of the initializer.
    pub seed: u64,
}

impl DenseSpec {
    /// Number of f32 elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().map(|&d| d as usize).product()
    }
}

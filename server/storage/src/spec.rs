//! Table and dense-tensor specifications: the domain types behind `CreateTable`/`CreateDense`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::optimizer::OptimizerConfig;

/// Largest row width a table may have.
pub const MAX_DIM: u32 = 4096;

/// Longest table or dense-tensor name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// Longest part of a name an error message repeats, in characters.
const SHOWN_NAME_CHARS: usize = 64;

/// A name as error messages show it: quoted, and cut after 64 characters with its length
/// given, so a huge name cannot blow up a message past the metadata limits.
pub fn shown_name(name: &str) -> String {
    match name.char_indices().nth(SHOWN_NAME_CHARS) {
        None => format!("{name:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &name[..cut], name.len()),
    }
}

/// Largest dense tensor, in elements (1 Gi floats).
pub const MAX_DENSE_ELEMENTS: usize = 1 << 30;

/// Why a table or dense spec is refused before anything is created.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SpecError {
    /// A table or tensor name is empty.
    #[error("{what} name must not be empty")]
    EmptyName {
        /// "table" or "dense tensor".
        what: &'static str,
    },
    /// A table or tensor name is longer than [`MAX_NAME_BYTES`].
    #[error("{what} name of {len} bytes is longer than {max} bytes")]
    NameTooLong {
        /// "table" or "dense tensor".
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The longest allowed.
        max: usize,
    },
    /// A table's dim is outside 1..=4096.
    #[error("dim {dim} is out of range 1..={max}")]
    BadDim {
        /// The dim asked for.
        dim: u32,
        /// The largest dim allowed.
        max: u32,
    },
    /// A dense shape is empty or has a zero extent, or is too large.
    #[error("dense shape {shape:?} is invalid: {reason}")]
    BadShape {
        /// The shape asked for.
        shape: Vec<u32>,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Optimizer hyperparameters are invalid.
    #[error("invalid optimizer: {0}")]
    BadOptimizer(String),
    /// Initializer parameters are invalid.
    #[error("invalid initializer: {0}")]
    BadInitializer(String),
}

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

impl TableSpec {
    /// Checks the spec: a name, a dim in range, valid optimizer and initializer.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_name(&self.name, "table")?;
        if self.dim == 0 || self.dim > MAX_DIM {
            return Err(SpecError::BadDim {
                dim: self.dim,
                max: MAX_DIM,
            });
        }
        self.optimizer
            .validate()
            .map_err(|e| SpecError::BadOptimizer(e.to_string()))?;
        self.initializer.validate()
    }
}

impl DenseSpec {
    /// Checks the spec: a name, a shape of 1..=2^30 elements, valid optimizer and
    /// initializer.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_name(&self.name, "dense tensor")?;
        if self.shape.is_empty() || self.shape.contains(&0) {
            return Err(SpecError::BadShape {
                shape: self.shape.clone(),
                reason: "every extent must be at least 1",
            });
        }
        let numel = self
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize));
        if numel.is_none_or(|n| n > MAX_DENSE_ELEMENTS) {
            return Err(SpecError::BadShape {
                shape: self.shape.clone(),
                reason: "more than 2^30 elements",
            });
        }
        self.optimizer
            .validate()
            .map_err(|e| SpecError::BadOptimizer(e.to_string()))?;
        self.initializer.validate()
    }
}

/// Checks that a name is neither blank nor longer than [`MAX_NAME_BYTES`].
fn check_name(name: &str, what: &'static str) -> Result<(), SpecError> {
    if name.trim().is_empty() {
        return Err(SpecError::EmptyName { what });
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(SpecError::NameTooLong {
            what,
            len: name.len(),
            max: MAX_NAME_BYTES,
        });
    }
    Ok(())
}

impl InitializerConfig {
    /// Checks that the scale or standard deviation is finite and not negative.
    pub fn validate(&self) -> Result<(), SpecError> {
        let ok = match *self {
            InitializerConfig::Zeros => true,
            InitializerConfig::Uniform { scale } => scale.is_finite() && scale >= 0.0,
            InitializerConfig::Normal { std } => std.is_finite() && std >= 0.0,
        };
        if ok {
            Ok(())
        } else {
            Err(SpecError::BadInitializer(format!(
                "{self:?}: scale must be finite and >= 0"
            )))
        }
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn long_names_are_shown_cut_with_their_length() {
        assert_eq!(shown_name("emb"), "\"emb\"");
        let long = "x".repeat(100_000);
        let shown = shown_name(&long);
        assert!(
            shown.len() < 100 && shown.ends_with("… (100000 bytes)"),
            "{shown}"
        );
        assert!(matches!(
            check_name(&"é".repeat(200), "table"),
            Err(SpecError::NameTooLong { len: 400, .. })
        ));
        assert!(check_name(&"t".repeat(MAX_NAME_BYTES), "table").is_ok());
    }
}

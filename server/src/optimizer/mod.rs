//! Server-side optimizers. Their state lives next to the row it belongs to.

mod config;

pub use config::{OptimizerConfig, OptimizerKind};

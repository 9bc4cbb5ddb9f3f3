//! Server-side optimizers. Their state lives next to the row it belongs to.

mod config;
mod interim;

pub use config::{OptimizerConfig, OptimizerKind};

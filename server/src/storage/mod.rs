//! Storage tiers behind one batch-first trait.
pub mod gpu;

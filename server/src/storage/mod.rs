//! Storage tiers behind one batch-first trait.

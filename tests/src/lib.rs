//! strata integration-test harness.

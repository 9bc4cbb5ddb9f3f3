//! strata async client.

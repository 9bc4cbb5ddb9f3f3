//! The native half of the Python package `strata` (`strata._native`): [`strata_client`]
//! behind PyO3, so routing, dedup, per-node fan-out, retries and errors are the Rust
//! client's. The pure-Python package (`python/strata/`) checks dtypes and shapes and gives
//! the public API; this crate moves bytes and waits on the network with the GIL released.
//!
//! Modules, one concern each:
//! - `client`: `NativeClient`, the data path and the control-plane calls.
//! - `spec`: table and dense-tensor specs from Python keyword arguments.
//! - `errors`: [`strata_client::ClientError`] → the exception classes of `strata.errors`.
//! - `runtime`: the tokio runtime the calls of one process share.

mod client;
mod errors;
mod runtime;
mod spec;

use pyo3::prelude::*;

/// The extension module `strata._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<client::NativeClient>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

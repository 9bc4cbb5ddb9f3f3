//! GPU tier foundations: a bucketed hash table for hot rows in device memory.
//!
//! - [`layout`]: geometry, hashing (bucket and digest), reserved ids, score policies.
//! - [`reference`]: the CPU reference of the table, the exact logic of the kernels.
//! - [`fused`]: the per-row optimizer update the fused kernels apply (CPU mirror).
//! - [`admission`]: admission to the GPU tier, always or after N accesses (count-min sketch).
//! - [`kernels`]: CUDA C++ sources of the table and fused optimizer kernels.
//! - `ptx` and `device` (feature `gpu`): NVRTC compilation and the device table.

pub mod admission;
#[cfg(feature = "gpu")]
pub mod device;
mod error;
pub mod fused;
pub mod kernels;
pub mod layout;
#[cfg(feature = "gpu")]
pub mod ptx;
pub mod reference;
mod table;

#[cfg(all(test, feature = "gpu"))]
mod device_tests;
#[cfg(test)]
mod reference_props;

pub use admission::{AdmissionPolicy, Admitter, CountMinSketch};
pub use error::{node_name, GpuError};
pub use layout::{ScorePolicy, TableLayout};
pub use reference::{ExportedEntry, InsertOutcome, ReferenceTable};
pub use table::DeviceTable;

/// Checks that GPU device `ordinal` can host a `--tier gpu` table; a clear error otherwise.
pub fn check_gpu_available(ordinal: usize) -> Result<(), GpuError> {
    #[cfg(feature = "gpu")]
    {
        device::GpuDevice::open(ordinal).map(|_| ())
    }
    #[cfg(not(feature = "gpu"))]
    {
        Err(GpuError::NoDevice {
            node: node_name(),
            reason: format!(
                "device {ordinal} requested, but this strata-server was built without the `gpu` feature"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_unavailable_is_a_clear_error() {
        match check_gpu_available(0) {
            Ok(()) => println!("a CUDA device is present"),
            Err(e @ GpuError::NoDevice { .. }) => {
                let msg = e.to_string();
                assert!(msg.starts_with("no CUDA device on node "), "{msg}");
                println!("{msg}");
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
}

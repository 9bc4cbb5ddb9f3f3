//! CUDA C++ sources of the GPU table, compiled at run time with NVRTC.
//!
//! Every module is `common.cu` followed by its own source; [`MODULES`] lists each module with
//! the kernels it must export.

/// Definitions shared by all modules (types, hashing, warp probe helpers).
pub const COMMON_SRC: &str = include_str!("kernels/common.cu");
/// Hash table operations: init, find, find_or_insert, insert_or_assign, insert_and_evict,
/// erase, export, expire.
pub const TABLE_SRC: &str = include_str!("kernels/table.cu");
/// Fused find + optimizer kernels (SGD, Adagrad, Adam, FTRL).
pub const OPTIM_SRC: &str = include_str!("kernels/optim.cu");

/// Kernels of the table module.
pub const TABLE_KERNELS: &[&str] = &[
    "init_keys",
    "find",
    "find_or_insert",
    "insert_or_assign",
    "insert_and_evict",
    "erase",
    "export_range",
    "expire_range",
];

/// Kernels of the optimizer module.
pub const OPTIM_KERNELS: &[&str] = &["apply_sgd", "apply_adagrad", "apply_adam", "apply_ftrl"];

/// A kernel module: name, own source and exported kernels.
#[derive(Debug, Clone, Copy)]
pub struct KernelModule {
    /// Module name (for errors and the NVRTC program name).
    pub name: &'static str,
    /// Source without the common prefix.
    pub source: &'static str,
    /// Kernels it exports.
    pub kernels: &'static [&'static str],
}

/// All kernel modules.
pub const MODULES: &[KernelModule] = &[
    KernelModule {
        name: "table.cu",
        source: TABLE_SRC,
        kernels: TABLE_KERNELS,
    },
    KernelModule {
        name: "optim.cu",
        source: OPTIM_SRC,
        kernels: OPTIM_KERNELS,
    },
];

impl KernelModule {
    /// The full translation unit handed to NVRTC.
    pub fn full_source(&self) -> String {
        format!("{COMMON_SRC}\n#line 1 \"{}\"\n{}", self.name, self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::super::layout::{status, ScorePolicy};
    use super::*;

    #[test]
    fn every_listed_kernel_is_defined() {
        for m in MODULES {
            let src = m.full_source();
            for k in m.kernels {
                let direct = format!("__global__ void {k}(");
                let via_macro = format!("APPLY_KERNEL({k},");
                assert!(
                    src.contains(&direct) || src.contains(&via_macro),
                    "{k} missing from {}",
                    m.name
                );
            }
        }
    }

    #[test]
    fn kernel_constants_match_rust() {
        for (name, v) in [
            ("ST_REFUSED", status::REFUSED),
            ("ST_INSERTED", status::INSERTED),
            ("ST_UPDATED", status::UPDATED),
            ("ST_EVICTED", status::EVICTED),
            ("ST_FOUND", status::FOUND),
            ("ST_MISSING", status::MISSING),
            ("POLICY_LRU", ScorePolicy::Lru.code()),
            ("POLICY_LFU", ScorePolicy::Lfu.code()),
            ("POLICY_STEP", ScorePolicy::Step.code()),
        ] {
            assert!(
                COMMON_SRC.contains(&format!("#define {name} {v}\n")),
                "{name} != {v}"
            );
        }
        assert!(COMMON_SRC.contains("#define BUCKET_SLOTS 128\n"));
    }
}

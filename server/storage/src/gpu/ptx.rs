//! Compiles the kernel modules to PTX with NVRTC (through cudarc), never panicking.

use std::panic::{catch_unwind, AssertUnwindSafe};

use cudarc::nvrtc::{compile_ptx_with_opts, CompileError, CompileOptions, Ptx};

use super::kernels::{KernelModule, MODULES};
use super::GpuError;

/// Whether libnvrtc can be loaded (cudarc panics on first use when it cannot).
pub fn nvrtc_available() -> bool {
    // SAFETY: only tries to dlopen the candidate library names; no symbol is called.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// The `--gpu-architecture` for a device's compute capability, if known.
pub fn arch_for(major: i32, minor: i32) -> Option<&'static str> {
    Some(match (major, minor) {
        (7, 0) => "compute_70",
        (7, 5) => "compute_75",
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 9) => "compute_89",
        (9, 0) => "compute_90",
        _ => return None,
    })
}

/// NVRTC options: no FMA contraction and IEEE div/sqrt so results match the CPU reference.
fn options(module: &KernelModule, arch: Option<&'static str>) -> CompileOptions {
    CompileOptions {
        ftz: Some(false),
        prec_sqrt: Some(true),
        prec_div: Some(true),
        fmad: Some(false),
        arch,
        name: Some(module.name.to_string()),
        ..Default::default()
    }
}

/// Compiles one module to PTX and checks that it exports every listed kernel.
pub fn compile_module(module: &KernelModule, arch: Option<&'static str>) -> Result<Ptx, GpuError> {
    if !nvrtc_available() {
        return Err(GpuError::NvrtcUnavailable);
    }
    let src = module.full_source();
    let opts = options(module, arch);
    let result =
        catch_unwind(AssertUnwindSafe(|| compile_ptx_with_opts(src, opts))).map_err(|_| {
            GpuError::Compile {
                module: module.name.to_string(),
                log: "NVRTC panicked (incompatible libnvrtc?)".to_string(),
            }
        })?;
    let ptx = result.map_err(|e| GpuError::Compile {
        module: module.name.to_string(),
        log: match e {
            CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
            other => format!("{other:?}"),
        },
    })?;
    let text = ptx.to_src();
    for k in module.kernels {
        if !text.contains(&format!(".entry {k}(")) {
            return Err(GpuError::Compile {
                module: module.name.to_string(),
                log: format!("kernel {k} missing from the PTX"),
            });
        }
    }
    Ok(ptx)
}

/// Compiles every module; `arch` of `None` uses NVRTC's default virtual architecture.
pub fn compile_all(arch: Option<&'static str>) -> Result<Vec<(KernelModule, Ptx)>, GpuError> {
    MODULES
        .iter()
        .map(|m| compile_module(m, arch).map(|p| (*m, p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CI runs this with NVRTC on LD_LIBRARY_PATH (`.ci/compile-kernels.sh`).
    #[test]
    fn gpu_compile_all_kernels_to_ptx() {
        if !nvrtc_available() {
            println!("skipped: libnvrtc not found");
            return;
        }
        let modules = compile_all(None).unwrap_or_else(|e| panic!("{e}"));
        for (m, ptx) in &modules {
            println!(
                "compiled {} ({} kernels, {} bytes of PTX)",
                m.name,
                m.kernels.len(),
                ptx.to_src().len()
            );
        }
        // Also for the H100's architecture, as the device will JIT it.
        compile_all(Some("compute_90")).unwrap_or_else(|e| panic!("{e}"));
        println!("NVRTC_COMPILED_ALL_KERNELS");
    }

    #[test]
    fn gpu_kernel_syntax_error_is_reported_not_panicked() {
        if !nvrtc_available() {
            println!("skipped: libnvrtc not found");
            return;
        }
        let broken = KernelModule {
            name: "broken.cu",
            source: "extern \"C\" __global__ void k(u64 *p) { p[0] = undefined_name; }",
            kernels: &["k"],
        };
        match compile_module(&broken, None) {
            Err(GpuError::Compile { module, log }) => {
                assert_eq!(module, "broken.cu");
                assert!(log.contains("undefined_name"), "{log}");
            }
            other => panic!("expected a compile error, got {other:?}"),
        }
    }
}

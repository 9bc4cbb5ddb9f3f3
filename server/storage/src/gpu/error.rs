//! Errors of the GPU tier.

/// Why a GPU tier operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No usable CUDA device (driver library absent, no device, or the feature is off).
    #[error("no CUDA device on node {node}: {reason}")]
    NoDevice {
        /// Host name of this node.
        node: String,
        /// What was missing.
        reason: String,
    },
    /// The NVRTC library could not be loaded, so kernels cannot be compiled.
    #[error(
        "libnvrtc not found: cannot compile CUDA kernels (put NVRTC's lib dir on LD_LIBRARY_PATH)"
    )]
    NvrtcUnavailable,
    /// NVRTC rejected a kernel source.
    #[error("NVRTC failed to compile kernel module {module}: {log}")]
    Compile {
        /// Module (source file) name.
        module: String,
        /// Compiler log.
        log: String,
    },
    /// A CUDA driver call failed.
    #[error("CUDA driver error: {0}")]
    Driver(String),
    /// A table was configured with impossible parameters.
    #[error("invalid GPU table configuration: {0}")]
    InvalidConfig(String),
    /// A batch's buffers do not match its keys.
    #[error("batch shape mismatch: {0}")]
    BatchShape(String),
}

/// This node's host name, for error messages.
pub fn node_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

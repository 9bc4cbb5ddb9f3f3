//! glibc allocator settings for processes that move large per-request buffers.

/// Keeps per-request buffers (hundreds of KiB: pull responses, push requests, migration
/// chunks) in one reused heap. With glibc's defaults each tokio worker gets its own arena,
/// whose 64 MiB heaps were created and unmapped again and again under W1 (munmap, TLB
/// shootdowns and page faults of fresh memory: ~6% of the server's CPU), and buffers above the
/// dynamic mmap threshold are mapped and unmapped per request. One arena (two or three
/// threads allocate a few buffers per request, not per row), a fixed mmap threshold at
/// glibc's maximum and a high trim threshold keep that memory mapped and reused. Returns
/// whether glibc took every setting; call first thing in `main`, so that every buffer is
/// allocated under them.
pub fn keep_large_buffers_in_the_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters, under glibc's own arena lock.
    unsafe {
        // 32 MiB is the largest threshold glibc accepts on 64-bit targets.
        let settings = [
            (libc::M_ARENA_MAX, 1),
            (libc::M_MMAP_THRESHOLD, 32 << 20),
            (libc::M_TRIM_THRESHOLD, 512 << 20),
        ];
        // Every setting is tried, whether or not an earlier one was refused.
        settings.iter().fold(true, |all, &(param, value)| {
            libc::mallopt(param, value) == 1 && all
        })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    true
}

#[cfg(test)]
mod tests {
    // Changes the allocator of this whole test binary: harmless, the settings only move
    // thresholds.
    #[test]
    fn glibc_takes_every_setting() {
        assert!(super::keep_large_buffers_in_the_heap());
    }
}

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

/// The glibc tunable that advises the heap (and glibc's own mappings) into transparent huge
/// pages (glibc 2.35 and later; older ones ignore it).
pub const HUGE_PAGE_HEAP_TUNABLE: &str = "glibc.malloc.hugetlb=1";

/// What [`reexec_with_huge_page_heap`] did, when it returned.
#[derive(Debug)]
pub enum HeapPages {
    /// `GLIBC_TUNABLES` already says how the heap is paged (this process was re-executed,
    /// or whoever started it chose): nothing to do.
    AlreadyChosen,
    /// Not a glibc process on Linux: the tunable does not exist.
    Unsupported,
    /// The re-execution failed; the process goes on with a 4 KiB-page heap.
    ExecFailed(std::io::Error),
}

/// Re-executes this process (same pid, arguments and open files) with
/// [`HUGE_PAGE_HEAP_TUNABLE`] added to `GLIBC_TUNABLES`, unless the variable already names
/// `glibc.malloc.hugetlb`. Request buffers, id lists and small index tables live in the heap,
/// and a W1 step touches them as randomly as the rows: on the VMs we measure on the server
/// and bench spent 10-15% less CPU per step with the heap in huge pages. glibc reads its
/// tunables only at process start, hence the re-execution. Call first thing in `main`,
/// before any thread starts; returns only when no re-execution happened.
pub fn reexec_with_huge_page_heap() -> HeapPages {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;

        let current = std::env::var_os("GLIBC_TUNABLES").unwrap_or_default();
        let (name, _) = HUGE_PAGE_HEAP_TUNABLE
            .split_once('=')
            .unwrap_or((HUGE_PAGE_HEAP_TUNABLE, ""));
        if current.to_string_lossy().contains(name) {
            return HeapPages::AlreadyChosen;
        }
        let mut tunables = current;
        if !tunables.is_empty() {
            tunables.push(":");
        }
        tunables.push(HUGE_PAGE_HEAP_TUNABLE);
        let mut args = std::env::args_os();
        let mut command = std::process::Command::new("/proc/self/exe");
        if let Some(arg0) = args.next() {
            command.arg0(arg0);
        }
        HeapPages::ExecFailed(command.args(args).env("GLIBC_TUNABLES", tunables).exec())
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    HeapPages::Unsupported
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

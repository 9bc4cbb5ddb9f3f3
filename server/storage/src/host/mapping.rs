//! Anonymous memory mappings for the host tier's large blocks (row chunks, large id index
//! tables), with transparent huge page advice.
//!
//! A W1 step touches a few thousand random rows and as many random index entries in
//! gigabytes of memory. In 4 KiB pages nearly every one of those touches misses the TLB,
//! and on a virtual machine each miss walks two levels of page tables (guest and host). In
//! 2 MiB pages the same gigabytes fit the TLB's reach: on the VMs we measure on, huge pages
//! for the row memory reserve and the large index tables cut the server's CPU per W1 step
//! by 15-30% (README, Performance).
//!
//! Huge pages are only asked for where a fault is not on a request's critical path or is
//! rare: the reserve is faulted in by a background thread, and an index table of 2 MiB or
//! more is allocated once per doubling of a stripe. Row chunks mapped on demand stay in
//! 4 KiB pages: a first write there would fault (and, when the kernel must compact memory
//! for it, stall) a whole 2 MiB under a stripe lock. `--huge-pages false` turns the advice
//! off for a node ([`super::RowMemory::huge_pages`] decides which advice its mappings get);
//! the kernel's own setting (`/sys/kernel/mm/transparent_hugepage/enabled` at
//! `madvise` or `always`) decides whether advised memory gets huge pages at all.

use std::ptr::NonNull;

/// Bytes of one transparent huge page on x86-64 and most aarch64 kernels.
pub const HUGE_PAGE_BYTES: usize = 2 << 20;

/// Faults in the pages of `bytes` of zeroed memory at `at` (the contents stay zero): in one
/// `MADV_POPULATE_WRITE` call where the kernel has one and `at` is page-aligned, else by
/// writing the zero each page already holds to one byte per 4 KiB page.
///
/// # Safety
/// `at..at + bytes` must be writable memory holding zeros that nothing else reads or writes
/// during the call.
pub unsafe fn fault_in_zeroed(at: NonNull<u8>, bytes: usize) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if (at.as_ptr() as usize).is_multiple_of(4096) {
        // SAFETY: a page-aligned range the caller owns; populating only faults pages in
        // (as a write would, keeping their contents).
        let populated =
            unsafe { libc::madvise(at.as_ptr().cast(), bytes, libc::MADV_POPULATE_WRITE) } == 0;
        if populated {
            return;
        }
    }
    for page in (0..bytes).step_by(4096) {
        // SAFETY: in bounds and unshared, per the caller's contract.
        unsafe { at.as_ptr().add(page).write_volatile(0) };
    }
}

/// Which page size to advise for a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAdvice {
    /// Ask for transparent huge pages (given where the node asked for them).
    Huge,
    /// Keep 4 KiB pages: a first write faults in 4 KiB, not 2 MiB.
    Small,
}

fn layout(bytes: usize) -> std::alloc::Layout {
    std::alloc::Layout::from_size_align(bytes, 4096)
        .unwrap_or_else(|_| panic!("a mapping of {bytes} bytes overflows the address space"))
}

/// A fresh, zero-filled private mapping of `bytes` (non-zero; pages faulted in on first
/// write), advised as `advice` says. Out of address space, it aborts like any failed
/// allocation.
#[cfg(unix)]
pub fn map_zeroed(bytes: usize, advice: PageAdvice) -> NonNull<u8> {
    debug_assert!(bytes > 0);
    // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        std::alloc::handle_alloc_error(layout(bytes));
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let advice = match advice {
            PageAdvice::Huge => libc::MADV_HUGEPAGE,
            PageAdvice::Small => libc::MADV_NOHUGEPAGE,
        };
        // SAFETY: advice on the mapping just made; refusal (no THP support) changes nothing.
        unsafe { libc::madvise(raw, bytes, advice) };
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = advice;
    NonNull::new(raw.cast::<u8>()).unwrap_or_else(|| std::alloc::handle_alloc_error(layout(bytes)))
}

/// Returns a mapping of `bytes` made by [`map_zeroed`] to the OS.
#[cfg(unix)]
pub fn unmap(at: NonNull<u8>, bytes: usize) {
    // SAFETY: `at` starts a mapping of `bytes` made by `map_zeroed`, unmapped once, when
    // its only owner drops.
    let status = unsafe { libc::munmap(at.as_ptr().cast(), bytes) };
    // It fails only if splitting a merged mapping exceeds vm.max_map_count: the memory then
    // stays mapped (a leak, not a fault).
    debug_assert_eq!(status, 0, "munmap failed");
}

/// A fresh, zero-filled block of `bytes` (non-zero) from the global allocator.
#[cfg(not(unix))]
pub fn map_zeroed(bytes: usize, _advice: PageAdvice) -> NonNull<u8> {
    // SAFETY: the layout has a non-zero size.
    let raw = unsafe { std::alloc::alloc_zeroed(layout(bytes)) };
    NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout(bytes)))
}

/// Returns a block of `bytes` made by [`map_zeroed`].
#[cfg(not(unix))]
pub fn unmap(at: NonNull<u8>, bytes: usize) {
    // SAFETY: allocated by `map_zeroed` with the same layout.
    unsafe { std::alloc::dealloc(at.as_ptr(), layout(bytes)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_are_zeroed_and_writable_with_either_advice() {
        for advice in [PageAdvice::Huge, PageAdvice::Small] {
            let bytes = 2 * HUGE_PAGE_BYTES;
            let at = map_zeroed(bytes, advice);
            // SAFETY: the test owns the fresh mapping of `bytes` exclusively.
            let view = unsafe { std::slice::from_raw_parts_mut(at.as_ptr(), bytes) };
            assert!(view.iter().all(|&b| b == 0));
            view[0] = 1;
            view[bytes - 1] = 2;
            assert_eq!((view[0], view[bytes - 1]), (1, 2));
            unmap(at, bytes);
        }
    }
}

//! CPU priority of the calling thread (Linux: per thread), for background work that should
//! give way to serving: migrations, memory refills and prefaults.
//!
//! Failures only cost speed elsewhere, so they are logged, not returned. Elsewhere than on
//! Linux every call does nothing.

/// The calling thread's kernel id.
#[cfg(target_os = "linux")]
fn thread_id() -> libc::id_t {
    // SAFETY: gettid has no arguments and no memory effects.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::id_t }
}

/// The calling thread's nice value (0 where it cannot be read).
pub fn current_nice() -> i32 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getpriority reads this thread's nice value; -1 is also a valid answer.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, thread_id()) }
    }
    #[cfg(not(target_os = "linux"))]
    0
}

/// Sets the calling thread's nice value; 0 leaves it as it is (an unprivileged thread can
/// raise its nice value but not lower it back).
pub fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority has no memory effects; it acts on this thread only.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, thread_id(), nice) } != 0 {
        tracing::debug!(
            nice,
            error = %std::io::Error::last_os_error(),
            "could not lower a background thread's priority"
        );
    }
}

/// Puts the calling thread under `SCHED_IDLE`: it runs only on cores no other thread wants.
pub fn run_only_when_idle() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; `param` outlives the call.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "a background thread keeps its normal scheduling"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_lowers_its_own_priority_only() {
        let before = current_nice();
        let lowered = std::thread::spawn(|| {
            lower_priority(current_nice() + 3);
            current_nice()
        })
        .join()
        .expect("thread");
        if cfg!(target_os = "linux") {
            assert_eq!(lowered, before + 3);
        }
        assert_eq!(current_nice(), before, "the caller's priority is unchanged");
    }
}

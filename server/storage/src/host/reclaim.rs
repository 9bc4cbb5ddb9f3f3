//! Giving large allocations back to the system off the caller's path.

/// Drops `garbage` on a short-lived thread: unmapping hundreds of MiB of rows (or zeroing
/// them into the row memory reserve) costs tens of milliseconds that should hold neither a
/// lock nor a caller. Where no
/// thread can be started it is dropped here.
pub fn drop_in_background<T: Send + 'static>(garbage: Vec<T>) {
    if garbage.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("strata-reclaim".into())
        .spawn(move || drop(garbage));
    if let Err(e) = spawned {
        // The closure, and the garbage with it, was dropped by the failed spawn.
        tracing::debug!(error = %e, "no thread to free memory on; freed in place");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Reports on a channel when dropped, and on which thread.
    struct Tell(mpsc::Sender<Option<String>>);

    impl Drop for Tell {
        fn drop(&mut self) {
            let name = std::thread::current().name().map(str::to_string);
            let _ = self.0.send(name);
        }
    }

    #[test]
    fn garbage_is_dropped_on_another_thread() {
        let (tx, rx) = mpsc::channel();
        drop_in_background(vec![Tell(tx.clone()), Tell(tx)]);
        for _ in 0..2 {
            let name = rx
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("dropped within 10 s");
            assert_eq!(name.as_deref(), Some("strata-reclaim"));
        }
    }
}

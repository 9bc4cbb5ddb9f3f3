//! `strata`: the operator and data command line of a strata cluster.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    restore_default_sigpipe();
    let args = cli::Cli::parse();
    strata_proto::tls::install_default_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(block_sigpipe)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return cli::Exit::Internal.code();
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            cli::Exit::of(&e).code()
        }
    }
}

/// The runtime's threads write to sockets: a server that closed a connection (one that
/// refused this client's certificate, say) must give them EPIPE, not end the process as the
/// SIGPIPE restored for stdout would. Blocked here, the signal stays pending on the thread.
fn block_sigpipe() {
    #[cfg(unix)]
    // SAFETY: changes only the calling thread's signal mask, with a set built in place.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// `strata status | head` must end quietly when the reader goes away, as other CLIs do; Rust
/// ignores SIGPIPE by default, which turns a closed pipe into a panic in `println!`.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: resetting a signal disposition to its default before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

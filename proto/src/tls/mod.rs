//! TLS of strata's connections: rustls with the aws-lc-rs provider, mutual authentication
//! with certificates of one CA, and PEM files that reload when they change on disk.
//!
//! - [`files`]: which PEM files a process uses (flags or `STRATA_TLS_*`) and how they parse.
//! - [`reload`]: a config rebuilt from its files when they change, the last good one kept.
//! - [`client`]: the connector every channel of a TLS client dials through, and the
//!   plain-words account of a refused handshake ([`TlsFailure`]).
//! - [`server`]: the server config (client certificates required with a CA).
//!
//! A process builds a fresh rustls config only when its files changed (checked at most
//! once per [`RELOAD_CHECK`]); each new connection takes the current one, so a replaced
//! certificate is used by the next connection and open connections keep theirs.

pub mod client;
pub mod files;
pub mod reload;
pub mod server;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use thiserror::Error;

pub use self::client::{ClientTls, TlsConnector, TlsFailure};
pub use self::files::{TlsFiles, CA_ENV, CERT_ENV, KEY_ENV};
pub use self::server::ServerTls;

/// Bytes read from the socket at once under TLS. rustls asks its source for 4 KiB at a time;
/// without a buffer below it, a 1 MB row payload costs some 250 `read` calls.
pub const SOCKET_READ_BUFFER: usize = 256 << 10;
/// Encrypted bytes a TLS connection queues for the socket before a write waits (rustls'
/// default, 64 KiB, splits a row payload into many small socket writes).
pub const SEND_BUFFER: usize = 1 << 20;

/// Least time between two looks at a config's files.
pub const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// Makes aws-lc-rs the process's default rustls provider. Every binary calls it at start
/// (a second provider in one process makes rustls panic when it has to pick one); strata's
/// own configs name the provider explicitly either way. Calling it again is harmless.
pub fn install_default_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The provider of every strata TLS config.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Why TLS settings could not be used.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("reading {what} {path}: {source}")]
    Read {
        /// What the file holds (e.g. "certificate (--tls-cert)").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file holds nothing of what it should.
    #[error("{what} {path}: {reason}")]
    BadPem {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the certificates or key (e.g. a key that is not the certificate's).
    #[error("{what}: {source}")]
    Rustls {
        /// What was being set up.
        what: String,
        /// rustls' error.
        #[source]
        source: rustls::Error,
    },
    /// The combination of settings is incomplete.
    #[error("{0}")]
    Settings(String),
}

//! The TLS flags of every strata client binary (`strata`, `strata-bench`), each with its
//! environment variable as fallback.

use std::path::PathBuf;

use strata_proto::tls::TlsFiles;

/// `--tls-ca`, `--tls-cert`, `--tls-key` (or `STRATA_TLS_CA`, `STRATA_TLS_CERT`,
/// `STRATA_TLS_KEY`). None given: plaintext.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// CA certificate (PEM) that signed the servers' certificates: connect with TLS.
    #[arg(long, global = true, env = "STRATA_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// This client's certificate (PEM), for servers that require client certificates.
    #[arg(long, global = true, env = "STRATA_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, global = true, env = "STRATA_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The files these flags name.
    pub fn files(&self) -> TlsFiles {
        TlsFiles {
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
        }
    }
}

//! A server process's TLS: the `--tls-cert`, `--tls-key`, `--tls-ca` and `--insecure` flags
//! every role shares, the rule that plaintext is for loopback addresses only, and the
//! identity of a connection's peer as requests carry it.
//!
//! A node uses one set of files both ways: to accept (clients must show a certificate the
//! CA signed) and to call other nodes (coordinator → shard, shard → coordinator, shard →
//! shard migration streams), where the CA verifies them and the certificate is its own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use strata_proto::tls::{ClientTls, ServerTls, TlsError, TlsFiles};
use thiserror::Error;
use tonic::transport::server::TcpConnectInfo;

/// TLS flags of every server role.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// This server's certificate chain (PEM, leaf first): with --tls-key the server speaks
    /// TLS only. Reloaded when the file changes.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// CA certificate (PEM): every client must show a certificate it signed (mutual TLS);
    /// it also verifies the nodes this server calls.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Serve plaintext on a listen address that is not loopback (without TLS, such an
    /// address is refused unless this is given).
    #[arg(long)]
    pub insecure: bool,
}

/// Why a server's TLS settings cannot be used.
#[derive(Debug, Error)]
pub enum TlsSetupError {
    /// A file or the combination of files is wrong.
    #[error(transparent)]
    Files(#[from] TlsError),
    /// Plaintext on an address other hosts can reach, not asked for.
    #[error(
        "refusing to serve plaintext on {listen}, an address that is not loopback: give \
         --tls-cert, --tls-key and --tls-ca (certificates from `strata certs`), or --insecure \
         to serve without TLS anyway"
    )]
    PlaintextNotLoopback {
        /// The listen address.
        listen: SocketAddr,
    },
    /// A role that calls other nodes has no CA to verify them.
    #[error(
        "the {role} role calls other nodes and needs --tls-ca with --tls-cert and --tls-key: \
         the CA verifies those nodes, and they require this node's certificate"
    )]
    NeedsCa {
        /// The role.
        role: &'static str,
    },
}

/// A node's TLS: how it accepts and how it calls other nodes. Default: plaintext.
#[derive(Debug, Clone, Default)]
pub struct NodeTls {
    /// The listener's TLS (`None`: plaintext).
    pub server: Option<ServerTls>,
    /// Calls to other nodes (`None`: plaintext).
    pub client: Option<ClientTls>,
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

    /// The TLS of a `role` server listening on `listen`; `calls_nodes` for roles that call
    /// other nodes (they need the CA). Plaintext on a non-loopback address needs `--insecure`.
    pub fn node_tls(
        &self,
        role: &'static str,
        listen: SocketAddr,
        calls_nodes: bool,
    ) -> Result<NodeTls, TlsSetupError> {
        let files = self.files();
        if files.is_empty() {
            if !listen.ip().is_loopback() && !self.insecure {
                return Err(TlsSetupError::PlaintextNotLoopback { listen });
            }
            return Ok(NodeTls::default());
        }
        let server = ServerTls::load(&files)?;
        let client = match (&files.ca, calls_nodes) {
            (Some(_), _) => ClientTls::load(&files)?,
            (None, true) => return Err(TlsSetupError::NeedsCa { role }),
            (None, false) => None,
        };
        Ok(NodeTls { server, client })
    }
}

/// Who is at the other end of a connection, as every request on it carries in its
/// extensions (`request.extensions().get::<PeerInfo>()`): the TCP addresses and, over TLS
/// with client certificates, the chain the server verified (leaf first). The certificate's
/// subject names the identity (CN) and its role (OU), as `strata certs issue` writes them.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// Local and remote addresses.
    pub tcp: TcpConnectInfo,
    /// The client's verified certificate chain, leaf first (`None`: plaintext, or TLS
    /// without client certificates).
    pub certificates: Option<Arc<[CertificateDer<'static>]>>,
}

impl PeerInfo {
    /// The peer of the connection `request` came on, if it came through a strata listener.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<&PeerInfo> {
        request.extensions().get::<PeerInfo>()
    }

    /// The remote address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.tcp.remote_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_on_a_non_loopback_address_needs_insecure() {
        let any: SocketAddr = "0.0.0.0:7070".parse().expect("address");
        let err = TlsArgs::default()
            .node_tls("dev", any, false)
            .expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains("--insecure") && text.contains("--tls-cert"),
            "{text}"
        );
        let insecure = TlsArgs {
            insecure: true,
            ..TlsArgs::default()
        };
        assert!(insecure.node_tls("dev", any, false).is_ok());
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("address");
        assert!(TlsArgs::default().node_tls("dev", loopback, false).is_ok());
    }
}

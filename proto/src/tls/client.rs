//! The client side: the connector every channel of a TLS client dials through (TCP, then a
//! TLS handshake with the config current at that moment), and [`TlsFailure`], the account
//! in plain words of a handshake the peer or this client refused.
//!
//! tonic's own `ClientTlsConfig` fixes one config per endpoint; dialing through
//! [`TlsConnector`] instead lets each new connection take the files as they are now.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustls::{AlertDescription, CertificateError, ClientConfig};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, BufReader, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::files::{read_identity, read_roots, TlsFiles};
use super::reload::Reloading;
use super::{provider, TlsError, RELOAD_CHECK, SEND_BUFFER, SOCKET_READ_BUFFER};

/// A client's TLS: the CA it trusts and the certificate it shows. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ClientTls {
    config: Arc<Reloading<ClientConfig>>,
}

impl ClientTls {
    /// The TLS of `files` (the CA required; certificate and key together, when the server
    /// asks for a client certificate), or `None` for no files (plaintext).
    pub fn load(files: &TlsFiles) -> Result<Option<Self>, TlsError> {
        Self::load_checking_every(files, RELOAD_CHECK)
    }

    /// As [`ClientTls::load`], looking at the files at most once per `every`.
    pub fn load_checking_every(
        files: &TlsFiles,
        every: Duration,
    ) -> Result<Option<Self>, TlsError> {
        if files.is_empty() {
            return Ok(None);
        }
        files.identity()?;
        if files.ca.is_none() {
            return Err(TlsError::Settings(
                "TLS needs --tls-ca (STRATA_TLS_CA): the CA that signed the servers' certificates"
                    .into(),
            ));
        }
        let owned = files.clone();
        let config = Reloading::new("client TLS", files.paths(), every, move || {
            client_config(&owned)
        })?;
        Ok(Some(Self {
            config: Arc::new(config),
        }))
    }

    /// The config for the next connection.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.current()
    }
}

/// The client config of `files` as they are now.
fn client_config(files: &TlsFiles) -> Result<ClientConfig, TlsError> {
    let Some(ca) = &files.ca else {
        return Err(TlsError::Settings("TLS needs --tls-ca".into()));
    };
    let roots = read_roots(ca)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: "TLS versions".into(),
            source,
        })?
        .with_root_certificates(roots);
    let mut config = match files.identity()? {
        Some((cert, key)) => {
            let identity = read_identity(cert, key)?;
            builder
                .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(identity)))
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Dials TCP (no Nagle delay) and then TLS with the current config; the name checked
/// against the server's certificate is the URI's host (a DNS name or an IP address).
#[derive(Clone, Debug)]
pub struct TlsConnector {
    tls: ClientTls,
    http: HttpConnector,
}

impl TlsConnector {
    /// A connector for channels of `tls`.
    pub fn new(tls: ClientTls) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        Self { tls, http }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Uri> for TlsConnector {
    type Response = TokioIo<ClientIo>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let config = self.tls.config();
        let tcp = self.http.call(uri);
        Box::pin(async move {
            let name = ServerName::try_from(host.clone())
                .map_err(|e| format!("{host:?} is not a host name TLS can check: {e}"))?;
            let tcp: TcpStream = tcp.await?.into_inner();
            let tcp = BufReader::with_capacity(SOCKET_READ_BUFFER, tcp);
            let mut stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| explain(e, &host))?;
            stream.get_mut().1.set_buffer_limit(Some(SEND_BUFFER));
            // With TLS 1.3 the client's side of the handshake ends before the server has
            // checked the client's certificate; a refusal comes as the first thing read.
            // Waiting here for the server's first bytes (its HTTP/2 SETTINGS, sent at once)
            // makes a refusal fail the connect, with its reason, instead of a later call.
            let mut first = vec![0u8; FIRST_READ_BYTES];
            let n = stream
                .read(&mut first)
                .await
                .map_err(|e| explain(e, &host))?;
            if n == 0 {
                return Err(TlsFailure {
                    host,
                    reason: "the server closed the connection after the TLS handshake (a \
                             server refusing a client certificate does; see its log)"
                        .into(),
                }
                .into());
            }
            first.truncate(n);
            Ok(TokioIo::new(ClientIo {
                inner: stream,
                host,
                first,
                first_at: 0,
            }))
        })
    }
}

/// A client's TLS stream. Its reads and writes replace rustls errors by [`TlsFailure`]s: with
/// TLS 1.3 a server refuses a client certificate after the client's side of the handshake
/// finished, so that refusal arrives with the first read.
pub struct ClientIo {
    inner: TlsStream<BufReader<TcpStream>>,
    host: String,
    /// The server's first bytes, read while connecting, handed out before anything else.
    first: Vec<u8>,
    first_at: usize,
}

/// Most bytes read while connecting (an HTTP/2 SETTINGS frame is far smaller).
const FIRST_READ_BYTES: usize = 4096;

impl AsyncRead for ClientIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.first_at < this.first.len() {
            let n = (this.first.len() - this.first_at).min(buf.remaining());
            buf.put_slice(&this.first[this.first_at..this.first_at + n]);
            this.first_at += n;
            if this.first_at == this.first.len() {
                this.first = Vec::new();
                this.first_at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner)
            .poll_read(cx, buf)
            .map_err(|e| explain(e, &this.host))
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        Pin::new(&mut this.inner)
            .poll_write(cx, buf)
            .map_err(|e| explain(e, &this.host))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        Pin::new(&mut this.inner)
            .poll_write_vectored(cx, bufs)
            .map_err(|e| explain(e, &this.host))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A TLS handshake that failed, in words that name the cause and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TLS with {host} failed: {reason}")]
pub struct TlsFailure {
    /// The server's host as dialed.
    pub host: String,
    /// What failed.
    pub reason: String,
}

impl TlsFailure {
    /// The failure behind `error`, if one of the errors in its `source()` chain (or inside
    /// an I/O error there) is one.
    pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a TlsFailure> {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(f) = e.downcast_ref::<TlsFailure>() {
                return Some(f);
            }
            if let Some(f) = e
                .downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<TlsFailure>())
            {
                return Some(f);
            }
            next = e.source();
        }
        None
    }
}

/// `error` with a rustls error inside replaced by its [`TlsFailure`]; others unchanged.
fn explain(error: io::Error, host: &str) -> io::Error {
    let Some(tls) = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return error;
    };
    let reason = reason(tls, host);
    io::Error::new(
        error.kind(),
        TlsFailure {
            host: host.to_string(),
            reason,
        },
    )
}

/// What `error` means for the person who started the client.
pub fn reason(error: &rustls::Error, host: &str) -> String {
    use rustls::Error as E;
    const CLIENT_FILES: &str =
        "give --tls-cert and --tls-key (STRATA_TLS_CERT, STRATA_TLS_KEY) issued by the server's CA";
    match error {
        E::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                "the server's certificate is not signed by the CA in --tls-ca (STRATA_TLS_CA): \
                 {}",
                if matches!(c, CertificateError::UnknownIssuer) {
                    "unknown issuer"
                } else {
                    "bad signature"
                }
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the server's certificate is not valid for the name {host:?} (issue it with \
                     --san naming {host})"
                )
            }
            other => format!("the server's certificate was refused: {other:?}"),
        },
        E::AlertReceived(alert) => match alert {
            AlertDescription::CertificateRequired => {
                format!("the server requires a client certificate: {CLIENT_FILES}")
            }
            AlertDescription::UnknownCA => format!(
                "the server refused this client's certificate: it is not signed by the server's \
                 CA (unknown CA); {CLIENT_FILES}"
            ),
            AlertDescription::CertificateExpired => {
                "the server refused this client's certificate: it has expired".into()
            }
            AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked => {
                format!("the server refused this client's certificate ({alert:?})")
            }
            AlertDescription::HandshakeFailure => format!(
                "the server refused the handshake (HandshakeFailure; a server that requires a \
                 client certificate answers so): {CLIENT_FILES}"
            ),
            other => format!("the server ended the handshake with the alert {other:?}"),
        },
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => {
            "the server did not answer in TLS (a server started without --tls-cert speaks \
             plaintext: connect without --tls-ca / STRATA_TLS_CA)"
                .into()
        }
        other => other.to_string(),
    }
}

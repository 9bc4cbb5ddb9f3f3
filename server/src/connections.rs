//! The accept path of every server: at most `--max-connections` open at once (one over the
//! cap is closed at once), a TLS handshake when the server has TLS, and a handshake deadline
//! (a connection that has not finished TLS and sent the HTTP/2 preface and the header of its
//! SETTINGS frame by then is closed) — so idle or half-open sockets cannot exhaust the
//! process's file descriptors.
//!
//! Connections are accepted on a task of their own; each TLS handshake runs on its own task
//! too, so one slow or silent client never holds up the others.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use strata_proto::tls::{ServerTls, SEND_BUFFER, SOCKET_READ_BUFFER};
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use crate::tls::PeerInfo;

/// Default cap on open connections of a server.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default time a new connection has to finish TLS and start HTTP/2.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of a started HTTP/2 connection: the client preface (24) and the header of the
/// SETTINGS frame that must follow it (9).
const HANDSHAKE_BYTES: usize = 24 + 9;
/// Connections ready for the server and not yet taken by it.
const READY_QUEUE: usize = 64;

/// How many connections a server keeps and how long a new one may take to start HTTP/2.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Time from accept to the end of TLS and the HTTP/2 preface and SETTINGS header.
    pub handshake_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// What the bounds did, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct ConnectionMetrics {
    /// Connections open now.
    pub open: Gauge,
    /// Connections closed at accept because the cap was reached.
    pub refused: Counter,
    /// Connections closed because they did not start HTTP/2 in time.
    pub handshake_timeouts: Counter,
    /// TLS handshakes that failed (a certificate refused, not TLS at all).
    pub tls_failures: Counter,
}

/// Accepted connections of `listener` within `limits`, with TCP_NODELAY and keepalive;
/// with `tls`, each once its TLS handshake finished. Accepting stops when the stream is
/// dropped.
pub fn bounded_incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
    metrics: ConnectionMetrics,
    tls: Option<ServerTls>,
) -> impl Stream<Item = Result<BoundedConnection, io::Error>> {
    let (ready, taken) = mpsc::channel(READY_QUEUE);
    tokio::spawn(accept(listener, limits, metrics, tls, ready));
    ReceiverStream::new(taken)
}

/// Accepts until the server drops its end of `ready`.
async fn accept(
    listener: TcpListener,
    limits: ConnectionLimits,
    metrics: ConnectionMetrics,
    tls: Option<ServerTls>,
    ready: mpsc::Sender<io::Result<BoundedConnection>>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut incoming = std::pin::pin!(crate::transport::incoming(listener));
    loop {
        let accepted = tokio::select! {
            () = ready.closed() => return,
            next = incoming.next() => match next {
                Some(accepted) => accepted,
                None => return,
            },
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(e) => {
                if ready.send(Err(e)).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.refused.inc();
            tracing::warn!(
                max = limits.max_connections,
                peer = ?stream.peer_addr().ok(),
                "connection refused: --max-connections reached"
            );
            continue;
        };
        let place = Place::take(permit, &metrics);
        let deadline = Instant::now() + limits.handshake_timeout;
        match &tls {
            None => {
                let info = PeerInfo {
                    tcp: stream.connect_info(),
                    certificates: None,
                };
                let conn = BoundedConnection::new(ServerIo::Plain(stream), info, deadline, place);
                if ready.send(Ok(conn)).await.is_err() {
                    return;
                }
            }
            Some(tls) => {
                let handshake = handshake(stream, tls.acceptor(), deadline, place);
                let ready = ready.clone();
                tokio::spawn(async move {
                    if let Some(conn) = handshake.await {
                        let _ = ready.send(Ok(conn)).await;
                    }
                });
            }
        }
    }
}

/// The connection after its TLS handshake, or `None` (logged and counted) when the
/// handshake failed or did not finish by `deadline`.
async fn handshake(
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    deadline: Instant,
    place: Place,
) -> Option<BoundedConnection> {
    let tcp = stream.connect_info();
    let peer = tcp.remote_addr();
    let stream = BufReader::with_capacity(SOCKET_READ_BUFFER, stream);
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(mut tls)) => {
            tls.get_mut().1.set_buffer_limit(Some(SEND_BUFFER));
            let certificates = tls
                .get_ref()
                .1
                .peer_certificates()
                .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect());
            let info = PeerInfo { tcp, certificates };
            Some(BoundedConnection::new(
                ServerIo::Tls(Box::new(tls)),
                info,
                deadline,
                place,
            ))
        }
        Ok(Err(e)) => {
            place.metrics.tls_failures.inc();
            log_refused(peer, &e);
            None
        }
        Err(_) => {
            place.metrics.handshake_timeouts.inc();
            tracing::debug!(
                ?peer,
                "TLS handshake not finished in time: connection closed"
            );
            None
        }
    }
}

/// Logs a refused TLS handshake: a certificate problem at warn (someone's setup is wrong),
/// anything else (a scanner, a plaintext client) at debug.
fn log_refused(peer: Option<SocketAddr>, error: &io::Error) {
    let rustls_error = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<tokio_rustls::rustls::Error>());
    match rustls_error {
        Some(
            e @ (tokio_rustls::rustls::Error::InvalidCertificate(_)
            | tokio_rustls::rustls::Error::NoCertificatesPresented),
        ) => {
            tracing::warn!(?peer, error = %e, "TLS handshake refused")
        }
        _ => tracing::debug!(?peer, %error, "TLS handshake failed"),
    }
}

/// A connection's place under the cap, counted in `open` while held.
struct Place {
    metrics: ConnectionMetrics,
    _permit: OwnedSemaphorePermit,
}

impl Place {
    fn take(permit: OwnedSemaphorePermit, metrics: &ConnectionMetrics) -> Self {
        metrics.open.inc();
        Self {
            metrics: metrics.clone(),
            _permit: permit,
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.metrics.open.dec();
    }
}

/// The byte stream of an accepted connection.
enum ServerIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<BufReader<TcpStream>>>),
}

/// An accepted connection that holds its place under the cap until dropped and fails its
/// reads once the handshake deadline passes without HTTP/2 started.
pub struct BoundedConnection {
    inner: ServerIo,
    info: PeerInfo,
    /// Running until the handshake bytes arrived; `None` after.
    handshake: Option<Pin<Box<Sleep>>>,
    received: usize,
    place: Place,
}

impl BoundedConnection {
    fn new(inner: ServerIo, info: PeerInfo, deadline: Instant, place: Place) -> Self {
        Self {
            inner,
            info,
            handshake: Some(Box::pin(tokio::time::sleep_until(deadline))),
            received: 0,
            place,
        }
    }
}

impl Connected for BoundedConnection {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

/// Forwards an I/O call to whichever stream the connection has.
macro_rules! io {
    ($self:ident, $s:ident => $call:expr) => {
        match &mut $self.inner {
            ServerIo::Plain($s) => {
                let $s = Pin::new($s);
                $call
            }
            ServerIo::Tls($s) => {
                let $s = Pin::new(&mut **$s);
                $call
            }
        }
    };
}

impl AsyncRead for BoundedConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let read = io!(this, s => s.poll_read(cx, buf));
        let got = buf.filled().len() - before;
        let Some(deadline) = this.handshake.as_mut() else {
            return read;
        };
        this.received += got;
        if this.received >= HANDSHAKE_BYTES {
            this.handshake = None;
            return read;
        }
        if read.is_pending() && deadline.as_mut().poll(cx).is_ready() {
            this.place.metrics.handshake_timeouts.inc();
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the connection did not start HTTP/2 in time",
            )));
        }
        read
    }
}

impl AsyncWrite for BoundedConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        io!(self, s => s.poll_write(cx, buf))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        io!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        io!(self, s => s.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        io!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            ServerIo::Plain(s) => s.is_write_vectored(),
            ServerIo::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A listener whose accepted connections are read until they fail or end.
    async fn serve(limits: ConnectionLimits) -> (std::net::SocketAddr, ConnectionMetrics) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let metrics = ConnectionMetrics::default();
        let mut incoming = Box::pin(bounded_incoming(listener, limits, metrics.clone(), None));
        tokio::spawn(async move {
            while let Some(Ok(mut conn)) = incoming.next().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = conn.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                });
            }
        });
        (address, metrics)
    }

    /// Whether the server closed `socket` within two seconds.
    async fn closed(socket: &mut TcpStream) -> bool {
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(2), socket.read(&mut buf)).await;
        matches!(read, Ok(Ok(0)) | Ok(Err(_)))
    }

    #[tokio::test]
    async fn a_silent_or_half_started_connection_is_closed_at_the_deadline() {
        let limits = ConnectionLimits {
            max_connections: 8,
            handshake_timeout: Duration::from_millis(200),
        };
        let (address, metrics) = serve(limits).await;
        let mut silent = TcpStream::connect(address).await.expect("connect");
        let mut half = TcpStream::connect(address).await.expect("connect");
        half.write_all(b"PRI * HTTP/2.0\r\n")
            .await
            .expect("half a preface");
        let mut started = TcpStream::connect(address).await.expect("connect");
        started
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .expect("preface and settings");
        assert!(closed(&mut silent).await, "a silent connection is closed");
        assert!(closed(&mut half).await, "a half preface is closed");
        assert!(!closed(&mut started).await, "a started connection stays");
        assert_eq!(metrics.handshake_timeouts.get(), 2);
        assert_eq!(metrics.open.get(), 1);
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_closed_at_once() {
        let limits = ConnectionLimits {
            max_connections: 2,
            handshake_timeout: Duration::from_secs(60),
        };
        let (address, metrics) = serve(limits).await;
        let mut kept = Vec::new();
        for _ in 0..2 {
            kept.push(TcpStream::connect(address).await.expect("connect"));
        }
        let mut third = TcpStream::connect(address).await.expect("connect");
        assert!(closed(&mut third).await, "the third is over the cap");
        assert_eq!(metrics.refused.get(), 1);
        drop(kept.pop());
        // The freed place is taken by the next connection.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut next = TcpStream::connect(address).await.expect("connect");
        assert!(!closed(&mut next).await, "a place was free again");
    }

    #[tokio::test]
    async fn a_silent_client_does_not_hold_up_another_tls_handshake() {
        strata_proto::tls::install_default_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let made =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        let cert = dir.path().join("srv.pem");
        let key = dir.path().join("srv.key");
        std::fs::write(&cert, made.cert.pem()).expect("cert");
        std::fs::write(&key, made.signing_key.serialize_pem()).expect("key");
        let server = ServerTls::load(&strata_proto::tls::TlsFiles {
            ca: None,
            cert: Some(cert.clone()),
            key: Some(key),
        })
        .expect("server TLS");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let limits = ConnectionLimits {
            max_connections: 8,
            handshake_timeout: Duration::from_secs(60),
        };
        let metrics = ConnectionMetrics::default();
        let mut incoming = Box::pin(bounded_incoming(listener, limits, metrics.clone(), server));
        // Holds its place and never says a word.
        let _silent = TcpStream::connect(address).await.expect("connect");
        let client = strata_proto::tls::ClientTls::load(&strata_proto::tls::TlsFiles {
            ca: Some(cert),
            ..Default::default()
        })
        .expect("client TLS")
        .expect("TLS");
        let handshake = tokio::spawn(async move {
            let tcp = TcpStream::connect(address).await.expect("connect");
            let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
            tokio_rustls::TlsConnector::from(client.config())
                .connect(name, tcp)
                .await
                .map(|_| ())
        });
        let accepted = tokio::time::timeout(Duration::from_secs(5), incoming.next()).await;
        assert!(
            matches!(accepted, Ok(Some(Ok(_)))),
            "the second client's handshake finished while the first stayed silent"
        );
        let done = tokio::time::timeout(Duration::from_secs(5), handshake).await;
        assert!(matches!(done, Ok(Ok(Ok(())))), "client side: {done:?}");
        assert_eq!(metrics.open.get(), 2);
        assert_eq!(metrics.tls_failures.get(), 0);
    }
}

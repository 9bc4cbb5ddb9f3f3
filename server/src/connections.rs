//! Bounds on the connections a server accepts: at most `--max-connections` open at once
//! (one over the cap is closed at once), and a handshake deadline (a connection that has not
//! sent the HTTP/2 preface and the header of its SETTINGS frame by then is closed) — so idle
//! or half-open sockets cannot exhaust the process's file descriptors.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Default cap on open connections of a server.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default time a new connection has to start HTTP/2.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of a started HTTP/2 connection: the client preface (24) and the header of the
/// SETTINGS frame that must follow it (9).
const HANDSHAKE_BYTES: usize = 24 + 9;

/// How many connections a server keeps and how long a new one may take to start HTTP/2.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Time from accept to the HTTP/2 preface and SETTINGS header.
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
}

/// Accepted connections of `listener` within `limits`, with TCP_NODELAY and keepalive.
pub fn bounded_incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
    metrics: ConnectionMetrics,
) -> impl Stream<Item = Result<BoundedConnection, io::Error>> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    crate::transport::incoming(listener).filter_map(move |accepted| {
        let stream = match accepted {
            Ok(stream) => stream,
            Err(e) => return std::future::ready(Some(Err(e))),
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.refused.inc();
            tracing::warn!(
                max = limits.max_connections,
                peer = ?stream.peer_addr().ok(),
                "connection refused: --max-connections reached"
            );
            return std::future::ready(None);
        };
        metrics.open.inc();
        std::future::ready(Some(Ok(BoundedConnection {
            inner: stream,
            handshake: Some(Box::pin(tokio::time::sleep(limits.handshake_timeout))),
            received: 0,
            metrics: metrics.clone(),
            _permit: permit,
        })))
    })
}

/// An accepted connection that holds its place under the cap until dropped and fails its
/// reads once the handshake deadline passes without HTTP/2 started.
pub struct BoundedConnection {
    inner: TcpStream,
    /// Running until the handshake bytes arrived; `None` after.
    handshake: Option<Pin<Box<Sleep>>>,
    received: usize,
    metrics: ConnectionMetrics,
    _permit: OwnedSemaphorePermit,
}

impl Drop for BoundedConnection {
    fn drop(&mut self) {
        self.metrics.open.dec();
    }
}

impl Connected for BoundedConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for BoundedConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        let got = buf.filled().len() - before;
        let this = &mut *self;
        let Some(deadline) = this.handshake.as_mut() else {
            return read;
        };
        this.received += got;
        if this.received >= HANDSHAKE_BYTES {
            this.handshake = None;
            return read;
        }
        if read.is_pending() && deadline.as_mut().poll(cx).is_ready() {
            this.metrics.handshake_timeouts.inc();
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
        Pin::new(&mut self.inner).poll_write(cx, buf)
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
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
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
        let mut incoming = Box::pin(bounded_incoming(listener, limits, metrics.clone()));
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
}

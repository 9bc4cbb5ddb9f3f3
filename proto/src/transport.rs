//! Transport settings and metadata keys shared by servers and clients: one definition of
//! each, so both ends of a connection agree on windows, frames, limits and status metadata.

use std::time::Duration;

use http::uri::{InvalidUri, Uri};
use tonic::transport::{Channel, Endpoint};

use crate::tls::{ClientTls, TlsConnector};

/// gRPC metadata key carrying a node's current epoch on `FAILED_PRECONDITION` (stale
/// routing): the client refreshes its cluster map and sends again.
pub const EPOCH_METADATA: &str = "strata-epoch";
/// gRPC metadata key carrying the leader's address on a standby coordinator's
/// `UNAVAILABLE` refusal: the caller sends the request there instead.
pub const LEADER_METADATA: &str = "strata-leader";

/// gRPC metadata key carrying where a client runs: its labels as `key=value` pairs joined
/// by commas, keys sorted (e.g. `rack=r1,zone=z1`). Shard servers count data-path traffic
/// by it.
pub const CLIENT_LABELS_METADATA: &str = "strata-client-labels";

/// HTTP/2 stream and connection flow-control windows (explicit: disables adaptive windows).
pub const WINDOW_BYTES: u32 = 16 << 20;
/// HTTP/2 maximum frame size: the largest gain measured for row payloads.
pub const MAX_FRAME_BYTES: u32 = (1 << 20) - 1;
/// Default largest gRPC message, both directions.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;
/// How long a client waits for a TCP connection before the call counts as never sent.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 keep-alive ping interval and the wait for its answer.
pub const KEEPALIVE: Duration = Duration::from_secs(20);

/// An endpoint for `address` (`host:port`, or a URI with its scheme) with strata's HTTP/2
/// settings: windows, frame size, no Nagle delay, connect timeout and keep-alive.
pub fn endpoint(address: &str) -> Result<Endpoint, InvalidUri> {
    endpoint_with(address, None)
}

/// As [`endpoint`]; with `tls`, a bare `host:port` gets the `https` scheme. Open it with
/// [`connect_lazy`] or [`connect`], which dial through TLS when `tls` is given.
pub fn endpoint_with(address: &str, tls: Option<&ClientTls>) -> Result<Endpoint, InvalidUri> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let uri: Uri = if address.contains("://") {
        address.parse()?
    } else {
        format!("{scheme}://{address}").parse()?
    };
    Ok(Endpoint::from(uri)
        .initial_stream_window_size(WINDOW_BYTES)
        .initial_connection_window_size(WINDOW_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .tcp_nodelay(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEPALIVE)
        .keep_alive_timeout(KEEPALIVE))
}

/// A channel of `endpoint` that connects on first use, through TLS with `tls`.
pub fn connect_lazy(endpoint: &Endpoint, tls: Option<&ClientTls>) -> Channel {
    match tls {
        Some(tls) => endpoint.connect_with_connector_lazy(TlsConnector::new(tls.clone())),
        None => endpoint.connect_lazy(),
    }
}

/// A channel of `endpoint` connected now, through TLS with `tls`.
pub async fn connect(
    endpoint: &Endpoint,
    tls: Option<&ClientTls>,
) -> Result<Channel, tonic::transport::Error> {
    match tls {
        Some(tls) => {
            endpoint
                .connect_with_connector(TlsConnector::new(tls.clone()))
                .await
        }
        None => endpoint.connect().await,
    }
}

#[cfg(test)]
mod tests {
    use super::endpoint;

    #[test]
    fn endpoint_accepts_host_port_and_uri() {
        assert_eq!(
            endpoint("127.0.0.1:7070").map(|e| e.uri().to_string()).ok(),
            Some("http://127.0.0.1:7070/".to_string())
        );
        assert_eq!(
            endpoint("https://node:1").map(|e| e.uri().to_string()).ok(),
            Some("https://node:1/".to_string())
        );
        assert!(endpoint("not a uri").is_err());
    }
}

//! gRPC server transport settings, tuned for large packed payloads.

use std::time::Duration;

use http::{HeaderValue, Response};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tower::layer::util::{Identity, Stack};
use tower::util::MapResponseLayer;

pub use strata_proto::transport::{
    MAX_FRAME_BYTES, MAX_MESSAGE_BYTES as DEFAULT_MAX_MESSAGE_BYTES, WINDOW_BYTES,
};

/// The layer that rewrites oversized-message refusals (see [`oversize_is_resource_exhausted`]).
pub type OversizeLayer<B> = Stack<MapResponseLayer<fn(Response<B>) -> Response<B>>, Identity>;

/// A tonic server builder with strata's HTTP/2 settings; requests over the message size
/// limit are answered `RESOURCE_EXHAUSTED`, as DESIGN.md names it.
pub fn server_builder<B>() -> Server<OversizeLayer<B>> {
    Server::builder()
        .layer(MapResponseLayer::new(
            oversize_is_resource_exhausted::<B> as fn(Response<B>) -> Response<B>,
        ))
        .initial_stream_window_size(WINDOW_BYTES)
        .initial_connection_window_size(WINDOW_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
}

/// tonic refuses a request over `max_decoding_message_size` with `OUT_OF_RANGE`; strata's
/// contract says `RESOURCE_EXHAUSTED` (8). Unary errors are trailers-only responses, so the
/// status is in the response headers (message percent-encoded) and can be rewritten here.
pub fn oversize_is_resource_exhausted<B>(mut response: Response<B>) -> Response<B> {
    let headers = response.headers_mut();
    let oversized = headers.get("grpc-status").is_some_and(|s| s == "11")
        && headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| m.replace("%20", " ").contains("message length too large"));
    if oversized {
        headers.insert("grpc-status", HeaderValue::from_static("8"));
    }
    response
}

/// Accepted connections of an already-bound listener, with TCP_NODELAY: without it, small
/// responses wait for delayed ACKs (~40 ms tails). The builder's own `tcp_nodelay` only
/// applies to listeners tonic binds itself.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)))
}

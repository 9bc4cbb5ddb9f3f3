//! gRPC server transport settings, tuned for large packed payloads.

use std::time::Duration;

use tonic::transport::Server;

/// HTTP/2 stream and connection flow-control windows (explicit: disables adaptive windows).
pub const WINDOW_BYTES: u32 = 16 << 20;
/// HTTP/2 maximum frame size: the largest gain measured for row payloads.
pub const MAX_FRAME_BYTES: u32 = (1 << 20) - 1;
/// Default largest gRPC message, both directions.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 << 20;

/// A tonic server builder with strata's HTTP/2 settings.
pub fn server_builder() -> Server {
    Server::builder()
        .initial_stream_window_size(WINDOW_BYTES)
        .initial_connection_window_size(WINDOW_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
}

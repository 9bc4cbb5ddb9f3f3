//! Calls with hand-framed bodies over a tonic `Channel`, with the status handling of
//! tonic's client: the request body is sent as it is and the response message is read
//! from the frames it arrived in.

use http::header::{CONTENT_TYPE, TE};
use http::{HeaderValue, Method, StatusCode, Uri, Version};
use tonic::body::Body;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tower::{Service, ServiceExt};

use super::{read_unary, ChunkBody, Chunks, MessageWriter, ReadError};
use crate::transport::CLIENT_LABELS_METADATA;

/// Sends `message` to `path` over `channel` and returns the response message; `labels`,
/// when given, goes along as the client's location (`strata-client-labels`).
pub async fn unary_call(
    channel: &Channel,
    path: &'static str,
    message: MessageWriter,
    max_message_bytes: usize,
    labels: Option<&HeaderValue>,
) -> Result<Chunks, Status> {
    if message.len() > max_message_bytes {
        return Err(Status::resource_exhausted(format!(
            "request of {} bytes is over the message limit of {max_message_bytes} bytes",
            message.len()
        )));
    }
    let chunks = message
        .finish()
        .map_err(|e| Status::resource_exhausted(e.to_string()))?;
    let mut request = http::Request::new(Body::new(ChunkBody::new(chunks)));
    if let Some(labels) = labels {
        request
            .headers_mut()
            .insert(CLIENT_LABELS_METADATA, labels.clone());
    }
    send(channel, path, request, max_message_bytes).await
}

/// Sends `body` (one or more length-prefixed messages) to `path` over `channel` and
/// returns the one response message.
pub async fn call(
    channel: &Channel,
    path: &'static str,
    body: Body,
    max_message_bytes: usize,
) -> Result<Chunks, Status> {
    send(channel, path, http::Request::new(body), max_message_bytes).await
}

/// Sends `request` (its body and any headers of its own) to `path` as a gRPC call.
async fn send(
    channel: &Channel,
    path: &'static str,
    mut request: http::Request<Body>,
    max_message_bytes: usize,
) -> Result<Chunks, Status> {
    *request.method_mut() = Method::POST;
    *request.uri_mut() = Uri::from_static(path);
    *request.version_mut() = Version::HTTP_2;
    let headers = request.headers_mut();
    headers.insert(TE, HeaderValue::from_static("trailers"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));

    let mut channel = channel.clone();
    let response = channel
        .ready()
        .await
        .map_err(|e| Status::from_error(Box::new(e)))?
        .call(request)
        .await
        .map_err(|e| Status::from_error(Box::new(e)))?;

    // A trailers-only response carries the status in its headers.
    let header_status = Status::from_header_map(response.headers());
    if let Some(status) = &header_status {
        if status.code() != Code::Ok {
            return Err(status.clone());
        }
    }
    let http_status = response.status();
    let mut body = response.into_body();
    let received = read_unary(&mut body, max_message_bytes)
        .await
        .map_err(|e| match e {
            ReadError::Body(status) => status,
            ReadError::TooLarge { .. } => Status::out_of_range(e.to_string()),
            ReadError::Compressed => Status::internal(e.to_string()),
            ReadError::Incomplete { .. } | ReadError::Extra => Status::internal(e.to_string()),
        })?;
    match received.trailers.as_ref().and_then(Status::from_header_map) {
        Some(status) if status.code() != Code::Ok => return Err(status),
        Some(_) => {}
        None if header_status.is_some() => {}
        None => return Err(missing_status(http_status)),
    }
    received
        .message
        .ok_or_else(|| Status::internal("the response carried no message"))
}

/// The status of a response without `grpc-status`, from its HTTP status (gRPC's mapping).
fn missing_status(http: StatusCode) -> Status {
    let code = match http {
        StatusCode::BAD_REQUEST => Code::Internal,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::Unimplemented,
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
        // A 200 without a status may have been cut short after the call took effect.
        _ => Code::Unknown,
    };
    Status::new(code, format!("response without grpc-status (HTTP {http})"))
}

//! A generated tonic service with some methods served by hand-framed handlers
//! (`strata_proto::wire`): their payloads are read from the frames they arrived in and
//! written from their own buffers, with no codec copies. The bytes on the wire are the
//! same; calls with a message encoding other than identity, and every other method, go
//! to the generated service.

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use strata_proto::wire::{self, Chunks, MessageWriter, ReadError};
use tonic::body::Body;
use tonic::codegen::BoxFuture;
use tonic::server::NamedService;
use tonic::Status;
use tower::Service;

/// The answer to one call.
pub type Respond = BoxFuture<http::Response<Body>, Infallible>;

/// `generated` with some methods served by `handler`, which is given every call with an
/// identity message encoding and passes the ones it does not serve to `generated`.
#[derive(Clone)]
pub struct HandFramed<S, H> {
    generated: S,
    handler: H,
}

impl<S, H> HandFramed<S, H> {
    /// Routes calls to `handler` first, then to `generated`.
    pub fn new(generated: S, handler: H) -> Self {
        Self { generated, handler }
    }
}

impl<S: NamedService, H> NamedService for HandFramed<S, H> {
    const NAME: &'static str = S::NAME;
}

impl<S, H> Service<http::Request<Body>> for HandFramed<S, H>
where
    S: Service<
        http::Request<Body>,
        Response = http::Response<Body>,
        Error = Infallible,
        Future = BoxFuture<http::Response<Body>, Infallible>,
    >,
    H: Fn(http::Request<Body>, &mut S) -> Respond,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.generated.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let identity = req
            .headers()
            .get("grpc-encoding")
            .is_none_or(|e| e == "identity");
        if !identity {
            return self.generated.call(req);
        }
        (self.handler)(req, &mut self.generated)
    }
}

/// The status tonic's server would answer for a body it cannot read.
pub fn read_status(e: ReadError<Status>) -> Status {
    match e {
        ReadError::Body(status) => status,
        ReadError::TooLarge { .. } => Status::resource_exhausted(e.to_string()),
        // The sender's framing is wrong: its fault, not strata's.
        ReadError::Compressed | ReadError::Incomplete { .. } | ReadError::Extra => {
            Status::invalid_argument(e.to_string())
        }
    }
}

/// The one message of a unary request.
pub async fn receive_unary(mut body: Body, max: usize) -> Result<Chunks, Status> {
    wire::read_unary(&mut body, max)
        .await
        .map_err(read_status)?
        .message
        .ok_or_else(|| Status::invalid_argument("missing request message"))
}

/// The status for a message that does not decode.
pub fn malformed(message: &'static str) -> impl Fn(wire::WireError) -> Status {
    move |e| Status::invalid_argument(format!("malformed {message}: {e}"))
}

/// A unary response: the message then `grpc-status: 0`, or the error as trailers only.
pub fn respond(result: Result<MessageWriter, Status>, max: usize) -> http::Response<Body> {
    let chunks = result.and_then(|message| {
        if message.len() > max {
            return Err(Status::resource_exhausted(format!(
                "response of {} bytes is over the message limit of {max} bytes",
                message.len()
            )));
        }
        message
            .finish()
            .map_err(|e| Status::resource_exhausted(e.to_string()))
    });
    match chunks {
        Ok(chunks) => ok_response(chunks),
        Err(status) => status.into_http(),
    }
}

fn ok_response(chunks: Vec<Bytes>) -> http::Response<Body> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = wire::ChunkBody::with_trailers(chunks, Some(trailers));
    let mut response = http::Response::new(Body::new(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

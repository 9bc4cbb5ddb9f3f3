//! `strata.v1.Parameter` as served: `Pull` and `Push` read and write their messages by
//! hand (`strata_proto::wire`: the row payloads are neither gathered into a decode buffer
//! nor copied into an encode buffer), every other method and any call with a message
//! encoding other than identity go through tonic's generated server. The bytes on the
//! wire are the same either way.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use strata_proto::v1::parameter_server::ParameterServer;
use strata_proto::wire::{
    self, ChunkBody, Chunks, MessageWriter, PullRequestView, PushRequestView, ReadError,
};
use tonic::body::Body;
use tonic::codegen::BoxFuture;
use tonic::server::NamedService;
use tonic::Status;
use tower::Service;

use super::status::from_engine;
use super::ParameterService;
use crate::engine::payload::{f32s_from_chunks, ids_from_chunks};

/// The Parameter service with the hand-framed row methods.
#[derive(Clone)]
pub struct ParameterRoutes {
    service: Arc<ParameterService>,
    generated: ParameterServer<ParameterService>,
    max_message_bytes: usize,
}

impl ParameterRoutes {
    /// Serves `service`, refusing messages over `max_message_bytes` in either direction.
    pub fn new(service: ParameterService, max_message_bytes: usize) -> Self {
        let service = Arc::new(service);
        let generated = ParameterServer::from_arc(service.clone())
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes);
        Self {
            service,
            generated,
            max_message_bytes,
        }
    }
}

impl NamedService for ParameterRoutes {
    const NAME: &'static str = <ParameterServer<ParameterService> as NamedService>::NAME;
}

impl Service<http::Request<Body>> for ParameterRoutes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let identity = req
            .headers()
            .get("grpc-encoding")
            .is_none_or(|e| e == "identity");
        let service = self.service.clone();
        let max = self.max_message_bytes;
        match req.uri().path() {
            wire::PULL_PATH if identity => Box::pin(async move {
                let start = Instant::now();
                let result = pull(&service, req.into_body(), max).await;
                service.metrics().record_rpc("Pull", start, &result);
                Ok(respond(result, max))
            }),
            wire::PUSH_PATH if identity => Box::pin(async move {
                let start = Instant::now();
                let result = push(&service, req.into_body(), max).await;
                service.metrics().record_rpc("Push", start, &result);
                Ok(respond(result, max))
            }),
            _ => self.generated.call(req),
        }
    }
}

async fn pull(service: &ParameterService, body: Body, max: usize) -> Result<MessageWriter, Status> {
    let message = receive(body, max).await?;
    let view = PullRequestView::parse(&message).map_err(malformed("PullRequest"))?;
    let ids = ids_from_chunks(&message, view.ids).map_err(from_engine)?;
    let (values, dim) = service
        .pull_rows(&view.table, &ids, view.epoch)
        .map_err(from_engine)?;
    let mut response = MessageWriter::new();
    response.bytes(1, values).uint(2, u64::from(dim));
    Ok(response)
}

async fn push(service: &ParameterService, body: Body, max: usize) -> Result<MessageWriter, Status> {
    let message = receive(body, max).await?;
    let view = PushRequestView::parse(&message).map_err(malformed("PushRequest"))?;
    let ids = ids_from_chunks(&message, view.ids).map_err(from_engine)?;
    let applied = service
        .push_rows(&view.table, &ids, view.epoch, |dim| {
            f32s_from_chunks("grads", &message, view.grads.clone(), 4 * dim)
        })
        .map_err(from_engine)?;
    let mut response = MessageWriter::new();
    response.uint(1, applied);
    Ok(response)
}

/// The request's one message, with tonic's codes for what tonic would refuse.
async fn receive(mut body: Body, max: usize) -> Result<Chunks, Status> {
    let received = wire::read_unary(&mut body, max)
        .await
        .map_err(|e| match e {
            ReadError::Body(status) => status,
            ReadError::TooLarge { .. } => Status::resource_exhausted(e.to_string()),
            ReadError::Compressed => Status::unimplemented(e.to_string()),
            ReadError::Incomplete { .. } | ReadError::Extra => Status::internal(e.to_string()),
        })?;
    received
        .message
        .ok_or_else(|| Status::internal("missing request message"))
}

fn malformed(message: &'static str) -> impl Fn(wire::WireError) -> Status {
    move |e| Status::internal(format!("failed to decode {message}: {e}"))
}

/// A unary response: the message then `grpc-status: 0`, or the error as trailers only.
fn respond(result: Result<MessageWriter, Status>, max: usize) -> http::Response<Body> {
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
    let mut response =
        http::Response::new(Body::new(ChunkBody::with_trailers(chunks, Some(trailers))));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

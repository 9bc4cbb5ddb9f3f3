//! `strata.v1.Parameter` as served: `Pull` and `Push` hand-framed (the row payloads are
//! neither gathered into a decode buffer nor copied into an encode buffer), the dense
//! methods through tonic's generated server.

use std::sync::Arc;
use std::time::Instant;

use strata_engine::wal::Origin;
use strata_proto::transport::CLIENT_LABELS_METADATA;
use strata_proto::v1::parameter_server::ParameterServer;
use strata_proto::wire::{self, MessageWriter, PullRequestView, PushRequestView};
use tonic::body::Body;
use tonic::Status;
use tower::Service;

use super::hand_framed::{malformed, receive_unary, respond, HandFramed, Respond};
use super::status::{from_engine, from_payload, from_request};
use super::ParameterService;
use strata_proto::wire::payload::{f32s_from_chunks, ids_from_chunks};

/// The Parameter service with hand-framed `Pull` and `Push`, refusing messages over
/// `max_message_bytes` in either direction.
pub fn parameter_routes(
    service: ParameterService,
    max_message_bytes: usize,
) -> HandFramed<
    ParameterServer<ParameterService>,
    impl Fn(http::Request<Body>, &mut ParameterServer<ParameterService>) -> Respond + Clone,
> {
    let service = Arc::new(service);
    let generated = ParameterServer::from_arc(service.clone())
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    let max = max_message_bytes;
    HandFramed::new(
        generated,
        move |req: http::Request<Body>,
              generated: &mut ParameterServer<ParameterService>|
              -> Respond {
            let service = service.clone();
            match req.uri().path() {
                wire::PULL_PATH => Box::pin(async move {
                    let start = Instant::now();
                    let result = match service.location(req.headers().get(CLIENT_LABELS_METADATA)) {
                        Ok(location) => pull(&service, req.into_body(), max, location).await,
                        Err(status) => Err(status),
                    };
                    service.metrics().record_rpc("Pull", start, &result);
                    Ok(respond(result, max))
                }),
                wire::PUSH_PATH => Box::pin(async move {
                    let start = Instant::now();
                    let result = match service.location(req.headers().get(CLIENT_LABELS_METADATA)) {
                        Ok(location) => push(&service, req.into_body(), max, location).await,
                        Err(status) => Err(status),
                    };
                    service.metrics().record_rpc("Push", start, &result);
                    Ok(respond(result, max))
                }),
                _ => generated.call(req),
            }
        },
    )
}

async fn pull(
    service: &ParameterService,
    body: Body,
    max: usize,
    location: usize,
) -> Result<MessageWriter, Status> {
    let message = receive_unary(body, max).await?;
    let view = PullRequestView::parse(&message).map_err(malformed("PullRequest"))?;
    let ids = ids_from_chunks(&message, view.ids).map_err(from_payload)?;
    let (values, dim) = service
        .pull_rows(&view.table, &ids, view.epoch, location)
        .map_err(from_engine)?;
    Ok(wire::pull_response(values, dim))
}

async fn push(
    service: &ParameterService,
    body: Body,
    max: usize,
    location: usize,
) -> Result<MessageWriter, Status> {
    let message = receive_unary(body, max).await?;
    let view = PushRequestView::parse(&message).map_err(malformed("PushRequest"))?;
    let ids = ids_from_chunks(&message, view.ids).map_err(from_payload)?;
    let origin = Origin {
        client: &view.client_id,
        seq: view.seq,
        acked_below: view.acked_below,
        resend_after_ms: view.resend_after_ms,
    };
    let pushed = service
        .push_rows(&view.table, &ids, view.epoch, location, origin, |dim| {
            f32s_from_chunks("grads", &message, view.grads.clone(), 4 * dim)
        })
        .map_err(from_request)?;
    service.logged(pushed.lsn).await?;
    Ok(wire::push_response(pushed.rows))
}

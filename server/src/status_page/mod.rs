//! The live status page on `--http-listen`: `GET /` (one HTML page, its script and style,
//! embedded in the binary) and `GET /api/status` (the JSON of `strata status -o json`).
//!
//! Read-only: the handlers only call the coordinator's own `Status` code path and translate
//! the reply with [`strata_proto::status_json`], the same function the CLI prints with.

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::service::CoordinatorService;
use strata_cluster::coordinator::unix_ms;

const INDEX_HTML: &str = include_str!("index.html");
const STATUS_JS: &str = include_str!("status.js");
const STATUS_CSS: &str = include_str!("status.css");

/// The page loads nothing but its own script, style and JSON.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Serves the status page of `service` on `listener` until `shutdown` resolves.
pub async fn serve_status_page(
    listener: TcpListener,
    service: Arc<CoordinatorService>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(service))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The page's routes over `service`.
fn router(service: Arc<CoordinatorService>) -> Router {
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
        .route(
            "/status.js",
            get(|| asset("text/javascript; charset=utf-8", STATUS_JS)),
        )
        .route(
            "/status.css",
            get(|| asset("text/css; charset=utf-8", STATUS_CSS)),
        )
        .route("/api/status", get(api_status))
        .with_state(service)
}

/// An embedded file with its type and the page's security headers.
async fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response();
    secure(&mut response);
    response
}

/// `GET /api/status`: the status JSON; a coordinator that cannot answer (a standby, say)
/// gets 503 with `{"error": .., "code": ..}`.
async fn api_status(State(service): State<Arc<CoordinatorService>>) -> Response {
    let (code, body) = match service.status_reply().await {
        Ok(reply) => (
            StatusCode::OK,
            strata_proto::status_json::status_json(&reply, unix_ms()),
        ),
        Err(status) => (
            http_code(status.code()),
            serde_json::json!({
                "error": status.message(),
                "code": format!("{:?}", status.code()),
            }),
        ),
    };
    let mut response = (
        code,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response();
    secure(&mut response);
    response
}

/// The HTTP status of a failed `Status` call: the caller's fault never (it sends nothing),
/// so "not now" (503) for what a retry may cure, else 500.
fn http_code(code: tonic::Code) -> StatusCode {
    match code {
        tonic::Code::Unavailable
        | tonic::Code::DeadlineExceeded
        | tonic::Code::FailedPrecondition
        | tonic::Code::ResourceExhausted => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Adds the headers that keep the page to its own content.
fn secure(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::leader::LeaderSlot;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn standby() -> Router {
        router(Arc::new(CoordinatorService::with_slot(Arc::new(
            LeaderSlot::standby(),
        ))))
    }

    async fn get(path: &str) -> (StatusCode, String, String) {
        let response = standby()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("router answers");
        let code = response.status();
        let ct = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (code, ct, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn the_page_and_its_assets_are_served_from_the_binary() {
        let (code, ct, body) = get("/").await;
        assert_eq!(code, StatusCode::OK);
        assert!(ct.starts_with("text/html"), "{ct}");
        assert!(body.contains("status.js") && body.contains("status.css"));
        let (code, ct, body) = get("/status.js").await;
        assert_eq!(
            (code, ct.starts_with("text/javascript")),
            (StatusCode::OK, true)
        );
        assert!(body.contains("api/status"));
        let (code, ct, _) = get("/status.css").await;
        assert_eq!((code, ct.starts_with("text/css")), (StatusCode::OK, true));
        assert_eq!(get("/nothing-here").await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_coordinator_that_does_not_lead_answers_503_with_the_reason() {
        let (code, ct, body) = get("/api/status").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert!(!v["error"].as_str().unwrap_or_default().is_empty(), "{v}");
        assert_eq!(v["code"], "Unavailable");
    }

    #[test]
    fn the_script_writes_no_markup_from_strings() {
        for forbidden in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(
                !STATUS_JS.contains(forbidden),
                "status.js uses {forbidden}: names in the status are user input"
            );
        }
    }
}

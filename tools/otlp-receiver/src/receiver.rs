//! The HTTP side: `POST /v1/traces` in, `POST /api/v2/spans` out.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::to_zipkin;

/// How long Zipkin may take to accept one export's spans.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts OTLP/HTTP trace exports and forwards them to a Zipkin server;
/// see the crate documentation.
#[derive(Debug, Clone)]
pub struct OtlpReceiver {
    zipkin: String,
    client: reqwest::Client,
}

impl OtlpReceiver {
    /// A receiver forwarding to the Zipkin at `zipkin_url` (`http://host:port`).
    pub fn new(zipkin_url: &str) -> Self {
        OtlpReceiver {
            zipkin: zipkin_url.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
        }
    }

    /// The routes: `POST /v1/traces`, OTLP's path for trace exports.
    pub fn router(self) -> Router {
        Router::new()
            .route("/v1/traces", post(receive))
            .with_state(self)
    }

    /// Serves [`router`](Self::router) on `listener` until `shutdown` fires,
    /// then finishes the exports in flight.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    }
}

/// Decodes one export and posts its spans to Zipkin: 200 once Zipkin took
/// them (or there were none), 400 for a body that is not an export, 502 when
/// Zipkin refuses them or cannot be reached.
async fn receive(State(receiver): State<OtlpReceiver>, body: Bytes) -> (StatusCode, String) {
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(request) => request,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("the body is not an OTLP ExportTraceServiceRequest in protobuf: {e}"),
            );
        }
    };
    let spans = to_zipkin(&request);
    if spans.is_empty() {
        return (StatusCode::OK, String::new());
    }
    let sent = receiver
        .client
        .post(format!("{}/api/v2/spans", receiver.zipkin))
        .json(&spans)
        .timeout(FORWARD_TIMEOUT)
        .send()
        .await;
    let refused = match sent {
        Ok(response) if response.status().is_success() => return (StatusCode::OK, String::new()),
        Ok(response) => format!(
            "Zipkin answered {} to {} spans",
            response.status(),
            spans.len()
        ),
        Err(e) => format!("Zipkin could not be reached: {e}"),
    };
    tracing::warn!(zipkin = %receiver.zipkin, "{refused}");
    (StatusCode::BAD_GATEWAY, refused)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::http::Request;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use serde_json::Value;
    use tower::ServiceExt as _;

    use super::*;

    /// An export of one span.
    fn one_span() -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![0x4b; 16],
                        span_id: vec![0x01; 8],
                        name: "POST /orders".into(),
                        ..Span::default()
                    }],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    fn export(body: Vec<u8>) -> Request<Body> {
        Request::post("/v1/traces")
            .header("content-type", "application/x-protobuf")
            .body(Body::from(body))
            .expect("request")
    }

    /// A stand-in Zipkin on a loopback port that answers `status` and keeps
    /// what it was sent; returns its URL and the bodies.
    async fn zipkin(status: StatusCode) -> (String, Arc<Mutex<Vec<Value>>>) {
        let received = Arc::new(Mutex::new(Vec::new()));
        let kept = received.clone();
        let app = Router::new().route(
            "/api/v2/spans",
            post(move |axum::Json(spans): axum::Json<Value>| {
                kept.lock().expect("lock").push(spans);
                std::future::ready(status)
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, received)
    }

    /// A Zipkin URL where nothing listens (a port just bound and released).
    fn nowhere() -> String {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind")
            .port();
        format!("http://127.0.0.1:{port}")
    }

    #[tokio::test]
    async fn an_export_reaches_zipkin_as_its_spans() {
        let (url, received) = zipkin(StatusCode::ACCEPTED).await;
        let response = OtlpReceiver::new(&format!("{url}/"))
            .router()
            .oneshot(export(one_span().encode_to_vec()))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        let received = received.lock().expect("lock").clone();
        assert_eq!(received.len(), 1, "one post per export");
        assert_eq!(received[0][0]["traceId"], "4b".repeat(16));
        assert_eq!(received[0][0]["name"], "POST /orders");
    }

    #[tokio::test]
    async fn a_body_that_is_not_an_export_is_a_bad_request() {
        let response = OtlpReceiver::new(&nowhere())
            .router()
            // Field 1 (the resource spans) announced with 16 bytes, none sent.
            .oneshot(export(vec![0x0a, 0x10]))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn an_export_without_spans_is_taken_without_asking_zipkin() {
        let empty = ExportTraceServiceRequest::default().encode_to_vec();
        let response = OtlpReceiver::new(&nowhere())
            .router()
            .oneshot(export(empty))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn spans_zipkin_refuses_or_cannot_take_are_a_bad_gateway() {
        let (refusing, _) = zipkin(StatusCode::BAD_REQUEST).await;
        for url in [refusing, nowhere()] {
            let response = OtlpReceiver::new(&url)
                .router()
                .oneshot(export(one_span().encode_to_vec()))
                .await
                .expect("response");
            assert_eq!(
                response.status(),
                StatusCode::BAD_GATEWAY,
                "Zipkin at {url}"
            );
        }
    }
}

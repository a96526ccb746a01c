//! The HTTP side every service shares: common layers, health, metrics, serving.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::problem::{Problem, ensure_problem_body};

/// Limits that keep slow or abandoned clients from exhausting a server.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// A request (body read included) that takes longer is answered 408.
    pub request_timeout: Duration,
    /// At most this many requests are handled at once; the rest wait.
    pub max_concurrent_requests: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            request_timeout: Duration::from_secs(10),
            max_concurrent_requests: 512,
        }
    }
}

/// Wraps a service's routes in what every service has: health and metrics
/// routes, a problem+json 404 fallback, problem+json for every other bare
/// error, a timeout, a concurrency limit and a tracing span per request.
pub fn with_common_layers(
    routes: Router,
    pool: PgPool,
    metrics: Arc<Registry>,
    limits: HttpLimits,
) -> Router {
    let health = Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(pool);
    let metrics = Router::new()
        .route("/metrics", get(render_metrics))
        .with_state(metrics);
    routes
        .merge(health)
        .merge(metrics)
        .fallback(not_found)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(axum::middleware::from_fn(ensure_problem_body))
        .layer(GlobalConcurrencyLimitLayer::new(
            limits.max_concurrent_requests,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
}

fn request_span(request: &Request) -> tracing::Span {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| request.uri().path(), MatchedPath::as_str);
    tracing::info_span!(
        "request",
        method = %request.method(),
        path,
        trace_id = tracing::field::Empty,
        order_id = tracing::field::Empty,
    )
}

async fn not_found(request: Request) -> Problem {
    Problem::not_found(format!("no resource at {}", request.uri().path()))
}

async fn live() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "live" }))
}

async fn ready(State(pool): State<PgPool>) -> Response {
    let check = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&pool),
    )
    .await;
    match check {
        Ok(Ok(_)) => axum::Json(serde_json::json!({ "status": "ready" })).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            Problem::unavailable("the database is not reachable").into_response()
        }
        Err(_) => Problem::unavailable("the database did not answer within 2 s").into_response(),
    }
}

async fn render_metrics(State(registry): State<Arc<Registry>>) -> Response {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        tracing::error!(error = %e, "encoding metrics failed");
        return Problem::internal().into_response();
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops
/// accepting and waits for in-flight requests to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

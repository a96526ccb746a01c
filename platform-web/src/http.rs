//! The HTTP side every service shares: common layers, health, metrics, serving.
//!
//! Every request meets, from the outside in: a tracing span; the security
//! headers (on every answer, refusals included); the `Host` and
//! same-origin checks ([`crate::web::security::guard`]); problem+json for
//! bare errors; then a slot among
//! [`HttpLimits::max_concurrent_requests`], waited for at most
//! [`HttpLimits::queue_timeout`] (then 503 with `Retry-After`: excess load
//! is shed, not queued without end); and only then the request timeout
//! around the route itself. `GET /health/live` needs no slot, so a probe
//! learns that the process lives even while every slot is taken.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus_client::registry::Registry;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::problem::{Problem, ensure_problem_body};
use crate::web::security::AllowedHosts;
use platform::health::Readiness;

/// How long a connection may go without a complete request head (request
/// line and headers) before [`serve`] closes it: a client that connects and
/// says nothing, or stops halfway through its headers, and a keep-alive
/// connection idle between requests. Real clients send a head at once; the
/// request body is bounded separately by [`HttpLimits::request_timeout`].
/// A proxy that keeps connections to this server alive must close idle ones
/// sooner than this, or it may reuse one the server is just closing.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Limits that keep slow or abandoned clients from exhausting a server.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// A request (body read included) that takes longer is answered 408.
    pub request_timeout: Duration,
    /// At most this many requests are handled at once; the rest wait.
    pub max_concurrent_requests: usize,
    /// How long a request waits for a slot before it is answered 503.
    pub queue_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            request_timeout: Duration::from_secs(10),
            max_concurrent_requests: 512,
            queue_timeout: Duration::from_secs(1),
        }
    }
}

/// Wraps a service's routes in what every service has: health and metrics
/// routes, a problem+json 404 fallback, problem+json for every other bare
/// error, the `Host` and same-origin checks against `hosts`, the security
/// headers of [`crate::web::security`] on every answer, a concurrency limit
/// that sheds what waits too long, a timeout and a tracing span per request
/// (in the order of the module documentation).
pub fn with_common_layers(
    routes: Router,
    pool: PgPool,
    readiness: Readiness,
    metrics: Arc<Registry>,
    limits: HttpLimits,
    hosts: AllowedHosts,
) -> Router {
    let health = Router::new()
        .route(LIVE, get(live))
        .route("/health/ready", get(ready))
        .with_state((pool, readiness));
    let metrics = Router::new()
        .route("/metrics", get(render_metrics))
        .with_state(metrics);
    let slots = Slots {
        free: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
        wait: limits.queue_timeout,
    };
    routes
        .merge(health)
        .merge(metrics)
        .fallback(not_found)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(slots, take_a_slot))
        .layer(axum::middleware::from_fn(ensure_problem_body))
        .layer(axum::middleware::from_fn_with_state(
            hosts,
            crate::web::security::guard,
        ))
        .layer(axum::middleware::from_fn(
            crate::web::security::security_headers,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
}

/// The liveness probe's path: served without waiting for a slot.
const LIVE: &str = "/health/live";

/// The request slots: at most `max_concurrent_requests` at once, each
/// waited for at most `wait`.
#[derive(Debug, Clone)]
struct Slots {
    free: Arc<Semaphore>,
    wait: Duration,
}

/// Middleware: runs the request in a slot, or answers 503 with
/// `Retry-After` when none frees up in time. The liveness probe needs none.
async fn take_a_slot(State(slots): State<Slots>, request: Request, next: Next) -> Response {
    if request.uri().path() == LIVE {
        return next.run(request).await;
    }
    match tokio::time::timeout(slots.wait, slots.free.clone().acquire_owned()).await {
        Ok(Ok(_slot)) => next.run(request).await,
        // The semaphore is never closed; a closed one would be overload too.
        Ok(Err(_)) | Err(_) => {
            tracing::warn!(
                waited_ms = slots.wait.as_millis(),
                "every request slot is taken; request shed"
            );
            let mut response = Problem::unavailable(format!(
                "the service is handling as many requests as it may and none finished within {} ms; \
                 nothing was done, try again shortly",
                slots.wait.as_millis()
            ))
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

fn request_span(request: &Request) -> tracing::Span {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| request.uri().path(), MatchedPath::as_str);
    let span = tracing::info_span!(
        "request",
        otel.name = format!("{} {path}", request.method()),
        otel.kind = "server",
        method = %request.method(),
        path,
        trace_id = tracing::field::Empty,
        order_id = tracing::field::Empty,
    );
    // Continue the caller's trace (exported spans only; see telemetry).
    if let Some(traceparent) = request
        .headers()
        .get(platform::telemetry::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
    {
        platform::telemetry::continue_trace(&span, traceparent);
    }
    span
}

async fn not_found(request: Request) -> Problem {
    Problem::not_found(format!("no resource at {}", request.uri().path()))
}

/// `GET /health/live`: the process runs.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "health",
    responses(
        (status = 200, description = "The process is alive", body = Object, example = json!({ "status": "live" })),
        crate::openapi::ServerErrors
    )
)]
pub(crate) async fn live() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "live" }))
}

/// `GET /health/ready`: the service can do its work.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    responses(
        (status = 200, description = "The database answers and no part of the service has said it cannot work; `degraded` names parts that do only some of their work (the relay with a partition benched)", body = Object, example = json!({ "status": "ready" })),
        crate::openapi::ServerErrors
    )
)]
pub(crate) async fn ready(State((pool, readiness)): State<(PgPool, Readiness)>) -> Response {
    let problems = readiness.problems();
    if !problems.is_empty() {
        let detail = problems
            .iter()
            .map(|(part, reason)| format!("{part}: {reason}"))
            .collect::<Vec<_>>()
            .join("; ");
        return Problem::unavailable(detail).into_response();
    }
    let check = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&pool),
    )
    .await;
    match check {
        Ok(Ok(_)) => {
            let degraded: serde_json::Map<String, serde_json::Value> = readiness
                .degradations()
                .into_iter()
                .map(|(part, note)| (part.to_owned(), serde_json::Value::String(note)))
                .collect();
            if degraded.is_empty() {
                axum::Json(serde_json::json!({ "status": "ready" })).into_response()
            } else {
                axum::Json(serde_json::json!({ "status": "ready", "degraded": degraded }))
                    .into_response()
            }
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            Problem::unavailable("the database is not reachable").into_response()
        }
        Err(_) => Problem::unavailable("the database did not answer within 2 s").into_response(),
    }
}

/// `GET /metrics`: the service's counters and gauges.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses(
        (status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        crate::openapi::ServerErrors
    )
)]
pub(crate) async fn render_metrics(State(registry): State<Arc<Registry>>) -> Response {
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

/// Serves `router` on `listener` (HTTP/1.1) until `shutdown` is cancelled,
/// then stops accepting and waits for in-flight requests to finish.
///
/// Unlike `axum::serve`, which has no timeout before a request reaches the
/// router, a connection that does not complete its request head within
/// [`HEADER_READ_TIMEOUT`] is closed; without that, idle and half-sent
/// connections are held forever and hold up a graceful shutdown.
pub async fn serve(
    mut listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connections = TaskTracker::new();
    loop {
        // axum's `Listener` retries failed accepts (backing off when out of
        // file descriptors) instead of failing the server.
        let (stream, peer) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = shutdown.cancelled() => break,
        };
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                () = shutdown.cancelled() => {
                    // Finish the request in progress, if any, then close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = served {
                // Clients hanging up or timing out are routine, not faults.
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

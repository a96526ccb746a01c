//! The HTTP API: routes, request and response bodies, handlers, errors.
//!
//! A request travels through these gates before anything is written:
//! [`headers`] reads `Idempotency-Key` and `traceparent`; [`extract`] reads
//! the body strictly (media type, size, JSON syntax, JSON shape) into the
//! [`request`] types; [`validate`] turns those into a valid
//! [`crate::domain::NewOrder`], collecting every field error at once; and
//! [`fingerprint`] tells a retry from a different request under the same
//! key. Only then does a handler in [`orders`] call the store.
//! [`error`] maps each failure to an `application/problem+json` answer, so a
//! client mistake is always a 4xx with a detail it can act on, and a server
//! fault is a 500 or 503 whose cause goes to the log, not the client.

pub mod error;
pub mod extract;
pub mod fingerprint;
pub mod headers;
pub mod json;
pub mod orders;
pub mod request;
pub mod response;
#[cfg(test)]
mod sample;
pub mod validate;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use error::ApiError;

use crate::metrics::OrderMetrics;
use crate::store::Store;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The orders database.
    pub store: Store,
    /// The order counters.
    pub metrics: OrderMetrics,
    /// The topic order events are addressed to.
    pub orders_topic: Arc<str>,
}

/// The order API's OpenAPI document, generated from the handlers' annotations.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        orders::place_order,
        orders::list_orders,
        orders::get_order,
        orders::cancel_order
    ),
    tags((name = "orders", description = "Place, read and cancel orders"))
)]
pub struct ApiDoc;

/// The whole document: the order routes and what every service serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    platform::openapi::document(
        ApiDoc::openapi(),
        "order-service",
        "Takes orders and writes each with its event in one transaction (transactional outbox). \
         Every error is application/problem+json.",
    )
}

/// The order routes alone (without health, metrics and the common layers),
/// with `/openapi.json` and the reference page `/api-docs`.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .merge(platform::openapi::routes(&openapi()))
        .route(
            "/orders",
            post(orders::place_order).get(orders::list_orders),
        )
        .route("/orders/{id}", get(orders::get_order))
        .route("/orders/{id}/cancel", post(orders::cancel_order))
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .with_state(state)
}

//! The HTTP API: routes, request and response bodies, handlers, errors.
//!
//! A request travels through three gates before anything is written:
//! [`request`] reads the body (size, media type, JSON syntax, JSON shape) and
//! validates every field into a [`crate::domain::NewOrder`], collecting all
//! field errors at once; [`headers`] reads `Idempotency-Key` and
//! `traceparent`; only then does a handler in [`orders`] call the store.
//! [`error`] maps each failure to an `application/problem+json` answer, so a
//! client mistake is always a 4xx with a detail it can act on, and a server
//! fault is a 500 or 503 whose cause goes to the log, not the client.

pub mod error;
pub mod headers;
pub mod json;
pub mod orders;
pub mod request;
pub mod response;

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

/// The order routes alone (without health, metrics and the common layers).
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route(
            "/orders",
            post(orders::place_order).get(orders::list_orders),
        )
        .route("/orders/{id}", get(orders::get_order))
        .route("/orders/{id}/cancel", post(orders::cancel_order))
        .layer(DefaultBodyLimit::max(request::MAX_BODY_BYTES))
        .with_state(state)
}

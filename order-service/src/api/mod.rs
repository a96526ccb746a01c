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
pub mod schema;
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
    let mut document = ApiDoc::openapi();
    object_when_sent(&mut document, "/orders/{id}/cancel", "CancelRequest");
    state_the_body_limit(&mut document);
    platform_web::openapi::document(
        document,
        "order-service",
        "Takes orders and writes each with its event in one transaction (transactional outbox). \
         Every error is application/problem+json.",
    )
}

/// Says that the optional body of `POST {path}` is, when sent, the object
/// `schema`: utoipa writes an optional body (`Option<T>`) as "`T` or
/// `null`", but a `null` body is refused like any other body that is not
/// the object (only an empty body means "none").
fn object_when_sent(document: &mut utoipa::openapi::OpenApi, path: &str, schema: &str) {
    use utoipa::openapi::{Ref, RefOr};
    let body = document
        .paths
        .paths
        .get_mut(path)
        .and_then(|item| item.post.as_mut())
        .and_then(|post| post.request_body.as_mut());
    for content in body.into_iter().flat_map(|body| body.content.values_mut()) {
        content.schema = Some(RefOr::Ref(Ref::from_schema_name(schema)));
    }
}

/// Adds the size limit to every request body's description: JSON Schema
/// cannot bound the bytes of a body (white space, `\u` escapes), so a
/// schema-valid order of 100 lines with long non-Latin names can be larger
/// than [`extract::MAX_BODY_BYTES`] and be refused with 413; the document
/// says so in words.
fn state_the_body_limit(document: &mut utoipa::openapi::OpenApi) {
    let limit = format!(
        "At most {} bytes as sent; a larger body is refused with 413.",
        extract::MAX_BODY_BYTES
    );
    let bodies = document
        .paths
        .paths
        .values_mut()
        .filter_map(|item| item.post.as_mut()?.request_body.as_mut());
    for body in bodies {
        body.description = Some(match body.description.take() {
            Some(description) => format!("{}. {limit}", description.trim_end_matches('.')),
            None => limit.clone(),
        });
    }
}

/// The order routes alone (without health, metrics and the common layers),
/// with `/openapi.json` and the reference page `/api-docs`.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .merge(platform_web::openapi::routes(&openapi()))
        .route(
            "/orders",
            post(orders::place_order).get(orders::list_orders),
        )
        .route("/orders/{id}", get(orders::get_order))
        .route("/orders/{id}/cancel", post(orders::cancel_order))
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .with_state(state)
}

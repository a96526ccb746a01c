//! The order handlers. Each one reads and validates everything first, then
//! makes exactly one store call, then shapes the answer.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use platform_web::openapi::{BadRequest, BodyErrors, NotFound, ProblemDocument, ServerErrors};
use platform_web::pagination::{Page, PageRequest};
use serde::Deserialize;
use shared_events::TraceParent;
use tracing::Instrument as _;
use tracing::field::Empty;
use utoipa::IntoParams;
use uuid::Uuid;

use super::extract::{OptionalJson, StrictJson};
use super::fingerprint::fingerprint;
use super::headers::{
    IDEMPOTENT_REPLAYED, IdempotencyKey, IdempotencyKeyHeader, RequestSpan, TraceContext,
};
use super::request::{CancelRequest, PlaceOrderRequest};
use super::response::OrderResponse;
use super::{ApiError, AppState};
use crate::domain::{CancelReason, NewOrder};
use crate::store::{
    Cancellation, Cancelled, IdempotencyClaim, OrderRecord, Placed, Placement, StoreError,
};

/// `POST /orders`: validates the order, then commits it with its
/// `OrderPlaced` outbox row; with an `Idempotency-Key`, a retry gets the
/// first answer again instead of a second order.
#[utoipa::path(
    post,
    path = "/orders",
    tag = "orders",
    params(IdempotencyKeyHeader),
    request_body(content = PlaceOrderRequest, content_type = "application/json", description = "The order; every field is required, unknown fields are refused"),
    responses(
        (status = 201, description = "The order was placed (or, for a retry with the same Idempotency-Key and body, the order placed before)", body = OrderResponse,
            headers(
                ("Location" = String, description = "`/orders/{id}` of the order"),
                ("Idempotent-Replayed" = String, description = "`true` when this answers a retry with an Idempotency-Key used before")
            )),
        (status = 409, description = "This Idempotency-Key was already used for a different request", content_type = "application/problem+json", body = ProblemDocument),
        BadRequest, BodyErrors, ServerErrors
    )
)]
#[tracing::instrument(name = "place_order", skip_all, fields(trace_id = Empty, order_id = Empty))]
pub async fn place_order(
    State(state): State<AppState>,
    span: RequestSpan,
    TraceContext(trace): TraceContext,
    key: Option<IdempotencyKey>,
    StrictJson(request): StrictJson<PlaceOrderRequest>,
) -> Result<Response, ApiError> {
    let order = request.validate()?;
    // The order's transaction is the span the outbox row (and so the relay
    // and every consumer) continues the trace from.
    let transaction =
        tracing::info_span!("order_transaction", otel.name = "place order: transaction");
    let trace = transaction_trace(&transaction, trace);
    span.record_trace(&trace);

    match state
        .place(&order, key.as_ref(), trace)
        .instrument(transaction)
        .await?
    {
        Placed::Created(order) => {
            span.record_order(order.id);
            Ok(created(order, false))
        }
        Placed::Replayed(order) => {
            span.record_order(order.id);
            Ok(created(order, true))
        }
        Placed::KeyReused => Err(ApiError::IdempotencyKeyReused),
    }
}

impl AppState {
    /// Places a validated order (idempotently under `key`) and counts and
    /// logs what happened: what `POST /orders` and the order form both do.
    pub async fn place(
        &self,
        order: &NewOrder,
        key: Option<&IdempotencyKey>,
        trace: TraceParent,
    ) -> Result<Placed, StoreError> {
        let placement = Placement {
            order_id: Uuid::now_v7(),
            event_id: Uuid::now_v7(),
            order,
            idempotency: key.map(|key| IdempotencyClaim {
                key: key.as_str(),
                request_sha256: fingerprint(order),
            }),
            topic: &self.orders_topic,
            traceparent: Some(trace),
        };
        let placed = self.store.place_order(placement).await?;
        match &placed {
            Placed::Created(order) => {
                self.metrics.order_placed();
                tracing::info!(order_id = %order.id, total_cents = order.total_cents, "order placed");
            }
            Placed::Replayed(order) => {
                self.metrics.idempotent_replay();
                tracing::info!(order_id = %order.id, "idempotent replay: answered with the order placed before");
            }
            Placed::KeyReused => {}
        }
        Ok(placed)
    }

    /// Cancels order `id` (idempotently) with its validated `reason`, and
    /// counts and logs what happened: what `POST /orders/{id}/cancel` and
    /// the order page's cancel button both do.
    pub async fn cancel(
        &self,
        id: Uuid,
        reason: Option<&CancelReason>,
        trace: TraceParent,
    ) -> Result<Cancelled, StoreError> {
        let cancellation = Cancellation {
            order_id: id,
            event_id: Uuid::now_v7(),
            reason: reason.map(CancelReason::as_str),
            topic: &self.orders_topic,
            traceparent: Some(trace),
        };
        let cancelled = self.store.cancel_order(cancellation).await?;
        match &cancelled {
            Cancelled::Now(_) => {
                self.metrics.order_cancelled();
                tracing::info!(order_id = %id, "order cancelled");
            }
            Cancelled::Already(_) => {
                tracing::info!(order_id = %id, "order was already cancelled; nothing changed")
            }
            Cancelled::NotFound => {}
        }
        Ok(cancelled)
    }
}

/// `GET /orders/{id}`.
#[utoipa::path(
    get,
    path = "/orders/{id}",
    tag = "orders",
    params(("id" = Uuid, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The order", body = OrderResponse),
        BadRequest, NotFound, ServerErrors
    )
)]
#[tracing::instrument(name = "get_order", skip_all, fields(order_id = Empty))]
pub async fn get_order(
    State(state): State<AppState>,
    span: RequestSpan,
    Path(id): Path<String>,
) -> Result<Json<OrderResponse>, ApiError> {
    let id = parse_order_id(&id)?;
    span.record_order(id);
    match state.store.find_order(id).await? {
        Some(order) => Ok(Json(order.into())),
        None => Err(ApiError::OrderNotFound(id)),
    }
}

/// The query of `GET /orders`; both values are validated by [`PageRequest::parse`].
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page (empty: the first page).
    #[param(required = false, schema_with = platform_web::pagination::cursor_schema)]
    pub cursor: Option<String>,
}

/// `GET /orders?limit=&cursor=`: newest first.
#[utoipa::path(
    get,
    path = "/orders",
    tag = "orders",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of orders, newest first", body = Page<OrderResponse>),
        BadRequest, ServerErrors
    )
)]
#[tracing::instrument(name = "list_orders", skip_all)]
pub async fn list_orders(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page<OrderResponse>>, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::BadRequest(format!(
            "the query string cannot be read: {}",
            e.body_text()
        ))
    })?;
    let request = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref())
        .map_err(|problem| ApiError::BadRequest(problem.detail().to_owned()))?;
    let rows = state.store.list_orders(request).await?;
    let page = Page::from_rows(rows, request, |order| order.id);
    Ok(Json(Page {
        items: page.items.into_iter().map(OrderResponse::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// `POST /orders/{id}/cancel` with an optional `{ "reason": ... }`: cancels
/// the order and commits `OrderCancelled`; cancelling again changes nothing.
#[utoipa::path(
    post,
    path = "/orders/{id}/cancel",
    tag = "orders",
    params(("id" = Uuid, Path, description = "The order's id")),
    request_body(content = CancelRequest, content_type = "application/json", description = "Why the order is cancelled: an object, `{}` for no reason (an empty body is taken as none too). Always declared `Content-Type: application/json` (anything else, or none, is 415), so that no HTML form of another site can send it"),
    responses(
        (status = 200, description = "The order, cancelled (cancelling again changes nothing)", body = OrderResponse),
        BadRequest, NotFound, BodyErrors, ServerErrors
    )
)]
#[tracing::instrument(name = "cancel_order", skip_all, fields(trace_id = Empty, order_id = Empty))]
pub async fn cancel_order(
    State(state): State<AppState>,
    span: RequestSpan,
    TraceContext(trace): TraceContext,
    Path(id): Path<String>,
    OptionalJson(request): OptionalJson<CancelRequest>,
) -> Result<Json<OrderResponse>, ApiError> {
    let id = parse_order_id(&id)?;
    span.record_order(id);
    let reason = request.map(|r| r.validate()).transpose()?.flatten();
    let transaction =
        tracing::info_span!("order_transaction", otel.name = "cancel order: transaction");
    let trace = transaction_trace(&transaction, trace);
    span.record_trace(&trace);

    match state
        .cancel(id, reason.as_ref(), trace)
        .instrument(transaction)
        .await?
    {
        Cancelled::Now(order) | Cancelled::Already(order) => Ok(Json(order.into())),
        Cancelled::NotFound => Err(ApiError::OrderNotFound(id)),
    }
}

/// The trace context the order's events carry: the transaction span's own
/// when spans are exported, else `fallback` (the request's, for the logs).
fn transaction_trace(transaction: &tracing::Span, fallback: TraceParent) -> TraceParent {
    platform::telemetry::traceparent_of(transaction)
        .and_then(|tp| tp.parse().ok())
        .unwrap_or(fallback)
}

/// An order id from the path; anything but a UUID is a 400.
fn parse_order_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| {
        let shown: String = raw.chars().take(60).collect();
        ApiError::BadRequest(format!(
            "the order id in the path must be a UUID such as \
             01933b5e-8f30-7a1b-8c2d-3e4f5a6b7c8d; got {shown:?}"
        ))
    })
}

/// `201 Created` with `Location` and the order; marked when replayed.
fn created(order: OrderRecord, replayed: bool) -> Response {
    let location = HeaderValue::from_str(&format!("/orders/{}", order.id));
    let mut response = (StatusCode::CREATED, Json(OrderResponse::from(order))).into_response();
    let headers = response.headers_mut();
    if let Ok(location) = location {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_must_be_uuids() {
        assert!(parse_order_id("01933b5e-8f30-7a1b-8c2d-3e4f5a6b7c8d").is_ok());
        for bad in [
            "",
            "42",
            "not-a-uuid",
            "01933b5e-8f30-7a1b-8c2d-3e4f5a6b7c8",
        ] {
            assert!(
                matches!(parse_order_id(bad), Err(ApiError::BadRequest(_))),
                "{bad}"
            );
        }
    }
}

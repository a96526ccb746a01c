//! The read API: shipments as JSON, errors as problem+json.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use messaging::dead_letter::Recorded;
use platform::Problem;
use platform::openapi::{BadRequest, NotFound, ServerErrors};
use platform::pagination::{NewestQuery, OrderListQuery, Page};
use platform::services::SHIPPING_SERVICE;
use sqlx::PgPool;
use uuid::Uuid;

use crate::pick_list::{self, PickListQuery, ToPick};
use crate::shipment::Shipment;
use crate::store;

/// The shipment API's OpenAPI document, generated from the handlers' annotations.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, show, pick_list, dead_letters),
    tags((name = "shipments", description = "The shipments this service made from the order events"),
        (name = "pick list", description = "The units to pick per SKU, moved by the order events"),
        (name = "dead letters", description = "The records this service refused, and why"))
)]
pub struct ApiDoc;

/// The whole document: the shipment routes, the dead letters and what every service serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    platform::openapi::document(ApiDoc::openapi(), SHIPPING_SERVICE.name, crate::ABOUT)
}

/// `GET /shipments/{id}`, `GET /shipments?order_id=&limit=&cursor=` and
/// `GET /pick-list?sku=&limit=&cursor=`, with `/openapi.json`, the reference
/// page `/api-docs` and `GET /dead-letters?order_id=&limit=` (the records
/// this service refused).
pub fn routes(pool: PgPool) -> Router {
    Router::new()
        .merge(platform::openapi::routes(&openapi()))
        .route("/shipments", get(list))
        .route("/shipments/{id}", get(show))
        .route("/pick-list", get(pick_list))
        .route("/dead-letters", get(dead_letters))
        .with_state(pool)
}

/// `GET /shipments/{id}`.
#[utoipa::path(
    get,
    path = "/shipments/{id}",
    tag = "shipments",
    params(("id" = Uuid, Path, description = "The shipment's id")),
    responses(
        (status = 200, description = "The shipment", body = Shipment),
        BadRequest, NotFound, ServerErrors
    )
)]
#[tracing::instrument(skip_all, fields(shipment_id = %id))]
async fn show(State(pool): State<PgPool>, Path(id): Path<Uuid>) -> Result<Json<Shipment>, Problem> {
    store::find(&pool, id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no shipment {id}")))
}

/// `GET /shipments?order_id=&limit=&cursor=`: newest first.
#[utoipa::path(
    get,
    path = "/shipments",
    tag = "shipments",
    params(OrderListQuery),
    responses(
        (status = 200, description = "A page of shipments, newest first", body = Page<Shipment>),
        BadRequest, ServerErrors
    )
)]
#[tracing::instrument(skip_all, fields(order_id = ?query.order_id))]
async fn list(
    State(pool): State<PgPool>,
    Query(query): Query<OrderListQuery>,
) -> Result<Json<Page<Shipment>>, Problem> {
    let (order_id, page) = query.parse()?;
    Ok(Json(store::list(&pool, order_id, page).await?))
}

/// `GET /pick-list?sku=&limit=&cursor=`: by SKU.
#[utoipa::path(
    get,
    path = "/pick-list",
    tag = "pick list",
    params(PickListQuery),
    responses(
        (status = 200, description = "A page of the units to pick, by SKU", body = Page<ToPick>),
        BadRequest, ServerErrors
    )
)]
#[tracing::instrument(skip_all)]
async fn pick_list(
    State(pool): State<PgPool>,
    Query(query): Query<PickListQuery>,
) -> Result<Json<Page<ToPick>>, Problem> {
    let filter = query.parse()?;
    Ok(Json(pick_list::list(&pool, &filter).await?))
}

/// `GET /dead-letters?order_id=&limit=`: the newest records this service
/// refused (one page; `next_cursor` is always null).
#[utoipa::path(
    get,
    path = "/dead-letters",
    tag = "dead letters",
    params(NewestQuery),
    responses(
        (status = 200, description = "The newest dead letters, newest first", body = Page<Recorded>),
        BadRequest, ServerErrors
    )
)]
#[tracing::instrument(skip_all, fields(order_id = ?query.order_id))]
async fn dead_letters(
    State(pool): State<PgPool>,
    Query(query): Query<NewestQuery>,
) -> Result<Json<Page<Recorded>>, Problem> {
    let (order_id, limit) = query.parse()?;
    let items = messaging::dead_letter::recorded(&pool, order_id, limit).await?;
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

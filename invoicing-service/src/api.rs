//! The read API: invoices as JSON, errors as problem+json.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use platform::Problem;
use platform::openapi::{BadRequest, NotFound, ServerErrors};
use platform::pagination::{OrderListQuery, Page};
use platform::services::INVOICING_SERVICE;
use sqlx::PgPool;
use uuid::Uuid;

use crate::invoice::Invoice;
use crate::store;

/// The invoice API's OpenAPI document, generated from the handlers' annotations.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, show),
    tags((name = "invoices", description = "The invoices this service made from the order events"))
)]
pub struct ApiDoc;

/// The whole document: the invoice routes and what every service serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    let mut doc = ApiDoc::openapi();
    doc.merge(messaging::dead_letter_api::ApiDoc::openapi());
    platform::openapi::document(doc, INVOICING_SERVICE.name, crate::ABOUT)
}

/// `GET /invoices/{id}` and `GET /invoices?order_id=&limit=&cursor=`, with
/// `/openapi.json`, the reference page `/api-docs` and
/// `GET /dead-letters?order_id=&limit=` (the records this service refused).
pub fn routes(pool: PgPool) -> Router {
    Router::new()
        .merge(platform::openapi::routes(&openapi()))
        .route("/invoices", get(list))
        .route("/invoices/{id}", get(show))
        .with_state(pool.clone())
        .merge(messaging::dead_letter_api::routes(pool))
}

/// `GET /invoices/{id}`.
#[utoipa::path(
    get,
    path = "/invoices/{id}",
    tag = "invoices",
    params(("id" = Uuid, Path, description = "The invoice's id")),
    responses(
        (status = 200, description = "The invoice", body = Invoice),
        BadRequest, NotFound, ServerErrors
    )
)]
#[tracing::instrument(skip_all, fields(invoice_id = %id))]
async fn show(State(pool): State<PgPool>, Path(id): Path<Uuid>) -> Result<Json<Invoice>, Problem> {
    store::find(&pool, id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no invoice {id}")))
}

/// `GET /invoices?order_id=&limit=&cursor=`: newest first.
#[utoipa::path(
    get,
    path = "/invoices",
    tag = "invoices",
    params(OrderListQuery),
    responses(
        (status = 200, description = "A page of invoices, newest first", body = Page<Invoice>),
        BadRequest, ServerErrors
    )
)]
#[tracing::instrument(skip_all, fields(order_id = ?query.order_id))]
async fn list(
    State(pool): State<PgPool>,
    Query(query): Query<OrderListQuery>,
) -> Result<Json<Page<Invoice>>, Problem> {
    let (order_id, page) = query.parse()?;
    Ok(Json(store::list(&pool, order_id, page).await?))
}

//! The read API: invoices as JSON, errors as problem+json.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use messaging::dead_letter::Recorded;
use platform::Problem;
use platform::openapi::{BadRequest, NotFound, ServerErrors};
use platform::pagination::{NewestQuery, OrderListQuery, Page};
use platform::services::INVOICING_SERVICE;
use sqlx::PgPool;
use uuid::Uuid;

use crate::balance::{self, Balance, BalanceQuery};
use crate::invoice::Invoice;
use crate::store;

/// The invoice API's OpenAPI document, generated from the handlers' annotations.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, show, balances, dead_letters),
    tags((name = "invoices", description = "The invoices this service made from the order events"),
        (name = "balances", description = "Each customer's open balance per currency, moved by the order events"),
        (name = "dead letters", description = "The records this service refused, and why"))
)]
pub struct ApiDoc;

/// The whole document: the invoice routes, the dead letters and what every service serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    platform::openapi::document(ApiDoc::openapi(), INVOICING_SERVICE.name, crate::ABOUT)
}

/// `GET /invoices/{id}`, `GET /invoices?order_id=&limit=&cursor=` and
/// `GET /balances?customer=&currency=&limit=&cursor=`, with `/openapi.json`,
/// the reference page `/api-docs` and `GET /dead-letters?order_id=&limit=`
/// (the records this service refused).
pub fn routes(pool: PgPool) -> Router {
    Router::new()
        .merge(platform::openapi::routes(&openapi()))
        .route("/invoices", get(list))
        .route("/invoices/{id}", get(show))
        .route("/balances", get(balances))
        .route("/dead-letters", get(dead_letters))
        .with_state(pool)
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

/// `GET /balances?customer=&currency=&limit=&cursor=`: by customer, then currency.
#[utoipa::path(
    get,
    path = "/balances",
    tag = "balances",
    params(BalanceQuery),
    responses(
        (status = 200, description = "A page of open balances, by customer e-mail, then currency", body = Page<Balance>),
        BadRequest, ServerErrors
    )
)]
#[tracing::instrument(skip_all)]
async fn balances(
    State(pool): State<PgPool>,
    Query(query): Query<BalanceQuery>,
) -> Result<Json<Page<Balance>>, Problem> {
    let filter = query.parse()?;
    Ok(Json(balance::list(&pool, &filter).await?))
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

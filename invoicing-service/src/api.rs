//! The read API: invoices as JSON, errors as problem+json.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use platform::Problem;
use platform::pagination::{OrderListQuery, Page};
use sqlx::PgPool;
use uuid::Uuid;

use crate::invoice::Invoice;
use crate::store;

/// `GET /invoices/{id}` and `GET /invoices?order_id=&limit=&cursor=`.
pub fn routes(pool: PgPool) -> Router {
    Router::new()
        .route("/invoices", get(list))
        .route("/invoices/{id}", get(show))
        .with_state(pool)
}

#[tracing::instrument(skip_all, fields(invoice_id = %id))]
async fn show(State(pool): State<PgPool>, Path(id): Path<Uuid>) -> Result<Json<Invoice>, Problem> {
    store::find(&pool, id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no invoice {id}")))
}

#[tracing::instrument(skip_all, fields(order_id = ?query.order_id))]
async fn list(
    State(pool): State<PgPool>,
    Query(query): Query<OrderListQuery>,
) -> Result<Json<Page<Invoice>>, Problem> {
    let (order_id, page) = query.parse()?;
    Ok(Json(store::list(&pool, order_id, page).await?))
}

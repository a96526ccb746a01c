//! The read API: invoices as JSON, errors as problem+json.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use messaging::dead_letter::Recorded;
use platform::Problem;
use platform::pagination::{OrderListQuery, Page};
use sqlx::PgPool;
use uuid::Uuid;

use crate::invoice::Invoice;
use crate::store;

/// `GET /invoices/{id}`, `GET /invoices?order_id=&limit=&cursor=` and
/// `GET /dead-letters?order_id=` (the newest 50 records this service refused).
pub fn routes(pool: PgPool) -> Router {
    Router::new()
        .route("/invoices", get(list))
        .route("/invoices/{id}", get(show))
        .route("/dead-letters", get(dead_letters))
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

#[tracing::instrument(skip_all, fields(order_id = ?query.order_id))]
async fn dead_letters(
    State(pool): State<PgPool>,
    Query(query): Query<OrderListQuery>,
) -> Result<Json<Page<Recorded>>, Problem> {
    let (order_id, _) = query.parse()?;
    let key = order_id.map(|id| id.to_string());
    let items = messaging::dead_letter::recorded(&pool, key.as_deref(), 50).await?;
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

//! The read API: shipments as JSON, errors as problem+json.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use platform::Problem;
use platform::pagination::{OrderListQuery, Page};
use sqlx::PgPool;
use uuid::Uuid;

use crate::shipment::Shipment;
use crate::store;

/// `GET /shipments/{id}` and `GET /shipments?order_id=&limit=&cursor=`.
pub fn routes(pool: PgPool) -> Router {
    Router::new()
        .route("/shipments", get(list))
        .route("/shipments/{id}", get(show))
        .with_state(pool)
}

#[tracing::instrument(skip_all, fields(shipment_id = %id))]
async fn show(State(pool): State<PgPool>, Path(id): Path<Uuid>) -> Result<Json<Shipment>, Problem> {
    store::find(&pool, id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no shipment {id}")))
}

#[tracing::instrument(skip_all, fields(order_id = ?query.order_id))]
async fn list(
    State(pool): State<PgPool>,
    Query(query): Query<OrderListQuery>,
) -> Result<Json<Page<Shipment>>, Problem> {
    let (order_id, page) = query.parse()?;
    Ok(Json(store::list(&pool, order_id, page).await?))
}

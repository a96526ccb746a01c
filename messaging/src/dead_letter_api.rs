//! `GET /dead-letters`: the records a consumer refused, as its read API shows
//! them (each consumer serves it; the order page reads it for the journey).

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use platform::Problem;
use platform::openapi::{BadRequest, ServerErrors};
use platform::pagination::{Page, PageRequest};
use serde::Deserialize;
use sqlx::PgPool;

use crate::dead_letter::{Recorded, recorded};

/// `?order_id=&limit=`, both optional.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterQuery {
    /// Only records of this order (a UUID; empty: every order).
    pub order_id: Option<String>,
    /// How many, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

/// The dead-letter route's part of a service's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(dead_letters),
    tags((name = "dead letters", description = "The records this consumer refused, and why"))
)]
pub struct ApiDoc;

/// `GET /dead-letters?order_id=&limit=` over the consumer's database.
pub fn routes(pool: PgPool) -> Router {
    Router::new()
        .route("/dead-letters", get(dead_letters))
        .with_state(pool)
}

/// `GET /dead-letters?order_id=&limit=`: the newest records this consumer
/// refused (one page; `next_cursor` is always null).
#[utoipa::path(
    get,
    path = "/dead-letters",
    tag = "dead letters",
    params(DeadLetterQuery),
    responses(
        (status = 200, description = "The newest dead letters, newest first", body = Page<Recorded>),
        BadRequest, ServerErrors
    )
)]
#[tracing::instrument(skip_all, fields(order_id = ?query.order_id))]
async fn dead_letters(
    State(pool): State<PgPool>,
    Query(query): Query<DeadLetterQuery>,
) -> Result<Json<Page<Recorded>>, Problem> {
    let key = match query.order_id.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(
            raw.parse::<uuid::Uuid>()
                .map_err(|_| Problem::bad_request("order_id: must be a UUID"))?
                .to_string(),
        ),
    };
    let page = PageRequest::parse(query.limit.as_deref(), None)?;
    let items = recorded(&pool, key.as_deref(), page.limit).await?;
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

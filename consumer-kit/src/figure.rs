//! A running figure: what a consumer's events move beside its read model
//! (each customer's open balance, the units to pick per SKU), a list in key
//! order, a page at a time. The figure's query, rows and words are the
//! consumer's ([`Figure`]); its route in the read API with its OpenAPI
//! description, and its page in the shared frame, are written here once.
//!
//! Such a figure is moved by the events, not recomputed from the rows, so
//! only the inbox's dedup keeps it exactly-once: the chaos audit compares
//! it with the read model from outside.

use std::future::Future;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use maud::{Markup, html};
use platform_web::Problem;
use platform_web::openapi::{BadRequest, ServerErrors};
use platform_web::pagination::Page;
use platform_web::web::layout::key_order_pager;
use platform_web::web::{PageError, query as query_of};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgPool;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterIn, PathItem};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, OpenApi, OpenApiBuilder, PathsBuilder, ResponseBuilder,
    ResponsesBuilder,
};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::Consumer;
use crate::pages::{PageState, frame};

/// A consumer's running figure.
pub trait Figure: Send + Sync + 'static {
    /// The list's query string.
    type Query: DeserializeOwned + IntoParams + Send + 'static;
    /// The validated query.
    type Filter: Send + Sync;
    /// One row of the figure.
    type Item: Serialize + ToSchema + Send + 'static;

    /// Its route in the read API, e.g. `/balances`.
    const API_PATH: &'static str;
    /// Its page, e.g. `/open-balances`.
    const PAGE_PATH: &'static str;
    /// Its tag in the API document, and what the tag says.
    const TAG: (&'static str, &'static str);
    /// The operation's summary.
    const SUMMARY: &'static str;
    /// What a 200 answer holds.
    const ANSWER: &'static str;
    /// The page's heading and title.
    const TITLE: &'static str;
    /// What the page says when the figure has no row.
    const EMPTY: &'static str;

    /// Validates the query; a bad part is a 400 naming it.
    fn parse(query: &Self::Query) -> Result<Self::Filter, Problem>;

    /// Whether the filter asks for the first page.
    fn first_page(filter: &Self::Filter) -> bool;

    /// One page of rows, in key order.
    fn list(
        pool: &PgPool,
        filter: &Self::Filter,
    ) -> impl Future<Output = Result<Page<Self::Item>, sqlx::Error>> + Send;

    /// The page's words under its heading.
    fn intro() -> Markup;

    /// The rows as a table (never empty).
    fn table(items: &[Self::Item]) -> Markup;
}

/// The figure's route in the read API, with its part of the document.
pub fn api<F: Figure>() -> (Router<PgPool>, OpenApi) {
    let item = F::Item::name().into_owned();
    let operation = OperationBuilder::new()
        .operation_id(Some(F::API_PATH.trim_start_matches('/').replace('-', "_")))
        .tag(F::TAG.0)
        .summary(Some(F::SUMMARY))
        .parameters(Some(F::Query::into_params(|| Some(ParameterIn::Query))))
        .responses(
            ResponsesBuilder::new()
                .response(
                    "200",
                    ResponseBuilder::new()
                        .description(F::ANSWER)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Page::<F::Item>::schema()))
                                .build(),
                        )
                        .build(),
                )
                .responses_from_into_responses::<BadRequest>()
                .responses_from_into_responses::<ServerErrors>()
                .build(),
        );
    let mut schemas = vec![(item, F::Item::schema())];
    F::Item::schemas(&mut schemas);
    let document = OpenApiBuilder::new()
        .paths(PathsBuilder::new().path(F::API_PATH, PathItem::new(HttpMethod::Get, operation)))
        .components(Some(
            ComponentsBuilder::new().schemas_from_iter(schemas).build(),
        ))
        .tags(Some([TagBuilder::new()
            .name(F::TAG.0)
            .description(Some(F::TAG.1))
            .build()]))
        .build();
    (Router::new().route(F::API_PATH, get(list::<F>)), document)
}

/// The figure's page among `C`'s pages.
pub fn page<F: Figure, C: Consumer>() -> Router<PageState> {
    Router::new().route(F::PAGE_PATH, get(show::<F, C>))
}

#[tracing::instrument(skip_all, fields(figure = F::API_PATH))]
async fn list<F: Figure>(
    State(pool): State<PgPool>,
    Query(query): Query<F::Query>,
) -> Result<Json<Page<F::Item>>, Problem> {
    let filter = F::parse(&query)?;
    Ok(Json(F::list(&pool, &filter).await?))
}

async fn show<F: Figure, C: Consumer>(
    State(pages): State<PageState>,
    query: Result<Query<F::Query>, QueryRejection>,
) -> Result<Response, PageError> {
    let filter =
        F::parse(&query_of(query)?).map_err(|problem| PageError::from_problem(&problem))?;
    let rows = F::list(&pages.pool, &filter)
        .await
        .map_err(|e| PageError::database(&e))?;
    let content = html! {
        h1 { (F::TITLE) }
        (F::intro())
        @if rows.items.is_empty() {
            p.card { (F::EMPTY) }
        } @else {
            (F::table(&rows.items))
        }
        (key_order_pager(rows.next_cursor.as_deref(), F::first_page(&filter)))
        p { a href="/" { "« All " (crate::plural::<C>()) } }
    };
    Ok(frame::<C>(F::TITLE, &pages.links, content))
}

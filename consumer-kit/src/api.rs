//! The read API every consumer serves, as JSON with errors as problem+json:
//! `GET /{plural}?order_id=&limit=&cursor=` (newest first),
//! `GET /{plural}/{id}` and `GET /dead-letters?order_id=&limit=` (the
//! records the service refused), with `/openapi.json` and the reference
//! page `/api-docs`, plus the consumer's own routes
//! ([`Consumer::more_api`]).
//!
//! The list and show operations are generic over the consumer, so their
//! OpenAPI description is built from its [`ReadModel`] names and its item's
//! schema rather than from an annotation; the dead letters' is annotated.

use std::marker::PhantomData;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use messaging::dead_letter::Recorded;
use platform_web::Problem;
use platform_web::openapi::{BadRequest, NotFound, ServerErrors};
use platform_web::pagination::{NewestQuery, OrderListQuery, Page};
use sqlx::PgPool;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, OpenApi, OpenApiBuilder, PathsBuilder, RefOr, Required,
    ResponseBuilder, ResponsesBuilder, Schema,
};
use utoipa::{IntoParams, PartialSchema, ToSchema};
use uuid::Uuid;

use crate::Consumer;
use crate::view::View;

/// The read model's rows of consumer `C`, as its API and pages read them.
#[derive(Debug)]
pub struct Items<C>(PhantomData<C>);

impl<C: Consumer> Items<C> {
    const VIEW: View = View(C::READ_MODEL.view);

    /// The item `id`, if it exists.
    pub async fn find(pool: &PgPool, id: Uuid) -> Result<Option<C::Item>, sqlx::Error> {
        Self::VIEW.find(pool, id, C::item).await
    }

    /// One page of items, newest first, optionally only those of one order.
    pub async fn list(
        pool: &PgPool,
        order_id: Option<Uuid>,
        page: platform_web::pagination::PageRequest,
    ) -> Result<Page<C::Item>, sqlx::Error> {
        Self::VIEW.page(pool, order_id, page, C::item, C::id).await
    }
}

/// The whole document: the read model's routes, the consumer's own, the
/// dead letters and what every service serves.
pub fn openapi<C: Consumer>(consumer: C) -> OpenApi {
    document::<C>(consumer.more_api().map(|(_, more)| more))
}

fn document<C: Consumer>(more: Option<OpenApi>) -> OpenApi {
    use utoipa::OpenApi as _;
    let mut document = read_model_document::<C>();
    document.merge(DeadLetters::openapi());
    if let Some(more) = more {
        document.merge(more);
    }
    platform_web::openapi::document(document, C::SERVICE.name, C::ABOUT)
}

/// The read API's routes over `pool`.
pub fn routes<C: Consumer>(consumer: C, pool: PgPool) -> Router {
    let plural = crate::plural::<C>();
    let (more_routes, more_document) = consumer.more_api().unzip();
    let mut routes = Router::new()
        .merge(platform_web::openapi::routes(&document::<C>(more_document)))
        .route(&format!("/{plural}"), get(list::<C>))
        .route(&format!("/{plural}/{{id}}"), get(show::<C>))
        .route("/dead-letters", get(dead_letters));
    if let Some(more) = more_routes {
        routes = routes.merge(more);
    }
    routes.with_state(pool)
}

/// `GET /{plural}/{id}`.
#[tracing::instrument(skip_all, fields(id = %id))]
async fn show<C: Consumer>(
    State(pool): State<PgPool>,
    Path(id): Path<Uuid>,
) -> Result<Json<C::Item>, Problem> {
    Items::<C>::find(&pool, id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no {} {id}", C::READ_MODEL.singular)))
}

/// `GET /{plural}?order_id=&limit=&cursor=`: newest first.
#[tracing::instrument(skip_all, fields(order_id = ?query.order_id))]
async fn list<C: Consumer>(
    State(pool): State<PgPool>,
    Query(query): Query<OrderListQuery>,
) -> Result<Json<Page<C::Item>>, Problem> {
    let (order_id, page) = query.parse()?;
    Ok(Json(Items::<C>::list(&pool, order_id, page).await?))
}

/// The list's and the item's operations, described as the annotations of
/// a concrete handler would describe them.
fn read_model_document<C: Consumer>() -> OpenApi {
    let names = C::READ_MODEL;
    let plural = crate::plural::<C>();
    let item = C::Item::name().into_owned();
    let json = |schema: RefOr<Schema>| ContentBuilder::new().schema(Some(schema)).build();
    let answer = |description: String, schema: RefOr<Schema>| {
        ResponseBuilder::new()
            .description(description)
            .content("application/json", json(schema))
            .build()
    };
    let list = OperationBuilder::new()
        .operation_id(Some("list"))
        .tag(plural)
        .summary(Some(format!(
            "`GET /{}?order_id=&limit=&cursor=`: newest first.",
            plural
        )))
        .parameters(Some(OrderListQuery::into_params(|| {
            Some(ParameterIn::Query)
        })))
        .responses(
            ResponsesBuilder::new()
                .response(
                    "200",
                    answer(
                        format!("A page of {}, newest first", plural),
                        Page::<C::Item>::schema(),
                    ),
                )
                .responses_from_into_responses::<BadRequest>()
                .responses_from_into_responses::<ServerErrors>()
                .build(),
        );
    let show = OperationBuilder::new()
        .operation_id(Some("show"))
        .tag(plural)
        .summary(Some(format!("`GET /{}/{{id}}`.", plural)))
        .parameter(
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(format!("The {}'s id", names.singular)))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
                )),
        )
        .responses(
            ResponsesBuilder::new()
                .response(
                    "200",
                    answer(
                        format!("The {}", names.singular),
                        RefOr::Ref(utoipa::openapi::Ref::from_schema_name(item.clone())),
                    ),
                )
                .responses_from_into_responses::<BadRequest>()
                .responses_from_into_responses::<NotFound>()
                .responses_from_into_responses::<ServerErrors>()
                .build(),
        );
    let mut schemas = vec![(item, C::Item::schema())];
    C::Item::schemas(&mut schemas);
    OpenApiBuilder::new()
        .paths(
            PathsBuilder::new()
                .path(format!("/{}", plural), PathItem::new(HttpMethod::Get, list))
                .path(
                    format!("/{}/{{id}}", plural),
                    PathItem::new(HttpMethod::Get, show),
                ),
        )
        .components(Some(
            ComponentsBuilder::new().schemas_from_iter(schemas).build(),
        ))
        .tags(Some([TagBuilder::new()
            .name(plural)
            .description(Some(format!(
                "The {} this service made from the order events",
                plural
            )))
            .build()]))
        .build()
}

/// The dead letters' part of the document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(dead_letters),
    tags((name = "dead letters", description = "The records this service refused, and why"))
)]
struct DeadLetters;

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

//! The pages every consumer serves: `GET /`, its items newest first, a page
//! at a time, and `GET /{singular}/{id}`, one item, in the frame every
//! service's pages share, with the shared assets. They read the same
//! queries as the JSON API ([`crate::api::Items`]); the consumer writes only
//! the words and tables ([`Consumer::list_intro`], [`Consumer::list_table`],
//! [`Consumer::show`]); `maud` escapes every value a customer typed.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::html;
use platform_web::pagination::OrderListQuery;
use platform_web::web::layout::{Section, page, pager};
use platform_web::web::{PageError, PageLinks, list_query, ok, path_id};
use sqlx::PgPool;

use crate::Consumer;
use crate::api::Items;

/// What a consumer's pages read: its database, and where the other
/// services' pages are.
pub type PageState = platform_web::web::ReadModel;

/// The list, the item and the consumer's own pages ([`Consumer::more_pages`]) over `pool`.
pub fn routes<C: Consumer>(consumer: C, pool: PgPool, links: PageLinks) -> Router {
    let show_path = format!("/{}/{{id}}", C::READ_MODEL.singular);
    PageState::routes(
        pool,
        links,
        &show_path,
        list::<C>,
        show::<C>,
        consumer.more_pages(),
    )
}

/// The frame of one of `C`'s pages: `title`, `content`, the navigation.
pub fn frame<C: Consumer>(title: &str, links: &PageLinks, content: maud::Markup) -> Response {
    ok(page(
        title,
        links,
        Section::Consumer(C::SERVICE.name),
        content,
    ))
}

async fn list<C: Consumer>(
    State(pages): State<PageState>,
    query: Result<Query<OrderListQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let consumer = C::default();
    let (order_id, request) = list_query(query)?;
    let items = Items::<C>::list(&pages.pool, order_id, request)
        .await
        .map_err(|e| PageError::database(&e))?;
    let content = html! {
        h1 { (C::SERVICE.label) }
        (consumer.list_intro(&pages.links))
        @if items.items.is_empty() {
            p.card { "No " (crate::plural::<C>()) " yet. Place an order on "
                     a href={ (pages.links.order) "/new" } { "the order page" } "." }
        } @else {
            (consumer.list_table(&items.items, &pages.links))
        }
        (pager(items.next_cursor.as_deref(), request.before.is_none()))
    };
    Ok(frame::<C>(C::SERVICE.label, &pages.links, content))
}

async fn show<C: Consumer>(
    State(pages): State<PageState>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let names = C::READ_MODEL;
    let id = path_id(&id, names.singular)?;
    let item = Items::<C>::find(&pages.pool, id)
        .await
        .map_err(|e| PageError::database(&e))?
        .ok_or_else(|| PageError::not_found(format!("there is no {} {id}", names.singular)))?;
    let (title, body) = C::default().show(&item, &pages.links);
    let content = html! {
        (body)
        p { a href="/" { "« All " (crate::plural::<C>()) } }
    };
    Ok(frame::<C>(&title, &pages.links, content))
}

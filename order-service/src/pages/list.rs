//! `GET /`: the orders, newest first, fifty to a page. Keyset paging on the
//! primary key (ids are UUIDv7): a page costs the same at a million orders
//! as at ten, and no page ever counts the whole table.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use platform_web::pagination::OrderListQuery;
use platform_web::web::format::{money, time};
use platform_web::web::layout::{Section, page, pager, status};
use platform_web::web::{PageError, list_query, ok};

use super::{Pages, store_error};

/// `GET /?cursor=`: one page of orders.
#[tracing::instrument(name = "orders_page", skip_all)]
pub async fn list(
    State(pages): State<Pages>,
    query: Result<Query<OrderListQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let (_, request) = list_query(query)?;
    let orders = pages
        .app
        .store
        .list_orders(request)
        .await
        .map_err(store_error)?;
    let page_of = platform_web::pagination::Page::from_rows(orders, request, |o| o.id);
    let content = html! {
        div.actions {
            h1 { "Orders" }
            a href="/new" { button.primary type="button" { "New order" } }
        }
        @if page_of.items.is_empty() {
            p.card { "No orders yet. " a href="/new" { "Place the first one" } "." }
        } @else {
            table #orders {
                thead { tr {
                    th { "Placed" } th { "Customer" } th.num { "Lines" } th.num { "Total" } th { "Status" }
                } }
                tbody {
                    @for order in &page_of.items {
                        tr {
                            td { a href={ "/order/" (order.id) } { (time(order.placed_at)) } }
                            td.customer { (order.customer_name) }
                            td.num { (order.lines.len()) }
                            td.num { (money(order.total_cents, &order.currency)) }
                            td { (status(order.status.as_str())) }
                        }
                    }
                }
            }
        }
        (pager(page_of.next_cursor.as_deref(), request.before.is_none()))
    };
    Ok(ok(page("Orders", &pages.links, Section::Orders, content)))
}

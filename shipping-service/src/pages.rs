//! The shipping pages: the shipments, newest first, a page at a time, one
//! shipment with its recipient, shipping address and what to pack, and the
//! units to pick per SKU. Shipping knows no price, e-mail or billing
//! address, so its pages cannot show one. They read the same queries as the
//! JSON API ([`crate::store`], [`crate::pick_list`]); `maud` escapes every
//! value a customer typed.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use maud::html;
use platform::pagination::OrderListQuery;
use platform::web::format::time;
use platform::web::layout::{Section, key_order_pager, page, pager, status};
use platform::web::{PageError, PageLinks, ReadModel, list_query, ok, path_id, query as query_of};
use sqlx::PgPool;

use crate::pick_list::{self, PickListQuery};
use crate::shipment::{Shipment, ShipmentStatus};
use crate::store;

/// `GET /` (the list), `GET /shipment/{id}` and `GET /to-pick`, with the shared assets.
pub fn routes(pool: PgPool, links: PageLinks) -> Router {
    let more = Router::new().route("/to-pick", get(to_pick));
    ReadModel::routes(pool, links, "/shipment/{id}", list, show, more)
}

fn label(status: ShipmentStatus) -> &'static str {
    match status {
        ShipmentStatus::Pending => "pending",
        ShipmentStatus::Cancelled => "cancelled",
    }
}

async fn list(
    State(pages): State<ReadModel>,
    query: Result<Query<OrderListQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let (order_id, request) = list_query(query)?;
    let shipments = store::list(&pages.pool, order_id, request)
        .await
        .map_err(|e| PageError::database(&e))?;
    let content = html! {
        h1 { "Shipments" }
        p.muted { "One shipment per placed order, created by shipping-service from the "
                  code { "orders" } " topic: who receives it, where it goes, what to pack. No prices. "
                  a href="/to-pick" { "Units to pick per SKU »" } }
        @if shipments.items.is_empty() {
            p.card { "No shipments yet. Place an order on "
                     a href={ (pages.links.order) "/new" } { "the order page" } "." }
        } @else {
            table {
                thead { tr {
                    th { "Created" } th { "Recipient" } th { "Ship to" }
                    th.num { "Items" } th { "Status" } th { "Order" }
                } }
                tbody {
                    @for shipment in &shipments.items {
                        tr {
                            td { a href={ "/shipment/" (shipment.id) } { (time(shipment.created_at)) } }
                            td { (shipment.recipient.name) }
                            td { (shipment.shipping_address.city) ", " (shipment.shipping_address.country) }
                            td.num { (shipment.lines.iter().map(|l| i64::from(l.quantity)).sum::<i64>()) }
                            td { (status(label(shipment.status))) }
                            td { a.mono href={ (pages.links.order) "/order/" (shipment.order_id) } { "order" } }
                        }
                    }
                }
            }
        }
        (pager(shipments.next_cursor.as_deref(), request.before.is_none()))
    };
    Ok(ok(page(
        "Shipments",
        &pages.links,
        Section::Shipments,
        content,
    )))
}

async fn to_pick(
    State(pages): State<ReadModel>,
    query: Result<Query<PickListQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let filter = query_of(query)?
        .parse()
        .map_err(|problem| PageError::from_problem(&problem))?;
    let to_pick = pick_list::list(&pages.pool, &filter)
        .await
        .map_err(|e| PageError::database(&e))?;
    let content = html! {
        h1 { "Units to pick" }
        p.muted { "What the warehouse picks for the pending shipments, per SKU: each placed order \
                   adds its quantities, each cancellation takes them off again. A running figure \
                   that only the inbox's deduplication keeps right: the chaos audit compares it \
                   with the pending shipments." }
        @if to_pick.items.is_empty() {
            p.card { "Nothing to pick yet." }
        } @else {
            table {
                thead { tr { th { "SKU" } th.num { "Units" } } }
                tbody {
                    @for item in &to_pick.items {
                        tr { td.mono { (item.sku) } td.num { (item.units) } }
                    }
                }
            }
        }
        (key_order_pager(to_pick.next_cursor.as_deref(), filter.page.first_page()))
        p { a href="/" { "« All shipments" } }
    };
    Ok(ok(page(
        "Units to pick",
        &pages.links,
        Section::Shipments,
        content,
    )))
}

async fn show(
    State(pages): State<ReadModel>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = path_id(&id, "shipment")?;
    let shipment: Shipment = store::find(&pages.pool, id)
        .await
        .map_err(|e| PageError::database(&e))?
        .ok_or_else(|| PageError::not_found(format!("there is no shipment {id}")))?;
    let a = &shipment.shipping_address;
    let content = html! {
        h1 { "Shipment " span.mono { (shipment.id) } }
        div.cards {
            div.card {
                dl.facts {
                    dt { "Status" } dd { (status(label(shipment.status))) }
                    dt { "Created" } dd { (time(shipment.created_at)) }
                    dt { "Order" } dd { a.mono href={ (pages.links.order) "/order/" (shipment.order_id) } { (shipment.order_id) } }
                }
            }
            div.card {
                dl.facts {
                    dt { "Recipient" } dd { (shipment.recipient.name) }
                    dt { "Ship to" } dd { (a.street) br; (a.zip) " " (a.city) br; (a.country) }
                }
            }
        }
        h2 { "What to pack" }
        table {
            thead { tr { th { "SKU" } th { "Product" } th.num { "Quantity" } } }
            tbody {
                @for line in &shipment.lines {
                    tr { td.mono { (line.sku) } td { (line.name) } td.num { (line.quantity) } }
                }
            }
        }
        p { a href="/" { "« All shipments" } }
    };
    Ok(ok(page(
        &format!("Shipment for {}", shipment.recipient.name),
        &pages.links,
        Section::Shipments,
        content,
    )))
}

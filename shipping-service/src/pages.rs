//! The shipping pages: the words and tables of the shipment list, one
//! shipment with its recipient, shipping address and what to pack, and the
//! units to pick per SKU. Shipping knows no price, e-mail or billing
//! address, so its pages cannot show one. The kit serves them in the shared
//! frame ([`consumer_kit::pages`]), from the same queries as the JSON API;
//! `maud` escapes every value a customer typed.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use consumer_kit::pages::{PageState, frame};
use maud::{Markup, html};
use platform_web::web::format::time;
use platform_web::web::layout::{key_order_pager, status};
use platform_web::web::{PageError, PageLinks, query as query_of};

use crate::Shipping;
use crate::pick_list::{self, PickListQuery};
use crate::shipment::{Shipment, ShipmentStatus};

/// `GET /to-pick`.
pub fn more() -> Router<PageState> {
    Router::new().route("/to-pick", get(to_pick))
}

fn label(status: ShipmentStatus) -> &'static str {
    match status {
        ShipmentStatus::Pending => "pending",
        ShipmentStatus::Cancelled => "cancelled",
    }
}

/// What the list of shipments is.
pub fn intro() -> Markup {
    html! {
        p.muted { "One shipment per placed order, created by shipping-service from the "
                  code { "orders" } " topic: who receives it, where it goes, what to pack. No prices. "
                  a href="/to-pick" { "Units to pick per SKU »" } }
    }
}

/// The shipments as a table.
pub fn table(shipments: &[Shipment], links: &PageLinks) -> Markup {
    html! {
        table {
            thead { tr {
                th { "Created" } th { "Recipient" } th { "Ship to" }
                th.num { "Items" } th { "Status" } th { "Order" }
            } }
            tbody {
                @for shipment in shipments {
                    tr {
                        td { a href={ "/shipment/" (shipment.id) } { (time(shipment.created_at)) } }
                        td { (shipment.recipient.name) }
                        td { (shipment.shipping_address.city) ", " (shipment.shipping_address.country) }
                        td.num { (shipment.lines.iter().map(|l| i64::from(l.quantity)).sum::<i64>()) }
                        td { (status(label(shipment.status))) }
                        td { a.mono href={ (links.order) "/order/" (shipment.order_id) } { "order" } }
                    }
                }
            }
        }
    }
}

/// One shipment: its title and its content.
pub fn shipment(shipment: &Shipment, links: &PageLinks) -> (String, Markup) {
    let a = &shipment.shipping_address;
    let content = html! {
        h1 { "Shipment " span.mono { (shipment.id) } }
        div.cards {
            div.card {
                dl.facts {
                    dt { "Status" } dd { (status(label(shipment.status))) }
                    dt { "Created" } dd { (time(shipment.created_at)) }
                    dt { "Order" } dd { a.mono href={ (links.order) "/order/" (shipment.order_id) } { (shipment.order_id) } }
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
    };
    (format!("Shipment for {}", shipment.recipient.name), content)
}

async fn to_pick(
    State(pages): State<PageState>,
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
    Ok(frame::<Shipping>("Units to pick", &pages.links, content))
}

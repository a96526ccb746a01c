//! The shipping pages: the words and tables of the shipment list, one
//! shipment with its recipient, shipping address and what to pack, and the
//! units to pick per SKU. Shipping knows no price, e-mail or billing
//! address, so its pages cannot show one. The kit serves them in the shared
//! frame ([`consumer_kit::pages`]), from the same queries as the JSON API;
//! `maud` escapes every value a customer typed.

use maud::{Markup, html};
use platform_web::web::PageLinks;
use platform_web::web::format::time;
use platform_web::web::layout::status;

use crate::shipment::{Shipment, ShipmentStatus};

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

//! {{Name}}'s pages: the words and tables the kit frames
//! ([`consumer_kit::pages`]); `maud` escapes every value a customer typed.

use maud::{Markup, html};
use platform_web::web::PageLinks;
use platform_web::web::format::{money, time};
use platform_web::web::layout::status;

use crate::Entry;

/// What the list of entries is.
pub fn intro() -> Markup {
    html! {
        p.muted { "One entry per placed order, recorded by {{name}}-service from the "
                  code { "orders" } " topic." }
    }
}

/// The entries as a table.
pub fn table(entries: &[Entry], links: &PageLinks) -> Markup {
    html! {
        table {
            thead { tr {
                th { "Recorded" } th { "Customer" } th.num { "Units" } th.num { "Total" }
                th { "Status" } th { "Order" }
            } }
            tbody {
                @for entry in entries {
                    tr {
                        td { a href={ "/entry/" (entry.id) } { (time(entry.created_at)) } }
                        td { (entry.customer_name) }
                        td.num { (entry.units) }
                        td.num { (money(entry.total_cents, &entry.currency)) }
                        td { (status(&entry.status)) }
                        td { a.mono href={ (links.order) "/order/" (entry.order_id) } { "order" } }
                    }
                }
            }
        }
    }
}

/// One entry: its title and its content.
pub fn entry(entry: &Entry, links: &PageLinks) -> (String, Markup) {
    let content = html! {
        h1 { "Entry " span.mono { (entry.id) } }
        div.card {
            dl.facts {
                dt { "Status" } dd { (status(&entry.status)) }
                dt { "Recorded" } dd { (time(entry.created_at)) }
                dt { "Customer" } dd { (entry.customer_name) }
                dt { "Units" } dd { (entry.units) }
                dt { "Total" } dd { (money(entry.total_cents, &entry.currency)) }
                dt { "Order" } dd { a.mono href={ (links.order) "/order/" (entry.order_id) } { (entry.order_id) } }
            }
        }
    };
    (format!("Entry for {}", entry.customer_name), content)
}

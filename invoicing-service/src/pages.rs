//! The invoicing pages: the words and tables of the invoice list, one
//! invoice with its billing address, priced lines and total, and the
//! customers' open balances. The kit serves them in the shared frame
//! ([`consumer_kit::pages`]), from the same queries as the JSON API;
//! `maud` escapes every value a customer typed.

use maud::{Markup, html};
use platform_web::web::PageLinks;
use platform_web::web::format::{money, time};
use platform_web::web::layout::status;

use crate::invoice::{Invoice, InvoiceStatus};

fn label(status: InvoiceStatus) -> &'static str {
    match status {
        InvoiceStatus::Open => "open",
        InvoiceStatus::Cancelled => "cancelled",
    }
}

/// What the list of invoices is.
pub fn intro() -> Markup {
    html! {
        p.muted { "One invoice per placed order, issued by invoicing-service from the "
                  code { "orders" } " topic: billing address, prices and totals. "
                  a href="/open-balances" { "Open balances per customer »" } }
    }
}

/// The invoices as a table.
pub fn table(invoices: &[Invoice], links: &PageLinks) -> Markup {
    html! {
        table {
            thead { tr {
                th { "Issued" } th { "Customer" } th { "Billing address" }
                th.num { "Total" } th { "Status" } th { "Order" }
            } }
            tbody {
                @for invoice in invoices {
                    tr {
                        td { a href={ "/invoice/" (invoice.id) } { (time(invoice.issued_at)) } }
                        td { (invoice.customer.name) }
                        td { (invoice.billing_address.city) ", " (invoice.billing_address.country) }
                        td.num { (money(invoice.total_cents, &invoice.currency)) }
                        td { (status(label(invoice.status))) }
                        td { a.mono href={ (links.order) "/order/" (invoice.order_id) } { "order" } }
                    }
                }
            }
        }
    }
}

/// One invoice: its title and its content.
pub fn invoice(invoice: &Invoice, links: &PageLinks) -> (String, Markup) {
    let a = &invoice.billing_address;
    let content = html! {
        h1 { "Invoice " span.mono { (invoice.id) } }
        div.cards {
            div.card {
                dl.facts {
                    dt { "Status" } dd { (status(label(invoice.status))) }
                    dt { "Issued" } dd { (time(invoice.issued_at)) }
                    dt { "Order" } dd { a.mono href={ (links.order) "/order/" (invoice.order_id) } { (invoice.order_id) } }
                }
            }
            div.card {
                dl.facts {
                    dt { "Customer" } dd { (invoice.customer.name) }
                    dt { "E-mail" } dd { (invoice.customer.email) }
                    dt { "Billing address" } dd { (a.street) br; (a.zip) " " (a.city) br; (a.country) }
                }
            }
        }
        h2 { "Lines" }
        table {
            thead { tr { th { "SKU" } th { "Product" } th.num { "Quantity" } th.num { "Unit price" } th.num { "Line total" } } }
            tbody {
                @for line in &invoice.lines {
                    tr {
                        td.mono { (line.sku) } td { (line.name) } td.num { (line.quantity) }
                        td.num { (money(line.unit_price_cents, &invoice.currency)) }
                        td.num { (money(line.line_total_cents, &invoice.currency)) }
                    }
                }
                tr { td colspan="4" { strong { "Total" } } td.num { strong { (money(invoice.total_cents, &invoice.currency)) } } }
            }
        }
    };
    (format!("Invoice for {}", invoice.customer.name), content)
}

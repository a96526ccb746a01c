//! The invoicing pages: the invoices, newest first, a page at a time, one
//! invoice with its billing address, priced lines and total, and the
//! customers' open balances. They read the same queries as the JSON API
//! ([`crate::store`], [`crate::balance`]); `maud` escapes every value a
//! customer typed.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use maud::html;
use platform::pagination::OrderListQuery;
use platform::web::format::{money, time};
use platform::web::layout::{Section, key_order_pager, page, pager, status};
use platform::web::{PageError, PageLinks, ReadModel, list_query, ok, path_id, query as query_of};
use sqlx::PgPool;

use crate::balance::{self, BalanceQuery};
use crate::invoice::{Invoice, InvoiceStatus};
use crate::store;

/// `GET /` (the list), `GET /invoice/{id}` and `GET /open-balances`, with the shared assets.
pub fn routes(pool: PgPool, links: PageLinks) -> Router {
    let more = Router::new().route("/open-balances", get(balances));
    ReadModel::routes(pool, links, "/invoice/{id}", list, show, more)
}

fn label(status: InvoiceStatus) -> &'static str {
    match status {
        InvoiceStatus::Open => "open",
        InvoiceStatus::Cancelled => "cancelled",
    }
}

async fn list(
    State(pages): State<ReadModel>,
    query: Result<Query<OrderListQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let (order_id, request) = list_query(query)?;
    let invoices = store::list(&pages.pool, order_id, request)
        .await
        .map_err(|e| PageError::database(&e))?;
    let content = html! {
        h1 { "Invoices" }
        p.muted { "One invoice per placed order, issued by invoicing-service from the "
                  code { "orders" } " topic: billing address, prices and totals. "
                  a href="/open-balances" { "Open balances per customer »" } }
        @if invoices.items.is_empty() {
            p.card { "No invoices yet. Place an order on "
                     a href={ (pages.links.order) "/new" } { "the order page" } "." }
        } @else {
            table {
                thead { tr {
                    th { "Issued" } th { "Customer" } th { "Billing address" }
                    th.num { "Total" } th { "Status" } th { "Order" }
                } }
                tbody {
                    @for invoice in &invoices.items {
                        tr {
                            td { a href={ "/invoice/" (invoice.id) } { (time(invoice.issued_at)) } }
                            td { (invoice.customer.name) }
                            td { (invoice.billing_address.city) ", " (invoice.billing_address.country) }
                            td.num { (money(invoice.total_cents, &invoice.currency)) }
                            td { (status(label(invoice.status))) }
                            td { a.mono href={ (pages.links.order) "/order/" (invoice.order_id) } { "order" } }
                        }
                    }
                }
            }
        }
        (pager(invoices.next_cursor.as_deref(), request.before.is_none()))
    };
    Ok(ok(page(
        "Invoices",
        &pages.links,
        Section::Invoices,
        content,
    )))
}

async fn balances(
    State(pages): State<ReadModel>,
    query: Result<Query<BalanceQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let filter = query_of(query)?
        .parse()
        .map_err(|problem| PageError::from_problem(&problem))?;
    let balances = balance::list(&pages.pool, &filter)
        .await
        .map_err(|e| PageError::database(&e))?;
    let content = html! {
        h1 { "Open balances" }
        p.muted { "What each customer owes, per currency: each placed order adds its invoice's total, \
                   each cancellation takes it off again. A running figure that only the inbox's \
                   deduplication keeps right: the chaos audit compares it with the open invoices." }
        @if balances.items.is_empty() {
            p.card { "No balances yet." }
        } @else {
            table {
                thead { tr { th { "Customer" } th { "Currency" } th.num { "Open" } } }
                tbody {
                    @for balance in &balances.items {
                        tr {
                            td { (balance.customer_email) }
                            td { (balance.currency) }
                            td.num { (money(balance.open_cents, &balance.currency)) }
                        }
                    }
                }
            }
        }
        (key_order_pager(balances.next_cursor.as_deref(), filter.page.first_page()))
        p { a href="/" { "« All invoices" } }
    };
    Ok(ok(page(
        "Open balances",
        &pages.links,
        Section::Invoices,
        content,
    )))
}

async fn show(
    State(pages): State<ReadModel>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = path_id(&id, "invoice")?;
    let invoice: Invoice = store::find(&pages.pool, id)
        .await
        .map_err(|e| PageError::database(&e))?
        .ok_or_else(|| PageError::not_found(format!("there is no invoice {id}")))?;
    let a = &invoice.billing_address;
    let content = html! {
        h1 { "Invoice " span.mono { (invoice.id) } }
        div.cards {
            div.card {
                dl.facts {
                    dt { "Status" } dd { (status(label(invoice.status))) }
                    dt { "Issued" } dd { (time(invoice.issued_at)) }
                    dt { "Order" } dd { a.mono href={ (pages.links.order) "/order/" (invoice.order_id) } { (invoice.order_id) } }
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
        p { a href="/" { "« All invoices" } }
    };
    Ok(ok(page(
        &format!("Invoice for {}", invoice.customer.name),
        &pages.links,
        Section::Invoices,
        content,
    )))
}

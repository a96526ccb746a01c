//! Invoicing: the consumer that bills placed orders.
//!
//! In the order flow, invoicing reads the `orders` topic in its own consumer
//! group (`invoicing`) and keeps its own database. Each `OrderPlaced` issues
//! one invoice (customer, billing address, currency, priced lines and a total
//! computed here, not trusted from the event); each `OrderCancelled` cancels
//! it, even when the cancellation arrives first. Both move the customer's
//! open [`balance`], a running figure that only the inbox's dedup keeps
//! exactly-once (what the chaos audit checks from outside).
//!
//! This crate is its domain only: the [`reader`] (the tolerant reader), the
//! [`invoice`] it makes, its effects ([`store`], [`balance`]) and its
//! [`pages`]. The service around them (settings, inbox, cancellation rule,
//! read API, page frame, process) is [`consumer_kit`]; [`messaging::inbox`]
//! documents how to rebuild the invoices from the topic's history.

pub mod balance;
pub mod invoice;
pub mod pages;
pub mod reader;
pub mod store;

use axum::Router;
use consumer_kit::{Consumer, ReadModel};
use maud::Markup;
use messaging::inbox::{ApplyError, EventMeta, Rejection};
use platform::services::{INVOICING_SERVICE, ServiceFacts};
use platform_web::web::PageLinks;
use shared_events::RawEnvelope;
use sqlx::migrate::Migrator;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::invoice::{Invoice, NewInvoice};
use crate::reader::InvoicingEvent;

consumer_kit::reader_contract_tests!(Invoicing);

/// The service's own tables (the inbox adds its own, [`messaging::inbox::MIGRATOR`]).
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// The invoicing service's domain.
#[derive(Debug, Clone, Copy, Default)]
pub struct Invoicing;

impl Consumer for Invoicing {
    const SERVICE: ServiceFacts = INVOICING_SERVICE;
    const ABOUT: &'static str = "Issues one invoice per placed order (billing address, prices, totals) from the orders topic; serves the invoices over HTTP.";
    const READ_MODEL: ReadModel = ReadModel {
        table: "invoices",
        view: "invoices_with_lines",
        singular: "invoice",
    };

    type Placed = NewInvoice;
    type Item = Invoice;
    type Row = store::InvoiceRow;

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn read(&self, envelope: &RawEnvelope) -> Result<Option<InvoicingEvent>, Rejection> {
        reader::read(envelope)
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        placed: &[(&EventMeta, &NewInvoice)],
        cancelled: &[Uuid],
    ) -> Result<(), ApplyError> {
        store::issue(conn, placed).await?;
        balance::apply(conn, placed, cancelled).await?;
        Ok(())
    }

    fn item(row: store::InvoiceRow) -> Result<Invoice, sqlx::Error> {
        Invoice::try_from(row)
    }

    fn id(invoice: &Invoice) -> Uuid {
        invoice.id
    }

    fn list_intro(&self, _links: &PageLinks) -> Markup {
        pages::intro()
    }

    fn list_table(&self, invoices: &[Invoice], links: &PageLinks) -> Markup {
        pages::table(invoices, links)
    }

    fn show(&self, invoice: &Invoice, links: &PageLinks) -> (String, Markup) {
        pages::invoice(invoice, links)
    }

    fn more_api(&self) -> Option<(Router<PgPool>, utoipa::openapi::OpenApi)> {
        Some(consumer_kit::figure::api::<balance::Balances>())
    }

    fn more_pages(&self) -> Router<consumer_kit::pages::PageState> {
        consumer_kit::figure::page::<balance::Balances, Self>()
    }
}

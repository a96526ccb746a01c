//! The invoices tables: the effects of order events, and the queries of the API.
//!
//! The effects run inside the inbox's transaction (dedup records included),
//! for a whole batch of events at once, and never commit. The inbox has
//! locked the batch's orders; an invoice honours a cancellation that came
//! before it, as [`messaging::cancellation`] explains.

use messaging::inbox::EventMeta;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use crate::invoice::{
    BillingAddress, Customer, Invoice, InvoiceLine, InvoiceStatus, NewInvoice, UnknownStatus,
};

/// Issues the invoices of `placed` (the `OrderPlaced` event, invoice), in
/// one statement for the invoices and one for all their lines: open, or
/// already cancelled when the order's cancellation came first; each records
/// the event that issued it. An order invoiced already (another
/// `OrderPlaced` of it) keeps its invoice.
pub async fn issue(
    conn: &mut PgConnection,
    placed: &[(&EventMeta, &NewInvoice)],
) -> Result<(), sqlx::Error> {
    if placed.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = placed.iter().map(|_| Uuid::now_v7()).collect();
    let column =
        |f: fn(&NewInvoice) -> &str| placed.iter().map(|(_, i)| f(i)).collect::<Vec<&str>>();
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO invoices (id, order_id, issued_by_event, status, customer_name,
             customer_email, billing_street, billing_zip, billing_city, billing_country,
             currency, total_cents)
         SELECT n.id, n.order_id, n.event_id,
             CASE WHEN EXISTS (SELECT 1 FROM cancellations c WHERE c.order_id = n.order_id)
                  THEN 'cancelled' ELSE 'open' END,
             n.customer_name, n.customer_email, n.billing_street, n.billing_zip,
             n.billing_city, n.billing_country, n.currency, n.total_cents
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::text[], $10::int8[], $11::uuid[])
             AS n (id, order_id, customer_name, customer_email, billing_street, billing_zip,
                   billing_city, billing_country, currency, total_cents, event_id)
         ON CONFLICT (order_id) DO NOTHING
         RETURNING id",
    )
    .bind(&ids)
    .bind(
        placed
            .iter()
            .map(|(event, _)| event.order_id)
            .collect::<Vec<Uuid>>(),
    )
    .bind(column(|i| &i.customer.name))
    .bind(column(|i| &i.customer.email))
    .bind(column(|i| &i.billing_address.street))
    .bind(column(|i| &i.billing_address.zip))
    .bind(column(|i| &i.billing_address.city))
    .bind(column(|i| &i.billing_address.country))
    .bind(column(|i| &i.currency))
    .bind(
        placed
            .iter()
            .map(|(_, i)| i.total_cents)
            .collect::<Vec<i64>>(),
    )
    .bind(
        placed
            .iter()
            .map(|(event, _)| event.event_id)
            .collect::<Vec<Uuid>>(),
    )
    .fetch_all(&mut *conn)
    .await?;

    // The lines of the invoices just issued, numbered from 1 in order.
    let lines: Vec<(Uuid, i32, &InvoiceLine)> =
        consumer_kit::numbered_lines(&ids, placed, &inserted, |invoice| &invoice.lines);
    sqlx::query(
        "INSERT INTO invoice_lines
             (invoice_id, line_no, sku, name, quantity, unit_price_cents, line_total_cents)
         SELECT * FROM UNNEST($1::uuid[], $2::int[], $3::text[], $4::text[], $5::int[],
                              $6::int8[], $7::int8[])",
    )
    .bind(lines.iter().map(|(id, ..)| *id).collect::<Vec<Uuid>>())
    .bind(lines.iter().map(|(_, no, _)| *no).collect::<Vec<i32>>())
    .bind(
        lines
            .iter()
            .map(|(.., l)| l.sku.as_str())
            .collect::<Vec<&str>>(),
    )
    .bind(
        lines
            .iter()
            .map(|(.., l)| l.name.as_str())
            .collect::<Vec<&str>>(),
    )
    .bind(lines.iter().map(|(.., l)| l.quantity).collect::<Vec<i32>>())
    .bind(
        lines
            .iter()
            .map(|(.., l)| l.unit_price_cents)
            .collect::<Vec<i64>>(),
    )
    .bind(
        lines
            .iter()
            .map(|(.., l)| l.line_total_cents)
            .collect::<Vec<i64>>(),
    )
    .execute(&mut *conn)
    .await?;
    tracing::info!(
        issued = inserted.len(),
        already_invoiced = placed.len() - inserted.len(),
        "invoices issued"
    );
    Ok(())
}

/// A row of `invoices_with_lines`: an invoice with its lines in order, in
/// one row, as the read API and the pages read it.
#[derive(FromRow)]
pub struct InvoiceRow {
    id: Uuid,
    order_id: Uuid,
    status: String,
    customer_name: String,
    customer_email: String,
    billing_street: String,
    billing_zip: String,
    billing_city: String,
    billing_country: String,
    currency: String,
    total_cents: i64,
    issued_at: chrono::DateTime<chrono::Utc>,
    lines: Json<Vec<InvoiceLine>>,
}

impl TryFrom<InvoiceRow> for Invoice {
    type Error = sqlx::Error;

    fn try_from(row: InvoiceRow) -> Result<Self, Self::Error> {
        let status: InvoiceStatus = row
            .status
            .parse()
            .map_err(|e: UnknownStatus| sqlx::Error::Decode(Box::new(e)))?;
        Ok(Invoice {
            id: row.id,
            order_id: row.order_id,
            status,
            customer: Customer {
                name: row.customer_name,
                email: row.customer_email,
            },
            billing_address: BillingAddress {
                street: row.billing_street,
                zip: row.billing_zip,
                city: row.billing_city,
                country: row.billing_country,
            },
            currency: row.currency,
            lines: row.lines.0,
            total_cents: row.total_cents,
            issued_at: row.issued_at,
        })
    }
}

//! The invoices tables: the effects of order events, and the queries of the API.
//!
//! The effects run inside the inbox's transaction (dedup record included) and
//! never commit. Both lock the order first and honour a cancellation that
//! came before the order, as [`messaging::cancellation`] explains.

use messaging::cancellation::{self, lock_order};
use messaging::view::View;
use platform::pagination::{Page, PageRequest};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::invoice::{
    BillingAddress, Customer, Invoice, InvoiceLine, InvoiceStatus, NewInvoice, UnknownStatus,
};

/// Issues the invoice of `order_id`: open, or already cancelled when its
/// cancellation arrived first. Does nothing when the order is invoiced
/// already (another `OrderPlaced` of the same order).
#[tracing::instrument(skip_all, fields(%order_id))]
pub async fn issue(
    conn: &mut PgConnection,
    order_id: Uuid,
    invoice: &NewInvoice,
) -> Result<(), sqlx::Error> {
    lock_order(conn, order_id).await?;
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO invoices (id, order_id, status, customer_name, customer_email,
             billing_street, billing_zip, billing_city, billing_country, currency, total_cents)
         SELECT $1, $2,
             CASE WHEN EXISTS (SELECT 1 FROM cancellations WHERE order_id = $2)
                  THEN 'cancelled' ELSE 'open' END,
             $3, $4, $5, $6, $7, $8, $9, $10
         ON CONFLICT (order_id) DO NOTHING
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(order_id)
    .bind(&invoice.customer.name)
    .bind(&invoice.customer.email)
    .bind(&invoice.billing_address.street)
    .bind(&invoice.billing_address.zip)
    .bind(&invoice.billing_address.city)
    .bind(&invoice.billing_address.country)
    .bind(&invoice.currency)
    .bind(invoice.total_cents)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(id) = inserted else {
        tracing::info!("order already invoiced; another OrderPlaced of it changes nothing");
        return Ok(());
    };
    let lines = &invoice.lines;
    sqlx::query(
        "INSERT INTO invoice_lines
             (invoice_id, line_no, sku, name, quantity, unit_price_cents, line_total_cents)
         SELECT $1, l.line_no, l.sku, l.name, l.quantity, l.unit_price_cents, l.line_total_cents
         FROM UNNEST($2::text[], $3::text[], $4::int[], $5::bigint[], $6::bigint[])
             WITH ORDINALITY AS l(sku, name, quantity, unit_price_cents, line_total_cents, line_no)",
    )
    .bind(id)
    .bind(lines.iter().map(|l| l.sku.as_str()).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.name.as_str()).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.quantity).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.unit_price_cents).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.line_total_cents).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    tracing::info!(invoice_id = %id, total_cents = invoice.total_cents, "invoice issued");
    Ok(())
}

/// Cancels the invoice of `order_id`, and remembers the cancellation for an
/// invoice that has not been issued yet.
#[tracing::instrument(skip_all, fields(%order_id))]
pub async fn cancel(conn: &mut PgConnection, order_id: Uuid) -> Result<(), sqlx::Error> {
    lock_order(conn, order_id).await?;
    cancellation::note(conn, order_id).await?;
    let cancelled = sqlx::query("UPDATE invoices SET status = 'cancelled' WHERE order_id = $1")
        .bind(order_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    tracing::info!(
        invoice_found = cancelled > 0,
        "invoice cancelled (or will be issued cancelled)"
    );
    Ok(())
}

/// What the read API reads: a invoice with its lines in order, in one row.
const VIEW: View = View("invoices_with_lines");

/// The invoice `id`, if it exists.
pub async fn find(pool: &PgPool, id: Uuid) -> Result<Option<Invoice>, sqlx::Error> {
    VIEW.find(pool, id, <Invoice as TryFrom<InvoiceRow>>::try_from)
        .await
}

/// One page of invoices, newest first, optionally only those of one order.
pub async fn list(
    pool: &PgPool,
    order_id: Option<Uuid>,
    page: PageRequest,
) -> Result<Page<Invoice>, sqlx::Error> {
    VIEW.page(
        pool,
        order_id,
        page,
        <Invoice as TryFrom<InvoiceRow>>::try_from,
        |invoice: &Invoice| invoice.id,
    )
    .await
}

#[derive(FromRow)]
struct InvoiceRow {
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

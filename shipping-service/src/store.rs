//! The shipments tables: the effects of order events, and the queries of the API.
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

use crate::shipment::{
    NewShipment, Recipient, Shipment, ShipmentLine, ShipmentStatus, ShippingAddress, UnknownStatus,
};

/// Creates the shipment of `order_id`: pending, or already cancelled when its
/// cancellation arrived first. Does nothing when the order has a shipment
/// already (another `OrderPlaced` of the same order).
#[tracing::instrument(skip_all, fields(%order_id))]
pub async fn create(
    conn: &mut PgConnection,
    order_id: Uuid,
    shipment: &NewShipment,
) -> Result<(), sqlx::Error> {
    lock_order(conn, order_id).await?;
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO shipments (id, order_id, status, recipient_name,
             shipping_street, shipping_zip, shipping_city, shipping_country)
         SELECT $1, $2,
             CASE WHEN EXISTS (SELECT 1 FROM cancellations WHERE order_id = $2)
                  THEN 'cancelled' ELSE 'pending' END,
             $3, $4, $5, $6, $7
         ON CONFLICT (order_id) DO NOTHING
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(order_id)
    .bind(&shipment.recipient.name)
    .bind(&shipment.shipping_address.street)
    .bind(&shipment.shipping_address.zip)
    .bind(&shipment.shipping_address.city)
    .bind(&shipment.shipping_address.country)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(id) = inserted else {
        tracing::info!("order already has a shipment; another OrderPlaced of it changes nothing");
        return Ok(());
    };
    let lines = &shipment.lines;
    sqlx::query(
        "INSERT INTO shipment_lines (shipment_id, line_no, sku, name, quantity)
         SELECT $1, l.line_no, l.sku, l.name, l.quantity
         FROM UNNEST($2::text[], $3::text[], $4::int[])
             WITH ORDINALITY AS l(sku, name, quantity, line_no)",
    )
    .bind(id)
    .bind(lines.iter().map(|l| l.sku.as_str()).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.name.as_str()).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.quantity).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    tracing::info!(shipment_id = %id, "shipment created");
    Ok(())
}

/// Cancels the shipment of `order_id`, and remembers the cancellation for a
/// shipment that has not been created yet.
#[tracing::instrument(skip_all, fields(%order_id))]
pub async fn cancel(conn: &mut PgConnection, order_id: Uuid) -> Result<(), sqlx::Error> {
    lock_order(conn, order_id).await?;
    cancellation::note(conn, order_id).await?;
    let cancelled = sqlx::query("UPDATE shipments SET status = 'cancelled' WHERE order_id = $1")
        .bind(order_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    tracing::info!(
        shipment_found = cancelled > 0,
        "shipment cancelled (or will be created cancelled)"
    );
    Ok(())
}

/// What the read API reads: a shipment with its lines in order, in one row.
const VIEW: View = View("shipments_with_lines");

/// The shipment `id`, if it exists.
pub async fn find(pool: &PgPool, id: Uuid) -> Result<Option<Shipment>, sqlx::Error> {
    VIEW.find(pool, id, <Shipment as TryFrom<ShipmentRow>>::try_from)
        .await
}

/// One page of shipments, newest first, optionally only those of one order.
pub async fn list(
    pool: &PgPool,
    order_id: Option<Uuid>,
    page: PageRequest,
) -> Result<Page<Shipment>, sqlx::Error> {
    VIEW.page(
        pool,
        order_id,
        page,
        <Shipment as TryFrom<ShipmentRow>>::try_from,
        |shipment: &Shipment| shipment.id,
    )
    .await
}

#[derive(FromRow)]
struct ShipmentRow {
    id: Uuid,
    order_id: Uuid,
    status: String,
    recipient_name: String,
    shipping_street: String,
    shipping_zip: String,
    shipping_city: String,
    shipping_country: String,
    created_at: chrono::DateTime<chrono::Utc>,
    lines: Json<Vec<ShipmentLine>>,
}

impl TryFrom<ShipmentRow> for Shipment {
    type Error = sqlx::Error;

    fn try_from(row: ShipmentRow) -> Result<Self, Self::Error> {
        let status: ShipmentStatus = row
            .status
            .parse()
            .map_err(|e: UnknownStatus| sqlx::Error::Decode(Box::new(e)))?;
        Ok(Shipment {
            id: row.id,
            order_id: row.order_id,
            status,
            recipient: Recipient {
                name: row.recipient_name,
            },
            shipping_address: ShippingAddress {
                street: row.shipping_street,
                zip: row.shipping_zip,
                city: row.shipping_city,
                country: row.shipping_country,
            },
            lines: row.lines.0,
            created_at: row.created_at,
        })
    }
}

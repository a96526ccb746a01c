//! The shipments tables: the effects of order events, and the queries of the API.
//!
//! The effects run inside the inbox's transaction (dedup records included),
//! for a whole batch of events at once, and never commit. The inbox has
//! locked the batch's orders; a shipment honours a cancellation that came
//! before it, as [`messaging::cancellation`] explains.

use messaging::inbox::EventMeta;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use crate::shipment::{
    NewShipment, Recipient, Shipment, ShipmentLine, ShipmentStatus, ShippingAddress, UnknownStatus,
};

/// Creates the shipments of `placed` (the `OrderPlaced` event, shipment), in
/// one statement for the shipments and one for all their lines: pending, or
/// already cancelled when the order's cancellation came first; each records
/// the event that created it. An order that has a shipment already (another
/// `OrderPlaced` of it) keeps it.
pub async fn create(
    conn: &mut PgConnection,
    placed: &[(&EventMeta, &NewShipment)],
) -> Result<(), sqlx::Error> {
    if placed.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = placed.iter().map(|_| Uuid::now_v7()).collect();
    let column =
        |f: fn(&NewShipment) -> &str| placed.iter().map(|(_, s)| f(s)).collect::<Vec<&str>>();
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO shipments (id, order_id, created_by_event, status, recipient_name,
             shipping_street, shipping_zip, shipping_city, shipping_country)
         SELECT n.id, n.order_id, n.event_id,
             CASE WHEN EXISTS (SELECT 1 FROM cancellations c WHERE c.order_id = n.order_id)
                  THEN 'cancelled' ELSE 'pending' END,
             n.recipient_name, n.shipping_street, n.shipping_zip, n.shipping_city,
             n.shipping_country
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::uuid[])
             AS n (id, order_id, recipient_name, shipping_street, shipping_zip, shipping_city,
                   shipping_country, event_id)
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
    .bind(column(|s| &s.recipient.name))
    .bind(column(|s| &s.shipping_address.street))
    .bind(column(|s| &s.shipping_address.zip))
    .bind(column(|s| &s.shipping_address.city))
    .bind(column(|s| &s.shipping_address.country))
    .bind(
        placed
            .iter()
            .map(|(event, _)| event.event_id)
            .collect::<Vec<Uuid>>(),
    )
    .fetch_all(&mut *conn)
    .await?;

    // The lines of the shipments just created, numbered from 1 in order.
    let lines: Vec<(Uuid, i32, &ShipmentLine)> =
        consumer_kit::numbered_lines(&ids, placed, &inserted, |shipment| &shipment.lines);
    sqlx::query(
        "INSERT INTO shipment_lines (shipment_id, line_no, sku, name, quantity)
         SELECT * FROM UNNEST($1::uuid[], $2::int[], $3::text[], $4::text[], $5::int[])",
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
    .execute(&mut *conn)
    .await?;
    tracing::info!(
        created = inserted.len(),
        already_shipped = placed.len() - inserted.len(),
        "shipments created"
    );
    Ok(())
}

/// A row of `shipments_with_lines`: a shipment with its lines in order, in
/// one row, as the read API and the pages read it.
#[derive(FromRow)]
pub struct ShipmentRow {
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

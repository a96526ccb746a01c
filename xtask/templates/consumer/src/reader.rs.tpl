//! The tolerant reader: {{name}}'s own, narrow view of the order events, and
//! the entry it makes of them.

use chrono::{DateTime, Utc};
use messaging::inbox::Rejection;
use messaging::reader::{self, OrderEvent};
use serde::{Deserialize, Serialize};
use shared_events::RawEnvelope;
use uuid::Uuid;

/// `OrderPlaced` as {{name}} reads it: only these fields.
#[derive(Deserialize)]
struct PlacedOrder {
    customer: Customer,
    currency: String,
    lines: Vec<Line>,
}

#[derive(Deserialize)]
struct Customer {
    name: String,
}

#[derive(Deserialize)]
struct Line {
    quantity: u32,
    unit_price_cents: i64,
}

/// What a placed order becomes: the entry to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// Who ordered.
    pub customer_name: String,
    /// ISO 4217 currency code.
    pub currency: String,
    /// The sum of the lines, computed here.
    pub total_cents: i64,
    /// The units ordered.
    pub units: i32,
}

/// A recorded entry, as the API serves it and the pages show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Entry {
    /// The entry's id (UUIDv7).
    pub id: Uuid,
    /// The order it records.
    pub order_id: Uuid,
    /// `open`, or `cancelled` once the order is.
    pub status: String,
    /// Who ordered.
    pub customer_name: String,
    /// ISO 4217 currency code.
    pub currency: String,
    /// The order's total in minor units.
    pub total_cents: i64,
    /// The units ordered.
    pub units: i32,
    /// When it was recorded (the database's clock).
    pub created_at: DateTime<Utc>,
}

/// Reads a record's envelope: `Ok(None)` for event types {{name}} does not
/// handle, a [`Rejection`] naming the field for an order it cannot record.
pub fn read(envelope: &RawEnvelope) -> Result<Option<OrderEvent<NewEntry>>, Rejection> {
    reader::read_order(envelope, entry)
}

fn entry(order: PlacedOrder) -> Result<NewEntry, Rejection> {
    let lines = reader::lines(order.lines, |line: Line| {
        let quantity = reader::quantity(line.quantity)?;
        line.unit_price_cents
            .checked_mul(i64::from(quantity))
            .filter(|cents| *cents >= 0)
            .map(|cents| (quantity, cents))
            .ok_or_else(|| "unit_price_cents: negative, or the line total overflows".to_owned())
    })?;
    let overflow = || Rejection("lines: the sum overflows".into());
    let total_cents = lines
        .iter()
        .try_fold(0_i64, |sum, (_, cents)| sum.checked_add(*cents))
        .ok_or_else(overflow)?;
    let units = lines
        .iter()
        .try_fold(0_i32, |sum, (quantity, _)| sum.checked_add(*quantity))
        .ok_or_else(overflow)?;
    Ok(NewEntry {
        customer_name: order.customer.name,
        currency: order.currency,
        total_cents,
        units,
    })
}

#[cfg(test)]
mod tests {
    use shared_events::samples;

    use super::*;

    #[test]
    fn the_golden_order_becomes_its_entry() {
        let sample = samples::named("order_placed.v1.json").unwrap();
        let envelope = RawEnvelope::from_slice(sample.json.as_bytes()).unwrap();
        let Ok(Some(OrderEvent::Placed(entry))) = read(&envelope) else {
            panic!("the golden order did not read");
        };
        assert_eq!(
            entry,
            NewEntry {
                customer_name: "Ada Lovelace".into(),
                currency: "EUR".into(),
                total_cents: 31799,
                units: 3,
            }
        );
    }

    #[test]
    fn a_line_without_units_is_refused_naming_it() {
        let mut value = samples::named("order_placed.v1.json").unwrap().value();
        value["data"]["lines"][1]["quantity"] = 0.into();
        let refused = read(&RawEnvelope::from_json(&value).unwrap()).unwrap_err();
        assert!(refused.0.starts_with("lines[1].quantity"), "{refused}");
    }
}

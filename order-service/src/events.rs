//! What this service publishes: the domain's facts in the shared event contract.
//!
//! The payload types belong to `shared-events`; this module only fills them
//! in from a stored order, so that the contract crate never depends on the
//! service and the service never invents its own wire format.

use chrono::{DateTime, Utc};
use shared_events::{Envelope, OrderCancelled, OrderPlaced};
use uuid::Uuid;

use crate::domain::{Address, NewOrder};

/// The `producer` named in every envelope this service writes.
pub const PRODUCER: &str = "order-service";

/// The `OrderPlaced` envelope of a just-inserted order; `placed_at` comes from the database.
pub fn order_placed(
    event_id: Uuid,
    order_id: Uuid,
    order: &NewOrder,
    placed_at: DateTime<Utc>,
) -> Envelope<OrderPlaced> {
    let data = OrderPlaced {
        order_id,
        customer: shared_events::Customer {
            name: order.customer().name.to_string(),
            email: order.customer().email.as_str().to_owned(),
        },
        billing_address: address(order.billing_address()),
        shipping_address: address(order.shipping_address()),
        currency: order.currency().as_str().to_owned(),
        lines: order
            .lines()
            .iter()
            .map(|line| shared_events::OrderLine {
                sku: line.sku().as_str().to_owned(),
                name: line.name().to_string(),
                quantity: line.quantity().get(),
                unit_price_cents: line.unit_price().get(),
                line_total_cents: line.line_total().get(),
            })
            .collect(),
        total_cents: order.total().get(),
        placed_at,
    };
    with_event_id(Envelope::new(order_id, placed_at, PRODUCER, data), event_id)
}

/// The `OrderCancelled` envelope of a just-cancelled order.
pub fn order_cancelled(
    event_id: Uuid,
    order_id: Uuid,
    reason: Option<&str>,
    cancelled_at: DateTime<Utc>,
) -> Envelope<OrderCancelled> {
    let data = OrderCancelled {
        order_id,
        reason: reason.map(str::to_owned),
        cancelled_at,
    };
    with_event_id(
        Envelope::new(order_id, cancelled_at, PRODUCER, data),
        event_id,
    )
}

/// The caller chooses event ids (UUIDv7 in production) so that a write can be
/// traced from the request to the outbox row it produced.
fn with_event_id<T>(mut envelope: Envelope<T>, event_id: Uuid) -> Envelope<T> {
    envelope.event_id = event_id;
    envelope
}

fn address(a: &Address) -> shared_events::Address {
    shared_events::Address {
        street: a.street.to_string(),
        zip: a.zip.to_string(),
        city: a.city.to_string(),
        country: a.country.as_str().to_owned(),
    }
}

//! The events the end-to-end tests put on their topics, as the order
//! service writes them: an `OrderPlaced` with two lines and different billing
//! and shipping addresses, and its `OrderCancelled`.

use chrono::Utc;
use shared_events::{Address, Customer, Envelope, OrderCancelled, OrderLine, OrderPlaced};
use uuid::Uuid;

pub const EMAIL: &str = "ada@example.com";
pub const BILLING_STREET: &str = "1 Analytical Way";

/// An `OrderPlaced` for `order_id`: two lines, different billing and shipping addresses.
pub fn placed(order_id: Uuid) -> Envelope<OrderPlaced> {
    let address = |street: &str, zip: &str, city: &str| Address {
        street: street.into(),
        zip: zip.into(),
        city: city.into(),
        country: "DE".into(),
    };
    let line = |sku: &str, name: &str, quantity: u32, unit_price_cents: i64| OrderLine {
        sku: sku.into(),
        name: name.into(),
        quantity,
        unit_price_cents,
        line_total_cents: i64::from(quantity) * unit_price_cents,
    };
    let placed_at = Utc::now();
    Envelope::new(
        order_id,
        placed_at,
        "order-service",
        OrderPlaced {
            order_id,
            customer: Customer {
                name: "Ada Lovelace".into(),
                email: EMAIL.into(),
            },
            billing_address: address(BILLING_STREET, "10115", "Berlin"),
            shipping_address: address("2 Engine Road", "80331", "Munich"),
            currency: "EUR".into(),
            lines: vec![
                line("IPOD-NANO", "iPod nano", 2, 14900),
                line("CASE.BLK_1", "Leather case", 1, 1999),
            ],
            total_cents: 31799,
            placed_at,
        },
    )
}

/// An `OrderCancelled` for `order_id`.
pub fn cancelled(order_id: Uuid) -> Envelope<OrderCancelled> {
    Envelope::new(
        order_id,
        Utc::now(),
        "order-service",
        OrderCancelled {
            order_id,
            reason: Some("changed my mind".into()),
            cancelled_at: Utc::now(),
        },
    )
}

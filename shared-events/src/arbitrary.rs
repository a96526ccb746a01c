//! Property-test generators for readers of the contract (feature `arbitrary`).
//!
//! The golden [`crate::samples`] pin a few events exactly; these generators
//! cover the rest of the space. A consumer's reader should accept every
//! [`order_placed`] and read back the fields it declares, and should never
//! panic on any [`record_value`].

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::Value;
use uuid::Uuid;

use crate::{Address, Customer, OrderLine, OrderPlaced};

/// The field names used by the order events, to give arbitrary JSON objects
/// a fair chance of looking like a payload.
pub const ORDER_EVENT_FIELDS: &[&str] = &[
    "order_id",
    "customer",
    "name",
    "email",
    "billing_address",
    "shipping_address",
    "street",
    "zip",
    "city",
    "country",
    "currency",
    "lines",
    "sku",
    "quantity",
    "unit_price_cents",
    "line_total_cents",
    "total_cents",
    "placed_at",
    "reason",
];

fn text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9 .,'-]{1,24}"
}

fn address() -> impl Strategy<Value = Address> {
    (text(), text(), text(), "[A-Z]{2}").prop_map(|(street, zip, city, country)| Address {
        street,
        zip,
        city,
        country,
    })
}

fn order_line() -> impl Strategy<Value = OrderLine> {
    (
        "[A-Z0-9][A-Z0-9._-]{0,15}",
        text(),
        1..=100_000_u32,
        0..=10_000_000_i64,
    )
        .prop_map(|(sku, name, quantity, unit_price_cents)| OrderLine {
            sku,
            name,
            quantity,
            unit_price_cents,
            line_total_cents: unit_price_cents * i64::from(quantity),
        })
}

/// Any valid `OrderPlaced`: one to seven lines, non-blank SKUs, at least one
/// unit per line, prices not negative, line totals and total consistent.
pub fn order_placed() -> impl Strategy<Value = OrderPlaced> {
    (
        any::<u128>(),
        (text(), text()),
        address(),
        address(),
        "[A-Z]{3}",
        prop::collection::vec(order_line(), 1..8),
        0..4_000_000_000_i64,
    )
        .prop_map(
            |(id, (name, email), billing_address, shipping_address, currency, lines, secs)| {
                OrderPlaced {
                    order_id: Uuid::from_u128(id),
                    customer: Customer { name, email },
                    billing_address,
                    shipping_address,
                    currency,
                    total_cents: lines.iter().map(|l| l.line_total_cents).sum(),
                    lines,
                    placed_at: DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or_default(),
                }
            },
        )
}

/// Any JSON value up to four levels deep; object keys are drawn from `keys`.
pub fn json_value(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z_]{0,8}".prop_map(Value::from),
        any::<u128>().prop_map(|id| Value::from(Uuid::from_u128(id).to_string())),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(keys).prop_map(str::to_owned),
                inner,
                0..8,
            )
            .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// Any record value a consumer may meet: arbitrary bytes, or an envelope of
/// a known or unknown event type around arbitrary JSON. Half of the JSON
/// objects carry the envelope's own `order_id`, so that readers get past
/// that check and read the rest.
pub fn record_value() -> impl Strategy<Value = Vec<u8>> {
    let envelope = (
        prop::sample::select(&["OrderPlaced", "OrderCancelled", "OrderShipped"][..]),
        0..3_u32,
        any::<u128>(),
        json_value(ORDER_EVENT_FIELDS),
        any::<bool>(),
    )
        .prop_map(
            |(event_type, schema_version, order_id, mut data, same_order)| {
                let order_id = Uuid::from_u128(order_id).to_string();
                if let (true, Some(fields)) = (same_order, data.as_object_mut()) {
                    fields.insert("order_id".into(), Value::from(order_id.as_str()));
                }
                serde_json::json!({
                    "event_id": Uuid::from_u128(1).to_string(),
                    "event_type": event_type,
                    "schema_version": schema_version,
                    "order_id": order_id,
                    "occurred_at": "2026-11-21T09:30:00Z",
                    "producer": "arbitrary",
                    "data": data,
                })
                .to_string()
                .into_bytes()
            },
        );
    prop_oneof![prop::collection::vec(any::<u8>(), 0..512), envelope]
}

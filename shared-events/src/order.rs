//! Payloads of the order events, version 1: the full public language.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{Event, EventType};

/// The person who placed the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Customer {
    /// Full name.
    pub name: String,
    /// Contact e-mail address.
    pub email: String,
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Address {
    /// Street and number.
    pub street: String,
    /// Postal code.
    pub zip: String,
    /// City.
    pub city: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
}

/// One line of an order, priced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderLine {
    /// Stock keeping unit.
    pub sku: String,
    /// Product name as shown to the customer.
    pub name: String,
    /// Number of units.
    pub quantity: u32,
    /// Price of one unit in the order's currency, in cents.
    pub unit_price_cents: i64,
    /// `quantity * unit_price_cents`.
    pub line_total_cents: i64,
}

/// `OrderPlaced` v1: an order was accepted and committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderPlaced {
    /// The order's id.
    pub order_id: Uuid,
    /// Who ordered.
    pub customer: Customer,
    /// Where the invoice goes.
    pub billing_address: Address,
    /// Where the parcel goes.
    pub shipping_address: Address,
    /// ISO 4217 currency code.
    pub currency: String,
    /// The ordered lines.
    pub lines: Vec<OrderLine>,
    /// Sum of all line totals, in cents.
    pub total_cents: i64,
    /// When the order was committed, in UTC.
    pub placed_at: DateTime<Utc>,
}

impl Event for OrderPlaced {
    const TYPE: EventType = EventType::OrderPlaced;
    const SCHEMA_VERSION: u32 = 1;
}

/// `OrderCancelled` v1: an order was cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderCancelled {
    /// The order's id.
    pub order_id: Uuid,
    /// Why, if the caller said.
    pub reason: Option<String>,
    /// When the cancellation was committed, in UTC.
    pub cancelled_at: DateTime<Utc>,
}

impl Event for OrderCancelled {
    const TYPE: EventType = EventType::OrderCancelled;
    const SCHEMA_VERSION: u32 = 1;
}

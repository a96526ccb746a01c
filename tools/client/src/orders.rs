//! order-service: the order a client places and the order it reads back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who orders (order-service) and who is billed (invoicing-service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Full name.
    pub name: String,
    /// E-mail address.
    pub email: String,
}

/// A postal address, billing or shipping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

impl Address {
    /// `zip city, country`, as one line.
    pub fn locality(&self) -> String {
        format!("{} {}, {}", self.zip, self.city, self.country)
    }
}

/// A line of an order as the client sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// Stock keeping unit, unique within the order.
    pub sku: String,
    /// Product name.
    pub name: String,
    /// Units.
    pub quantity: i32,
    /// Price of one unit, in cents.
    pub unit_price_cents: i64,
}

/// The body of `POST /orders`, fields in the API's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceOrder {
    /// Who orders.
    pub customer: Customer,
    /// Where the invoice goes.
    pub billing_address: Address,
    /// Where the parcel goes.
    pub shipping_address: Address,
    /// ISO 4217 currency code.
    pub currency: String,
    /// One to a hundred lines.
    pub lines: Vec<OrderLine>,
}

/// The body of `POST /orders/{id}/cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOrder {
    /// Why the order is cancelled, if the caller says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl CancelOrder {
    /// A cancellation giving `reason`.
    pub fn because(reason: impl Into<String>) -> Self {
        CancelOrder {
            reason: Some(reason.into()),
        }
    }
}

/// A priced line as order-service and invoicing-service answer it, with its total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedLine {
    /// Stock keeping unit.
    pub sku: String,
    /// Product name.
    pub name: String,
    /// Units.
    pub quantity: i32,
    /// Price of one unit, in cents.
    pub unit_price_cents: i64,
    /// `quantity * unit_price_cents`.
    pub line_total_cents: i64,
}

/// An order as order-service answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The order's id (UUIDv7).
    pub id: Uuid,
    /// `placed` or `cancelled`.
    pub status: String,
    /// Who ordered.
    pub customer: Customer,
    /// Where the invoice goes.
    pub billing_address: Address,
    /// Where the parcel goes.
    pub shipping_address: Address,
    /// ISO 4217 currency code.
    pub currency: String,
    /// The lines, in request order.
    pub lines: Vec<PricedLine>,
    /// Sum of the line totals, in cents.
    pub total_cents: i64,
    /// When the order was committed.
    pub placed_at: DateTime<Utc>,
    /// When it was cancelled; `None` while it is not.
    #[serde(default)]
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Why it was cancelled, if the caller said.
    #[serde(default)]
    pub cancel_reason: Option<String>,
}

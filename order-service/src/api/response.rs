//! Response bodies: an order as the API shows it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::{AddressRecord, LineRecord, OrderRecord};

/// An order: the fields of the request plus what the server decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Order)]
pub struct OrderResponse {
    /// The order's id (UUIDv7).
    pub id: Uuid,
    /// `placed` or `cancelled`.
    #[schema(pattern = "^(placed|cancelled)$")]
    pub status: String,
    /// Who ordered.
    pub customer: CustomerResponse,
    /// Where the invoice goes.
    pub billing_address: AddressResponse,
    /// Where the parcel goes.
    pub shipping_address: AddressResponse,
    /// ISO 4217 code.
    pub currency: String,
    /// The lines, in request order.
    pub lines: Vec<LineResponse>,
    /// Sum of the line totals, in cents.
    pub total_cents: i64,
    /// When the order was committed (RFC 3339, UTC, microseconds).
    pub placed_at: DateTime<Utc>,
    /// When the order was cancelled; absent while it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Why the order was cancelled, if the caller said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
}

/// The customer of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Customer)]
pub struct CustomerResponse {
    /// Full name.
    pub name: String,
    /// E-mail address.
    pub email: String,
}

/// An address of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Address)]
pub struct AddressResponse {
    /// Street and number.
    pub street: String,
    /// Postal code.
    pub zip: String,
    /// City.
    pub city: String,
    /// ISO 3166-1 alpha-2 code.
    pub country: String,
}

/// A line of an order, with its computed total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = OrderLine)]
pub struct LineResponse {
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

impl From<OrderRecord> for OrderResponse {
    fn from(order: OrderRecord) -> Self {
        OrderResponse {
            id: order.id,
            status: order.status.as_str().to_owned(),
            customer: CustomerResponse {
                name: order.customer_name,
                email: order.customer_email,
            },
            billing_address: order.billing.into(),
            shipping_address: order.shipping.into(),
            currency: order.currency,
            lines: order.lines.into_iter().map(LineResponse::from).collect(),
            total_cents: order.total_cents,
            placed_at: order.placed_at,
            cancelled_at: order.cancelled_at,
            cancel_reason: order.cancel_reason,
        }
    }
}

impl From<AddressRecord> for AddressResponse {
    fn from(a: AddressRecord) -> Self {
        AddressResponse {
            street: a.street,
            zip: a.zip,
            city: a.city,
            country: a.country,
        }
    }
}

impl From<LineRecord> for LineResponse {
    fn from(l: LineRecord) -> Self {
        LineResponse {
            sku: l.sku,
            name: l.name,
            quantity: l.quantity,
            unit_price_cents: l.unit_price_cents,
            line_total_cents: l.line_total_cents,
        }
    }
}

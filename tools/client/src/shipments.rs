//! shipping-service: a shipment as it answers (never a price, an e-mail or the billing address).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Address;

/// Who receives the parcel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Full name.
    pub name: String,
}

/// A line of the packing list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentLine {
    /// Stock keeping unit.
    pub sku: String,
    /// Product name.
    pub name: String,
    /// Units.
    pub quantity: i32,
}

/// A shipment: the recipient, the shipping address and the packing list of one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    /// The shipment's own id.
    pub id: Uuid,
    /// The order it ships.
    pub order_id: Uuid,
    /// `pending` or `cancelled`.
    pub status: String,
    /// Who receives it.
    pub recipient: Recipient,
    /// Where it goes.
    pub shipping_address: Address,
    /// What goes in the parcel.
    pub lines: Vec<ShipmentLine>,
    /// When shipping recorded it.
    pub created_at: DateTime<Utc>,
}

/// How many units of one SKU the pending shipments hold (`GET /pick-list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToPick {
    /// Stock keeping unit.
    pub sku: String,
    /// Units to pick.
    pub units: i64,
}

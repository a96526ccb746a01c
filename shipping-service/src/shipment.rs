//! The shipment: what shipping makes of a placed order, as stored and served.
//!
//! Shipping knows who receives the parcel, where it goes and what is in it.
//! It has no field for a price, an e-mail address or a billing address, so
//! it can neither store nor leak them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who receives the parcel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recipient {
    /// Full name, as on the label.
    pub name: String,
}

/// Where the parcel goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShippingAddress {
    /// Street and number.
    pub street: String,
    /// Postal code.
    pub zip: String,
    /// City.
    pub city: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
}

/// One line of the packing list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShipmentLine {
    /// Stock keeping unit.
    pub sku: String,
    /// Product name.
    pub name: String,
    /// Units to pack (at least 1).
    pub quantity: i32,
}

/// Whether a shipment is still to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ShipmentStatus {
    /// Waiting to be packed and sent.
    Pending,
    /// The order was cancelled; nothing is sent.
    Cancelled,
}

/// A status name this code does not know (a schema/code mismatch).
#[derive(Debug, thiserror::Error)]
#[error("unknown shipment status {0:?}")]
pub struct UnknownStatus(pub String);

impl std::str::FromStr for ShipmentStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(ShipmentStatus::Pending),
            "cancelled" => Ok(ShipmentStatus::Cancelled),
            other => Err(UnknownStatus(other.to_owned())),
        }
    }
}

/// A shipment to create: the placed order as shipping reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewShipment {
    /// Who receives it.
    pub recipient: Recipient,
    /// Where it goes.
    pub shipping_address: ShippingAddress,
    /// What to pack, in order.
    pub lines: Vec<ShipmentLine>,
}

/// A shipment, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Shipment {
    /// The shipment's id (UUIDv7).
    pub id: Uuid,
    /// The order it delivers.
    pub order_id: Uuid,
    /// Pending or cancelled.
    pub status: ShipmentStatus,
    /// Who receives it.
    pub recipient: Recipient,
    /// Where it goes.
    pub shipping_address: ShippingAddress,
    /// What to pack, in order.
    pub lines: Vec<ShipmentLine>,
    /// When the shipment was committed (the database's clock).
    pub created_at: DateTime<Utc>,
}

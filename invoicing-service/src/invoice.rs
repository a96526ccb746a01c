//! The invoice: what invoicing makes of a placed order, as stored and served.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who pays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Customer {
    /// Full name.
    pub name: String,
    /// Where the invoice is sent.
    pub email: String,
}

/// The address the invoice is made out to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BillingAddress {
    /// Street and number.
    pub street: String,
    /// Postal code.
    pub zip: String,
    /// City.
    pub city: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
}

/// One priced line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InvoiceLine {
    /// Stock keeping unit.
    pub sku: String,
    /// Product name.
    pub name: String,
    /// Units billed (at least 1).
    pub quantity: i32,
    /// Price of one unit in cents (not negative).
    pub unit_price_cents: i64,
    /// `quantity * unit_price_cents`, computed here.
    pub line_total_cents: i64,
}

/// Whether an invoice is still to be paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InvoiceStatus {
    /// Issued and payable.
    Open,
    /// The order was cancelled; nothing is owed.
    Cancelled,
}

/// A status name this code does not know (a schema/code mismatch).
#[derive(Debug, thiserror::Error)]
#[error("unknown invoice status {0:?}")]
pub struct UnknownStatus(pub String);

impl std::str::FromStr for InvoiceStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(InvoiceStatus::Open),
            "cancelled" => Ok(InvoiceStatus::Cancelled),
            other => Err(UnknownStatus(other.to_owned())),
        }
    }
}

/// An invoice to issue: the placed order as invoicing reads it, priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvoice {
    /// Who pays.
    pub customer: Customer,
    /// Where the invoice is made out to.
    pub billing_address: BillingAddress,
    /// ISO 4217 currency code.
    pub currency: String,
    /// The priced lines, in order.
    pub lines: Vec<InvoiceLine>,
    /// Sum of the line totals, computed here.
    pub total_cents: i64,
}

/// An issued invoice, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Invoice {
    /// The invoice's id (UUIDv7).
    pub id: Uuid,
    /// The order it bills.
    pub order_id: Uuid,
    /// Open or cancelled.
    pub status: InvoiceStatus,
    /// Who pays.
    pub customer: Customer,
    /// Where it is made out to.
    pub billing_address: BillingAddress,
    /// ISO 4217 currency code.
    pub currency: String,
    /// The priced lines, in order.
    pub lines: Vec<InvoiceLine>,
    /// Sum of the line totals.
    pub total_cents: i64,
    /// When the invoice was committed (the database's clock).
    pub issued_at: DateTime<Utc>,
}

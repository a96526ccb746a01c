//! invoicing-service: an invoice as it answers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Address, Customer};

/// A line of an invoice, priced by invoicing itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
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

/// An invoice: the customer, the billing address and the prices of one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    /// The invoice's own id.
    pub id: Uuid,
    /// The order it bills.
    pub order_id: Uuid,
    /// `open` or `cancelled`.
    pub status: String,
    /// Who is billed.
    pub customer: Customer,
    /// Where the invoice goes.
    pub billing_address: Address,
    /// ISO 4217 currency code.
    pub currency: String,
    /// The lines, in order.
    pub lines: Vec<InvoiceLine>,
    /// Sum of the line totals, in cents.
    pub total_cents: i64,
    /// When invoicing recorded it.
    pub issued_at: DateTime<Utc>,
}

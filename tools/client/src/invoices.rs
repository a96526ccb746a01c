//! invoicing-service: an invoice as it answers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Address, Customer, PricedLine};

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
    /// The lines, in order, priced by invoicing itself.
    pub lines: Vec<PricedLine>,
    /// Sum of the line totals, in cents.
    pub total_cents: i64,
    /// When invoicing recorded it.
    pub issued_at: DateTime<Utc>,
}

/// What one customer owes in one currency (`GET /balances`): the running
/// total of their open invoices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// The customer, by e-mail address.
    pub customer_email: String,
    /// ISO 4217 currency code.
    pub currency: String,
    /// The open amount, in cents.
    pub open_cents: i64,
}

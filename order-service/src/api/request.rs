//! The request bodies as clients send them: every field optional here, so
//! that a missing field is reported together with every other invalid one
//! ([`super::validate`]), and numbers kept as JSON numbers until then.
//! [`super::extract`] reads them strictly: unknown fields are refused.

use serde::{Deserialize, Serialize};
use serde_json::Number;
use utoipa::ToSchema;

/// The body of `POST /orders`, as sent. Fields are optional here only so that
/// a missing field is reported with every other invalid field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "customer": { "name": "Ada Lovelace", "email": "ada@example.com" },
    "billing_address": { "street": "1 Analytical Way", "zip": "10115", "city": "Berlin", "country": "DE" },
    "shipping_address": { "street": "2 Engine Road", "zip": "80331", "city": "Munich", "country": "DE" },
    "currency": "EUR",
    "lines": [ { "sku": "IPOD-NANO", "name": "iPod nano", "quantity": 2, "unit_price_cents": 14900 } ]
}))]
pub struct PlaceOrderRequest {
    /// Who orders.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = true, nullable = false)]
    pub customer: Option<CustomerRequest>,
    /// Where the invoice goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = true, nullable = false)]
    pub billing_address: Option<AddressRequest>,
    /// Where the parcel goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = true, nullable = false)]
    pub shipping_address: Option<AddressRequest>,
    /// ISO 4217 code.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = true, schema_with = super::schema::currency)]
    pub currency: Option<String>,
    /// The lines to order, 1 to 100; each SKU on one line only (a rule JSON
    /// Schema cannot state: put the quantities of one SKU on one line).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = true, nullable = false)]
    #[schema(min_items = 1, max_items = 100)]
    pub lines: Option<Vec<LineRequest>>,
}

/// `customer` as sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerRequest {
    /// Full name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = true, schema_with = super::schema::person_name)]
    pub name: Option<String>,
    /// E-mail address.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = true, schema_with = super::schema::email)]
    pub email: Option<String>,
}

/// An address as sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressRequest {
    /// Street and number.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = true, schema_with = super::schema::street)]
    pub street: Option<String>,
    /// Postal code.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = true, schema_with = super::schema::zip)]
    pub zip: Option<String>,
    /// City.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = true, schema_with = super::schema::city)]
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2 code.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = true, schema_with = super::schema::country)]
    pub country: Option<String>,
}

/// A line as sent. Numbers stay JSON numbers until validation, so that
/// `2.5` or `1e30` is a range error on the field rather than a type error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineRequest {
    /// Stock keeping unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = true, schema_with = super::schema::sku)]
    pub sku: Option<String>,
    /// Product name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = true, schema_with = super::schema::product_name)]
    pub name: Option<String>,
    /// Units.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = i64, required = true, minimum = 1, maximum = 10000)]
    pub quantity: Option<Number>,
    /// Price of one unit in the currency's minor unit (cents for EUR, yen for JPY).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = i64, required = true, minimum = 0, maximum = 100000000)]
    pub unit_price_cents: Option<Number>,
}

/// The optional body of `POST /orders/{id}/cancel`: an object (not `null`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Why the order is cancelled (at most 500 characters; blank or null: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::cancel_reason)]
    pub reason: Option<String>,
}

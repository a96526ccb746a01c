//! The example order of the API's unit tests, and how they read a body.

use serde_json::{Value, json};

use super::ApiError;
use super::extract::read_json;
use super::request::PlaceOrderRequest;
use crate::domain::NewOrder;

pub(crate) fn valid() -> Value {
    json!({
        "customer": { "name": "Ada Lovelace", "email": "ada@example.com" },
        "billing_address":  { "street": "1 Analytical Way", "zip": "10115", "city": "Berlin", "country": "DE" },
        "shipping_address": { "street": "2 Engine Road", "zip": "80331", "city": "Munich", "country": "DE" },
        "currency": "EUR",
        "lines": [
            { "sku": "IPOD-NANO", "name": "iPod nano", "quantity": 2, "unit_price_cents": 14900 },
            { "sku": "CASE.BLK_1", "name": "Leather case", "quantity": 1, "unit_price_cents": 1999 }
        ]
    })
}

pub(crate) fn decode(value: &Value) -> Result<NewOrder, ApiError> {
    decode_bytes(value.to_string().as_bytes())
}

/// A body read as `POST /orders` reads it: strict JSON, then validation.
pub(crate) fn decode_bytes(body: &[u8]) -> Result<NewOrder, ApiError> {
    let request: PlaceOrderRequest = read_json(body)?;
    Ok(request.validate()?)
}

pub(crate) fn field_errors(result: Result<NewOrder, ApiError>) -> Vec<(String, String)> {
    match result {
        Err(ApiError::Validation(errors)) => {
            errors.into_iter().map(|e| (e.field, e.message)).collect()
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}

pub(crate) fn fields(result: Result<NewOrder, ApiError>) -> Vec<String> {
    field_errors(result).into_iter().map(|(f, _)| f).collect()
}

pub(crate) fn bad_request(result: Result<NewOrder, ApiError>) -> String {
    match result {
        Err(ApiError::BadRequest(detail)) => detail,
        other => panic!("expected 400, got {other:?}"),
    }
}

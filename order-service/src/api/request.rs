//! Request bodies: from bytes to a valid domain value, or to an error that
//! says exactly what to fix.
//!
//! Reading happens in stages, each with its own status:
//!
//! 1. size (413, enforced while the body is read) and media type (415);
//! 2. JSON syntax (400, with line and column): the body is parsed into a
//!    `serde_json::Value` first, so a syntax error is never confused with a
//!    shape error;
//! 3. JSON shape via `serde_path_to_error` (400 for a wrong type, naming the
//!    path, e.g. `lines[0].quantity`; 422 for an unknown field), reading
//!    objects only where the request has objects ([`Strict`]). Every field
//!    is optional at this stage, so that a missing field becomes a validation
//!    error reported together with all the others;
//! 4. validation into [`NewOrder`] (422), collecting every field error.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use platform::FieldError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};
use sha2::{Digest, Sha256};

use super::ApiError;
use super::json::Strict;
use crate::domain::money::{OutOfRange, QUANTITY_RANGE, UNIT_PRICE_RANGE};
use crate::domain::{
    Address, CancelReason, Cents, City, Country, Currency, Customer, Email, Invalid, MAX_LINES,
    NewOrder, OrderLine, OrderRuleViolation, PersonName, ProductName, Quantity, Sku, Street, Zip,
    duplicate_skus,
};

/// Largest accepted request body: 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The body of `POST /orders`, as sent. Fields are optional here only so that
/// a missing field is reported with every other invalid field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderRequest {
    /// Who orders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerRequest>,
    /// Where the invoice goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing_address: Option<AddressRequest>,
    /// Where the parcel goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<AddressRequest>,
    /// ISO 4217 code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The lines to order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<LineRequest>>,
}

/// `customer` as sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerRequest {
    /// Full name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// E-mail address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// An address as sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressRequest {
    /// Street and number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    /// Postal code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zip: Option<String>,
    /// City.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2 code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// A line as sent. Numbers stay JSON numbers until validation, so that
/// `2.5` or `1e30` is a range error on the field rather than a type error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineRequest {
    /// Stock keeping unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// Product name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<Number>,
    /// Price of one unit in cents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_price_cents: Option<Number>,
}

/// The optional body of `POST /orders/{id}/cancel`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Why the order is cancelled (at most 500 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The buffered body, or 413 when it exceeded [`MAX_BODY_BYTES`].
pub fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
            }
        } else {
            ApiError::BadRequest(format!(
                "the request body could not be read: {}",
                rejection.body_text()
            ))
        }
    })
}

/// Parses a JSON body into `T`: syntax errors and wrong types are 400,
/// unknown fields 422, each naming where the problem is.
pub fn read_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "the request body is empty; send a JSON object".into(),
        ));
    }
    let value: Value = super::json::parse(body).map_err(|e| {
        ApiError::BadRequest(match e.classify() {
            serde_json::error::Category::Eof => format!(
                "the JSON body ends early at line {} column {}; was it cut off?",
                e.line(),
                e.column()
            ),
            _ => format!("the request body is not valid JSON: {e}"),
        })
    })?;
    serde_path_to_error::deserialize(Strict(value)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        match message.strip_prefix("unknown field ") {
            // "`foo`, expected one of `a`, `b`": the path already ends in `foo`.
            Some(rest) => {
                let expected = rest
                    .split_once(", ")
                    .map_or("this object has no fields", |(_, expected)| expected);
                ApiError::Validation(vec![FieldError::new(
                    path,
                    format!("is not a known field; {expected}"),
                )])
            }
            None if path == "." => ApiError::BadRequest(format!("request body: {message}")),
            None => ApiError::BadRequest(format!("{path}: {message}")),
        }
    })
}

/// Reads and validates the body of `POST /orders` (the media type is checked by the caller).
pub fn decode_place_order(body: &[u8]) -> Result<NewOrder, ApiError> {
    let request: PlaceOrderRequest = read_json(body)?;
    Ok(request.validate()?)
}

/// Reads and validates the optional body of a cancel: empty means no reason.
pub fn decode_cancel(
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<Option<CancelReason>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    super::headers::require_json(headers)?;
    let request: CancelRequest = read_json(body)?;
    Ok(request.validate()?)
}

impl CancelRequest {
    /// The reason, if one was given; blank counts as none.
    pub fn validate(&self) -> Result<Option<CancelReason>, Vec<FieldError>> {
        match self.reason.as_deref() {
            None => Ok(None),
            Some(reason) if reason.trim().is_empty() => Ok(None),
            Some(reason) => CancelReason::parse(reason)
                .map(Some)
                .map_err(|e| vec![FieldError::new("reason", e.to_string())]),
        }
    }
}

/// Collects field errors while parsing fields into domain values.
#[derive(Debug, Default)]
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, message));
    }

    fn present<'a, T>(&mut self, path: &str, value: Option<&'a T>) -> Option<&'a T> {
        if value.is_none() {
            self.push(path, "is required");
        }
        value
    }

    fn text<T>(
        &mut self,
        path: &str,
        raw: &Option<String>,
        parse: impl FnOnce(&str) -> Result<T, Invalid>,
    ) -> Option<T> {
        let raw = self.present(path, raw.as_ref())?;
        parse(raw).map_err(|e| self.push(path, e.to_string())).ok()
    }

    fn number<T>(
        &mut self,
        path: &str,
        raw: &Option<Number>,
        range: OutOfRange,
        parse: impl FnOnce(i64) -> Result<T, OutOfRange>,
    ) -> Option<T> {
        let raw = self.present(path, raw.as_ref())?;
        // A fraction, an exponent form or a number beyond i64 is outside every range.
        let parsed = raw.as_i64().ok_or(range).and_then(parse);
        parsed.map_err(|e| self.push(path, e.to_string())).ok()
    }

    fn customer(&mut self, raw: &Option<CustomerRequest>) -> Option<Customer> {
        let raw = self.present("customer", raw.as_ref())?;
        let name = self.text("customer.name", &raw.name, PersonName::parse);
        let email = self.text("customer.email", &raw.email, Email::parse);
        Some(Customer {
            name: name?,
            email: email?,
        })
    }

    fn address(&mut self, path: &str, raw: &Option<AddressRequest>) -> Option<Address> {
        let raw = self.present(path, raw.as_ref())?;
        let street = self.text(&format!("{path}.street"), &raw.street, Street::parse);
        let zip = self.text(&format!("{path}.zip"), &raw.zip, Zip::parse);
        let city = self.text(&format!("{path}.city"), &raw.city, City::parse);
        let country = self.text(&format!("{path}.country"), &raw.country, Country::parse);
        Some(Address {
            street: street?,
            zip: zip?,
            city: city?,
            country: country?,
        })
    }

    fn lines(&mut self, raw: &Option<Vec<LineRequest>>) -> Option<Vec<OrderLine>> {
        let raw = self.present("lines", raw.as_ref())?;
        if !(1..=MAX_LINES).contains(&raw.len()) {
            self.push(
                "lines",
                OrderRuleViolation::LineCount(raw.len()).to_string(),
            );
            return None;
        }
        let mut lines = Vec::with_capacity(raw.len());
        let mut skus = Vec::with_capacity(raw.len());
        for (i, line) in raw.iter().enumerate() {
            let path = format!("lines[{i}]");
            let sku = self.text(&format!("{path}.sku"), &line.sku, Sku::parse);
            let name = self.text(&format!("{path}.name"), &line.name, ProductName::parse);
            let quantity = self.number(
                &format!("{path}.quantity"),
                &line.quantity,
                QUANTITY_RANGE,
                Quantity::new,
            );
            let unit_price = self.number(
                &format!("{path}.unit_price_cents"),
                &line.unit_price_cents,
                UNIT_PRICE_RANGE,
                Cents::unit_price,
            );
            if let Some(sku) = &sku {
                skus.push((i, sku.clone()));
            }
            if let (Some(sku), Some(name), Some(quantity), Some(unit_price)) =
                (sku, name, quantity, unit_price)
            {
                match OrderLine::new(sku, name, quantity, unit_price) {
                    Ok(line) => lines.push(line),
                    Err(overflow) => self.push(path, overflow.to_string()),
                }
            }
        }
        for (line, first) in duplicate_skus(skus.iter().map(|(i, sku)| (*i, sku))) {
            self.push(
                format!("lines[{line}].sku"),
                OrderRuleViolation::DuplicateSku { line, first }.to_string(),
            );
        }
        Some(lines)
    }
}

impl PlaceOrderRequest {
    /// Validates every field and returns the order, or every field error at once.
    pub fn validate(&self) -> Result<NewOrder, Vec<FieldError>> {
        let mut check = Checker::default();
        let customer = check.customer(&self.customer);
        let billing = check.address("billing_address", &self.billing_address);
        let shipping = check.address("shipping_address", &self.shipping_address);
        let currency = check.text("currency", &self.currency, Currency::parse);
        let lines = check.lines(&self.lines);
        let (Some(customer), Some(billing), Some(shipping), Some(currency), Some(lines), true) = (
            customer,
            billing,
            shipping,
            currency,
            lines,
            check.errors.is_empty(),
        ) else {
            return Err(check.errors);
        };
        NewOrder::new(customer, billing, shipping, currency, lines).map_err(|violations| {
            violations
                .into_iter()
                .map(|v| {
                    let field = match &v {
                        OrderRuleViolation::DuplicateSku { line, .. } => {
                            format!("lines[{line}].sku")
                        }
                        OrderRuleViolation::LineCount(_) | OrderRuleViolation::TotalOverflow => {
                            "lines".to_owned()
                        }
                    };
                    FieldError::new(field, v.to_string())
                })
                .collect()
        })
    }
}

impl From<&NewOrder> for PlaceOrderRequest {
    /// The canonical request for an order: what a client would send to place
    /// exactly this order (trimmed text, integer numbers).
    fn from(order: &NewOrder) -> Self {
        let address = |a: &Address| AddressRequest {
            street: Some(a.street.to_string()),
            zip: Some(a.zip.to_string()),
            city: Some(a.city.to_string()),
            country: Some(a.country.as_str().to_owned()),
        };
        PlaceOrderRequest {
            customer: Some(CustomerRequest {
                name: Some(order.customer().name.to_string()),
                email: Some(order.customer().email.as_str().to_owned()),
            }),
            billing_address: Some(address(order.billing_address())),
            shipping_address: Some(address(order.shipping_address())),
            currency: Some(order.currency().as_str().to_owned()),
            lines: Some(
                order
                    .lines()
                    .iter()
                    .map(|l| LineRequest {
                        sku: Some(l.sku().as_str().to_owned()),
                        name: Some(l.name().to_string()),
                        quantity: Some(Number::from(l.quantity().get())),
                        unit_price_cents: Some(Number::from(l.unit_price().get())),
                    })
                    .collect(),
            ),
        }
    }
}

/// SHA-256 of the canonical form of the validated request, stored with an
/// `Idempotency-Key` to tell a retry from a different request under the same key.
///
/// The canonical form is computed from the parsed order, not the bytes sent,
/// so whitespace, key order, and spaces around names do not matter. Each
/// value is written with its length in front, so no two different orders
/// produce the same byte stream.
pub fn fingerprint(order: &NewOrder) -> [u8; 32] {
    fn put(hash: &mut Sha256, text: &str) {
        hash.update((text.len() as u64).to_be_bytes());
        hash.update(text.as_bytes());
    }
    let mut hash = Sha256::new();
    put(&mut hash, "order-service/place-order/v1");
    put(&mut hash, order.customer().name.as_str());
    put(&mut hash, order.customer().email.as_str());
    for a in [order.billing_address(), order.shipping_address()] {
        put(&mut hash, a.street.as_str());
        put(&mut hash, a.zip.as_str());
        put(&mut hash, a.city.as_str());
        put(&mut hash, a.country.as_str());
    }
    put(&mut hash, order.currency().as_str());
    hash.update((order.lines().len() as u64).to_be_bytes());
    for line in order.lines() {
        put(&mut hash, line.sku().as_str());
        put(&mut hash, line.name().as_str());
        hash.update(line.quantity().get().to_be_bytes());
        hash.update(line.unit_price().get().to_be_bytes());
    }
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn valid() -> Value {
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

    fn decode(value: &Value) -> Result<NewOrder, ApiError> {
        decode_place_order(value.to_string().as_bytes())
    }

    fn field_errors(result: Result<NewOrder, ApiError>) -> Vec<(String, String)> {
        match result {
            Err(ApiError::Validation(errors)) => {
                errors.into_iter().map(|e| (e.field, e.message)).collect()
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn fields(result: Result<NewOrder, ApiError>) -> Vec<String> {
        field_errors(result).into_iter().map(|(f, _)| f).collect()
    }

    fn bad_request(result: Result<NewOrder, ApiError>) -> String {
        match result {
            Err(ApiError::BadRequest(detail)) => detail,
            other => panic!("expected 400, got {other:?}"),
        }
    }

    #[test]
    fn the_example_order_is_accepted_and_totalled() {
        let order = decode(&valid()).unwrap();
        assert_eq!(order.total().get(), 31_799);
        assert_eq!(order.lines()[0].line_total().get(), 29_800);
        assert_eq!(order.customer().name.as_str(), "Ada Lovelace");
    }

    #[test]
    fn text_is_stored_trimmed() {
        let mut v = valid();
        v["customer"]["name"] = json!("  Ada Lovelace \n");
        let order = decode(&v).unwrap();
        assert_eq!(order.customer().name.as_str(), "Ada Lovelace");
        assert_eq!(fingerprint(&order), fingerprint(&decode(&valid()).unwrap()));
    }

    #[test]
    fn every_invalid_field_is_reported_at_once() {
        let mut v = valid();
        v["customer"]["name"] = json!("   ");
        v["customer"]["email"] = json!("not-an-email");
        v["billing_address"]["country"] = json!("XX");
        v["shipping_address"]["zip"] = json!("1".repeat(21));
        v["shipping_address"]["city"] = json!("c".repeat(101));
        v["currency"] = json!("eur");
        v["lines"][0]["quantity"] = json!(0);
        v["lines"][1]["unit_price_cents"] = json!(-1);
        v["lines"][1]["sku"] = json!("IPOD-NANO");
        assert_eq!(
            fields(decode(&v)),
            [
                "customer.name",
                "customer.email",
                "billing_address.country",
                "shipping_address.zip",
                "shipping_address.city",
                "currency",
                "lines[0].quantity",
                "lines[1].unit_price_cents",
                "lines[1].sku",
            ]
        );
    }

    #[test]
    fn missing_and_null_fields_are_required() {
        let mut v = valid();
        let Value::Object(map) = &mut v else {
            unreachable!()
        };
        map.remove("currency");
        v["customer"]["email"] = Value::Null;
        v["lines"][0] = json!({ "sku": "A" });
        assert_eq!(
            field_errors(decode(&v)),
            [
                ("customer.email".into(), "is required".into()),
                ("currency".into(), "is required".into()),
                ("lines[0].name".into(), "is required".into()),
                ("lines[0].quantity".into(), "is required".into()),
                ("lines[0].unit_price_cents".into(), "is required".into()),
            ]
        );
        assert_eq!(
            fields(decode(&json!({}))),
            [
                "customer",
                "billing_address",
                "shipping_address",
                "currency",
                "lines"
            ]
        );
    }

    #[test]
    fn line_rules() {
        let mut v = valid();
        v["lines"] = json!([]);
        assert_eq!(
            field_errors(decode(&v)),
            [("lines".into(), "must have 1 to 100 lines, got 0".into())]
        );
        let line = json!({ "sku": "A", "name": "a", "quantity": 1, "unit_price_cents": 1 });
        v["lines"] = Value::Array(vec![line; 101]);
        assert_eq!(fields(decode(&v)), ["lines"]);

        let mut v = valid();
        for (value, ok) in [
            (json!(1), true),
            (json!(10_000), true),
            (json!(10_001), false),
            (json!(2.5), false),
            (json!(2.0), false),
            (json!(1e3), false),
            (json!(u64::MAX), false),
            (json!(-9_223_372_036_854_775_808_i64), false),
        ] {
            v["lines"][0]["quantity"] = value.clone();
            assert_eq!(decode(&v).is_ok(), ok, "quantity {value}");
        }
        let mut v = valid();
        for (value, ok) in [
            (json!(0), true),
            (json!(100_000_000), true),
            (json!(100_000_001), false),
            (json!(i64::MAX), false),
        ] {
            v["lines"][0]["unit_price_cents"] = value.clone();
            assert_eq!(decode(&v).is_ok(), ok, "unit_price_cents {value}");
        }
        let mut v = valid();
        for (sku, ok) in [
            ("a.b_c-D9", true),
            ("a b", false),
            ("", false),
            ("é", false),
        ] {
            v["lines"][0]["sku"] = json!(sku);
            assert_eq!(decode(&v).is_ok(), ok, "sku {sku:?}");
        }
    }

    #[test]
    fn the_largest_order_is_accepted_without_overflow() {
        let mut v = valid();
        v["lines"] = Value::Array(
            (0..100)
                .map(|i| {
                    json!({ "sku": format!("S{i}"), "name": "n",
                            "quantity": 10_000, "unit_price_cents": 100_000_000 })
                })
                .collect(),
        );
        assert_eq!(decode(&v).unwrap().total().get(), 100_000_000_000_000);
    }

    #[test]
    fn unknown_fields_are_named_by_path() {
        let mut v = valid();
        v["customer"]["phone"] = json!("123");
        let errors = field_errors(decode(&v));
        assert_eq!(errors[0].0, "customer.phone");
        assert!(errors[0].1.contains("`name`"), "{}", errors[0].1);
        let mut v = valid();
        v["lines"][1]["discount"] = json!(5);
        assert_eq!(fields(decode(&v)), ["lines[1].discount"]);
        let mut v = valid();
        v["total_cents"] = json!(5);
        assert_eq!(fields(decode(&v)), ["total_cents"]);
    }

    #[test]
    fn syntax_and_type_errors_are_bad_requests() {
        let detail = bad_request(decode_place_order(b"{\"customer\": "));
        assert!(detail.contains("line 1 column 13"), "{detail}");
        let detail = bad_request(decode_place_order(b"{\n  \"currency\": EUR }"));
        assert!(detail.contains("line 2"), "{detail}");
        assert!(bad_request(decode_place_order(b"")).contains("empty"));
        assert!(bad_request(decode_place_order(b"\xff\xfe")).contains("not valid JSON"));
        assert!(bad_request(decode_place_order(b"{} {}")).contains("not valid JSON"));
        let detail = bad_request(decode_place_order(
            br#"{"currency":"EUR","\u0063urrency":"USD"}"#,
        ));
        assert!(detail.contains("`currency` occurs twice"), "{detail}");

        let mut v = valid();
        v["lines"][0]["quantity"] = json!("2");
        assert!(bad_request(decode(&v)).starts_with("lines[0].quantity:"));
        let mut v = valid();
        v["customer"] = json!("Ada");
        assert!(bad_request(decode(&v)).starts_with("customer:"));
        let detail = bad_request(decode(&json!([1, 2])));
        assert!(detail.starts_with("request body:"), "{detail}");
        let deep = "[".repeat(1000);
        assert!(bad_request(decode_place_order(deep.as_bytes())).contains("not valid JSON"));
    }

    #[test]
    fn control_characters_are_rejected_before_they_reach_the_database() {
        let mut v = valid();
        v["customer"]["name"] = json!("Ada\u{0}Lovelace");
        assert_eq!(fields(decode(&v)), ["customer.name"]);
    }

    #[test]
    fn cancel_reasons() {
        let none = HeaderMap::new();
        assert_eq!(decode_cancel(&none, b"").unwrap(), None);
        let mut json_headers = HeaderMap::new();
        json_headers.insert("content-type", "application/json".parse().unwrap());
        assert_eq!(decode_cancel(&json_headers, b"{}").unwrap(), None);
        assert_eq!(
            decode_cancel(&json_headers, br#"{"reason":"  "}"#).unwrap(),
            None
        );
        let reason = decode_cancel(&json_headers, br#"{"reason":" changed my mind "}"#).unwrap();
        assert_eq!(reason.unwrap().as_str(), "changed my mind");
        let long = format!(r#"{{"reason":"{}"}}"#, "r".repeat(501));
        assert!(matches!(
            decode_cancel(&json_headers, long.as_bytes()),
            Err(ApiError::Validation(_))
        ));
        assert!(matches!(
            decode_cancel(&json_headers, br#"{"why":"x"}"#),
            Err(ApiError::Validation(_))
        ));
        assert!(matches!(
            decode_cancel(&none, br#"{"reason":"x"}"#),
            Err(ApiError::UnsupportedMediaType(_))
        ));
    }

    #[test]
    fn fingerprints_tell_different_orders_apart() {
        let a = decode(&valid()).unwrap();
        let mut v = valid();
        v["lines"][0]["quantity"] = json!(3);
        let b = decode(&v).unwrap();
        assert_ne!(fingerprint(&a), fingerprint(&b));
        // Same text, split differently between two fields.
        let mut v = valid();
        v["billing_address"]["street"] = json!("1 Analytical Way1");
        v["billing_address"]["zip"] = json!("0115");
        assert_ne!(fingerprint(&decode(&v).unwrap()), fingerprint(&a));
    }

    use axum::http::HeaderMap;

    // ---- properties ----------------------------------------------------

    /// Any JSON value, nested a few levels.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(field_name(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Mostly the names the request uses, so that the shapes get explored.
    fn field_name() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(vec![
                "customer", "name", "email", "billing_address", "shipping_address", "street",
                "zip", "city", "country", "currency", "lines", "sku", "quantity",
                "unit_price_cents",
            ])
            .prop_map(str::to_owned),
            1 => "[a-z_]{1,10}",
        ]
    }

    /// A valid order with random content: padded text, any assigned country,
    /// 1 to 5 lines with unique SKUs, quantities and prices over their whole range.
    fn valid_order() -> impl Strategy<Value = Value> {
        let text = "[ ]?[\\p{L}\\p{N}][\\p{L}\\p{N} .,'&/-]{0,40}[ ]?";
        let address = (
            text,
            "[0-9A-Z][0-9A-Z -]{0,8}",
            text,
            prop::sample::select(crate::domain::country::ASSIGNED),
        )
            .prop_map(|(street, zip, city, country)| {
                json!({ "street": street, "zip": zip, "city": city, "country": country })
            });
        let line = (
            "[A-Za-z0-9._-]{1,20}",
            text,
            1_i64..=10_000,
            0_i64..=100_000_000,
        );
        (
            text,
            "[a-z0-9._+-]{1,20}@[a-z0-9.-]{1,20}",
            address.clone(),
            address,
            "[A-Z]{3}",
            prop::collection::vec(line, 1..=5),
        )
            .prop_map(|(name, email, billing, shipping, currency, lines)| {
                let lines: Vec<Value> = lines
                    .into_iter()
                    .enumerate()
                    .map(|(i, (sku, name, quantity, price))| {
                        json!({ "sku": format!("{sku}{i}"), "name": name,
                                "quantity": quantity, "unit_price_cents": price })
                    })
                    .collect();
                json!({
                    "customer": { "name": name, "email": email },
                    "billing_address": billing,
                    "shipping_address": shipping,
                    "currency": currency,
                    "lines": lines,
                })
            })
    }

    /// Values that break (or probe) a field.
    fn odd_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            Just(json!("")),
            Just(json!("   ")),
            Just(json!("x".repeat(201))),
            Just(json!("de")),
            Just(json!("a\u{0}b")),
            Just(json!(0)),
            Just(json!(-1)),
            Just(json!(10_001)),
            Just(json!(2.5)),
            Just(json!(u64::MAX)),
            Just(json!({})),
            Just(json!([])),
            Just(json!(true)),
            any::<i64>().prop_map(Value::from),
            ".{0,10}".prop_map(Value::String),
        ]
    }

    /// A valid order with up to three fields replaced by odd values (or removed).
    fn order_like() -> impl Strategy<Value = Value> {
        const PATHS: &[&str] = &[
            "/customer",
            "/customer/name",
            "/customer/email",
            "/billing_address",
            "/billing_address/street",
            "/billing_address/zip",
            "/billing_address/city",
            "/billing_address/country",
            "/shipping_address/country",
            "/currency",
            "/lines",
            "/lines/0",
            "/lines/0/sku",
            "/lines/0/name",
            "/lines/0/quantity",
            "/lines/0/unit_price_cents",
            "/lines/1/sku",
            "/lines/1/quantity",
            "/extra",
            "/customer/extra",
        ];
        let mutation = (
            prop::sample::select(PATHS),
            prop::option::weighted(0.8, odd_value()),
        );
        (valid_order(), prop::collection::vec(mutation, 0..=3)).prop_map(
            |(mut order, mutations)| {
                for (path, value) in mutations {
                    let (parent, key) = path.rsplit_once('/').unwrap_or(("", path));
                    match (order.pointer_mut(parent), value) {
                        (Some(Value::Object(map)), Some(value)) => {
                            map.insert(key.to_owned(), value);
                        }
                        (Some(Value::Object(map)), None) => {
                            map.remove(key);
                        }
                        (Some(Value::Array(items)), value) => {
                            if let Some(item) =
                                key.parse::<usize>().ok().and_then(|i| items.get_mut(i))
                            {
                                *item = value.unwrap_or(Value::Null);
                            }
                        }
                        _ => {}
                    }
                }
                order
            },
        )
    }

    /// An accepted order survives a trip through its canonical request.
    fn assert_round_trip(order: &NewOrder) {
        let canonical = serde_json::to_vec(&PlaceOrderRequest::from(order)).unwrap();
        let again = decode_place_order(&canonical).unwrap();
        assert_eq!(&again, order);
        assert_eq!(fingerprint(&again), fingerprint(order));
        let sum: i64 = order.lines().iter().map(|l| l.line_total().get()).sum();
        assert_eq!(order.total().get(), sum);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_place_order(&body);
        }

        #[test]
        fn arbitrary_json_never_panics_and_what_is_accepted_round_trips(value in any_json()) {
            if let Ok(order) = decode(&value) {
                assert_round_trip(&order);
            }
        }

        #[test]
        fn every_valid_order_is_accepted_and_round_trips(value in valid_order()) {
            let order = decode(&value);
            prop_assert!(order.is_ok(), "rejected {value}: {order:?}");
            if let Ok(order) = order {
                assert_round_trip(&order);
            }
        }

        #[test]
        fn order_like_json_never_panics_and_what_is_accepted_round_trips(value in order_like()) {
            match decode(&value) {
                Ok(order) => assert_round_trip(&order),
                Err(ApiError::Validation(errors)) => prop_assert!(!errors.is_empty()),
                Err(ApiError::BadRequest(_)) => {}
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }

        #[test]
        fn truncated_orders_are_bad_requests(cut in 1_usize..200) {
            let body = valid().to_string();
            let cut = cut.min(body.len() - 1);
            prop_assert!(matches!(
                decode_place_order(&body.as_bytes()[..cut]),
                Err(ApiError::BadRequest(_))
            ));
        }
    }

    #[test]
    fn the_order_like_strategy_produces_accepted_orders() {
        // Guards the property above against a strategy that never passes validation.
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let accepted = (0..200)
            .filter(|_| {
                let value = order_like().new_tree(&mut runner).unwrap().current();
                decode(&value).is_ok()
            })
            .count();
        assert!(
            accepted >= 10,
            "only {accepted} of 200 generated orders were valid"
        );
    }
}

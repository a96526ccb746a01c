//! Validation: a request as sent becomes a valid domain value, or every
//! field error at once (422), each naming its field (`lines[0].quantity`).
//! The rules themselves are the domain's (`crate::domain`); this module
//! walks the request and collects what they say.

use platform_web::FieldError;
use serde_json::Number;

use super::request::{
    AddressRequest, CancelRequest, CustomerRequest, LineRequest, PlaceOrderRequest,
};
use crate::domain::money::{OutOfRange, QUANTITY_RANGE, UNIT_PRICE_RANGE};
use crate::domain::{
    Address, CancelReason, Cents, City, Country, Currency, Customer, Email, Invalid, MAX_LINES,
    NewOrder, OrderLine, OrderRuleViolation, PersonName, ProductName, Quantity, Sku, Street, Zip,
    duplicate_skus,
};

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

/// The whole number a JSON number denotes, in any notation: `2`, `2.0` and
/// `2e0` are all 2, as JSON Schema's `integer` (which the OpenAPI document
/// states) counts them, so a client that writes `2.0` is not refused for a
/// rule the document does not have. `None` for a fraction or a number
/// beyond `i64`.
fn whole_number(number: &Number) -> Option<i64> {
    number.as_i64().or_else(|| {
        let value = number.as_f64()?;
        // `i64::MIN as f64` is -2^63 exactly, and 2^63 is the first value beyond i64.
        let in_range = (i64::MIN as f64..-(i64::MIN as f64)).contains(&value);
        // The cast is exact: `value` is whole and within i64.
        (value.fract() == 0.0 && in_range).then_some(value as i64)
    })
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
        // A fraction or a number beyond i64 is outside every range.
        let parsed = whole_number(raw).ok_or(range).and_then(parse);
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::api::ApiError;
    use crate::api::fingerprint::fingerprint;
    use crate::api::sample::{decode, decode_bytes, field_errors, fields, valid};

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
        v["currency"] = json!("XAU");
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
            // JSON Schema's `integer`, so the document, counts these as whole.
            (json!(2.0), true),
            (json!(1e3), true),
            (json!(1e4), true),
            (json!(1.00001e4), false),
            (json!(1e30), false),
            (json!(-1.0), false),
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
            (json!(-0.0), true),
            (json!(1647.0), true),
            (json!(1647.5), false),
            (json!(9.3e18), false),
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
    fn control_characters_are_rejected_before_they_reach_the_database() {
        let mut v = valid();
        v["customer"]["name"] = json!("Ada\u{0}Lovelace");
        assert_eq!(fields(decode(&v)), ["customer.name"]);
    }

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
            prop::sample::select(platform::money::accepted_codes()),
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
        let again = decode_bytes(&canonical).unwrap();
        assert_eq!(&again, order);
        assert_eq!(fingerprint(&again), fingerprint(order));
        let sum: i64 = order.lines().iter().map(|l| l.line_total().get()).sum();
        assert_eq!(order.total().get(), sum);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_bytes(&body);
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
                decode_bytes(&body.as_bytes()[..cut]),
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

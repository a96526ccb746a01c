//! The tolerant reader: invoicing's own, narrow view of the order events.
//!
//! The types below declare only what an invoice needs; serde ignores every
//! other field, so the order service can add fields without breaking
//! invoicing, and any schema version whose needed fields still decode is
//! accepted. What cannot become a correct invoice (a missing field, a line
//! without a SKU or with no units, a negative price, totals that overflow) is
//! rejected and dead-lettered rather than guessed at.

use messaging::inbox::Rejection;
use messaging::reader::{self, OrderEvent};
use serde::Deserialize;
use shared_events::RawEnvelope;

use crate::invoice::{BillingAddress, Customer, InvoiceLine, NewInvoice};

/// What an order event means to invoicing: issue this invoice for the
/// event's order, or cancel it (or issue it cancelled later).
pub type InvoicingEvent = OrderEvent<NewInvoice>;

/// `OrderPlaced` as invoicing reads it.
#[derive(Deserialize)]
struct PlacedOrder {
    customer: Customer,
    billing_address: BillingAddress,
    currency: String,
    lines: Vec<OrderedLine>,
}

/// An order line as invoicing reads it: its own totals are computed, not read.
#[derive(Deserialize)]
struct OrderedLine {
    sku: String,
    name: String,
    quantity: u32,
    unit_price_cents: i64,
}

/// Reads a record's envelope: `Ok(None)` for event types invoicing does not
/// handle, a [`Rejection`] for events it can never turn into an invoice.
pub fn read(envelope: &RawEnvelope) -> Result<Option<InvoicingEvent>, Rejection> {
    reader::read_order(envelope, price)
}

/// Checks the lines and computes line totals and the total, refusing overflow.
fn price(order: PlacedOrder) -> Result<NewInvoice, Rejection> {
    let lines = reader::lines(order.lines, price_line)?;
    let total_cents = lines
        .iter()
        .try_fold(0_i64, |sum, line| sum.checked_add(line.line_total_cents))
        .ok_or_else(|| Rejection("total_cents: the sum of the lines overflows".into()))?;
    Ok(NewInvoice {
        customer: order.customer,
        billing_address: order.billing_address,
        currency: order.currency,
        lines,
        total_cents,
    })
}

fn price_line(line: OrderedLine) -> Result<InvoiceLine, String> {
    reader::sku(&line.sku)?;
    let quantity = reader::quantity(line.quantity)?;
    if line.unit_price_cents < 0 {
        return Err(format!(
            "unit_price_cents: must not be negative, is {}",
            line.unit_price_cents
        ));
    }
    let line_total_cents = line
        .unit_price_cents
        .checked_mul(i64::from(quantity))
        .ok_or("line_total_cents: quantity * unit_price_cents overflows")?;
    Ok(InvoiceLine {
        sku: line.sku,
        name: line.name,
        quantity,
        unit_price_cents: line.unit_price_cents,
        line_total_cents,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use shared_events::arbitrary::order_placed;
    use shared_events::samples::{self, ALL};
    use shared_events::{Envelope, RawEnvelope};

    use super::*;

    const FOREIGN_ORDER: &str = "01933b5e-0000-7000-8000-000000000000";

    fn envelope(value: &Value) -> RawEnvelope {
        RawEnvelope::from_json(value).unwrap()
    }

    fn sample(name: &str) -> Value {
        samples::named(name).unwrap().value()
    }

    fn placed(env: &RawEnvelope) -> NewInvoice {
        match read(env) {
            Ok(Some(InvoicingEvent::Placed(invoice))) => invoice,
            other => panic!("expected an invoice, got {other:?}"),
        }
    }

    /// The contract test: every golden sample reads, and reads the right fields.
    #[test]
    fn every_golden_sample_reads_through_the_tolerant_reader() {
        for s in ALL {
            let env = RawEnvelope::from_slice(s.json.as_bytes()).unwrap();
            let full: Value = serde_json::from_str(s.json).unwrap();
            let data = &full["data"];
            match read(&env) {
                Ok(Some(InvoicingEvent::Placed(invoice))) => {
                    assert_eq!(
                        invoice.customer.name, data["customer"]["name"],
                        "{}",
                        s.name
                    );
                    assert_eq!(
                        invoice.customer.email, data["customer"]["email"],
                        "{}",
                        s.name
                    );
                    assert_eq!(
                        serde_json::to_value(&invoice.billing_address).unwrap()["street"],
                        data["billing_address"]["street"]
                    );
                    assert_eq!(
                        invoice.billing_address.country,
                        data["billing_address"]["country"]
                    );
                    assert_eq!(invoice.currency, data["currency"], "{}", s.name);
                    assert_eq!(invoice.total_cents, data["total_cents"], "{}", s.name);
                    for (line, wire) in invoice.lines.iter().zip(data["lines"].as_array().unwrap())
                    {
                        assert_eq!(line.sku, wire["sku"]);
                        assert_eq!(line.name, wire["name"]);
                        assert_eq!(line.quantity, wire["quantity"]);
                        assert_eq!(line.unit_price_cents, wire["unit_price_cents"]);
                        assert_eq!(line.line_total_cents, wire["line_total_cents"]);
                    }
                    assert_eq!(invoice.lines.len(), data["lines"].as_array().unwrap().len());
                }
                Ok(Some(InvoicingEvent::Cancelled)) => {
                    assert_eq!(full["event_type"], "OrderCancelled", "{}", s.name);
                }
                other => panic!("{} did not read: {other:?}", s.name),
            }
        }
    }

    #[test]
    fn the_golden_order_is_priced_exactly() {
        let invoice = placed(&envelope(&sample("order_placed.v1.json")));
        assert_eq!(
            invoice,
            NewInvoice {
                customer: Customer {
                    name: "Ada Lovelace".into(),
                    email: "ada@example.com".into()
                },
                billing_address: BillingAddress {
                    street: "1 Analytical Way".into(),
                    zip: "10115".into(),
                    city: "Berlin".into(),
                    country: "DE".into()
                },
                currency: "EUR".into(),
                lines: vec![
                    InvoiceLine {
                        sku: "IPOD-NANO".into(),
                        name: "iPod nano".into(),
                        quantity: 2,
                        unit_price_cents: 14900,
                        line_total_cents: 29800
                    },
                    InvoiceLine {
                        sku: "CASE.BLK_1".into(),
                        name: "Leather case".into(),
                        quantity: 1,
                        unit_price_cents: 1999,
                        line_total_cents: 1999
                    },
                ],
                total_cents: 31799,
            }
        );
    }

    #[test]
    fn totals_are_computed_here_not_taken_from_the_event() {
        let mut value = sample("order_placed.v1.json");
        value["data"]["lines"][0]["line_total_cents"] = json!(1);
        value["data"]["total_cents"] = json!(2);
        let invoice = placed(&envelope(&value));
        assert_eq!(invoice.lines[0].line_total_cents, 29800);
        assert_eq!(invoice.total_cents, 31799);
    }

    #[test]
    fn payloads_breaking_the_rules_are_rejected() {
        let cases = [
            ("quantity 0", vec![("/data/lines/0/quantity", json!(0))]),
            ("quantity -1", vec![("/data/lines/0/quantity", json!(-1))]),
            (
                "quantity too large",
                vec![("/data/lines/0/quantity", json!(u32::MAX))],
            ),
            ("empty sku", vec![("/data/lines/1/sku", json!(" "))]),
            (
                "negative price",
                vec![("/data/lines/0/unit_price_cents", json!(-1))],
            ),
            (
                "price as text",
                vec![("/data/lines/0/unit_price_cents", json!("1"))],
            ),
            ("no lines", vec![("/data/lines", json!([]))]),
            (
                "no email",
                vec![("/data/customer", json!({ "name": "Ada" }))],
            ),
            (
                "no billing address",
                vec![("/data/billing_address", Value::Null)],
            ),
            (
                "other order",
                vec![("/data/order_id", json!(FOREIGN_ORDER))],
            ),
            ("schema version 0", vec![("/schema_version", json!(0))]),
            (
                "line overflow",
                vec![
                    ("/data/lines/0/quantity", json!(i32::MAX)),
                    ("/data/lines/0/unit_price_cents", json!(i64::MAX / 2)),
                ],
            ),
            (
                "total overflow",
                vec![
                    ("/data/lines/0/quantity", json!(1)),
                    ("/data/lines/0/unit_price_cents", json!(i64::MAX)),
                ],
            ),
        ];
        for (name, patches) in cases {
            let mut value = sample("order_placed.v1.json");
            for (pointer, patch) in patches {
                *value.pointer_mut(pointer).unwrap() = patch;
            }
            assert!(read(&envelope(&value)).is_err(), "{name} was accepted");
        }
        let mut cancel = sample("order_cancelled.v1.json");
        cancel["data"]["order_id"] = json!(FOREIGN_ORDER);
        assert!(read(&envelope(&cancel)).is_err(), "foreign cancel accepted");
    }

    #[test]
    fn rejections_name_the_offending_field() {
        let mut value = sample("order_placed.v1.json");
        value["data"]["lines"][1]["quantity"] = json!(0);
        let rejection = read(&envelope(&value)).unwrap_err();
        assert!(rejection.0.starts_with("lines[1].quantity"), "{rejection}");
    }

    /// Schema evolution: an OrderPlaced v2 that renamed `billing_address`
    /// (and dropped `customer.email`) is refused, naming the field invoicing
    /// can no longer find, so it is dead-lettered rather than guessed at.
    #[test]
    fn a_v2_that_renamed_a_field_invoicing_needs_is_refused_naming_it() {
        let refused = read(&envelope(&samples::BREAKING_V2.value())).unwrap_err();
        assert!(
            refused.0.contains("email") || refused.0.contains("billing_address"),
            "{refused}"
        );
        let mut with_email = samples::BREAKING_V2.value();
        with_email["data"]["customer"]["email"] = json!("margaret@example.com");
        let refused = read(&envelope(&with_email)).unwrap_err();
        assert!(refused.0.contains("billing_address"), "{refused}");
    }

    proptest! {
        #[test]
        fn accepted_orders_round_trip_what_invoicing_reads(order in order_placed()) {
            let wire = Envelope::new(order.order_id, order.placed_at, "test", order.clone());
            let env = RawEnvelope::from_slice(&serde_json::to_vec(&wire).unwrap()).unwrap();
            let invoice = placed(&env);
            prop_assert_eq!(&invoice.customer.name, &order.customer.name);
            prop_assert_eq!(&invoice.customer.email, &order.customer.email);
            prop_assert_eq!(&invoice.billing_address.street, &order.billing_address.street);
            prop_assert_eq!(&invoice.billing_address.zip, &order.billing_address.zip);
            prop_assert_eq!(&invoice.billing_address.city, &order.billing_address.city);
            prop_assert_eq!(&invoice.billing_address.country, &order.billing_address.country);
            prop_assert_eq!(&invoice.currency, &order.currency);
            prop_assert_eq!(invoice.total_cents, order.total_cents);
            prop_assert_eq!(invoice.lines.len(), order.lines.len());
            for (mine, theirs) in invoice.lines.iter().zip(&order.lines) {
                prop_assert_eq!(&mine.sku, &theirs.sku);
                prop_assert_eq!(&mine.name, &theirs.name);
                prop_assert_eq!(i64::from(mine.quantity), i64::from(theirs.quantity));
                prop_assert_eq!(mine.unit_price_cents, theirs.unit_price_cents);
                prop_assert_eq!(mine.line_total_cents, theirs.line_total_cents);
            }
        }
    }
}

//! The tolerant reader: shipping's own, narrow view of the order events.
//!
//! The types below declare only what a shipment needs: the customer's name
//! (the recipient), the shipping address and what to pack. Prices, the
//! e-mail address and the billing address are not declared, so serde skips
//! them like any other unknown field and they never enter this service. Any
//! schema version whose needed fields still decode is accepted; what cannot
//! become a correct shipment (a missing field, a line without a SKU or with
//! no units) is rejected and dead-lettered.

use messaging::inbox::Rejection;
use messaging::reader::{self, OrderEvent};
use serde::Deserialize;
use shared_events::RawEnvelope;

use crate::shipment::{NewShipment, Recipient, ShipmentLine, ShippingAddress};

/// What an order event means to shipping: create this shipment for the
/// event's order, or cancel it (or create it cancelled later).
pub type ShippingEvent = OrderEvent<NewShipment>;

/// `OrderPlaced` as shipping reads it; `customer` holds only the name.
#[derive(Deserialize)]
struct PlacedOrder {
    customer: Recipient,
    shipping_address: ShippingAddress,
    lines: Vec<OrderedLine>,
}

/// An order line as shipping reads it: no price.
#[derive(Deserialize)]
struct OrderedLine {
    sku: String,
    name: String,
    quantity: u32,
}

/// Reads a record's envelope: `Ok(None)` for event types shipping does not
/// handle, a [`Rejection`] for events it can never turn into a shipment.
pub fn read(envelope: &RawEnvelope) -> Result<Option<ShippingEvent>, Rejection> {
    reader::read_order(envelope, pack)
}

/// Checks the lines: each needs a SKU and at least one unit.
fn pack(order: PlacedOrder) -> Result<NewShipment, Rejection> {
    let lines = reader::lines(order.lines, |line| {
        reader::sku(&line.sku)?;
        Ok(ShipmentLine {
            quantity: reader::quantity(line.quantity)?,
            sku: line.sku,
            name: line.name,
        })
    })?;
    Ok(NewShipment {
        recipient: order.customer,
        shipping_address: order.shipping_address,
        lines,
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

    fn placed(env: &RawEnvelope) -> NewShipment {
        match read(env) {
            Ok(Some(ShippingEvent::Placed(shipment))) => shipment,
            other => panic!("expected a shipment, got {other:?}"),
        }
    }

    /// The contract test: every golden sample reads, and reads the right
    /// fields; what shipping must not hold has no field to land in.
    #[test]
    fn every_golden_sample_reads_through_the_tolerant_reader() {
        for s in ALL {
            let env = RawEnvelope::from_slice(s.json.as_bytes()).unwrap();
            let full: Value = serde_json::from_str(s.json).unwrap();
            let data = &full["data"];
            match read(&env) {
                Ok(Some(ShippingEvent::Placed(shipment))) => {
                    assert_eq!(
                        shipment.recipient.name, data["customer"]["name"],
                        "{}",
                        s.name
                    );
                    assert_eq!(
                        serde_json::to_value(&shipment.shipping_address).unwrap(),
                        json!({
                            "street": data["shipping_address"]["street"],
                            "zip": data["shipping_address"]["zip"],
                            "city": data["shipping_address"]["city"],
                            "country": data["shipping_address"]["country"],
                        }),
                        "{}",
                        s.name
                    );
                    let wire_lines = data["lines"].as_array().unwrap();
                    assert_eq!(shipment.lines.len(), wire_lines.len());
                    for (line, wire) in shipment.lines.iter().zip(wire_lines) {
                        assert_eq!(
                            serde_json::to_value(line).unwrap(),
                            json!({ "sku": wire["sku"], "name": wire["name"], "quantity": wire["quantity"] })
                        );
                    }
                    let everything = format!("{shipment:?}");
                    for secret in [
                        data["customer"]["email"].as_str().unwrap(),
                        data["billing_address"]["street"].as_str().unwrap(),
                        "price",
                        "total",
                    ] {
                        if secret != data["shipping_address"]["street"] {
                            assert!(!everything.contains(secret), "{}: {secret} kept", s.name);
                        }
                    }
                }
                Ok(Some(ShippingEvent::Cancelled)) => {
                    assert_eq!(full["event_type"], "OrderCancelled", "{}", s.name);
                }
                other => panic!("{} did not read: {other:?}", s.name),
            }
        }
    }

    #[test]
    fn the_golden_order_is_packed_exactly() {
        let shipment = placed(&envelope(&sample("order_placed.v1.json")));
        assert_eq!(
            shipment,
            NewShipment {
                recipient: Recipient {
                    name: "Ada Lovelace".into()
                },
                shipping_address: ShippingAddress {
                    street: "2 Engine Road".into(),
                    zip: "80331".into(),
                    city: "Munich".into(),
                    country: "DE".into()
                },
                lines: vec![
                    ShipmentLine {
                        sku: "IPOD-NANO".into(),
                        name: "iPod nano".into(),
                        quantity: 2
                    },
                    ShipmentLine {
                        sku: "CASE.BLK_1".into(),
                        name: "Leather case".into(),
                        quantity: 1
                    },
                ],
            }
        );
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
            ("empty sku", vec![("/data/lines/1/sku", json!(""))]),
            ("no lines", vec![("/data/lines", json!([]))]),
            (
                "no customer name",
                vec![("/data/customer", json!({ "email": "a@b.c" }))],
            ),
            (
                "no shipping address",
                vec![("/data/shipping_address", Value::Null)],
            ),
            (
                "other order",
                vec![("/data/order_id", json!(FOREIGN_ORDER))],
            ),
            ("schema version 0", vec![("/schema_version", json!(0))]),
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
    fn prices_are_not_read_so_odd_prices_do_not_matter_to_shipping() {
        let mut value = sample("order_placed.v1.json");
        value["data"]["lines"][0]["unit_price_cents"] = json!(-5);
        value["data"]["total_cents"] = json!("not a number");
        value["data"]["customer"]["email"] = Value::Null;
        assert!(matches!(
            read(&envelope(&value)),
            Ok(Some(ShippingEvent::Placed(_)))
        ));
    }

    /// Schema evolution: an OrderPlaced v2 that renamed `billing_address`
    /// and dropped `customer.email` still holds every field shipping reads,
    /// so shipping reads it (the README documents this).
    #[test]
    fn a_v2_that_renamed_only_fields_shipping_does_not_read_is_read() {
        let shipment = match read(&envelope(&samples::BREAKING_V2.value())) {
            Ok(Some(ShippingEvent::Placed(shipment))) => shipment,
            other => panic!("expected a shipment, got {other:?}"),
        };
        assert_eq!(shipment.recipient.name, "Margaret Hamilton");
        assert_eq!(shipment.shipping_address.city, "Cambridge");
        assert_eq!(shipment.lines.len(), 1);
    }

    proptest! {
        #[test]
        fn accepted_orders_round_trip_what_shipping_reads(order in order_placed()) {
            let wire = Envelope::new(order.order_id, order.placed_at, "test", order.clone());
            let env = RawEnvelope::from_slice(&serde_json::to_vec(&wire).unwrap()).unwrap();
            let shipment = placed(&env);
            prop_assert_eq!(&shipment.recipient.name, &order.customer.name);
            prop_assert_eq!(&shipment.shipping_address.street, &order.shipping_address.street);
            prop_assert_eq!(&shipment.shipping_address.zip, &order.shipping_address.zip);
            prop_assert_eq!(&shipment.shipping_address.city, &order.shipping_address.city);
            prop_assert_eq!(&shipment.shipping_address.country, &order.shipping_address.country);
            prop_assert_eq!(shipment.lines.len(), order.lines.len());
            for (mine, theirs) in shipment.lines.iter().zip(&order.lines) {
                prop_assert_eq!(&mine.sku, &theirs.sku);
                prop_assert_eq!(&mine.name, &theirs.name);
                prop_assert_eq!(i64::from(mine.quantity), i64::from(theirs.quantity));
            }
        }
    }
}

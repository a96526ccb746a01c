//! Golden JSON samples of every event.
//!
//! The samples are the contract as a reader sees it on the wire. A test below
//! keeps the current-version samples equal to what this crate serialises, so
//! a change to the types that alters the wire format fails here first. Each
//! consumer runs every sample through its own tolerant reader in a contract
//! test; the forward-compatible sample (a newer schema version with extra
//! fields) proves that readers ignore what they do not know, and
//! [`BREAKING_V2`] (a newer version that renames and removes fields) how each
//! reader treats a breaking change.

/// One golden sample.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// File name under `shared-events/samples/`.
    pub name: &'static str,
    /// The JSON text of the record value.
    pub json: &'static str,
    /// True when the current code writes exactly this (false for samples of
    /// future, compatible schema versions).
    pub current: bool,
}

impl Sample {
    /// The sample as a JSON value, to change a field of in a test.
    pub fn value(&self) -> serde_json::Value {
        // The samples are valid JSON: a test below parses every one.
        serde_json::from_str(self.json).unwrap_or(serde_json::Value::Null)
    }
}

/// The sample named `name` (its file name under `shared-events/samples/`).
pub fn named(name: &str) -> Option<&'static Sample> {
    ALL.iter().find(|s| s.name == name)
}

/// Every golden sample shipped with the contract.
pub const ALL: &[Sample] = &[
    Sample {
        name: "order_placed.v1.json",
        json: include_str!("../samples/order_placed.v1.json"),
        current: true,
    },
    Sample {
        name: "order_cancelled.v1.json",
        json: include_str!("../samples/order_cancelled.v1.json"),
        current: true,
    },
    Sample {
        name: "order_cancelled.v1.no_reason.json",
        json: include_str!("../samples/order_cancelled.v1.no_reason.json"),
        current: true,
    },
    Sample {
        name: "order_placed.v2.compatible.json",
        json: include_str!("../samples/order_placed.v2.compatible.json"),
        current: false,
    },
];

/// A future `OrderPlaced` v2 that breaks v1: `billing_address` is renamed
/// `invoice_address` and `customer.email` is gone. Such a change needs the new
/// version (the v1 schema refuses it). It is kept apart from [`ALL`], which
/// every reader reads: a reader reads it only if every field it declares is
/// still there (shipping does), and refuses it naming the missing field
/// otherwise (invoicing does), as the README's "Schema evolution" documents.
pub const BREAKING_V2: Sample = Sample {
    name: "order_placed.v2.renamed.json",
    json: include_str!("../samples/order_placed.v2.renamed.json"),
    current: false,
};

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use serde_json::Value;
    use uuid::Uuid;

    use super::ALL;
    use crate::{
        Address, Customer, Envelope, EventType, OrderCancelled, OrderLine, OrderPlaced, RawEnvelope,
    };

    fn sample(name: &str) -> Value {
        let sample = ALL.iter().find(|s| s.name == name).unwrap();
        serde_json::from_str(sample.json).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn id(s: &str) -> Uuid {
        s.parse().unwrap()
    }

    fn envelope<T>(
        event_id: &str,
        event_type: EventType,
        occurred_at: &str,
        data: T,
    ) -> Envelope<T> {
        Envelope {
            event_id: id(event_id),
            event_type: event_type.as_str().to_owned(),
            schema_version: 1,
            order_id: id("01933b5e-8f30-7a1b-8c2d-3e4f5a6b7c8d"),
            occurred_at: at(occurred_at),
            producer: "order-service".to_owned(),
            data,
        }
    }

    #[test]
    fn order_placed_v1_serialises_exactly_as_the_golden_sample() {
        let placed = OrderPlaced {
            order_id: id("01933b5e-8f30-7a1b-8c2d-3e4f5a6b7c8d"),
            customer: Customer {
                name: "Ada Lovelace".into(),
                email: "ada@example.com".into(),
            },
            billing_address: Address {
                street: "1 Analytical Way".into(),
                zip: "10115".into(),
                city: "Berlin".into(),
                country: "DE".into(),
            },
            shipping_address: Address {
                street: "2 Engine Road".into(),
                zip: "80331".into(),
                city: "Munich".into(),
                country: "DE".into(),
            },
            currency: "EUR".into(),
            lines: vec![
                OrderLine {
                    sku: "IPOD-NANO".into(),
                    name: "iPod nano".into(),
                    quantity: 2,
                    unit_price_cents: 14900,
                    line_total_cents: 29800,
                },
                OrderLine {
                    sku: "CASE.BLK_1".into(),
                    name: "Leather case".into(),
                    quantity: 1,
                    unit_price_cents: 1999,
                    line_total_cents: 1999,
                },
            ],
            total_cents: 31799,
            placed_at: at("2026-11-21T09:30:00.123456Z"),
        };
        let env = envelope(
            "01933b5e-8f3a-7c4e-9d2b-5a6f7e8d9c0b",
            EventType::OrderPlaced,
            "2026-11-21T09:30:00.123456Z",
            placed,
        );
        assert_eq!(
            serde_json::to_value(&env).unwrap(),
            sample("order_placed.v1.json")
        );
    }

    #[test]
    fn order_cancelled_v1_serialises_exactly_as_the_golden_samples() {
        let cancelled = OrderCancelled {
            order_id: id("01933b5e-8f30-7a1b-8c2d-3e4f5a6b7c8d"),
            reason: Some("customer changed their mind".into()),
            cancelled_at: at("2026-11-21T09:45:10Z"),
        };
        let env = envelope(
            "01933b5f-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
            EventType::OrderCancelled,
            "2026-11-21T09:45:10Z",
            cancelled,
        );
        assert_eq!(
            serde_json::to_value(&env).unwrap(),
            sample("order_cancelled.v1.json")
        );

        let no_reason = OrderCancelled {
            order_id: id("01933b5e-8f30-7a1b-8c2d-3e4f5a6b7c8d"),
            reason: None,
            cancelled_at: at("2026-11-21T10:00:00Z"),
        };
        let env = envelope(
            "01933b60-0000-7000-8000-000000000001",
            EventType::OrderCancelled,
            "2026-11-21T10:00:00Z",
            no_reason,
        );
        assert_eq!(
            serde_json::to_value(&env).unwrap(),
            sample("order_cancelled.v1.no_reason.json")
        );
    }

    #[test]
    fn every_sample_reads_back_through_the_full_types() {
        for s in ALL {
            let raw = RawEnvelope::from_slice(s.json.as_bytes()).unwrap();
            match raw.known_type() {
                Some(EventType::OrderPlaced) => {
                    let placed: OrderPlaced = raw.decode_data().unwrap();
                    assert_eq!(placed.order_id, raw.order_id, "{}", s.name);
                }
                Some(EventType::OrderCancelled) => {
                    let cancelled: OrderCancelled = raw.decode_data().unwrap();
                    assert_eq!(cancelled.order_id, raw.order_id, "{}", s.name);
                }
                None => panic!("{} has an unknown event type", s.name),
            }
            if s.current {
                let reserialised = match raw.known_type() {
                    Some(EventType::OrderPlaced) => {
                        let data: OrderPlaced = raw.decode_data().unwrap();
                        serde_json::to_value(raw.clone().with_data(data))
                    }
                    _ => {
                        let data: OrderCancelled = raw.decode_data().unwrap();
                        serde_json::to_value(raw.clone().with_data(data))
                    }
                }
                .unwrap();
                assert_eq!(
                    reserialised,
                    sample(s.name),
                    "{} does not round-trip",
                    s.name
                );
            }
        }
    }
}

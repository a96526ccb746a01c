//! Property-test generators for readers of the contract (feature `arbitrary`).
//!
//! The golden [`crate::samples`] pin a few events exactly; these generators
//! cover the rest of the space. A consumer's reader should accept every
//! [`order_placed`] and read back the fields it declares, and should never
//! panic on any [`record_value`].

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::Value;
use uuid::Uuid;

use crate::{Address, Customer, OrderLine, OrderPlaced};

/// The field names used by the order events, to give arbitrary JSON objects
/// a fair chance of looking like a payload.
pub const ORDER_EVENT_FIELDS: &[&str] = &[
    "order_id",
    "customer",
    "name",
    "email",
    "billing_address",
    "shipping_address",
    "street",
    "zip",
    "city",
    "country",
    "currency",
    "lines",
    "sku",
    "quantity",
    "unit_price_cents",
    "line_total_cents",
    "total_cents",
    "placed_at",
    "reason",
];

fn text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9 .,'-]{1,24}"
}

fn address() -> impl Strategy<Value = Address> {
    (text(), text(), text(), "[A-Z]{2}").prop_map(|(street, zip, city, country)| Address {
        street,
        zip,
        city,
        country,
    })
}

fn order_line() -> impl Strategy<Value = OrderLine> {
    (
        "[A-Z0-9][A-Z0-9._-]{0,15}",
        text(),
        1..=100_000_u32,
        0..=10_000_000_i64,
    )
        .prop_map(|(sku, name, quantity, unit_price_cents)| OrderLine {
            sku,
            name,
            quantity,
            unit_price_cents,
            line_total_cents: unit_price_cents * i64::from(quantity),
        })
}

/// Any valid `OrderPlaced`: one to seven lines, non-blank SKUs, at least one
/// unit per line, prices not negative, line totals and total consistent.
pub fn order_placed() -> impl Strategy<Value = OrderPlaced> {
    (
        any::<u128>(),
        (text(), text()),
        address(),
        address(),
        "[A-Z]{3}",
        prop::collection::vec(order_line(), 1..8),
        0..4_000_000_000_i64,
    )
        .prop_map(
            |(id, (name, email), billing_address, shipping_address, currency, lines, secs)| {
                OrderPlaced {
                    order_id: Uuid::from_u128(id),
                    customer: Customer { name, email },
                    billing_address,
                    shipping_address,
                    currency,
                    total_cents: lines.iter().map(|l| l.line_total_cents).sum(),
                    lines,
                    placed_at: DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or_default(),
                }
            },
        )
}

/// Any JSON value up to four levels deep; object keys are drawn from `keys`.
pub fn json_value(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z_]{0,8}".prop_map(Value::from),
        any::<u128>().prop_map(|id| Value::from(Uuid::from_u128(id).to_string())),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(keys).prop_map(str::to_owned),
                inner,
                0..8,
            )
            .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// Any record value a consumer may meet: arbitrary bytes, or an envelope of
/// a known or unknown event type around arbitrary JSON. Half of the JSON
/// objects carry the envelope's own `order_id`, so that readers get past
/// that check and read the rest.
pub fn record_value() -> impl Strategy<Value = Vec<u8>> {
    let envelope = (
        prop::sample::select(&["OrderPlaced", "OrderCancelled", "OrderShipped"][..]),
        0..3_u32,
        any::<u128>(),
        json_value(ORDER_EVENT_FIELDS),
        any::<bool>(),
    )
        .prop_map(
            |(event_type, schema_version, order_id, mut data, same_order)| {
                let order_id = Uuid::from_u128(order_id).to_string();
                if let (true, Some(fields)) = (same_order, data.as_object_mut()) {
                    fields.insert("order_id".into(), Value::from(order_id.as_str()));
                }
                serde_json::json!({
                    "event_id": Uuid::from_u128(1).to_string(),
                    "event_type": event_type,
                    "schema_version": schema_version,
                    "order_id": order_id,
                    "occurred_at": "2026-11-21T09:30:00Z",
                    "producer": "arbitrary",
                    "data": data,
                })
                .to_string()
                .into_bytes()
            },
        );
    prop_oneof![prop::collection::vec(any::<u8>(), 0..512), envelope]
}

/// Any JSON value valid under `schema` (a schema of [`crate::schema`]),
/// with optional properties sometimes left out and, where the schema leaves
/// objects open, unknown properties sometimes added (a producer may add
/// fields without a new version). It reads the keywords the generated schemas
/// use: `$ref` into `$defs`, `const`, `type` (also as a list), `properties`,
/// `required`, `items`, `minimum`/`maximum`, and the `uuid`, `date-time`,
/// `uint32` and `int64` formats.
pub fn valid_under(schema: &Value) -> BoxedStrategy<Value> {
    instance(schema, schema)
}

/// An event valid under `schema`, where half of them carry the envelope's
/// `order_id` in their payload too (the readers refuse a mismatch, so this
/// lets them get past that check and read the rest).
pub fn event_valid_under(schema: &Value) -> impl Strategy<Value = Value> + use<> {
    (valid_under(schema), any::<bool>()).prop_map(|(mut event, same_order)| {
        let order_id = event["order_id"].clone();
        if let (true, Some(data)) = (same_order, event["data"].as_object_mut()) {
            data.insert("order_id".into(), order_id);
        }
        event
    })
}

fn instance(root: &Value, schema: &Value) -> BoxedStrategy<Value> {
    if let Some(target) = schema["$ref"].as_str() {
        let resolved = target
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(pointer))
            .cloned()
            .unwrap_or(Value::Bool(true));
        return instance(root, &resolved);
    }
    if let Some(constant) = schema.get("const") {
        return Just(constant.clone()).boxed();
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.is_empty() {
        return json_value(ORDER_EVENT_FIELDS).boxed();
    }
    let choices: Vec<BoxedStrategy<Value>> =
        types.into_iter().map(|t| typed(root, schema, t)).collect();
    prop::strategy::Union::new(choices).boxed()
}

fn typed(root: &Value, schema: &Value, kind: &str) -> BoxedStrategy<Value> {
    match kind {
        "null" => Just(Value::Null).boxed(),
        "boolean" => any::<bool>().prop_map(Value::from).boxed(),
        "integer" => integer(schema),
        "number" => any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from)
            .boxed(),
        "string" => string(schema["format"].as_str()),
        "array" => {
            let items = instance(root, &schema["items"]);
            prop::collection::vec(items, 0..5)
                .prop_map(Value::from)
                .boxed()
        }
        "object" => object(root, schema),
        _ => Just(Value::Null).boxed(),
    }
}

fn integer(schema: &Value) -> BoxedStrategy<Value> {
    let (format_min, format_max) = match schema["format"].as_str() {
        Some("uint32") => (0, i64::from(u32::MAX)),
        Some("int32") => (i64::from(i32::MIN), i64::from(i32::MAX)),
        Some("uint64" | "uint") => (0, i64::MAX),
        _ => (i64::MIN, i64::MAX),
    };
    let min = schema["minimum"]
        .as_i64()
        .unwrap_or(i64::MIN)
        .max(format_min);
    let max = schema["maximum"]
        .as_i64()
        .unwrap_or(i64::MAX)
        .min(format_max);
    // Edges and small values are where readers' checks are; mix them in.
    prop_oneof![
        (min..=max).prop_map(Value::from),
        prop::sample::select(vec![min, max, 0.clamp(min, max), 1.clamp(min, max)])
            .prop_map(Value::from),
    ]
    .boxed()
}

fn string(format: Option<&str>) -> BoxedStrategy<Value> {
    match format {
        Some("uuid") => any::<u128>()
            .prop_map(|id| Value::from(Uuid::from_u128(id).to_string()))
            .boxed(),
        Some("date-time") => (0..4_000_000_000_i64, 0..1_000_000_000_u32)
            .prop_map(|(secs, nanos)| {
                let at = DateTime::<Utc>::from_timestamp(secs, nanos).unwrap_or_default();
                Value::from(at.to_rfc3339())
            })
            .boxed(),
        _ => prop_oneof![
            text(),
            any::<String>(),
            Just(String::new()),
            Just(" ".to_owned()),
            Just("a\u{0}b".to_owned()),
        ]
        .prop_map(Value::from)
        .boxed(),
    }
}

fn object(root: &Value, schema: &Value) -> BoxedStrategy<Value> {
    let required: Vec<String> = schema["required"]
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let properties: Vec<(String, bool, BoxedStrategy<Value>)> = schema["properties"]
        .as_object()
        .map(|properties| {
            properties
                .iter()
                .map(|(name, property)| {
                    (
                        name.clone(),
                        required.contains(name),
                        instance(root, property),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let open = schema.get("additionalProperties") != Some(&Value::Bool(false));
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = properties
        .into_iter()
        .map(|(name, is_required, value)| {
            let present = if is_required {
                Just(true).boxed()
            } else {
                any::<bool>().boxed()
            };
            (present, value)
                .prop_map(move |(present, value)| present.then(|| (name.clone(), value)))
                .boxed()
        })
        .collect();
    let extra = if open {
        prop::collection::vec(("x_[a-z]{1,8}", json_value(ORDER_EVENT_FIELDS)), 0..3).boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    (fields, extra)
        .prop_map(|(fields, extra)| {
            let mut object = serde_json::Map::new();
            for (name, value) in extra.into_iter().chain(fields.into_iter().flatten()) {
                object.insert(name, value);
            }
            Value::Object(object)
        })
        .boxed()
}

/// Any event valid under one of the committed event schemas
/// ([`crate::schema::ALL`]), built by [`event_valid_under`].
pub fn event_valid_under_any_schema() -> impl Strategy<Value = Value> {
    let events: Vec<BoxedStrategy<Value>> = crate::schema::ALL
        .iter()
        .filter(|file| file.event.is_some())
        .map(|file| event_valid_under(&file.committed()).boxed())
        .collect();
    prop::strategy::Union::new(events)
}

/// Whether `event` is valid under the committed schema of the event type and
/// version it names (formats checked); `false` when there is none.
pub fn valid_under_its_schema(event: &Value) -> bool {
    let event_type = event["event_type"]
        .as_str()
        .and_then(crate::EventType::parse);
    let version = event["schema_version"]
        .as_u64()
        .and_then(|v| u32::try_from(v).ok());
    let Some(file) = event_type
        .zip(version)
        .and_then(|(event_type, version)| crate::schema::of(event_type, version))
    else {
        return false;
    };
    jsonschema::options()
        .should_validate_formats(true)
        .build(&file.committed())
        .is_ok_and(|validator| validator.is_valid(event))
}

/// The contract of a consumer's reader against the producer's schema:
/// `event`, valid under its schema, is read by `read` (`Ok(Some(_))`) or
/// refused with a reason, never skipped as unknown. `Err` says what broke it.
pub fn read_or_refused_with_a_reason<T, R: std::fmt::Display>(
    event: &Value,
    read: impl FnOnce(&crate::RawEnvelope) -> Result<Option<T>, R>,
) -> Result<(), String> {
    if !valid_under_its_schema(event) {
        return Err(format!("not valid under its schema: {event}"));
    }
    let envelope = crate::RawEnvelope::from_json(event)
        .map_err(|e| format!("a schema-valid event is no envelope ({e}): {event}"))?;
    match read(&envelope) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(format!("a known event type was skipped: {event}")),
        Err(reason) if reason.to_string().trim().is_empty() => {
            Err(format!("refused without a reason: {event}"))
        }
        Err(_) => Ok(()),
    }
}

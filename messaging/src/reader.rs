//! What every consumer's tolerant reader shares: the record's key checked
//! against its envelope, reading an order event's payload into the
//! consumer's own narrow type, telling placements from cancellations, and the
//! checks every order line must pass before an effect may be built from it.
//!
//! A consumer declares only the fields it needs (serde ignores the others),
//! and refuses, with a [`Rejection`] naming the field, whatever it could not
//! store: the database is never the one to refuse a record, because its
//! errors count as the service's own (see [`crate::inbox`]).

use serde::Deserialize;
use serde::de::DeserializeOwned;
use shared_events::{EventType, RawEnvelope};
use uuid::Uuid;

use crate::inbox::{EventMeta, NewEvent, Rejection};

/// What an order event means to a consumer whose effect of a placement is `P`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderEvent<P> {
    /// Create this effect for the event's order.
    Placed(P),
    /// Cancel the event's order's effect (or create it cancelled later).
    Cancelled,
}

impl<P> OrderEvent<P> {
    /// A batch's new events split by kind, in record order: the placements
    /// with their events' metadata (order and event ids), and the orders
    /// cancelled.
    pub fn split<'a>(
        events: &'a [NewEvent<'a, OrderEvent<P>>],
    ) -> (Vec<(&'a EventMeta, &'a P)>, Vec<Uuid>) {
        let mut placed = Vec::new();
        let mut cancelled = Vec::new();
        for new in events {
            match new.event {
                OrderEvent::Placed(effect) => placed.push((new.meta, effect)),
                OrderEvent::Cancelled => cancelled.push(new.meta.order_id),
            }
        }
        (placed, cancelled)
    }
}

/// `OrderCancelled` as every consumer reads it: the order id is all it
/// needs, and [`read_order_event`] checks that one.
#[derive(Deserialize)]
struct CancelledOrder {}

/// Reads an order event: `OrderPlaced` into the consumer's narrow type `W`,
/// turned into its effect by `placed`; `OrderCancelled` as
/// [`OrderEvent::Cancelled`]; `Ok(None)` for event types the flow does not
/// define (skipped and counted by the inbox).
pub fn read_order<W, P>(
    envelope: &RawEnvelope,
    placed: impl FnOnce(W) -> Result<P, Rejection>,
) -> Result<Option<OrderEvent<P>>, Rejection>
where
    W: DeserializeOwned,
{
    match envelope.known_type() {
        Some(EventType::OrderPlaced) => {
            let order: W = read_order_event(envelope)?;
            Ok(Some(OrderEvent::Placed(placed(order)?)))
        }
        Some(EventType::OrderCancelled) => {
            let CancelledOrder {} = read_order_event(envelope)?;
            Ok(Some(OrderEvent::Cancelled))
        }
        None => Ok(None),
    }
}

/// How much of a refused key a [`Rejection`] quotes.
const KEY_QUOTED: usize = 64;

/// Checks that a record's key is its envelope's `order_id`, written as the
/// relay writes it (hyphenated, lower case), byte for byte.
///
/// The key picks the partition, and an order's events are read in order
/// only because they share one. A record whose key names another order (or
/// the same order spelt differently, which hashes elsewhere) can overtake or
/// trail its order's other events, and one whose key is forged by a writer
/// other than the relay claims to be something it is not: either way it is
/// the record's fault, and it is refused with the key it came with.
pub fn check_key(key: Option<&[u8]>, order_id: Uuid) -> Result<(), Rejection> {
    let mut expected = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let expected = order_id.hyphenated().encode_lower(&mut expected);
    match key {
        Some(key) if key == expected.as_bytes() => Ok(()),
        Some(key) => {
            let text = String::from_utf8_lossy(key);
            let quoted: String = text.chars().take(KEY_QUOTED).collect();
            let cut = if quoted.len() < text.len() { "..." } else { "" };
            Err(Rejection(format!(
                "record key {quoted:?}{cut} is not the envelope's order_id {order_id}"
            )))
        }
        None => Err(Rejection(format!(
            "record has no key; an event of order {order_id} must be keyed by its order_id"
        ))),
    }
}

/// Reads every line with `read_line`, naming a refused one by its index
/// (`lines[2].sku: ...`); an order needs at least one line.
pub fn lines<L, T>(
    lines: Vec<L>,
    mut read_line: impl FnMut(L) -> Result<T, String>,
) -> Result<Vec<T>, Rejection> {
    if lines.is_empty() {
        return Err(Rejection("lines: an order needs at least one line".into()));
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| read_line(line).map_err(|why| Rejection(format!("lines[{i}].{why}"))))
        .collect()
}

/// A line's SKU: anything but blank.
pub fn sku(sku: &str) -> Result<(), String> {
    if sku.trim().is_empty() {
        return Err("sku: must not be empty".into());
    }
    Ok(())
}

/// A line's quantity as stored (an `INTEGER`): 1 or more.
pub fn quantity(quantity: u32) -> Result<i32, String> {
    i32::try_from(quantity)
        .ok()
        .filter(|q| *q >= 1)
        .ok_or_else(|| format!("quantity: must be 1 to {}, is {quantity}", i32::MAX))
}

/// Reads an order event's payload into the reader's own narrow type `T`, for
/// [`Handler::decode`], applying the rules every reader shares:
///
/// - any `schema_version` from 1 up is accepted, as long as the fields `T`
///   declares decode (a newer version only adds fields; unknown fields are
///   ignored unless `T` says otherwise);
/// - the payload's `order_id` must equal the envelope's (the record key), or
///   the event would land on the wrong order;
/// - no text may hold a NUL character, which no PostgreSQL text column can
///   store: the database must never be the one to refuse a record, since
///   its errors count as the service's own (see the module documentation).
///
/// A payload that breaks a rule is a [`Rejection`] naming the field.
pub fn read_order_event<'a, T: Deserialize<'a>>(envelope: &'a RawEnvelope) -> Result<T, Rejection> {
    #[derive(Deserialize)]
    struct Keyed {
        order_id: Uuid,
    }
    if has_nul_escape(envelope.data.get()) {
        return Err(Rejection(format!(
            "{} payload: a text holds a NUL character (\\u0000), which cannot be stored",
            envelope.event_type
        )));
    }
    if envelope.schema_version < 1 {
        return Err(Rejection(format!(
            "schema_version {} is not a version of {}",
            envelope.schema_version, envelope.event_type
        )));
    }
    let field_error = |e: serde_path_to_error::Error<serde_json::Error>| {
        Rejection(format!(
            "{} payload: {}: {}",
            envelope.event_type,
            e.path(),
            e.inner()
        ))
    };
    let keyed: Keyed = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(
        envelope.data.get(),
    ))
    .map_err(field_error)?;
    if keyed.order_id != envelope.order_id {
        return Err(Rejection(format!(
            "payload order_id {} differs from the envelope's order_id {}",
            keyed.order_id, envelope.order_id
        )));
    }
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(envelope.data.get()))
        .map_err(field_error)
}

/// True when the JSON text `raw` holds a `\u0000` escape, the only way JSON
/// can carry a NUL character: a linear scan that skips other escapes, so an
/// escaped backslash followed by `u0000` is not mistaken for one.
fn has_nul_escape(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) == Some(&b'u') && bytes.get(i + 2..i + 6) == Some(b"0000") {
                return true;
            }
            // Skip the escaped character (for \uXXXX the hex digits are plain).
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use shared_events::RawEnvelope;

    use uuid::Uuid;

    use super::{check_key, has_nul_escape, lines, quantity, read_order_event, sku};

    #[derive(Debug, Deserialize)]
    struct Narrow {
        currency: String,
    }

    fn envelope(schema_version: u32, data_order_id: &str) -> RawEnvelope {
        let json = format!(
            r#"{{"event_id":"01933b5e-8f3a-7c4e-9d2b-5a6f7e8d9c0b","event_type":"OrderPlaced",
                "schema_version":{schema_version},"order_id":"01933b5e-8f30-7a1b-8c2d-3e4f5a6b7c8d",
                "occurred_at":"2026-11-21T09:30:00Z","producer":"test",
                "data":{{"order_id":"{data_order_id}","currency":"EUR","extra":[1,2]}}}}"#
        );
        RawEnvelope::from_slice(json.as_bytes()).unwrap()
    }

    const SAME: &str = "01933b5e-8f30-7a1b-8c2d-3e4f5a6b7c8d";

    #[test]
    fn only_the_order_id_as_the_relay_writes_it_is_a_valid_key() {
        let order: Uuid = SAME.parse().unwrap();
        assert!(check_key(Some(SAME.as_bytes()), order).is_ok());
        let other = check_key(Some(b"01933b5e-0000-7000-8000-000000000000"), order).unwrap_err();
        assert!(
            other.0.contains("\"01933b5e-0000-7000-8000-000000000000\"") && other.0.contains(SAME),
            "names both: {other}"
        );
        // The same order spelt otherwise hashes to another partition.
        let upper = SAME.to_uppercase();
        assert!(check_key(Some(upper.as_bytes()), order).is_err());
        let simple = order.simple().to_string();
        assert!(check_key(Some(simple.as_bytes()), order).is_err());
        assert!(check_key(None, order).unwrap_err().0.contains("no key"));
        let long = "k".repeat(1000);
        let refused = check_key(Some(long.as_bytes()), order).unwrap_err();
        assert!(
            refused.0.len() < 200 && refused.0.contains("..."),
            "{refused}"
        );
        assert!(check_key(Some(b"\xff\x00"), order).is_err());
    }

    #[test]
    fn lines_are_named_by_index_and_an_order_needs_one() {
        let empty: Result<Vec<i32>, _> = lines(Vec::<u32>::new(), quantity);
        assert!(empty.unwrap_err().0.contains("at least one line"));
        let refused = lines(vec![1_u32, 0], quantity).unwrap_err();
        assert_eq!(
            refused.0,
            format!("lines[1].quantity: must be 1 to {}, is 0", i32::MAX)
        );
        assert_eq!(lines(vec![1_u32, 3], quantity).unwrap(), [1, 3]);
        assert!(sku("  ").is_err() && sku("A-1").is_ok());
        assert!(quantity(u32::MAX).is_err());
    }

    #[test]
    fn reads_any_version_from_one_up_and_ignores_unknown_fields() {
        for version in [1, 2, 7] {
            let narrow: Narrow = read_order_event(&envelope(version, SAME)).unwrap();
            assert_eq!(narrow.currency, "EUR");
        }
    }

    #[test]
    fn a_nul_character_anywhere_in_the_payload_is_refused() {
        assert!(has_nul_escape(r#"{"name":"a\u0000b"}"#));
        assert!(has_nul_escape(r#"{"a\u0000":1}"#));
        assert!(
            !has_nul_escape(r#"{"name":"a\\u0000b"}"#),
            "an escaped backslash"
        );
        assert!(
            has_nul_escape(r#"{"name":"a\\\u0000b"}"#),
            "backslash, then NUL"
        );
        assert!(!has_nul_escape(r#"{"name":"\u00e9\n\"q\""}"#));
        for json in ["", "\\", "\\u00"] {
            assert!(!has_nul_escape(json), "{json:?}");
        }
        let json = r#"{"event_id":"01933b5e-8f3a-7c4e-9d2b-5a6f7e8d9c0b","event_type":"OrderPlaced",
            "schema_version":1,"order_id":"01933b5e-8f30-7a1b-8c2d-3e4f5a6b7c8d",
            "occurred_at":"2026-11-21T09:30:00Z","producer":"test",
            "data":{"order_id":"01933b5e-8f30-7a1b-8c2d-3e4f5a6b7c8d","currency":"E\u0000R"}}"#;
        let envelope = RawEnvelope::from_slice(json.as_bytes()).unwrap();
        let refused = read_order_event::<Narrow>(&envelope).unwrap_err();
        assert!(refused.0.contains("NUL"), "{refused}");
    }

    #[test]
    fn rejects_version_zero_a_foreign_order_id_and_missing_fields() {
        assert!(read_order_event::<Narrow>(&envelope(0, SAME)).is_err());
        let foreign =
            read_order_event::<Narrow>(&envelope(1, "01933b5e-0000-7000-8000-000000000000"))
                .unwrap_err();
        assert!(foreign.0.contains("differs"), "{foreign}");

        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct NeedsLines {
            lines: Vec<String>,
        }
        let missing = read_order_event::<NeedsLines>(&envelope(1, SAME)).unwrap_err();
        assert!(missing.0.contains("lines"), "{missing}");
    }
}

//! The envelope: the metadata every event carries around its payload.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

/// The record value of every event on the `orders` topic.
///
/// `event_id` is the deduplication key downstream; `order_id` is also the
/// Kafka record key, so all events of one order share a partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope<T> {
    /// Unique id of this event (UUIDv7); consumers deduplicate on it.
    pub event_id: Uuid,
    /// Name of the payload type, e.g. `OrderPlaced`.
    pub event_type: String,
    /// Version of the payload schema; compatible additions keep the major meaning.
    pub schema_version: u32,
    /// The order this event is about (also the record key).
    pub order_id: Uuid,
    /// When the fact happened, in UTC.
    pub occurred_at: DateTime<Utc>,
    /// Name of the service that produced the event.
    pub producer: String,
    /// The payload.
    pub data: T,
}

/// An envelope whose payload is left undecoded, for readers that dispatch on
/// `event_type` before choosing a payload type.
pub type RawEnvelope = Envelope<Box<RawValue>>;

/// Event types known to this version of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// An order was accepted: [`crate::OrderPlaced`].
    OrderPlaced,
    /// An order was cancelled: [`crate::OrderCancelled`].
    OrderCancelled,
}

impl EventType {
    /// The name used in `event_type` and in the `event_type` header.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::OrderPlaced => "OrderPlaced",
            EventType::OrderCancelled => "OrderCancelled",
        }
    }

    /// Parses an `event_type` name; `None` for types this contract does not know.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "OrderPlaced" => Some(EventType::OrderPlaced),
            "OrderCancelled" => Some(EventType::OrderCancelled),
            _ => None,
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A payload type that can travel in an [`Envelope`].
pub trait Event: Serialize + JsonSchema {
    /// The `event_type` this payload is published as.
    const TYPE: EventType;
    /// The schema version this code writes.
    const SCHEMA_VERSION: u32;
}

/// Why a record value could not be read as an envelope.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The bytes are not a JSON envelope.
    #[error("the record value is not a valid event envelope")]
    Malformed(#[from] serde_json::Error),
}

impl<T: Event> Envelope<T> {
    /// Wraps a payload in a new envelope with a fresh UUIDv7 event id.
    pub fn new(order_id: Uuid, occurred_at: DateTime<Utc>, producer: &str, data: T) -> Self {
        Envelope {
            event_id: Uuid::now_v7(),
            event_type: T::TYPE.as_str().to_owned(),
            schema_version: T::SCHEMA_VERSION,
            order_id,
            occurred_at,
            producer: producer.to_owned(),
            data,
        }
    }
}

impl<T> Envelope<T> {
    /// The same envelope around a different payload (e.g. a decoded one).
    pub fn with_data<U>(self, data: U) -> Envelope<U> {
        Envelope {
            event_id: self.event_id,
            event_type: self.event_type,
            schema_version: self.schema_version,
            order_id: self.order_id,
            occurred_at: self.occurred_at,
            producer: self.producer,
            data,
        }
    }
}

impl RawEnvelope {
    /// [`RawEnvelope::from_slice`] of a JSON value (tests build records so).
    pub fn from_json(value: &serde_json::Value) -> Result<Self, EnvelopeError> {
        Self::from_slice(value.to_string().as_bytes())
    }

    /// Reads the envelope of a record value, leaving the payload undecoded.
    pub fn from_slice(value: &[u8]) -> Result<Self, EnvelopeError> {
        Ok(serde_json::from_slice(value)?)
    }

    /// The event type, if this contract knows it.
    pub fn known_type(&self) -> Option<EventType> {
        EventType::parse(&self.event_type)
    }

    /// Decodes the payload into the reader's own type.
    pub fn decode_data<'a, T: Deserialize<'a>>(&'a self) -> Result<T, EnvelopeError> {
        Ok(serde_json::from_str(self.data.get())?)
    }
}

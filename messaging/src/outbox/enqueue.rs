//! Enqueue: an event becomes an outbox row, written with the state change it
//! describes, in the same transaction.
//!
//! Writing the database and then calling Kafka from the request handler loses
//! the event whenever the process dies between the two or the send fails.
//! Instead the handler calls [`enqueue`] inside its transaction; the row
//! commits atomically with the order, and the [`Relay`](super::Relay)
//! publishes it later, retrying for as long as it takes.

use shared_events::{Envelope, Event, TraceParent};
use sqlx::PgConnection;
use uuid::Uuid;

/// One event, serialised and addressed, ready to be stored in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// The envelope's event id (unique in the outbox).
    pub event_id: Uuid,
    /// Destination topic.
    pub topic: String,
    /// Record key: the order id, so one order's events share a partition.
    pub key: String,
    /// The envelope's event type (repeated in a header).
    pub event_type: String,
    /// The envelope's schema version (repeated in a header).
    pub schema_version: i32,
    /// The record value: the envelope as JSON text, exactly as it will be published.
    pub payload: String,
    /// Trace context of the request that caused the event.
    pub traceparent: Option<String>,
}

impl OutboxMessage {
    /// Serialises an envelope for `topic`, keyed by its order id.
    pub fn for_event<T: Event>(
        topic: &str,
        envelope: &Envelope<T>,
        traceparent: Option<TraceParent>,
    ) -> Result<Self, serde_json::Error> {
        Ok(OutboxMessage {
            event_id: envelope.event_id,
            topic: topic.to_owned(),
            key: envelope.order_id.to_string(),
            event_type: envelope.event_type.clone(),
            schema_version: i32::try_from(envelope.schema_version).unwrap_or(i32::MAX),
            payload: serde_json::to_string(envelope)?,
            traceparent: traceparent.map(|t| t.to_string()),
        })
    }
}

/// Inserts the message. Call it inside the transaction that makes the change
/// the event describes, and [`Wakeup::committed`](super::Wakeup::committed) after that transaction
/// has committed.
pub async fn enqueue(conn: &mut PgConnection, message: &OutboxMessage) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, record_key, event_type, schema_version, payload, traceparent, key_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(message.event_id)
    .bind(&message.topic)
    .bind(&message.key)
    .bind(&message.event_type)
    .bind(message.schema_version)
    .bind(&message.payload)
    .bind(&message.traceparent)
    .bind(shared_events::topics::key_hash(message.key.as_bytes()))
    .execute(conn)
    .await?;
    Ok(())
}

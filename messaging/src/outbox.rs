//! The transactional outbox: events are rows, written with the state change
//! they describe, in the same transaction.
//!
//! Writing the database and then calling Kafka from the request handler loses
//! the event whenever the process dies between the two or the send fails.
//! Instead the handler calls [`enqueue`] inside its transaction; the row
//! commits atomically with the order, and the [`crate::relay`] publishes it
//! later, retrying for as long as it takes.
//!
//! The owning service's migration creates the table:
//!
//! ```sql
//! CREATE TABLE outbox (
//!     id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
//!     event_id       UUID        NOT NULL UNIQUE,
//!     topic          TEXT        NOT NULL,
//!     record_key     TEXT        NOT NULL,
//!     event_type     TEXT        NOT NULL,
//!     schema_version INTEGER     NOT NULL,
//!     payload        TEXT        NOT NULL,
//!     traceparent    TEXT,
//!     created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
//! );
//! ```

use shared_events::{Envelope, Event, TraceParent};
use sqlx::PgConnection;
use uuid::Uuid;

/// The PostgreSQL channel the relay listens on; [`enqueue`] notifies it.
pub const CHANNEL: &str = "outbox";

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

/// Whether an enqueued row wakes the relay at commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Notify {
    /// `pg_notify` on [`CHANNEL`], delivered when the transaction commits
    /// (the relay publishes at once instead of at its next poll).
    #[default]
    OnCommit,
    /// No notification: the relay finds the row at its next poll. PostgreSQL
    /// serialises the commits of notifying transactions on one lock, so this
    /// trades a poll interval of latency for intake throughput.
    Never,
}

/// Inserts the message and fires a NOTIFY on [`CHANNEL`], which PostgreSQL
/// delivers only when (and if) the surrounding transaction commits. Call it
/// inside the transaction that makes the change the event describes.
pub async fn enqueue(conn: &mut PgConnection, message: &OutboxMessage) -> Result<(), sqlx::Error> {
    enqueue_with(conn, message, Notify::OnCommit).await
}

/// [`enqueue`], notifying the relay or not.
pub async fn enqueue_with(
    conn: &mut PgConnection,
    message: &OutboxMessage,
    notify: Notify,
) -> Result<(), sqlx::Error> {
    let sql = match notify {
        Notify::OnCommit => {
            "WITH inserted AS (
                 INSERT INTO outbox (event_id, topic, record_key, event_type, schema_version, payload, traceparent)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 RETURNING id
             )
             SELECT pg_notify('outbox', '') FROM inserted"
        }
        Notify::Never => {
            "INSERT INTO outbox (event_id, topic, record_key, event_type, schema_version, payload, traceparent)
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        }
    };
    sqlx::query(sql)
        .bind(message.event_id)
        .bind(&message.topic)
        .bind(&message.key)
        .bind(&message.event_type)
        .bind(message.schema_version)
        .bind(&message.payload)
        .bind(&message.traceparent)
        .execute(conn)
        .await?;
    Ok(())
}

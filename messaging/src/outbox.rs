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
//!     created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
//!     parked_at      TIMESTAMPTZ,   -- set by the relay when Kafka refuses
//!     park_reason    TEXT,          -- the event for good (see crate::relay)
//!     key_hash       INTEGER        -- the partitioner's hash of record_key:
//!                                   -- its partition is key_hash % partitions
//! );
//! CREATE INDEX outbox_parked_keys ON outbox (record_key, id) WHERE parked_at IS NOT NULL;
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use shared_events::{Envelope, Event, TraceParent};
use sqlx::PgConnection;
use tokio::sync::Notify;
use uuid::Uuid;

/// The PostgreSQL channel the relays listen on, for wake-ups across instances.
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

/// Inserts the message. Call it inside the transaction that makes the change
/// the event describes, and [`Wakeup::committed`] after that transaction
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

/// Wakes the relay after outbox rows were committed, without putting a
/// `NOTIFY` in the writing transaction.
///
/// PostgreSQL queues a transaction's notifications under one database-wide
/// lock held through its commit, WAL flush included: with a `NOTIFY` in every
/// order's transaction, every order commit waits for the one before it, and a
/// slow disk (a Kafka broker recovering its log on the same machine, say)
/// slows intake for everyone. Instead, a committed write wakes this
/// instance's relay in-process at once; when another instance is the active
/// relay, one `NOTIFY` on [`CHANNEL`], outside any order transaction, is sent
/// for all the commits of a short interval (the relay's notifier task).
/// Polling still covers anything missed.
#[derive(Debug, Clone, Default)]
pub struct Wakeup {
    inner: Arc<WakeupInner>,
}

#[derive(Debug, Default)]
struct WakeupInner {
    /// This instance's relay.
    local: Notify,
    /// The notifier of the other instances' relays.
    others: Notify,
    /// Whether this instance holds the relay lock (then no one else needs waking).
    leading: AtomicBool,
}

impl Wakeup {
    /// A wake-up with nobody waiting yet.
    pub fn new() -> Self {
        Wakeup::default()
    }

    /// Outbox rows were committed: wake the relay that will publish them.
    pub fn committed(&self) {
        self.inner.local.notify_one();
        if !self.inner.leading.load(Ordering::Relaxed) {
            self.inner.others.notify_one();
        }
    }

    /// Resolves at the next [`committed`](Self::committed) (or at once if one
    /// came since the last wait).
    pub async fn local(&self) {
        self.inner.local.notified().await;
    }

    /// Resolves when another instance's relay should be told.
    pub async fn others(&self) {
        self.inner.others.notified().await;
    }

    /// Records whether this instance is the active relay.
    pub fn set_leading(&self, leading: bool) {
        self.inner.leading.store(leading, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn commits_wake_the_local_relay_once_per_burst_and_others_only_when_not_leading() {
        let wakeup = Wakeup::new();
        wakeup.set_leading(true);
        for _ in 0..5 {
            wakeup.committed();
        }
        tokio::time::timeout(Duration::from_secs(1), wakeup.local())
            .await
            .expect("the burst woke the local relay");
        assert!(
            tokio::time::timeout(Duration::from_millis(20), wakeup.local())
                .await
                .is_err(),
            "a burst is one wake-up"
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(20), wakeup.others())
                .await
                .is_err(),
            "the active relay needs no NOTIFY"
        );
        wakeup.set_leading(false);
        wakeup.committed();
        tokio::time::timeout(Duration::from_secs(1), wakeup.others())
            .await
            .expect("another instance's relay is told");
    }
}

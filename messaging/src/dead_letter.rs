//! The dead-letter topic: where records go that can never be processed.
//!
//! A record that cannot be decoded, or that the service's reader rejects, is
//! not retried: retrying a poison message blocks its partition forever. It is
//! copied with its original key, value and headers to the consumer's
//! dead-letter topic (`<topic>.dlq.<consumer>`), with headers saying why and
//! where it came from, and the consumer moves on. A dead letter the
//! dead-letter topic refuses for good ([`refused_for_good`]) is written again
//! without its value ([`DeadLetter::send_without_value`]), so the reason and
//! the source coordinates are kept even when the copy cannot be.
//!
//! Every dead letter names its origin (`dlq.origin`): the record first
//! refused. A record an operator replayed carries its origin along, so the
//! dead letter of a replay that is refused again names the same origin as
//! the first, and a replay takes each origin once however often it was
//! refused before.
//!
//! Each dead letter written is also noted in the consumer's own database
//! ([`remember`], the `dead_letters` table), so that the service's read API
//! can say which of an order's records it refused and why ([`recorded`]),
//! without anyone scanning the topic.

use std::time::Duration;

use rdkafka::Message;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureRecord;
use serde::{Deserialize, Serialize};
use shared_events::headers;
use sqlx::PgPool;

use crate::kafka::RebuildingProducer;

/// Publishes rejected records to one consumer's dead-letter topic.
#[derive(Clone)]
pub struct DeadLetter {
    producer: RebuildingProducer,
    topic: String,
    consumer: String,
}

impl DeadLetter {
    /// Dead-letters to `topic` on behalf of `consumer` (the group name).
    pub fn new(producer: RebuildingProducer, topic: String, consumer: String) -> Self {
        DeadLetter {
            producer,
            topic,
            consumer,
        }
    }

    /// The dead-letter topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Copies `record` to the dead-letter topic with the reason, and waits
    /// until Kafka has acknowledged it.
    pub async fn send(&self, record: &OwnedMessage, reason: &str) -> Result<(), KafkaError> {
        let mut original = OwnedHeaders::new();
        if let Some(headers) = record.headers() {
            // A replayed record's `dlq.*` headers are this dead letter's to set.
            for h in headers.iter().filter(|h| !h.key.starts_with("dlq.")) {
                original = original.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        self.publish(record, self.with_reason(original, record, reason), true)
            .await
    }

    /// Writes the dead letter of `record` with its key, the event id and type
    /// headers and the `dlq.*` headers, but without its value (and its other
    /// headers): for a record the dead-letter topic refuses whole. The value
    /// stays in the source topic at the offset the headers name.
    pub async fn send_without_value(
        &self,
        record: &OwnedMessage,
        reason: &str,
    ) -> Result<(), KafkaError> {
        let mut kept = OwnedHeaders::new();
        if let Some(headers) = record.headers() {
            for h in headers.iter() {
                if h.key == headers::EVENT_ID || h.key == headers::EVENT_TYPE {
                    kept = kept.insert(Header {
                        key: h.key,
                        value: h.value,
                    });
                }
            }
        }
        let omitted = format!(
            "the dead-letter topic refused the record with its value ({} bytes)",
            record.payload().map_or(0, <[u8]>::len)
        );
        let headers = self.with_reason(kept, record, reason).insert(Header {
            key: headers::DLQ_VALUE_OMITTED,
            value: Some(omitted.as_str()),
        });
        self.publish(record, headers, false).await
    }

    /// `headers` plus the `dlq.*` headers of `record`.
    fn with_reason(
        &self,
        headers: OwnedHeaders,
        record: &OwnedMessage,
        reason: &str,
    ) -> OwnedHeaders {
        let partition = record.partition().to_string();
        let offset = record.offset().to_string();
        let origin = record
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == headers::DLQ_ORIGIN))
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map_or_else(
                || headers::origin(record.topic(), record.partition(), record.offset()),
                str::to_owned,
            );
        headers
            .insert(Header {
                key: headers::DLQ_ERROR,
                value: Some(reason),
            })
            .insert(Header {
                key: headers::DLQ_SOURCE_TOPIC,
                value: Some(record.topic()),
            })
            .insert(Header {
                key: headers::DLQ_SOURCE_PARTITION,
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: headers::DLQ_SOURCE_OFFSET,
                value: Some(offset.as_str()),
            })
            .insert(Header {
                key: headers::DLQ_CONSUMER,
                value: Some(self.consumer.as_str()),
            })
            .insert(Header {
                key: headers::DLQ_ORIGIN,
                value: Some(origin.as_str()),
            })
    }

    async fn publish(
        &self,
        record: &OwnedMessage,
        headers: OwnedHeaders,
        with_value: bool,
    ) -> Result<(), KafkaError> {
        let mut out: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).headers(headers);
        if let Some(key) = record.key() {
            out = out.key(key);
        }
        if let Some(value) = record.payload().filter(|_| with_value) {
            out = out.payload(value);
        }
        let sent = self
            .producer
            .current()
            .send(out, Duration::from_secs(5))
            .await
            .map(|_| ())
            .map_err(|(e, _)| e);
        if sent.is_err() {
            // A fatal producer error fails every later send too: replace
            // the producer, and the caller's retry goes through the new one.
            match self.producer.rebuild_if_fatal() {
                Ok(None) => {}
                Ok(Some(fatal)) => tracing::error!(
                    consumer = %self.consumer, error = %fatal,
                    "the dead-letter producer raised a fatal error; replaced it with a new one"
                ),
                Err(e) => tracing::error!(
                    consumer = %self.consumer, error = %e,
                    "the dead-letter producer raised a fatal error and could not be replaced yet"
                ),
            }
        }
        sent
    }
}

/// A dead letter as the consumers' read API shows it (`GET /dead-letters`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Recorded {
    /// The consumer group that refused the record.
    pub consumer: String,
    /// The topic it came from.
    pub source_topic: String,
    /// Its partition there.
    pub source_partition: i32,
    /// Its offset there.
    pub source_offset: i64,
    /// Its key (the order id), if it had one.
    pub record_key: Option<String>,
    /// Its event type header, if it had one.
    pub event_type: Option<String>,
    /// Why the consumer refused it.
    pub reason: String,
    /// When the dead letter was written.
    pub dead_lettered_at: chrono::DateTime<chrono::Utc>,
}

/// Notes in `pool` (the `dead_letters` table) that `consumer` dead-lettered
/// `record` because of `reason`; a second note of the same record changes nothing.
pub async fn remember(
    pool: &PgPool,
    consumer: &str,
    record: &OwnedMessage,
    reason: &str,
) -> Result<(), sqlx::Error> {
    // PostgreSQL text cannot hold NUL; a poison record may.
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).replace('\0', "\u{fffd}");
    let event_type = record.headers().and_then(|h| {
        h.iter()
            .find(|h| h.key == headers::EVENT_TYPE)
            .and_then(|h| h.value)
            .map(text)
    });
    sqlx::query(
        "INSERT INTO dead_letters (consumer, source_topic, source_partition, source_offset,
                                   record_key, event_type, reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(record.topic())
    .bind(record.partition())
    .bind(record.offset())
    .bind(record.key().map(text))
    .bind(event_type)
    .bind(text(reason.as_bytes()))
    .execute(pool)
    .await
    .map(|_| ())
}

/// The newest dead letters noted in `pool`, at most `limit`, only those of
/// order `order_id` (their record key) if given.
pub async fn recorded(
    pool: &PgPool,
    order_id: Option<uuid::Uuid>,
    limit: i64,
) -> Result<Vec<Recorded>, sqlx::Error> {
    sqlx::query_as(
        "SELECT consumer, source_topic, source_partition, source_offset, record_key, event_type,
                reason, dead_lettered_at
         FROM dead_letters
         WHERE $1::text IS NULL OR record_key = $1
         ORDER BY dead_lettered_at DESC
         LIMIT $2",
    )
    .bind(order_id.map(|id| id.to_string()))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// True when the dead-letter topic will never take this record as it is:
/// too large (on the client or the broker), invalid, or refused by the
/// topic's policy. A dead letter is sent alone, so the refusal is its own.
pub fn refused_for_good(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::PolicyViolation
                | RDKafkaErrorCode::InvalidMessageSize
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_of_the_record_are_for_good() {
        let produce = |code| KafkaError::MessageProduction(code);
        assert!(refused_for_good(&produce(
            RDKafkaErrorCode::MessageSizeTooLarge
        )));
        assert!(refused_for_good(&produce(
            RDKafkaErrorCode::PolicyViolation
        )));
        assert!(!refused_for_good(&produce(
            RDKafkaErrorCode::MessageTimedOut
        )));
        assert!(!refused_for_good(&produce(
            RDKafkaErrorCode::NotEnoughReplicas
        )));
        assert!(!refused_for_good(&KafkaError::Canceled));
    }
}

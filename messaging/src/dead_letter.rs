//! The dead-letter topic: where records go that can never be processed.
//!
//! A record that cannot be decoded, or that the service's reader rejects, is
//! not retried: retrying a poison message blocks its partition forever. It is
//! copied with its original key, value and headers to the consumer's
//! dead-letter topic (`<topic>.dlq.<consumer>`), with headers saying why and
//! where it came from, and the consumer moves on.

use std::time::Duration;

use rdkafka::Message;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use shared_events::headers;

/// Publishes rejected records to one consumer's dead-letter topic.
#[derive(Clone)]
pub struct DeadLetter {
    producer: FutureProducer,
    topic: String,
    consumer: String,
}

impl DeadLetter {
    /// Dead-letters to `topic` on behalf of `consumer` (the group name).
    pub fn new(producer: FutureProducer, topic: String, consumer: String) -> Self {
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
        let partition = record.partition().to_string();
        let offset = record.offset().to_string();
        let mut dlq_headers = OwnedHeaders::new();
        if let Some(original) = record.headers() {
            for h in original.iter() {
                dlq_headers = dlq_headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        let dlq_headers = dlq_headers
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
            });
        let mut out: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.topic).headers(dlq_headers);
        if let Some(key) = record.key() {
            out = out.key(key);
        }
        if let Some(value) = record.payload() {
            out = out.payload(value);
        }
        self.producer
            .send(out, Duration::from_secs(5))
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }
}

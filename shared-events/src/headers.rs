//! Kafka record header names.
//!
//! Event records repeat the envelope's identity in headers so tools and
//! routers can look at a record without parsing its value, twice: in our own
//! names (`event_id`, `event_type`, `schema_version`), which the consumers
//! and the operator tools read, and in the CloudEvents Kafka protocol
//! binding's binary mode (`ce_specversion`, `ce_id`, `ce_source`, `ce_type`,
//! `ce_subject`, `ce_dataschema`, with `content-type` as the data's media
//! type), which tools that speak CloudEvents read. The CloudEvents "data" is
//! the record value, our envelope; `ce_dataschema` names its JSON Schema.
//! Dead-letter records keep the original key and value and add the `dlq.*`
//! headers.

/// The envelope's `event_id`.
pub const EVENT_ID: &str = "event_id";
/// The envelope's `event_type`.
pub const EVENT_TYPE: &str = "event_type";
/// The envelope's `schema_version`.
pub const SCHEMA_VERSION: &str = "schema_version";
/// Media type of the value.
pub const CONTENT_TYPE: &str = "content-type";
/// W3C trace context of the request that caused the event.
pub const TRACEPARENT: &str = "traceparent";

/// CloudEvents: the specification version, always [`CE_SPECVERSION_1_0`].
pub const CE_SPECVERSION: &str = "ce_specversion";
/// CloudEvents: the event's id (the envelope's `event_id`).
pub const CE_ID: &str = "ce_id";
/// CloudEvents: who produced it, `/<service>` (e.g. `/order-service`).
pub const CE_SOURCE: &str = "ce_source";
/// CloudEvents: the event type (the envelope's `event_type`).
pub const CE_TYPE: &str = "ce_type";
/// CloudEvents: what the event is about, the order id (also the record key).
pub const CE_SUBJECT: &str = "ce_subject";
/// CloudEvents: the URI of the record value's JSON Schema ([`crate::schema`]).
pub const CE_DATASCHEMA: &str = "ce_dataschema";
/// The CloudEvents specification version the `ce_*` headers follow.
pub const CE_SPECVERSION_1_0: &str = "1.0";

/// Media type of every event value.
pub const JSON: &str = "application/json";

/// Dead letter: why the record could not be processed.
pub const DLQ_ERROR: &str = "dlq.error";
/// Dead letter: the topic the record was read from.
pub const DLQ_SOURCE_TOPIC: &str = "dlq.source.topic";
/// Dead letter: the partition the record was read from.
pub const DLQ_SOURCE_PARTITION: &str = "dlq.source.partition";
/// Dead letter: the offset the record was read from.
pub const DLQ_SOURCE_OFFSET: &str = "dlq.source.offset";
/// Dead letter: the consumer group that rejected it.
pub const DLQ_CONSUMER: &str = "dlq.consumer";
/// Dead letters written without the record's value (the dead-letter topic
/// refused the whole record): why, and the value's size in bytes. The value
/// stays at `dlq.source.*` while the source topic's retention holds it.
pub const DLQ_VALUE_OMITTED: &str = "dlq.value.omitted";
/// Dead letter: the record first refused, as `<topic>/<partition>/<offset>`.
/// A replayed record carries it, and its dead letter keeps it, so every
/// later dead letter of the same refusal names the same origin and a replay
/// takes each origin once.
pub const DLQ_ORIGIN: &str = "dlq.origin";

/// The [`DLQ_ORIGIN`] of a record first refused at `topic`, `partition`, `offset`.
pub fn origin(topic: &str, partition: i32, offset: i64) -> String {
    format!("{topic}/{partition}/{offset}")
}
/// Set on a record an operator republished from a dead-letter topic: the
/// dead letter it came from, as `<dlq topic>/<partition>/<offset>`.
pub const DLQ_REPLAYED_FROM: &str = "dlq.replayed.from";

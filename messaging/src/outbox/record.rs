//! The Kafka record of an outbox row: key = order id, value = the envelope,
//! the headers of [`shared_events::headers`], and the span of its
//! publication.

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use shared_events::headers;

use super::relay::OutboxRow;

/// The Kafka record of `row`, published by `source` (`/<service>`): key =
/// order id, value = the envelope, and the headers of
/// [`shared_events::headers`], ours and CloudEvents' alike.
pub(super) fn record<'a>(
    row: &'a OutboxRow,
    source: &str,
    traceparent: Option<&'a str>,
) -> FutureRecord<'a, str, str> {
    let event_id = row.event_id.to_string();
    let version = row.schema_version.to_string();
    let dataschema = shared_events::EventType::parse(&row.event_type)
        .zip(u32::try_from(row.schema_version).ok())
        .map(|(event_type, version)| shared_events::schema::id(event_type, version));
    let mut headers = OwnedHeaders::new_with_capacity(12)
        .insert(Header {
            key: headers::EVENT_ID,
            value: Some(event_id.as_str()),
        })
        .insert(Header {
            key: headers::EVENT_TYPE,
            value: Some(row.event_type.as_str()),
        })
        .insert(Header {
            key: headers::SCHEMA_VERSION,
            value: Some(version.as_str()),
        })
        .insert(Header {
            key: headers::CONTENT_TYPE,
            value: Some(headers::JSON),
        })
        .insert(Header {
            key: headers::CE_SPECVERSION,
            value: Some(headers::CE_SPECVERSION_1_0),
        })
        .insert(Header {
            key: headers::CE_ID,
            value: Some(event_id.as_str()),
        })
        .insert(Header {
            key: headers::CE_SOURCE,
            value: Some(source),
        })
        .insert(Header {
            key: headers::CE_TYPE,
            value: Some(row.event_type.as_str()),
        })
        .insert(Header {
            key: headers::CE_SUBJECT,
            value: Some(row.record_key.as_str()),
        });
    if let Some(dataschema) = &dataschema {
        headers = headers.insert(Header {
            key: headers::CE_DATASCHEMA,
            value: Some(dataschema.as_str()),
        });
    }
    if let Some(tp) = traceparent {
        headers = headers.insert(Header {
            key: headers::TRACEPARENT,
            value: Some(tp),
        });
    }
    FutureRecord::to(&row.topic)
        .key(row.record_key.as_str())
        .payload(row.payload.as_str())
        .headers(headers)
}

/// The span of one row's publication, from `send` to its delivery report: a
/// producer span in the order's trace (the row's `traceparent`), linked from
/// the relay batch it belongs to.
pub(super) fn publish_span(row: &OutboxRow) -> tracing::Span {
    let span = tracing::info_span!(
        "relay_publish",
        otel.name = format!("publish {}", row.event_type),
        otel.kind = "producer",
        event_id = %row.event_id,
        order_id = %row.record_key,
        topic = %row.topic,
        error = tracing::field::Empty,
    );
    if let Some(tp) = &row.traceparent {
        platform::telemetry::continue_trace(&span, tp);
    }
    platform::telemetry::link(&tracing::Span::current(), &span);
    span
}

//! OTLP's span model into Zipkin's v2 JSON model.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::{Map, Value, json};

/// The spans of an OTLP export in Zipkin's v2 JSON model.
pub fn to_zipkin(request: &ExportTraceServiceRequest) -> Vec<Value> {
    let mut spans = Vec::new();
    for resource_spans in &request.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
            .and_then(|a| a.value.as_ref())
            .map_or_else(|| "unknown_service".to_owned(), text);
        for scope in &resource_spans.scope_spans {
            for span in &scope.spans {
                let mut tags = Map::new();
                for attribute in &span.attributes {
                    tags.insert(attribute.key.clone(), Value::from(value_text(attribute)));
                }
                for (i, link) in span.links.iter().enumerate() {
                    tags.insert(
                        format!("otel.link.{i}"),
                        Value::from(format!(
                            "{}-{}",
                            hex::encode(&link.trace_id),
                            hex::encode(&link.span_id)
                        )),
                    );
                }
                if let Some(status) = &span.status
                    && status.code == 2
                {
                    tags.insert("error".into(), Value::from(status.message.clone()));
                }
                let start = span.start_time_unix_nano / 1_000;
                let end = span.end_time_unix_nano / 1_000;
                let mut zipkin = json!({
                    "traceId": hex::encode(&span.trace_id),
                    "id": hex::encode(&span.span_id),
                    "name": span.name,
                    "timestamp": start,
                    "duration": end.saturating_sub(start).max(1),
                    "localEndpoint": { "serviceName": service },
                    "tags": tags,
                });
                if !span.parent_span_id.is_empty() {
                    zipkin["parentId"] = Value::from(hex::encode(&span.parent_span_id));
                }
                let kind = match SpanKind::try_from(span.kind) {
                    Ok(SpanKind::Server) => Some("SERVER"),
                    Ok(SpanKind::Client) => Some("CLIENT"),
                    Ok(SpanKind::Producer) => Some("PRODUCER"),
                    Ok(SpanKind::Consumer) => Some("CONSUMER"),
                    _ => None,
                };
                if let Some(kind) = kind {
                    zipkin["kind"] = Value::from(kind);
                }
                spans.push(zipkin);
            }
        }
    }
    spans
}

fn value_text(attribute: &KeyValue) -> String {
    attribute.value.as_ref().map(text).unwrap_or_default()
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::Link};

    use super::*;

    fn string(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..KeyValue::default()
        }
    }

    #[test]
    fn an_otlp_span_keeps_its_ids_parent_kind_times_service_and_links() {
        let span = Span {
            trace_id: vec![0x4b; 16],
            span_id: vec![0x01; 8],
            parent_span_id: vec![0x02; 8],
            name: "publish OrderPlaced".into(),
            kind: SpanKind::Producer as i32,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_002_000_000,
            attributes: vec![string("order_id", "o-1")],
            links: vec![Link {
                trace_id: vec![0xaa; 16],
                span_id: vec![0xbb; 8],
                ..Link::default()
            }],
            ..Span::default()
        };
        let root = Span {
            parent_span_id: Vec::new(),
            kind: SpanKind::Internal as i32,
            ..span.clone()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![string("service.name", "order-service")],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope::default()),
                    spans: vec![span, root],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let spans = to_zipkin(&request);
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0]["traceId"], "4b".repeat(16));
        assert_eq!(spans[0]["id"], "01".repeat(8));
        assert_eq!(spans[0]["parentId"], "02".repeat(8));
        assert_eq!(spans[0]["kind"], "PRODUCER");
        assert_eq!(spans[0]["timestamp"], 1_700_000_000_000_000_u64);
        assert_eq!(spans[0]["duration"], 2_000);
        assert_eq!(spans[0]["localEndpoint"]["serviceName"], "order-service");
        assert_eq!(spans[0]["tags"]["order_id"], "o-1");
        assert_eq!(
            spans[0]["tags"]["otel.link.0"],
            format!("{}-{}", "aa".repeat(16), "bb".repeat(8))
        );
        assert!(spans[1].get("parentId").is_none(), "a root has no parent");
        assert!(
            spans[1].get("kind").is_none(),
            "internal spans have no kind"
        );
    }
}

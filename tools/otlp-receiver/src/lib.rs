//! The OTLP receiver in front of Zipkin: where the services' spans enter the
//! local trace backend.
//!
//! The services export their spans with OpenTelemetry over OTLP/HTTP, which
//! Zipkin's released server does not read (its OTLP module,
//! `zipkin-module-otel`, is not published to Maven Central). [`OtlpReceiver`]
//! stands where an OpenTelemetry Collector with a Zipkin exporter would: it
//! accepts `POST /v1/traces` (protobuf, what the services send), turns each
//! span into Zipkin's v2 JSON model ([`to_zipkin`]: same trace, span and
//! parent ids, kind, times, service name from the resource, attributes and
//! links as tags) and posts them to Zipkin's `/api/v2/spans`. Nothing is
//! kept or invented; a span Zipkin refuses is reported to the sender as an
//! error.
//!
//! Zipkin itself (its jar, its process) is devinfra's (`devinfra::zipkin`).
//! `cargo xtask up --tracing` builds this crate's `otlp-receiver` binary and
//! runs it detached next to Zipkin; the end-to-end test of traces serves an
//! [`OtlpReceiver`] in-process. The receiver is a crate of its own so that
//! only it compiles the web stack: devinfra and the dev tools have no HTTP
//! server. docker-compose.yml runs Jaeger instead, which reads OTLP itself.

mod receiver;
mod translate;

pub use receiver::OtlpReceiver;
pub use translate::to_zipkin;

//! The tracing subscriber every binary installs, and the spans it exports.
//!
//! Log lines go to stdout. They carry ANSI colours only when stdout is a
//! terminal: under `docker logs`, a log collector or a file, escape codes are
//! noise that every reader has to strip. `NO_COLOR` (<https://no-color.org>)
//! turns them off on a terminal too.
//!
//! # Traces
//!
//! A service started with the standard OpenTelemetry variable
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! set also exports its spans over OTLP/HTTP (protobuf) to that endpoint,
//! named by `OTEL_SERVICE_NAME` (default: the service's own name); the other
//! standard `OTEL_EXPORTER_OTLP_*` variables (headers, timeout) are honoured
//! by the exporter. Without them nothing is exported and nothing is sent:
//! the services stay silent. These are the OpenTelemetry SDK's own
//! variables, documented in the README, not settings of ours: declaring a
//! copy of each would only drift from what the SDK reads.
//!
//! One order is one trace. The HTTP request continues the caller's W3C
//! `traceparent` ([`continue_trace`]); the order's transaction span is what
//! the outbox row records ([`traceparent_of`]); the relay's publish span
//! continues that and travels in the record's `traceparent` header; each
//! consumer's span continues the header, and a consumer's batch transaction
//! links to the spans of its records ([`link`]). The functions below do
//! nothing when no exporter is installed, so the callers keep their own
//! `trace_id` for the logs.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::IsTerminal as _;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
#[cfg(feature = "otlp")]
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
#[cfg(feature = "otlp")]
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
#[cfg(feature = "otlp")]
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The standard variable that switches the OTLP export on.
pub const OTLP_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The standard variable for the traces' endpoint alone (takes precedence).
pub const OTLP_TRACES_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// The standard variable that names the service in its spans.
pub const SERVICE_NAME_VAR: &str = "OTEL_SERVICE_NAME";

/// The W3C header a trace context travels in (HTTP requests, like record headers).
pub const TRACEPARENT: &str = "traceparent";

/// What [`init_service`] installed; [`Telemetry::shutdown`] sends the spans
/// still buffered before the process exits.
#[cfg(feature = "otlp")]
#[derive(Debug)]
#[must_use = "shut it down at exit, or the last spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

#[cfg(feature = "otlp")]
impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends the spans still buffered and stops the exporter (blocks up to
    /// the exporter's timeout).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("the last spans could not be exported: {e}");
        }
    }
}

/// Why the span export could not be set up.
#[cfg(feature = "otlp")]
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (a bad endpoint, a bad header variable).
    #[error("the OTLP span exporter could not be built from the OTEL_EXPORTER_OTLP_* variables")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
    /// The thread that builds the exporter failed.
    #[error("the thread building the OTLP span exporter failed")]
    Thread,
}

/// The log of [`init_with`], plus the OTLP span export when the standard
/// variables ask for it (see the module documentation); `service` is the
/// name spans carry when `OTEL_SERVICE_NAME` is not set.
#[cfg(feature = "otlp")]
pub fn init_service(filter: &str, service: &str) -> Result<Telemetry, TelemetryError> {
    let endpoint_set = [OTLP_TRACES_ENDPOINT_VAR, OTLP_ENDPOINT_VAR]
        .iter()
        .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()));
    if !endpoint_set {
        init_with(filter);
        return Ok(Telemetry { provider: None });
    }
    let name = std::env::var(SERVICE_NAME_VAR)
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| service.to_owned());
    let provider = tracer_provider(&name)?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer(name));
    let (ansi, filter) = log_options(filter);
    let _ = subscriber(std::io::stdout, ansi, filter)
        .with(layer)
        .try_init();
    Ok(Telemetry {
        provider: Some(provider),
    })
}

/// A provider exporting in batches over OTLP/HTTP. The exporter's blocking
/// HTTP client is built (and later dropped) off the async runtime: it runs
/// a runtime of its own, which may not be created or dropped inside another.
#[cfg(feature = "otlp")]
fn tracer_provider(name: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = std::thread::spawn(|| {
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
    })
    .join()
    .map_err(|_| TelemetryError::Thread)?
    .map_err(TelemetryError::Exporter)?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(name.to_owned())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Makes `span` continue the trace of the W3C `traceparent` value (a
/// request's header, an outbox row, a record's header); an invalid value
/// leaves it a root. Call it right after creating the span.
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// The W3C `traceparent` of `span` itself (its trace, its span id), when
/// spans are exported; `None` otherwise.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}

/// Links `span` (a batch) to `other` (one of its records), which may be in
/// another trace.
pub fn link(span: &tracing::Span, other: &tracing::Span) {
    let context = other.context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span.add_link(span_context);
    }
}

/// Installs a formatting subscriber on stdout, filtered by `RUST_LOG` (default
/// `info`), coloured only on a terminal. Calling it twice (as tests do) is harmless.
pub fn init() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    init_with(&filter);
}

/// [`init`] with the filter `filter` (a service's `RUST_LOG` setting).
pub fn init_with(filter: &str) {
    let (ansi, filter) = log_options(filter);
    let _ = subscriber(std::io::stdout, ansi, filter).try_init();
}

/// Colours or not, and the filter (`info` when `filter` does not parse).
fn log_options(filter: &str) -> (bool, EnvFilter) {
    let ansi = colours(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("RUST_LOG={filter:?} is not a valid filter ({e}); logging at info");
        EnvFilter::new("info")
    });
    (ansi, filter)
}

/// Whether log lines get ANSI colours: only when stdout is a terminal, and not
/// when `NO_COLOR` is set to a non-empty value.
pub fn colours(stdout_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stdout_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// The subscriber [`init`] installs, writing to `writer`, with or without colours.
fn subscriber<W>(
    writer: W,
    ansi: bool,
    filter: EnvFilter,
) -> impl tracing::Subscriber
+ for<'a> tracing_subscriber::registry::LookupSpan<'a>
+ Send
+ Sync
+ 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(ansi)
        .with_writer(writer)
        .finish()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;
    #[cfg(not(feature = "otlp"))]
    use opentelemetry::trace::TracerProvider as _;
    #[cfg(not(feature = "otlp"))]
    use opentelemetry_sdk::trace::SdkTracerProvider;
    #[cfg(not(feature = "otlp"))]
    use tracing_subscriber::layer::SubscriberExt as _;

    #[test]
    fn colours_only_on_a_terminal_and_never_with_no_color() {
        assert!(colours(true, None));
        assert!(
            !colours(false, None),
            "a pipe or file (docker logs) gets plain text"
        );
        assert!(!colours(true, Some(OsStr::new("1"))));
        assert!(
            colours(true, Some(OsStr::new(""))),
            "an empty NO_COLOR is unset"
        );
        assert!(!colours(false, Some(OsStr::new("1"))));
    }

    /// Everything written to it, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn logged(ansi: bool) -> String {
        let out = Captured::default();
        tracing::subscriber::with_default(
            subscriber(out.clone(), ansi, EnvFilter::new("info")),
            || {
                tracing::warn!(order_id = 7, "placed");
            },
        );
        let bytes = out.0.lock().expect("not poisoned").clone();
        String::from_utf8(bytes).expect("utf-8 log line")
    }

    #[test]
    fn a_log_line_off_a_terminal_has_no_escape_codes() {
        let plain = logged(colours(false, None));
        assert!(plain.contains("placed"), "{plain:?}");
        assert!(!plain.contains('\u{1b}'), "{plain:?}");
        // The same line on a terminal is coloured, so the check above can fail.
        assert!(logged(colours(true, None)).contains('\u{1b}'));
    }

    /// A subscriber whose spans get OpenTelemetry ids (none are exported).
    fn traced<T>(run: impl FnOnce() -> T) -> T {
        let provider = SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, run)
    }

    const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_span_continues_the_callers_trace_and_its_children_follow() {
        traced(|| {
            let request = tracing::info_span!("request");
            continue_trace(&request, CALLER);
            let own = traceparent_of(&request).expect("a valid context");
            assert!(
                own.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                "{own}"
            );
            assert_ne!(own, CALLER, "a span of its own, in the caller's trace");

            let child = request.in_scope(|| tracing::info_span!("transaction"));
            let child_tp = traceparent_of(&child).expect("a valid context");
            assert_eq!(child_tp[..36], own[..36], "same trace");
            assert_ne!(child_tp, own);

            let root = tracing::info_span!("other");
            continue_trace(&root, "garbage");
            let root_tp = traceparent_of(&root).expect("a root of its own");
            assert_ne!(
                root_tp[..36],
                own[..36],
                "an invalid traceparent starts a new trace"
            );
        });
    }

    #[test]
    fn without_an_exporter_nothing_is_invented() {
        let span = tracing::info_span!("request");
        continue_trace(&span, CALLER);
        link(&span, &tracing::info_span!("record"));
        assert_eq!(traceparent_of(&span), None);
    }
}

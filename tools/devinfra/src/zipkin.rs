//! The trace backend: a Zipkin server as a plain process, and the OTLP
//! receiver in front of it.
//!
//! Zipkin's server is one executable jar on Maven Central, resolved from
//! `infra/zipkin/pom.xml` like Kafka's jars, and run on the system JDK with
//! in-memory storage on loopback: its UI is `http://127.0.0.1:<port>/zipkin/`
//! and its query API `/api/v2/...`.
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
//! error. docker-compose.yml runs Jaeger instead, which reads OTLP itself.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::kafka::maven_classpath;
use crate::process::{self, PidFile, Signal};
use crate::{InfraError, prereq};

/// Where the pom lives, relative to the workspace root.
const POM: &str = "infra/zipkin/pom.xml";

/// How long Zipkin may take to answer `/health` (a JVM start on a busy 2-core machine).
pub const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// The default port of Zipkin's UI and API (`ZIPKIN_PORT`).
pub const DEFAULT_PORT: u16 = 9411;

/// The default port of the OTLP/HTTP receiver (`OTLP_PORT`), OTLP's own default.
pub const DEFAULT_OTLP_PORT: u16 = 4318;

/// A Zipkin server started by us, in `dir`, on a loopback port.
#[derive(Debug)]
pub struct Zipkin {
    port: u16,
    pid: u32,
    pid_file: PidFile,
    log: PathBuf,
    jar: PathBuf,
    child: Option<Child>,
}

impl Zipkin {
    /// The pid file of a Zipkin in `dir`.
    fn pid_file(dir: &Path) -> PidFile {
        PidFile::new(dir.join("zipkin.pid"))
    }

    /// Resolves the jar, starts Zipkin on `port` with its files in `dir`
    /// (`zipkin.log`, `zipkin.pid`, the cached jar path), detached, and
    /// returns once `/health` answers; a Zipkin already running there is
    /// reused.
    pub async fn start(workspace_root: &Path, dir: &Path, port: u16) -> Result<Zipkin, InfraError> {
        std::fs::create_dir_all(dir).map_err(|e| InfraError::io("create directory", dir, e))?;
        let jar = PathBuf::from(
            maven_classpath(
                &workspace_root.join(POM),
                &dir.join("jar"),
                "the Zipkin server",
            )
            .await?,
        );
        let log = dir.join("zipkin.log");
        let pid_file = Self::pid_file(dir);
        if let Some(pid) = pid_file.read().filter(|&pid| is_zipkin(pid, &jar)) {
            let running = Zipkin {
                port,
                pid,
                pid_file,
                log,
                jar,
                child: None,
            };
            running.wait_ready().await?;
            return Ok(running);
        }
        process::ensure_port_free(port, "Zipkin", Some("ZIPKIN_PORT"))?;
        let java = prereq::java()
            .await
            .map_err(|m| InfraError::MissingPrerequisites(vec![m]))?;
        let (out, err) = process::append_log(&log)?;
        let mut command = std::process::Command::new(&java);
        command
            .args(["-Xms128m", "-Xmx256m", "-Djava.awt.headless=true", "-jar"])
            .arg(&jar)
            .arg(format!("--armeria.ports[0].port={port}"))
            .arg("--armeria.ports[0].ip=127.0.0.1")
            .arg("--armeria.ports[0].protocols=http")
            .env("STORAGE_TYPE", "mem")
            .env("COLLECTOR_SCRIBE_ENABLED", "false")
            // Zipkin turns on its Kafka collector when it sees
            // KAFKA_BOOTSTRAP_SERVERS, which the tests' environment sets for
            // the services; the brokers take authenticated clients only, and
            // Zipkin's collector, refused, stops the server. It collects
            // over HTTP here, nothing else.
            .env("COLLECTOR_KAFKA_ENABLED", "false")
            .env_remove("KAFKA_BOOTSTRAP_SERVERS")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        process::detach(&mut command);
        let child = command.spawn().map_err(|e| InfraError::Spawn {
            program: java.display().to_string(),
            source: e,
        })?;
        let mut zipkin = Zipkin {
            port,
            pid: child.id(),
            pid_file,
            log,
            jar,
            child: Some(child),
        };
        zipkin.pid_file.write(zipkin.pid)?;
        if let Err(e) = zipkin.wait_ready().await {
            let _ = zipkin.stop().await;
            return Err(e);
        }
        Ok(zipkin)
    }

    /// The Zipkin whose pid file is in `dir`, if it runs.
    pub fn find(dir: &Path, port: u16) -> Option<Zipkin> {
        let jar = std::fs::read_to_string(dir.join("jar").join("classpath.txt")).ok()?;
        let jar = PathBuf::from(jar.trim());
        let pid_file = Self::pid_file(dir);
        let pid = pid_file.read().filter(|&pid| is_zipkin(pid, &jar))?;
        Some(Zipkin {
            port,
            pid,
            pid_file,
            log: dir.join("zipkin.log"),
            jar,
            child: None,
        })
    }

    /// `http://127.0.0.1:<port>`: the API's base and, under `/zipkin/`, the UI.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    async fn wait_ready(&self) -> Result<(), InfraError> {
        let health = format!("{}/health", self.url());
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            let ok = client
                .get(&health)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(());
            }
            if !process::is_alive(self.pid) || tokio::time::Instant::now() >= deadline {
                return Err(InfraError::Config(format!(
                    "Zipkin (pid {}) did not answer {health} within {}s; see {}",
                    self.pid,
                    READY_TIMEOUT.as_secs(),
                    self.log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Stops it (SIGTERM, then SIGKILL after 10 s) and removes its pid file.
    pub async fn stop(&mut self) -> Result<(), InfraError> {
        let jar = self.jar.clone();
        let pid = self.pid;
        process::terminate_owned(
            "Zipkin",
            pid,
            || is_zipkin(pid, &jar),
            Signal::Term,
            Duration::from_secs(10),
            self.child.as_mut(),
        )
        .await?;
        self.pid_file.remove()
    }
}

/// Whether `pid` runs Zipkin's `jar`.
fn is_zipkin(pid: u32, jar: &Path) -> bool {
    process::command_line(pid).is_some_and(|line| line.contains(&*jar.to_string_lossy()))
}

/// Accepts OTLP/HTTP trace exports and forwards them to a Zipkin server;
/// see the module documentation.
#[derive(Debug, Clone)]
pub struct OtlpReceiver {
    zipkin: String,
    client: reqwest::Client,
}

impl OtlpReceiver {
    /// A receiver forwarding to the Zipkin at `zipkin_url` (`http://host:port`).
    pub fn new(zipkin_url: &str) -> Self {
        OtlpReceiver {
            zipkin: zipkin_url.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
        }
    }

    /// Serves `POST /v1/traces` on `listener` until `shutdown` fires.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let router = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(self);
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    }
}

async fn receive(State(receiver): State<OtlpReceiver>, body: Bytes) -> (StatusCode, String) {
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(request) => request,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("the body is not an OTLP ExportTraceServiceRequest in protobuf: {e}"),
            );
        }
    };
    let spans = to_zipkin(&request);
    if spans.is_empty() {
        return (StatusCode::OK, String::new());
    }
    let sent = receiver
        .client
        .post(format!("{}/api/v2/spans", receiver.zipkin))
        .json(&spans)
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => (StatusCode::OK, String::new()),
        Ok(response) => (
            StatusCode::BAD_GATEWAY,
            format!(
                "Zipkin answered {} to {} spans",
                response.status(),
                spans.len()
            ),
        ),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("Zipkin could not be reached: {e}"),
        ),
    }
}

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

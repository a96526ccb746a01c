//! A running order-service and a client for it, shared by the modules that
//! test the order API over HTTP ([`crate::orders_api`], [`crate::hostile`]).
//!
//! [`OrdersApi::start`] builds the service exactly as its binary does, on
//! `127.0.0.1:0` against a fresh database (which `build` migrates); the tests
//! then drive it over HTTP and check the tables directly: an answer is only
//! half the story when the promise is "nothing was written". [`Bad`] is one
//! request that must be refused, and [`assert_all_refused`] checks the
//! refusal the same way for every table of them.

use platform::services::ORDER_SERVICE;
use std::net::SocketAddr;
use std::time::Duration;

use e2e::TestInfra;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Client, Method, Response, StatusCode, header};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long any single answer may take before the test gives up on it.
const ANSWER_DEADLINE: Duration = Duration::from_secs(30);

/// A running order service on a fresh database.
pub struct OrdersApi {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://<addr>`.
    pub base: String,
    /// A client for it.
    pub client: Client,
    /// The service's database, connected as its role.
    pub pool: PgPool,
    /// The topic its outbox rows are addressed to.
    pub topic: String,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<Result<(), order_service::RunError>>,
}

impl OrdersApi {
    /// The service with the test defaults (relay off, patient limits).
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// The service with the test defaults, then `adjust` applied to its config.
    pub async fn start_with(adjust: impl FnOnce(&mut order_service::Config)) -> Self {
        // Silent unless asked: `RUST_LOG=order_service=debug cargo xtask test`.
        if std::env::var_os("RUST_LOG").is_some() {
            platform::telemetry::init();
        }
        let infra = TestInfra::acquire()
            .await
            .unwrap_or_else(|nowhere| panic!("{nowhere}"));
        let (url, pool) = infra
            .fresh_database(&ORDER_SERVICE)
            .await
            .expect("a fresh database for order-service");
        let mut config = order_service::Config::for_database(url);
        config.database.max_connections = 8;
        // These tests check behaviour, not latency: on a busy machine opening
        // eight connections at once can take longer than the 3 s a production
        // caller waits before getting a 503, and a request longer than 10 s.
        config.database.acquire_timeout = Duration::from_secs(30);
        config.http.request_timeout = Duration::from_secs(60);
        config.kafka.topic = format!("orders-test-{}", Uuid::new_v4().simple());
        adjust(&mut config);
        let topic = config.kafka.topic.clone();
        let app = order_service::build(config)
            .await
            .expect("order-service starts against the test database");
        let addr = app.local_addr();
        let stop = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(stop.clone()));
        OrdersApi {
            addr,
            base: format!("http://{addr}"),
            client: Client::new(),
            pool,
            topic,
            stop,
            server,
        }
    }

    /// Tells the service to shut down (as SIGTERM would) without waiting.
    pub fn begin_stop(&self) {
        self.stop.cancel();
    }

    /// Stops the service and checks that it shut down cleanly.
    pub async fn stop(self) {
        self.stop.cancel();
        self.server
            .await
            .expect("server task joins")
            .expect("server stops without error");
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `POST /orders` with a JSON body and, if given, an `Idempotency-Key`.
    pub async fn post_order(&self, body: &Value, key: Option<&str>) -> Response {
        let mut request = self
            .client
            .post(self.url("/orders"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("POST /orders answers")
    }

    /// Places `body`, which must succeed, and returns the order.
    pub async fn place(&self, body: &Value) -> Value {
        let response = self.post_order(body, None).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("order JSON")
    }

    /// `POST /orders/{id}/cancel`, with a JSON body if given, else an
    /// empty one; declared JSON either way.
    pub async fn cancel(&self, id: &str, body: Option<Value>) -> Response {
        let mut request = self
            .client
            .post(self.url(&format!("/orders/{id}/cancel")))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        request
            .send()
            .await
            .expect("POST /orders/{id}/cancel answers")
    }

    async fn count(&self, table: &'static str) -> i64 {
        let sql = match table {
            "orders" => "SELECT count(*) FROM orders",
            "order_lines" => "SELECT count(*) FROM order_lines",
            "outbox" => "SELECT count(*) FROM outbox",
            "idempotency_keys" => "SELECT count(*) FROM idempotency_keys",
            other => panic!("no table {other}"),
        };
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect("count rows")
    }

    /// Rows in (orders, order_lines, outbox, idempotency_keys).
    pub async fn counts(&self) -> [i64; 4] {
        [
            self.count("orders").await,
            self.count("order_lines").await,
            self.count("outbox").await,
            self.count("idempotency_keys").await,
        ]
    }

    /// The outbox rows of one order, oldest first.
    pub async fn outbox_rows(&self, order_id: &str) -> Vec<OutboxRow> {
        sqlx::query_as(
            "SELECT event_id, topic, record_key, event_type, schema_version, payload, traceparent
             FROM outbox WHERE record_key = $1 ORDER BY id",
        )
        .bind(order_id)
        .fetch_all(&self.pool)
        .await
        .expect("outbox rows")
    }
}

/// An outbox row as the relay would read it (the fields are its columns).
#[derive(Debug, sqlx::FromRow)]
pub struct OutboxRow {
    pub event_id: Uuid,
    pub topic: String,
    pub record_key: String,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: String,
    pub traceparent: Option<String>,
}

/// A valid order of two lines.
pub fn order() -> Value {
    json!({
        "customer": { "name": "Ada Lovelace", "email": "ada@example.com" },
        "billing_address":  { "street": "1 Analytical Way", "zip": "10115", "city": "Berlin", "country": "DE" },
        "shipping_address": { "street": "2 Engine Road", "zip": "80331", "city": "Munich", "country": "DE" },
        "currency": "EUR",
        "lines": [
            { "sku": "IPOD-NANO", "name": "iPod nano", "quantity": 2, "unit_price_cents": 14900 },
            { "sku": "CASE.BLK_1", "name": "Leather case", "quantity": 1, "unit_price_cents": 1999 }
        ]
    })
}

/// `value` with the field at `pointer` replaced.
pub fn with(mut value: Value, pointer: &str, replacement: Value) -> Value {
    *value
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in the example order")) = replacement;
    value
}

/// `value` with a top-level field added.
pub fn adding(mut value: Value, key: &str, field: Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.insert(key.to_owned(), field);
    }
    value
}

/// `value` without the field at `pointer`.
pub fn without(mut value: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    value
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .and_then(|object| object.remove(key))
        .unwrap_or_else(|| panic!("no {pointer} in the example order"));
    value
}

/// Whether the response declares `application/problem+json`.
pub fn is_problem(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"))
}

/// One bad request and the status it must get.
pub struct Bad {
    /// What is wrong with it, as failures name it.
    pub what: &'static str,
    /// The method.
    pub method: Method,
    /// The path and query.
    pub path: String,
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'static str>,
    /// Extra headers, as raw bytes so that non-ASCII values can be sent.
    pub headers: Vec<(&'static str, Vec<u8>)>,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
    /// The status it must be refused with.
    pub status: StatusCode,
    /// For 422: a field that must be named in `errors`.
    pub field: Option<&'static str>,
}

impl Bad {
    /// `POST /orders` with `body` as JSON.
    pub fn post(what: &'static str, body: Value, status: StatusCode) -> Self {
        Bad::raw(what, body.to_string().into_bytes(), status)
    }

    /// `POST /orders` with `body`, answered 422 naming `field`.
    pub fn invalid(what: &'static str, body: Value, field: &'static str) -> Self {
        Bad {
            field: Some(field),
            ..Bad::post(what, body, StatusCode::UNPROCESSABLE_ENTITY)
        }
    }

    /// `POST /orders` with `body` as bytes, declared JSON.
    pub fn raw(what: &'static str, body: impl Into<Vec<u8>>, status: StatusCode) -> Self {
        Bad {
            what,
            method: Method::POST,
            path: "/orders".into(),
            content_type: Some("application/json"),
            headers: Vec::new(),
            body: Some(body.into()),
            status,
            field: None,
        }
    }

    /// `method path` without a body.
    pub fn request(what: &'static str, method: Method, path: String, status: StatusCode) -> Self {
        Bad {
            what,
            method,
            path,
            content_type: None,
            headers: Vec::new(),
            body: None,
            status,
            field: None,
        }
    }

    /// Sends the request and checks the refusal: the expected 4xx status,
    /// `application/problem+json` with that status and a non-empty detail,
    /// the field named for a 422, and no row written in orders,
    /// order_lines, outbox or idempotency_keys.
    pub async fn check_refused(self, api: &OrdersApi) -> Result<(), String> {
        let what = self.what;
        let before = api.counts().await;
        if !self.status.is_client_error() {
            return Err(format!(
                "{what}: the table expects {}, not a 4xx",
                self.status
            ));
        }
        let mut request = api
            .client
            .request(self.method, api.url(&self.path))
            .timeout(ANSWER_DEADLINE);
        if let Some(content_type) = self.content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        for (name, value) in self.headers {
            let value = HeaderValue::from_bytes(&value)
                .map_err(|e| format!("{what}: {name} cannot be sent: {e}"))?;
            request = request.header(HeaderName::from_static(name), value);
        }
        if let Some(body) = self.body {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{what}: no answer: {e:?}"))?;
        let status = response.status();
        let problem_media_type = is_problem(&response);
        let body = response
            .text()
            .await
            .map_err(|e| format!("{what}: answer body unreadable: {e:?}"))?;
        let shown: String = body.chars().take(300).collect();
        if status != self.status {
            return Err(format!(
                "{what}: {status}, expected {}: {shown}",
                self.status
            ));
        }
        if !problem_media_type {
            return Err(format!("{what}: not problem+json: {shown}"));
        }
        let problem: Value = serde_json::from_str(&body)
            .map_err(|e| format!("{what}: problem is not JSON ({e}): {shown}"))?;
        if problem["status"] != self.status.as_u16() {
            return Err(format!("{what}: problem status differs: {shown}"));
        }
        if problem["detail"]
            .as_str()
            .is_none_or(|d| d.trim().is_empty())
        {
            return Err(format!("{what}: no detail: {shown}"));
        }
        if let Some(field) = self.field {
            let named = problem["errors"]
                .as_array()
                .is_some_and(|errors| errors.iter().any(|e| e["field"] == field));
            if !named {
                return Err(format!("{what}: {field} not named in {shown}"));
            }
        }
        match api.counts().await {
            after if after == before => Ok(()),
            after => Err(format!("{what} wrote rows: {before:?} -> {after:?}")),
        }
    }
}

/// Sends every case (in order, so that a row written is pinned to its case)
/// and fails listing every case that was not refused as it should be.
pub async fn assert_all_refused(api: &OrdersApi, cases: Vec<Bad>) {
    let total = cases.len();
    let mut failures = Vec::new();
    for case in cases {
        if let Err(failure) = case.check_refused(api).await {
            failures.push(failure);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} bad requests were not refused as expected:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

//! Wiring: from a [`Config`] to a running service.
//!
//! [`build`] does everything that can fail at start-up (connect, migrate,
//! bind, create the relay's producer) and returns a [`platform_web::app::App`]
//! that has not served anything yet; tests build the same `App` on port 0
//! against a fresh database, or drive its router with
//! `tower::ServiceExt::oneshot` without a socket. Running it serves HTTP
//! (the JSON API and the pages) beside two background tasks, the outbox
//! relay and the retention purge (idempotency keys, records of published
//! events), and drains in the platform's order: HTTP first, so the rows of the
//! last requests are still published by the relay, which then flushes.

use std::sync::Arc;

use axum::Router;
use platform::db::{Planning, StartupError as DbError};
use platform::health::Readiness;
use platform::services::ORDER_SERVICE;
use platform::task::BackgroundTask;
use platform_web::app::{App, BindError};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use messaging::outbox::{Relay, RelayMetrics, Wakeup};

use crate::api::{self, AppState};
use crate::config::Config;
use crate::metrics::OrderMetrics;
use crate::pages::{self, Overview, Pages, Upstream};
use crate::store::{self, MigrateError, Store};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be reached.
    #[error("the orders database could not be readied")]
    Database(#[from] DbError),
    /// The schema (the service's and the outbox's) could not be brought up
    /// to date.
    #[error("the orders database's schema could not be brought up to date")]
    Migrate(#[from] MigrateError),
    /// The relay's Kafka producer could not be created.
    #[error("the outbox relay's Kafka producer could not be created")]
    Relay(#[source] rdkafka::error::KafkaError),
    /// The HTTP address could not be bound.
    #[error("the HTTP API could not listen")]
    Bind(#[from] BindError),
    /// The client the pages read the consumers' APIs with could not be built.
    #[error("the pages' HTTP client for the consumers' APIs could not be built")]
    PagesClient(#[source] reqwest::Error),
}

/// Connects to the database, applies the migrations, assembles the routes,
/// the relay and the purge, and binds the listener; nothing is served until
/// [`App::run_until_stopped`].
pub async fn build(config: Config) -> Result<App, StartupError> {
    let pool = config
        .database
        // PostgreSQL's default: the benches showed no cached plan gone
        // wrong here, unlike the consumers' batches (see `Planning`).
        .connect(Planning::Cached)
        .await?;
    // The service's tables, then the outbox's.
    store::migrate(&pool).await?;

    let mut registry = Registry::default();
    let metrics = OrderMetrics::register(&mut registry);
    // The outbox relay runs inside this service, on this pool: it turns the
    // outbox rows the handlers commit into Kafka records, woken by them.
    let wakeup = Wakeup::new();
    // What `/health/ready` reports beyond the database: the relay says when
    // it cannot publish (intake goes on: orders wait in the outbox).
    let readiness = Readiness::new();
    let relay = Relay::new(
        pool.clone(),
        config.kafka.clone(),
        &config.producer,
        config.relay.clone(),
        RelayMetrics::register(&mut registry),
        wakeup.clone(),
    )
    .map_err(StartupError::Relay)?
    .reporting_on(readiness.clone());

    let store = Store::new(pool.clone()).with_wakeup(wakeup);
    let purge = Purge {
        store: store.clone(),
        idempotency_keys: config.idempotency_key_retention,
        published_events: config.published_events_retention,
        interval: config.purge_interval,
    };
    let state = AppState {
        store,
        metrics,
        orders_topic: Arc::from(config.kafka.topic.as_str()),
    };
    let registry = Arc::new(registry);
    let upstream = Upstream::new(config.invoicing_api(), config.shipping_api())
        .map_err(StartupError::PagesClient)?;
    let overview = Overview::new(registry.clone(), upstream.clone());
    let pages = Pages::new(state.clone(), config.links.clone(), upstream, overview);
    let app = App::serve(
        ORDER_SERVICE.name,
        &config.http,
        routes(state, pages),
        pool,
        readiness,
        registry,
    );
    Ok(app
        .await?
        .with_task(BackgroundTask::new("outbox relay", move |stop| {
            relay.run(stop)
        }))
        .with_task(BackgroundTask::new("retention purge", move |stop| {
            purge.run(stop)
        })))
}

/// Forgets, periodically, idempotency keys and records of published events
/// older than their retention windows.
struct Purge {
    store: Store,
    idempotency_keys: std::time::Duration,
    published_events: std::time::Duration,
    interval: std::time::Duration,
}

impl Purge {
    async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let keys = self
                .store
                .purge_idempotency_keys(self.idempotency_keys)
                .await;
            let events = self
                .store
                .purge_published_events(self.published_events)
                .await;
            for (what, purged) in [
                ("idempotency keys", keys),
                ("published-event records", events),
            ] {
                match purged {
                    Ok(0) => {}
                    Ok(rows) => {
                        tracing::info!(rows, "deleted {what} older than their retention window")
                    }
                    Err(e) => tracing::warn!(
                        error = %platform::error::chain(&e),
                        "purging old {what} failed"
                    ),
                }
            }
        }
    }
}

/// The service's own routes: the order API and the pages, which
/// [`App::serve`] puts inside the platform's common layers (health,
/// metrics, problem+json, the `Host` and same-origin checks, limits,
/// timeout, tracing, security headers).
pub fn routes(state: AppState, pages: Pages) -> Router {
    api::routes(state).merge(pages::routes(pages))
}

#[cfg(test)]
mod tests {
    //! The HTTP edge without a database: every request here is rejected
    //! before the store is called, so a lazy pool that never connects is enough.

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode, header};
    use http_body_util::BodyExt;
    use platform_web::http::HttpLimits;
    use platform_web::web::security::AllowedHosts;
    use serde_json::{Value, json};
    use sqlx::PgPool;
    use sqlx::postgres::PgPoolOptions;
    use tower::ServiceExt;

    use super::*;

    fn lazy_pool() -> PgPool {
        PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap()
    }

    fn app() -> Router {
        let pool = lazy_pool();
        let mut registry = Registry::default();
        let state = AppState {
            store: Store::new(pool.clone()),
            metrics: OrderMetrics::register(&mut registry),
            orders_topic: Arc::from("orders"),
        };
        let registry = Arc::new(registry);
        let upstream = Upstream::new("http://127.0.0.1:1", "http://127.0.0.1:1").unwrap();
        let pages = Pages::new(
            state.clone(),
            platform_web::web::PageLinks::local(),
            upstream.clone(),
            Overview::new(registry.clone(), upstream),
        );
        let hosts = AllowedHosts::local("127.0.0.1:8081".parse().unwrap());
        platform_web::http::with_common_layers(
            routes(state, pages),
            pool,
            Readiness::new(),
            registry,
            HttpLimits::default(),
            hosts,
        )
        // Every request here comes from a client of this address.
        .layer(axum::middleware::map_request(
            |mut request: Request<Body>| async move {
                request
                    .headers_mut()
                    .insert(header::HOST, "127.0.0.1:8081".parse().unwrap());
                request
            },
        ))
    }

    async fn send(request: Request<Body>) -> (StatusCode, Value) {
        let response = app().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            content_type,
            platform_web::problem::CONTENT_TYPE,
            "{status}"
        );
        (status, serde_json::from_slice(&body).unwrap())
    }

    fn post(uri: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
        Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .unwrap()
    }

    fn order() -> Value {
        json!({
            "customer": { "name": "Ada Lovelace", "email": "ada@example.com" },
            "billing_address":  { "street": "1 Analytical Way", "zip": "10115", "city": "Berlin", "country": "DE" },
            "shipping_address": { "street": "2 Engine Road", "zip": "80331", "city": "Munich", "country": "DE" },
            "currency": "EUR",
            "lines": [ { "sku": "IPOD-NANO", "name": "iPod nano", "quantity": 2, "unit_price_cents": 14900 } ]
        })
    }

    #[tokio::test]
    async fn client_mistakes_are_problems_with_the_right_status() {
        let json = "application/json";
        let mut invalid = order();
        invalid["lines"][0]["quantity"] = json!(0);
        invalid["currency"] = json!("euro");
        let cases: Vec<(Request<Body>, StatusCode)> = vec![
            (
                post("/orders", "text/plain", order().to_string()),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                post("/orders", json, "{\"customer\":"),
                StatusCode::BAD_REQUEST,
            ),
            (
                post("/orders", json, vec![b' '; 64 * 1024 + 1]),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                post("/orders", json, invalid.to_string()),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                Request::builder()
                    .method(Method::POST)
                    .uri("/orders")
                    .header(header::CONTENT_TYPE, json)
                    .header("idempotency-key", "")
                    .body(Body::from(order().to_string()))
                    .unwrap(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Request::get("/orders/not-a-uuid")
                    .body(Body::empty())
                    .unwrap(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Request::get("/orders?limit=0").body(Body::empty()).unwrap(),
                StatusCode::BAD_REQUEST,
            ),
            (
                Request::delete("/orders").body(Body::empty()).unwrap(),
                StatusCode::METHOD_NOT_ALLOWED,
            ),
            (
                Request::get("/nothing-here").body(Body::empty()).unwrap(),
                StatusCode::NOT_FOUND,
            ),
            (
                post("/orders/not-a-uuid/cancel", json, "{}"),
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (request, expected) in cases {
            let what = format!("{} {}", request.method(), request.uri());
            let (status, problem) = send(request).await;
            assert_eq!(status, expected, "{what}: {problem}");
            assert_eq!(problem["status"], expected.as_u16(), "{what}");
            assert!(
                !problem["detail"].as_str().unwrap_or("").is_empty(),
                "{what}"
            );
        }
    }

    #[tokio::test]
    async fn validation_problems_list_every_field() {
        let mut invalid = order();
        invalid["lines"][0]["quantity"] = json!(0);
        invalid["currency"] = json!("euro");
        let (status, problem) =
            send(post("/orders", "application/json", invalid.to_string())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["currency", "lines[0].quantity"]);
    }

    /// The OpenAPI document covers every route of the API, every status each
    /// can answer, the problem shape and the Idempotency-Key header; and
    /// each documented operation is routed (not the 404 fallback or a 405).
    #[tokio::test]
    async fn the_api_reference_is_sent_with_its_own_stricter_policy() {
        let response = app()
            .oneshot(Request::get("/api-docs").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_SECURITY_POLICY],
            platform_web::openapi::CSP,
            "the common layers keep the page's own policy"
        );
        let response = app()
            .oneshot(Request::get("/orders").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            response.headers()[header::CONTENT_SECURITY_POLICY],
            platform_web::web::security::CONTENT_SECURITY_POLICY,
            "every other answer gets the services' policy"
        );
    }

    #[tokio::test]
    async fn the_openapi_document_covers_every_route_and_is_served() {
        let response = app()
            .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let document: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        let operations = [
            (
                "post",
                "/orders",
                &[
                    "201", "400", "403", "408", "409", "413", "415", "421", "422", "500", "503",
                ][..],
            ),
            (
                "get",
                "/orders",
                &["200", "400", "408", "421", "500", "503"][..],
            ),
            (
                "get",
                "/orders/{id}",
                &["200", "400", "404", "408", "421", "500", "503"][..],
            ),
            (
                "post",
                "/orders/{id}/cancel",
                &[
                    "200", "400", "403", "404", "408", "413", "415", "421", "422", "500", "503",
                ][..],
            ),
            (
                "get",
                "/health/live",
                &["200", "408", "421", "500", "503"][..],
            ),
            (
                "get",
                "/health/ready",
                &["200", "408", "421", "500", "503"][..],
            ),
            ("get", "/metrics", &["200", "408", "421", "500", "503"][..]),
            (
                "get",
                "/openapi.json",
                &["200", "408", "421", "500", "503"][..],
            ),
            ("get", "/api-docs", &["200", "408", "421", "500", "503"][..]),
        ];
        for path in ["/orders", "/orders/{id}/cancel"] {
            let body = &document["paths"][path]["post"]["requestBody"]["description"];
            let limit = format!(
                "At most {} bytes as sent",
                crate::api::extract::MAX_BODY_BYTES
            );
            assert!(
                body.as_str().is_some_and(|d| d.contains(&limit)),
                "POST {path} states its size limit: {body}"
            );
        }
        for (method, path, statuses) in operations {
            let operation = &document["paths"][path][method];
            let mut documented: Vec<&str> = operation["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} is not documented"))
                .keys()
                .map(String::as_str)
                .collect();
            documented.sort_unstable();
            assert_eq!(documented, statuses, "{method} {path}");
            for status in statuses
                .iter()
                .filter(|s| s.starts_with('4') || s.starts_with('5'))
            {
                assert!(
                    operation["responses"][status]["content"]["application/problem+json"]
                        .is_object(),
                    "{method} {path} {status} is not problem+json"
                );
            }
            let uri = path.replace("{id}", "01933b5e-8f30-7a1b-8c2d-3e4f5a6b7c8d");
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::empty())
                .unwrap();
            let status = app().oneshot(request).await.unwrap().status();
            assert!(
                status != StatusCode::NOT_FOUND || path.contains("{id}"),
                "{method} {path} is documented but not routed"
            );
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        }
        let key = document["paths"]["/orders"]["post"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "Idempotency-Key")
            .expect("the Idempotency-Key header is documented");
        assert_eq!(key["in"], "header");
        assert_eq!(key["required"], false);
        assert_eq!(key["schema"]["maxLength"], 255);
        assert!(document["components"]["schemas"]["Problem"].is_object());
    }

    #[tokio::test]
    async fn the_api_reference_page_is_served_offline_under_a_strict_policy() {
        let response = app()
            .oneshot(Request::get("/api-docs").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let policy = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(policy.contains("default-src 'none'"), "{policy}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let page = String::from_utf8(body.to_vec()).unwrap();
        assert!(page.contains("<code>/orders/{id}/cancel</code>"), "{page}");
        assert!(page.contains("Idempotency-Key"));
        assert!(!page.contains("<script"));
    }
}

//! Wiring: from a [`Config`] to a running service.
//!
//! [`build`] does everything that can fail at start-up (connect, migrate,
//! bind) and returns an [`App`] that has not served anything yet; tests build
//! the same `App` on port 0 against a fresh database, or drive its
//! [`App::router`] with `tower::ServiceExt::oneshot` without a socket.
//! [`App::run_until_stopped`] serves HTTP and runs the background tasks (the
//! outbox relay) until the shutdown token fires, then drains in order: first
//! the HTTP server finishes its in-flight requests, then the background tasks
//! are told to stop, so the rows of the last requests are still published.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use platform::http::HttpLimits;
use prometheus_client::registry::Registry;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use messaging::outbox::Wakeup;
use messaging::relay::{Relay, RelayMetrics};

use crate::api::{self, AppState};
use crate::config::Config;
use crate::metrics::OrderMetrics;
use crate::store::{MIGRATOR, Store};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be reached.
    #[error("cannot connect to the database {url}: {source}")]
    Database {
        /// The URL, password hidden.
        url: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The migrations could not be applied.
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The HTTP address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from `HTTP_ADDR`.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A background task could not be set up (e.g. the relay's Kafka producer).
    #[error("cannot start {task}: {source}")]
    Background {
        /// Which task.
        task: &'static str,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Why the service stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The HTTP server failed.
    #[error("the HTTP server failed: {0}")]
    Server(#[from] std::io::Error),
    /// A background task ended (or panicked) before shutdown was requested.
    #[error("background task {0:?} stopped before shutdown was requested")]
    TaskStopped(&'static str),
}

type TaskFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A long-running part of the service that runs beside the HTTP server (the
/// outbox relay) and stops when the token it is given is cancelled.
pub struct BackgroundTask {
    name: &'static str,
    start: Box<dyn FnOnce(CancellationToken) -> TaskFuture + Send>,
}

impl BackgroundTask {
    /// A task called `name`, started as `start(stop)` when the service runs.
    pub fn new<F, Fut>(name: &'static str, start: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        BackgroundTask {
            name,
            start: Box::new(move |stop| Box::pin(start(stop))),
        }
    }
}

impl std::fmt::Debug for BackgroundTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundTask")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A built, not yet running order service.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: Router,
    pool: PgPool,
    background: Vec<BackgroundTask>,
}

/// Connects to the database, applies the migrations, binds the listener and
/// assembles the routes; nothing is served until [`App::run_until_stopped`].
pub async fn build(config: Config) -> Result<App, StartupError> {
    let pool = config
        .database
        .connect()
        .await
        .map_err(|source| StartupError::Database {
            url: format!("{:?}", config.database.url),
            source,
        })?;
    MIGRATOR.run(&pool).await?;

    let mut registry = Registry::default();
    let metrics = OrderMetrics::register(&mut registry);
    // The outbox relay runs inside this service, on this pool: it turns the
    // outbox rows the handlers commit into Kafka records, woken by them.
    let wakeup = Wakeup::new();
    let relay = Relay::new(
        pool.clone(),
        config.kafka.clone(),
        &config.producer,
        config.relay.clone(),
        RelayMetrics::register(&mut registry),
        wakeup.clone(),
    )
    .map_err(|e| StartupError::Background {
        task: "outbox relay",
        source: e.into(),
    })?;
    let store = Store::new(pool.clone()).with_wakeup(wakeup);
    let purge = IdempotencyPurge {
        store: store.clone(),
        retention: config.idempotency_key_retention,
        interval: config.idempotency_purge_interval,
    };
    let background = vec![
        BackgroundTask::new("outbox relay", move |stop| relay.run(stop)),
        BackgroundTask::new("idempotency key purge", move |stop| purge.run(stop)),
    ];

    let state = AppState {
        store,
        metrics,
        orders_topic: Arc::from(config.kafka.topic.as_str()),
    };
    let router = router(state, pool.clone(), Arc::new(registry), config.http_limits);

    let listener = TcpListener::bind(config.http_addr)
        .await
        .map_err(|source| StartupError::Bind {
            addr: config.http_addr,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
        addr: config.http_addr,
        source,
    })?;
    Ok(App {
        listener,
        local_addr,
        router,
        pool,
        background,
    })
}

/// Forgets idempotency keys older than the retention window, periodically.
struct IdempotencyPurge {
    store: Store,
    retention: std::time::Duration,
    interval: std::time::Duration,
}

impl IdempotencyPurge {
    async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.store.purge_idempotency_keys(self.retention).await {
                Ok(0) => {}
                Ok(rows) => tracing::info!(
                    rows,
                    "forgot idempotency keys older than the retention window"
                ),
                Err(e) => {
                    tracing::warn!(error = %platform::error::chain(&e), "purging old idempotency keys failed")
                }
            }
        }
    }
}

/// The complete HTTP application: the order routes inside the platform's
/// common layers (health, metrics, problem+json, timeout, tracing).
pub fn router(state: AppState, pool: PgPool, metrics: Arc<Registry>, limits: HttpLimits) -> Router {
    platform::http::with_common_layers(
        api::routes(state),
        pool,
        platform::health::Readiness::new(),
        metrics,
        limits,
    )
}

impl App {
    /// The address the listener is bound to (the real port when configured with 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The complete router, for `tower::ServiceExt::oneshot` tests without a socket.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The database pool (migrated).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Adds a task to run beside the HTTP server (see [`BackgroundTask`]).
    pub fn with_background_task(mut self, task: BackgroundTask) -> Self {
        self.background.push(task);
        self
    }

    /// Serves HTTP and runs the background tasks until `shutdown` is
    /// cancelled; then lets in-flight requests finish, stops the tasks and
    /// waits for them. A task that ends early stops the whole service (an
    /// order service whose relay is dead would silently stop publishing).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), RunError> {
        let App {
            listener,
            router,
            background,
            ..
        } = self;
        let stop_tasks = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut names = HashMap::new();
        for task in background {
            let handle = tasks.spawn((task.start)(stop_tasks.clone()));
            names.insert(handle.id(), task.name);
            tracing::info!(task = task.name, "background task started");
        }

        let stop_http = shutdown.child_token();
        let server = platform::http::serve(listener, router, stop_http.clone());
        tokio::pin!(server);
        let mut failed_task = None;
        let served = loop {
            tokio::select! {
                served = &mut server => break served,
                Some(ended) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let name = task_name(&names, &ended);
                    tracing::error!(task = name, "background task ended before shutdown; stopping");
                    failed_task.get_or_insert(name);
                    stop_http.cancel();
                }
            }
        };

        stop_tasks.cancel();
        while let Some(ended) = tasks.join_next_with_id().await {
            let name = task_name(&names, &ended);
            match ended {
                Ok(_) => tracing::info!(task = name, "background task stopped"),
                Err(e) => tracing::error!(task = name, error = %e, "background task failed"),
            }
        }
        served?;
        match failed_task {
            Some(name) => Err(RunError::TaskStopped(name)),
            None => Ok(()),
        }
    }
}

fn task_name(
    names: &HashMap<tokio::task::Id, &'static str>,
    ended: &Result<(tokio::task::Id, ()), tokio::task::JoinError>,
) -> &'static str {
    let id = match ended {
        Ok((id, ())) => *id,
        Err(e) => e.id(),
    };
    names.get(&id).copied().unwrap_or("unnamed")
}

#[cfg(test)]
mod tests {
    //! The HTTP edge without a database: every request here is rejected
    //! before the store is called, so a lazy pool that never connects is enough.

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode, header};
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
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
        router(state, pool, Arc::new(registry), HttpLimits::default())
    }

    /// An `App` as `build` makes it, minus the database.
    async fn unconnected_app() -> App {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        App {
            local_addr: listener.local_addr().unwrap(),
            listener,
            router: app(),
            pool: lazy_pool(),
            background: Vec::new(),
        }
    }

    #[tokio::test]
    async fn background_tasks_stop_after_the_server_on_shutdown() {
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel();
        let app = unconnected_app()
            .await
            .with_background_task(BackgroundTask::new("relay", |stop| async move {
                stop.cancelled().await;
                let _ = stopped_tx.send(());
            }));
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        shutdown.cancel();
        running.await.unwrap().unwrap();
        stopped_rx
            .await
            .expect("the task saw its stop signal and finished");
    }

    #[tokio::test]
    async fn a_background_task_that_ends_early_stops_the_service() {
        let app = unconnected_app()
            .await
            .with_background_task(BackgroundTask::new("relay", |_stop| async {}));
        let result = app.run_until_stopped(CancellationToken::new()).await;
        assert!(
            matches!(result, Err(RunError::TaskStopped("relay"))),
            "{result:?}"
        );

        let app = unconnected_app()
            .await
            .with_background_task(BackgroundTask::new("relay", |_stop| async {
                panic!("relay bug")
            }));
        let result = app.run_until_stopped(CancellationToken::new()).await;
        assert!(
            matches!(result, Err(RunError::TaskStopped("relay"))),
            "{result:?}"
        );
    }

    async fn send(request: Request<Body>) -> (StatusCode, Value) {
        let response = app().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(content_type, platform::problem::CONTENT_TYPE, "{status}");
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
}

//! The relay drain: how fast the relay empties a full outbox.
//!
//! With the consumers stopped (the relay is measured, not the whole flow),
//! order-service is restarted with `RELAY_ENABLED=false` and a few orders are
//! placed through the API: their outbox rows are the *templates*, exactly what
//! order-service writes. Copies of them fill the outbox up to the wanted
//! count, each with a new event id and a new order id (replaced in the payload
//! text too, so every copy is a distinct, well-formed `OrderPlaced`, keyed by
//! its own order and spread over the partitions like real traffic). Then
//! order-service starts again with the relay on, and the outbox is counted
//! every [`POLL`] until it is empty.
//!
//! The rate is `events / (first empty count - last full count)`: the relay's
//! start-up (connecting, provisioning the topic) is reported separately.
//! The drain runs twice, with order-service connecting through SCRAM and
//! through the listener without authentication ([`super::scram`]).

use std::time::{Duration, Instant};

use loadgen::OrderGenerator;

use super::sample::outbox_backlog;
use super::{BenchError, progress};
use devinfra::private::PrivateInfra;
use orderflow_client::ApiClient;
use platform::services::ORDER_SERVICE;

/// How often the outbox is counted while it drains.
const POLL: Duration = Duration::from_millis(100);

/// The outbox's events as the relay publishes them.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct EventShape {
    /// Average bytes of a record value (the envelope JSON).
    pub(crate) value_bytes: f64,
    /// Average bytes of value, key and headers together: a record's size on the wire.
    pub(crate) record_bytes: usize,
    /// One real payload (for the pgbench script).
    #[serde(skip)]
    pub(crate) sample_payload: String,
}

/// What the drain measured.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub(crate) struct DrainResult {
    /// Events in the outbox when the relay started.
    pub(crate) events: i64,
    /// Seconds from the last full count to the first empty one.
    pub(crate) seconds: f64,
    /// `events / seconds`.
    pub(crate) events_per_s: f64,
    /// Seconds from launching order-service to the first published batch.
    pub(crate) startup_s: f64,
}

/// Restarts order-service with the relay off and places `count` orders
/// through the API; returns the shape of their events.
pub(crate) async fn hold_relay_and_place_templates(
    infra: &PrivateInfra,
    count: usize,
) -> Result<EventShape, BenchError> {
    infra.instance(ORDER_SERVICE)?.stop().await?;
    infra
        .launch(ORDER_SERVICE, vec![relay_enabled(false)])
        .await?;
    let client = ApiClient::new()?;
    let base_url = infra.stack.base_url(ORDER_SERVICE);
    // Another seed than the steps', so these are new orders.
    for order in OrderGenerator::new(0x0d7a_1e55).take(count) {
        client.place_order(&base_url, &order.body, None).await?;
    }
    let (value_bytes, record_bytes): (f64, f64) = sqlx::query_as(
        "SELECT avg(octet_length(payload))::float8,
                avg(octet_length(payload) + octet_length(record_key)
                    + length('event_id') + 36
                    + length('event_type') + octet_length(event_type)
                    + length('schema_version') + length(schema_version::text)
                    + length('content-type') + length('application/json')
                    + coalesce(length('traceparent') + octet_length(traceparent), 0))::float8
         FROM outbox",
    )
    .fetch_one(&infra.pools.orders)
    .await?;
    let sample_payload: String =
        sqlx::query_scalar("SELECT payload FROM outbox ORDER BY id LIMIT 1")
            .fetch_one(&infra.pools.orders)
            .await?;
    Ok(EventShape {
        value_bytes,
        record_bytes: record_bytes.round() as usize,
        sample_payload,
    })
}

/// Copies the template rows until the outbox holds `total` events.
///
/// The outbox is vacuumed first: the rows an earlier drain deleted would
/// otherwise still sit in its index as dead entries, and a second drain
/// (the one without authentication, [`super::scram`]) would claim its rows
/// through more of them than the first.
pub(crate) async fn fill_outbox(infra: &PrivateInfra, total: i64) -> Result<i64, BenchError> {
    sqlx::query("VACUUM outbox")
        .execute(&infra.pools.orders)
        .await?;
    let templates = outbox_backlog(&infra.pools.orders).await?;
    let copies = (total - templates).max(0);
    let started = Instant::now();
    // The volatile gen_random_uuid() calls keep the inner query from being
    // flattened, so each copy's two new ids are generated once and used twice.
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, record_key, event_type, schema_version, payload, traceparent)
         SELECT new_event, topic, new_order::text, event_type, schema_version,
                replace(replace(payload, event_id::text, new_event::text), record_key, new_order::text),
                traceparent
         FROM (SELECT t.*, gen_random_uuid() AS new_event, gen_random_uuid() AS new_order, g
               FROM outbox t CROSS JOIN generate_series(1, $1::bigint / $2::bigint + 1) AS g
               ORDER BY g, t.id
               LIMIT $1) AS copy",
    )
    .bind(copies)
    .bind(templates.max(1))
    .execute(&infra.pools.orders)
    .await?;
    let now = outbox_backlog(&infra.pools.orders).await?;
    progress(&format!(
        "  outbox filled with {now} events in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(now)
}

/// Starts order-service with the relay on and `env` added to its
/// environment (how it reaches Kafka), and times the outbox until it is empty.
pub(crate) async fn drain(
    infra: &PrivateInfra,
    events: i64,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<DrainResult, BenchError> {
    infra.instance(ORDER_SERVICE)?.stop().await?;
    let launched = Instant::now();
    let watch = async {
        let deadline = launched + timeout;
        let mut last_full = launched;
        loop {
            let at = Instant::now();
            let left = outbox_backlog(&infra.pools.orders).await?;
            if left >= events {
                last_full = at;
            }
            if left == 0 {
                return Ok::<_, BenchError>((last_full, at));
            }
            if at >= deadline {
                return Err(BenchError::Run(format!(
                    "the relay had not drained the outbox after {}s ({left} of {events} left)",
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    };
    let (started, watched) = tokio::join!(
        infra.launch(
            ORDER_SERVICE,
            std::iter::once(relay_enabled(true))
                .chain(env.iter().cloned())
                .collect()
        ),
        watch
    );
    started?;
    let (last_full, empty) = watched?;
    let seconds = (empty - last_full).as_secs_f64();
    Ok(DrainResult {
        events,
        seconds,
        events_per_s: events as f64 / seconds.max(1e-9),
        startup_s: (last_full - launched).as_secs_f64(),
    })
}

fn relay_enabled(on: bool) -> (String, String) {
    ("RELAY_ENABLED".to_owned(), on.to_string())
}

//! The relay: turns committed outbox rows into Kafka records.
//!
//! One batch is one database transaction held across claim, publish and
//! delete:
//!
//! 1. `pg_try_advisory_xact_lock` elects the active relay. With several
//!    instances of a service on one database, only the lock holder publishes,
//!    so two relays can never interleave one order's events. The lock ends with
//!    the transaction, so a crashed relay hands over at once.
//! 2. Claim the oldest unsent rows by id. Rows are deleted once sent, so
//!    "unsent" is simply "still there": a row whose transaction committed
//!    after a higher id is picked up by a later batch, never skipped (the
//!    high-water-mark trap of outbox relays that poll `id > last_seen`).
//! 3. Produce them in id order through the idempotent producer and wait for
//!    every delivery report.
//! 4. Delete the delivered rows and commit.
//!
//! A crash between 3 and 4 rolls the transaction back and the next relay
//! publishes the batch again: publication is at-least-once, and consumers
//! deduplicate by event id. The relay wakes on NOTIFY (sent by
//! [`crate::outbox::enqueue`] at commit) and polls as a fallback, because a
//! notification sent while the listener reconnects is lost.

use std::collections::VecDeque;
use std::time::Duration;

use platform::config::{ConfigError, millis, var};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use shared_events::headers;
use sqlx::postgres::PgListener;
use sqlx::{FromRow, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::kafka::{KafkaSettings, ProducerSettings, ensure_topics_patiently};
use crate::outbox::CHANNEL;

/// How the relay batches, polls and backs off.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// `RELAY_ENABLED`: false holds the relay off (the outbox just fills up).
    pub enabled: bool,
    /// `RELAY_BATCH_SIZE`: rows claimed and published per transaction.
    pub batch_size: i64,
    /// `RELAY_POLL_INTERVAL_MS`: fallback poll when no NOTIFY arrives (at most 1 s).
    pub poll_interval: Duration,
    /// `RELAY_NOTIFY`: order transactions NOTIFY at commit and the relay
    /// LISTENs (true), or the relay only polls (false; see [`crate::outbox::Notify`]).
    pub notify: bool,
    /// `RELAY_MAX_BACKOFF_MS`: cap of the retry delay while Kafka or the database fails.
    pub max_backoff: Duration,
    /// Advisory lock key that elects the single active relay of one database.
    pub lock_key: i64,
}

impl RelaySettings {
    /// Every environment variable [`RelaySettings::from_env`] reads.
    pub const ENV_VARS: &'static [&'static str] = &[
        "RELAY_ENABLED",
        "RELAY_BATCH_SIZE",
        "RELAY_POLL_INTERVAL_MS",
        "RELAY_NOTIFY",
        "RELAY_MAX_BACKOFF_MS",
    ];

    /// Reads the settings from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = RelaySettings::default();
        Ok(RelaySettings {
            enabled: var("RELAY_ENABLED", defaults.enabled)?,
            batch_size: var("RELAY_BATCH_SIZE", defaults.batch_size)?.clamp(1, 10_000),
            poll_interval: millis("RELAY_POLL_INTERVAL_MS", 500)?.min(Duration::from_secs(1)),
            notify: var("RELAY_NOTIFY", defaults.notify)?,
            max_backoff: millis("RELAY_MAX_BACKOFF_MS", 5_000)?,
            lock_key: defaults.lock_key,
        })
    }
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            enabled: true,
            batch_size: 2_000,
            poll_interval: Duration::from_millis(500),
            notify: true,
            max_backoff: Duration::from_secs(5),
            // "outbox" in ASCII: one well-known key per database.
            lock_key: 0x6f75_7462_6f78,
        }
    }
}

/// The relay's Prometheus metrics.
#[derive(Debug, Clone, Default)]
pub struct RelayMetrics {
    published: Counter,
    publish_errors: Counter,
    backlog: Gauge,
    oldest_age_ms: Gauge,
}

impl RelayMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = RelayMetrics::default();
        registry.register(
            "outbox_events_published",
            "Outbox events published to Kafka and deleted",
            m.published.clone(),
        );
        registry.register(
            "outbox_publish_errors",
            "Failed publish attempts (the batch is retried)",
            m.publish_errors.clone(),
        );
        registry.register(
            "outbox_backlog",
            "Outbox rows not yet published",
            m.backlog.clone(),
        );
        registry.register(
            "outbox_oldest_event_age_milliseconds",
            "Age of the oldest unpublished outbox row",
            m.oldest_age_ms.clone(),
        );
        m
    }
}

/// Why a batch could not be published.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The database failed; the batch was rolled back and will be retried.
    #[error("outbox database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Kafka did not acknowledge some records; the rest were marked sent.
    #[error("{failed} of {total} records were not acknowledged by Kafka: {first}")]
    Delivery {
        /// Records that failed.
        failed: usize,
        /// Records in the batch.
        total: usize,
        /// The first error.
        first: KafkaError,
    },
}

#[derive(Debug, FromRow)]
struct OutboxRow {
    id: i64,
    event_id: Uuid,
    topic: String,
    record_key: String,
    event_type: String,
    schema_version: i32,
    payload: String,
    traceparent: Option<String>,
}

/// Publishes outbox rows to Kafka; see the module documentation.
pub struct Relay {
    pool: PgPool,
    kafka: KafkaSettings,
    producer: FutureProducer,
    settings: RelaySettings,
    metrics: RelayMetrics,
}

impl Relay {
    /// A relay over `pool`'s `outbox` table, publishing to `kafka` through an
    /// idempotent producer configured by `producer`.
    pub fn new(
        pool: PgPool,
        kafka: KafkaSettings,
        producer: &ProducerSettings,
        settings: RelaySettings,
        metrics: RelayMetrics,
    ) -> Result<Self, KafkaError> {
        let producer = crate::kafka::producer(&kafka, producer)?;
        Ok(Relay {
            pool,
            kafka,
            producer,
            settings,
            metrics,
        })
    }

    /// Runs until `shutdown` fires: finishes the batch in flight, flushes the
    /// producer, returns.
    pub async fn run(self, shutdown: CancellationToken) {
        if !self.settings.enabled {
            tracing::warn!("relay disabled (RELAY_ENABLED=false): outbox rows are not published");
            shutdown.cancelled().await;
            return;
        }
        let gauges = tokio::spawn(update_backlog_gauges(
            self.pool.clone(),
            self.metrics.clone(),
            shutdown.clone(),
        ));
        // The topic must exist with its partition count before the first
        // record: broker auto-creation would pick the wrong shape.
        let topic = self.kafka.topic_spec(&self.kafka.topic);
        if !ensure_topics_patiently(&self.kafka, &[topic], self.settings.max_backoff, &shutdown)
            .await
        {
            gauges.abort();
            return;
        }
        let mut listener = None;
        let mut backoff = Backoff::new(Duration::from_millis(100), self.settings.max_backoff);
        while !shutdown.is_cancelled() {
            if listener.is_none() && self.settings.notify {
                listener = listen(&self.pool).await;
            }
            let wait = match self.publish_batch().await {
                Ok(n) if n as i64 >= self.settings.batch_size => {
                    backoff.reset();
                    continue;
                }
                Ok(_) => {
                    backoff.reset();
                    self.settings.poll_interval
                }
                Err(e) => {
                    self.metrics.publish_errors.inc();
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "relay batch failed");
                    delay
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {},
                notified = wait_for_notification(&mut listener) => {
                    if !notified {
                        listener = None;
                    }
                }
            }
        }
        gauges.abort();
        let producer = self.producer.clone();
        let flushed =
            tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await;
        match flushed {
            Ok(Ok(())) => tracing::info!("relay stopped; producer flushed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "relay stopped; producer flush incomplete"),
            Err(e) => tracing::warn!(error = %e, "relay stopped; producer flush task failed"),
        }
    }

    /// Publishes one batch, if this instance holds the relay lock. Returns the
    /// number of rows published and deleted.
    #[tracing::instrument(name = "relay_batch", skip_all, fields(rows = tracing::field::Empty))]
    pub async fn publish_batch(&self) -> Result<usize, RelayError> {
        let mut tx = self.pool.begin().await?;
        let active: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(self.settings.lock_key)
            .fetch_one(&mut *tx)
            .await?;
        if !active {
            // Another instance is the active relay; it will publish these rows.
            return Ok(0);
        }
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id, event_id, topic, record_key, event_type, schema_version, payload, traceparent
             FROM outbox ORDER BY id LIMIT $1",
        )
        .bind(self.settings.batch_size)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        tracing::Span::current().record("rows", rows.len());

        let results = self.produce_in_order(&rows).await;
        let mut delivered = Vec::with_capacity(rows.len());
        let mut first_error = None;
        let mut failed = 0;
        for (row, result) in rows.iter().zip(results) {
            match result {
                Ok(()) => delivered.push(row.id),
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
            .bind(&delivered)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.metrics.published.inc_by(delivered.len() as u64);
        match first_error {
            None => Ok(delivered.len()),
            Some(first) => Err(RelayError::Delivery {
                failed,
                total: rows.len(),
                first,
            }),
        }
    }

    /// Enqueues every row in id order and waits for every delivery report;
    /// returns one outcome per row. When librdkafka's queue is full, it waits
    /// for the oldest outstanding delivery and retries the same row, so the
    /// order of one key's records is never changed.
    async fn produce_in_order(&self, rows: &[OutboxRow]) -> Vec<Result<(), KafkaError>> {
        let mut outcomes: Vec<Option<Result<(), KafkaError>>> = Vec::with_capacity(rows.len());
        let mut in_flight: VecDeque<(usize, DeliveryFuture)> = VecDeque::new();
        for (index, row) in rows.iter().enumerate() {
            outcomes.push(None);
            let mut record = self.record(row);
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        in_flight.push_back((index, delivery));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        match in_flight.pop_front() {
                            Some((i, delivery)) => outcomes[i] = Some(settle(delivery).await),
                            None => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                    Err((e, _)) => {
                        outcomes[index] = Some(Err(e));
                        break;
                    }
                }
            }
        }
        for (i, delivery) in in_flight {
            outcomes[i] = Some(settle(delivery).await);
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Err(KafkaError::Canceled)))
            .collect()
    }

    fn record<'a>(&self, row: &'a OutboxRow) -> FutureRecord<'a, str, str> {
        let event_id = row.event_id.to_string();
        let version = row.schema_version.to_string();
        let mut headers = OwnedHeaders::new_with_capacity(5)
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
            });
        if let Some(tp) = &row.traceparent {
            headers = headers.insert(Header {
                key: headers::TRACEPARENT,
                value: Some(tp.as_str()),
            });
        }
        FutureRecord::to(&row.topic)
            .key(row.record_key.as_str())
            .payload(row.payload.as_str())
            .headers(headers)
    }
}

async fn settle(delivery: DeliveryFuture) -> Result<(), KafkaError> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e),
        Err(_) => Err(KafkaError::Canceled),
    }
}

async fn listen(pool: &PgPool) -> Option<PgListener> {
    match PgListener::connect_with(pool).await {
        Ok(mut listener) => match listener.listen(CHANNEL).await {
            Ok(()) => Some(listener),
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN failed; polling only");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot open the NOTIFY listener; polling only");
            None
        }
    }
}

/// Waits for a notification; returns false when the listener broke (it is
/// then reopened, and polling covers anything missed meanwhile). Every
/// notification already readable is consumed too: one batch serves them all,
/// so a burst of commits wakes the relay once, not once per order.
async fn wait_for_notification(listener: &mut Option<PgListener>) -> bool {
    let Some(l) = listener else {
        return std::future::pending().await;
    };
    match l.try_recv().await {
        Ok(Some(_)) => {
            while let Ok(Ok(Some(_))) = tokio::time::timeout(Duration::ZERO, l.try_recv()).await {}
            true
        }
        Ok(None) | Err(_) => false,
    }
}

async fn update_backlog_gauges(pool: PgPool, metrics: RelayMetrics, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while !shutdown.is_cancelled() {
        tick.tick().await;
        let row: Result<(i64, Option<f64>), _> = sqlx::query_as(
            "SELECT count(*), (extract(epoch FROM now() - min(created_at)) * 1000)::float8 FROM outbox",
        )
        .fetch_one(&pool)
        .await;
        if let Ok((backlog, age_ms)) = row {
            metrics.backlog.set(backlog);
            metrics.oldest_age_ms.set(age_ms.unwrap_or(0.0) as i64);
        }
    }
}

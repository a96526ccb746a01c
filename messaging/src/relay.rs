//! The relay: turns committed outbox rows into Kafka records.
//!
//! # Who publishes
//!
//! With several instances of a service on one database, only one relay is
//! active: the one whose dedicated connection holds the session-level
//! advisory lock `pg_try_advisory_lock(lock_key)`. The lock lives as long as
//! that connection, so a crashed instance hands over as soon as PostgreSQL
//! sees its connection close, and no transaction stays open while the relay
//! waits for Kafka: an outage costs the backlog and one idle connection,
//! never a transaction held open for `message.timeout.ms`.
//!
//! # One batch
//!
//! 1. Claim the oldest rows by id that are neither parked nor behind a parked
//!    row of the same key. Rows are deleted once sent, so "unsent" is simply
//!    "still there": a row whose transaction committed after a higher id is
//!    picked up by a later batch, never skipped (the high-water-mark trap of
//!    outbox relays that poll `id > last_seen`).
//! 2. Publish them in waves: the first wave holds the first row of each key,
//!    the second the second row of each key, and so on, and a wave starts
//!    only when every delivery report of the previous one is in. A key whose
//!    row failed sends nothing more in this batch. So a later event of an
//!    order is never produced before Kafka has acknowledged the earlier one:
//!    neither librdkafka's retries nor a record failing on
//!    `message.timeout.ms` (which its idempotence guarantee excludes) can
//!    reorder one order's events. Most batches hold one row per key and are
//!    one wave.
//! 3. A record that fails with an error that can be its own fault (too
//!    large, refused by the topic's policy) is tried once more on its own:
//!    the broker refuses a partition's whole record batch, so the records
//!    batched with a too-large one fail with it. If it fails again alone it
//!    can never be published: it is *parked* with its error, and the later
//!    rows of its key are held behind it, in order, until an operator
//!    retries or discards it (`orderflow-admin outbox`). Everything else flows.
//! 4. Delete the delivered rows and mark the parked ones, in one short
//!    transaction on the lock's connection. What Kafka said about each
//!    delivered row (partition, offset) is kept in `published_events` in the
//!    same statement that deletes it, so the service can show where an
//!    event went (the order page's journey).
//!
//! # When Kafka cannot take records
//!
//! A batch that had rows and published none of them makes `/health/ready`
//! answer 503 with the reason, until a batch publishes again; intake goes
//! on, the rows wait in the outbox. A *fatal* producer error (a fenced
//! idempotent producer) fails every later send of that producer instance,
//! so after a failed batch the relay checks for one and replaces the
//! instance ([`crate::kafka::RebuildingProducer`]); the failed rows are still
//! in the outbox and go out through the new one.
//!
//! A crash between 2 and 4 means the next active relay publishes the batch
//! again: publication is at-least-once, in order per key, and consumers
//! deduplicate by event id. The relay wakes when its own instance commits
//! outbox rows, on a coalesced `NOTIFY` from another instance
//! ([`crate::outbox::Wakeup`]), and polls as a fallback, because a
//! notification sent while the listener reconnects is lost.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use platform::health::Readiness;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureRecord, Producer};
use shared_events::headers;
use sqlx::postgres::{PgConnectOptions, PgListener};
use sqlx::{Connection, FromRow, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::kafka::{KafkaSettings, ProducerSettings, RebuildingProducer, ensure_topics_patiently};
use crate::outbox::{CHANNEL, Wakeup};

/// How the relay batches, polls and backs off.
#[derive(Debug, Clone, clap::Args)]
pub struct RelaySettings {
    /// false holds the relay off: the outbox just fills up.
    #[arg(
        id = "relay_enabled",
        long = "relay-enabled",
        env = "RELAY_ENABLED",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub enabled: bool,
    /// Outbox rows claimed per relay batch.
    #[arg(
        id = "relay_batch_size",
        long = "relay-batch-size",
        env = "RELAY_BATCH_SIZE",
        default_value_t = 2_000,
        value_parser = clap::value_parser!(i64).range(1..=10_000)
    )]
    pub batch_size: i64,
    /// How often the relay looks for rows when nothing woke it (at most 1000).
    #[arg(
        id = "relay_poll_interval",
        long = "relay-poll-interval-ms",
        env = "RELAY_POLL_INTERVAL_MS",
        default_value = "500",
        value_parser = poll_interval
    )]
    pub poll_interval: Duration,
    /// A commit wakes the relay at once (in-process; other instances by one coalesced NOTIFY per 5 ms, never inside an order's transaction); false: the relay only polls
    #[arg(
        id = "relay_notify",
        long = "relay-notify",
        env = "RELAY_NOTIFY",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub notify: bool,
    /// After a wake-up, how long the relay waits for more commits before it claims rows: fewer, larger batches (less CPU per order) for that much latency; 0 claims at once
    #[arg(
        id = "relay_linger",
        long = "relay-linger-ms",
        env = "RELAY_LINGER_MS",
        default_value = "0",
        value_parser = linger
    )]
    pub linger: Duration,
    /// Cap of the retry delay while Kafka or the database fails.
    #[arg(
        id = "relay_max_backoff",
        long = "relay-max-backoff-ms",
        env = "RELAY_MAX_BACKOFF_MS",
        default_value = "5000",
        value_parser = platform::config::millis
    )]
    pub max_backoff: Duration,
    /// Advisory lock key that elects the single active relay of one database.
    #[arg(skip = RELAY_LOCK_KEY)]
    pub lock_key: i64,
    /// Fault injection: makes the producer raise a fatal error before the
    /// next batch (in-process tests).
    #[cfg(feature = "fault-injection")]
    #[arg(skip)]
    pub fatal_error: Option<FatalErrorSwitch>,
}

/// A switch an in-process test flips to make the relay's producer raise a
/// fatal error (as a fenced idempotent producer does) before its next batch.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Default)]
pub struct FatalErrorSwitch(std::sync::Arc<std::sync::atomic::AtomicBool>);

#[cfg(feature = "fault-injection")]
impl FatalErrorSwitch {
    /// The next batch starts with a fatal producer error.
    pub fn flip(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn take(&self) -> bool {
        self.0.swap(false, std::sync::atomic::Ordering::SeqCst)
    }
}

/// The relay lock's key: "outbox" in ASCII, one well-known key per database.
pub const RELAY_LOCK_KEY: i64 = 0x6f75_7462_6f78;

/// How the relay's lock session is opened: `pool`'s connection options plus
/// TCP keepalives and a user timeout on the server's side of the socket.
///
/// The advisory lock lives as long as the server's backend of that session.
/// A relay whose host vanishes without closing the socket (a crash of the
/// machine, a network partition) would otherwise leave a half-open session
/// that holds the lock for hours, until the kernel's default keepalive (two
/// hours idle) notices, and no other instance could take over. With these
/// settings PostgreSQL probes an idle peer after 10 s, every 5 s, gives up
/// after 3 unanswered probes, and drops a connection whose sent data stays
/// unacknowledged for 30 s: the lock is free about half a minute after the
/// relay is gone. sqlx has no client-side keepalive options, and the server
/// side is the one that holds the lock, so these are set as the session's
/// startup parameters (`tcp_keepalives_idle` and friends; PostgreSQL ignores
/// them on a Unix-domain socket, where the peer's death is seen at once).
pub fn lock_session(pool: &PgPool) -> PgConnectOptions {
    pool.connect_options().as_ref().clone().options([
        ("tcp_keepalives_idle", "10"),
        ("tcp_keepalives_interval", "5"),
        ("tcp_keepalives_count", "3"),
        ("tcp_user_timeout", "30000"),
    ])
}

fn poll_interval(value: &str) -> Result<Duration, String> {
    let interval = platform::config::millis(value)?;
    if interval.is_zero() || interval > Duration::from_secs(1) {
        return Err(format!("{value} ms is not between 1 and 1000"));
    }
    Ok(interval)
}

fn linger(value: &str) -> Result<Duration, String> {
    let linger = platform::config::millis(value)?;
    if linger > Duration::from_millis(100) {
        return Err(format!("{value} ms is more than 100"));
    }
    Ok(linger)
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            enabled: true,
            batch_size: 2_000,
            poll_interval: Duration::from_millis(500),
            notify: true,
            linger: Duration::ZERO,
            max_backoff: Duration::from_secs(5),
            lock_key: RELAY_LOCK_KEY,
            #[cfg(feature = "fault-injection")]
            fatal_error: None,
        }
    }
}

/// The relay's Prometheus metrics.
#[derive(Debug, Clone)]
pub struct RelayMetrics {
    batches: Histogram,
    published: Counter,
    publish_errors: Counter,
    parked_total: Counter,
    backlog: Gauge,
    oldest_age_ms: Gauge,
    parked: Gauge,
    held: Gauge,
    batch_in_flight: Gauge,
    producer_rebuilds: Counter,
}

impl Default for RelayMetrics {
    fn default() -> Self {
        RelayMetrics {
            batches: crate::batch_histogram(),
            published: Counter::default(),
            publish_errors: Counter::default(),
            parked_total: Counter::default(),
            backlog: Gauge::default(),
            oldest_age_ms: Gauge::default(),
            parked: Gauge::default(),
            held: Gauge::default(),
            batch_in_flight: Gauge::default(),
            producer_rebuilds: Counter::default(),
        }
    }
}

impl RelayMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = RelayMetrics::default();
        registry.register(
            "outbox_relay_batch_events",
            "Events per relay batch that claimed any (one produce round and one delete each)",
            m.batches.clone(),
        );
        registry.register(
            "outbox_events_published",
            "Outbox events published to Kafka and deleted",
            m.published.clone(),
        );
        registry.register(
            "outbox_publish_errors",
            "Batches in which some record was not acknowledged (those are retried)",
            m.publish_errors.clone(),
        );
        registry.register(
            "outbox_events_parked",
            "Outbox events parked because Kafka refused them for good",
            m.parked_total.clone(),
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
        registry.register(
            "outbox_parked",
            "Outbox rows parked now, waiting for an operator (orderflow-admin outbox)",
            m.parked.clone(),
        );
        registry.register(
            "outbox_held",
            "Outbox rows held behind a parked row of the same key",
            m.held.clone(),
        );
        registry.register(
            "outbox_relay_batch_in_flight",
            "1 while this instance's relay has claimed a batch and not yet recorded its outcome",
            m.batch_in_flight.clone(),
        );
        registry.register(
            "outbox_relay_producer_rebuilds",
            "Relay producers replaced after a fatal error (a fenced idempotent producer, say)",
            m.producer_rebuilds.clone(),
        );
        m
    }
}

/// Why a batch could not be published.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The database failed; nothing of the batch was recorded and it will be
    /// published again.
    #[error("the outbox could not be read or updated")]
    Database(#[from] sqlx::Error),
    /// Kafka did not acknowledge some records; the rest were recorded as
    /// sent, and the failed ones are retried (or were parked).
    #[error("{failed} of {total} records were not acknowledged by Kafka")]
    Delivery {
        /// Records that failed and will be retried.
        failed: usize,
        /// Records in the batch.
        total: usize,
        /// Records of the batch that were published all the same.
        published: usize,
        /// The first error.
        #[source]
        first: KafkaError,
    },
}

/// What a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Rows claimed (0 when another instance is the active relay).
    pub claimed: usize,
    /// Rows published and deleted.
    pub published: usize,
    /// Rows parked in this batch.
    pub parked: usize,
}

#[derive(Debug, Clone, FromRow)]
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

/// How one record's failure is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Kafka, the network or the topic is the problem: try again later.
    Transient,
    /// Possibly the record's own fault; tried alone before it is parked.
    Suspect,
    /// The record itself is refused, checked by the client on this record
    /// alone (bigger than `message.max.bytes`): park it at once.
    Permanent,
}

/// Sorts a produce or delivery error: the codes a broker returns for a
/// record it will never take (too large, invalid, refused by policy) are
/// suspects; the client's own size check is final; everything else (timeouts,
/// leaders moving, brokers away, authorisation) is not the record's fault.
fn classify(error: &KafkaError, client_side: bool) -> Failure {
    let KafkaError::MessageProduction(code) = error else {
        return Failure::Transient;
    };
    match code {
        RDKafkaErrorCode::MessageSizeTooLarge if client_side => Failure::Permanent,
        RDKafkaErrorCode::MessageSizeTooLarge
        | RDKafkaErrorCode::MessageBatchTooLarge
        | RDKafkaErrorCode::InvalidRecord
        | RDKafkaErrorCode::PolicyViolation
        | RDKafkaErrorCode::InvalidMessage
        | RDKafkaErrorCode::InvalidMessageSize => Failure::Suspect,
        _ => Failure::Transient,
    }
}

/// Splits a batch (in id order) into waves: wave `n` holds the `n`-th row of
/// every key, in id order. Returns indexes into `keys`.
fn waves<K: std::hash::Hash + Eq>(keys: &[K]) -> Vec<Vec<usize>> {
    let mut seen: HashMap<&K, usize> = HashMap::new();
    let mut waves: Vec<Vec<usize>> = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let n = seen.entry(key).or_insert(0);
        if waves.len() <= *n {
            waves.push(Vec::new());
        }
        waves[*n].push(index);
        *n += 1;
    }
    waves
}

/// What became of one claimed row.
#[derive(Debug)]
enum RowOutcome {
    /// Acknowledged at this partition and offset.
    Delivered(Delivered),
    Parked(String),
    Retry(KafkaError),
    /// Not produced: an earlier row of its key failed in this batch.
    Held,
}

/// The name under which the relay reports on [`Readiness`].
const READINESS_PART: &str = "relay";

/// The session that holds the relay lock, if this instance is the active relay.
struct Leadership {
    conn: Option<PgConnection>,
    leading: bool,
}

/// Publishes outbox rows to Kafka; see the module documentation.
pub struct Relay {
    pool: PgPool,
    kafka: KafkaSettings,
    producer: RebuildingProducer,
    settings: RelaySettings,
    metrics: RelayMetrics,
    wakeup: Wakeup,
    readiness: Readiness,
    leadership: tokio::sync::Mutex<Leadership>,
    /// The CloudEvents `ce_source` of every record: `/<client.id>`, i.e. `/order-service`.
    source: String,
}

impl Relay {
    /// A relay over `pool`'s `outbox` table, publishing to `kafka` through an
    /// idempotent producer configured by `producer`, woken by `wakeup`.
    pub fn new(
        pool: PgPool,
        kafka: KafkaSettings,
        producer: &ProducerSettings,
        settings: RelaySettings,
        metrics: RelayMetrics,
        wakeup: Wakeup,
    ) -> Result<Self, KafkaError> {
        let producer =
            RebuildingProducer::new(&kafka, producer, metrics.producer_rebuilds.clone())?;
        let source = format!("/{}", kafka.client_id);
        Ok(Relay {
            source,
            pool,
            kafka,
            producer,
            settings,
            metrics,
            wakeup,
            readiness: Readiness::new(),
            leadership: tokio::sync::Mutex::new(Leadership {
                conn: None,
                leading: false,
            }),
        })
    }

    /// The same relay, saying on `readiness` (the service's `/health/ready`)
    /// when it cannot publish.
    pub fn reporting_on(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// Runs until `shutdown` fires: finishes the batch in flight, flushes the
    /// producer, returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let notifier = self.settings.notify.then(|| {
            tokio::spawn(notify_other_instances(
                self.pool.clone(),
                self.wakeup.clone(),
                shutdown.clone(),
            ))
        });
        if !self.settings.enabled {
            tracing::warn!("relay disabled (RELAY_ENABLED=false): outbox rows are not published");
            shutdown.cancelled().await;
            return;
        }
        let gauges = tokio::spawn(update_gauges(
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
            #[cfg(feature = "fault-injection")]
            if self
                .settings
                .fatal_error
                .as_ref()
                .is_some_and(FatalErrorSwitch::take)
            {
                self.producer.inject_fatal_error("injected by a test");
            }
            let outcome = self.publish_batch().await;
            self.report_readiness(&outcome);
            let wait = match outcome {
                Ok(batch) if batch.claimed as i64 >= self.settings.batch_size => {
                    backoff.reset();
                    continue;
                }
                Ok(_) => {
                    backoff.reset();
                    self.settings.poll_interval
                }
                Err(e) => {
                    self.metrics.publish_errors.inc();
                    self.rebuild_producer_if_fatal();
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %platform::error::chain(&e), retry_in = ?delay, "relay batch failed");
                    delay
                }
            };
            let woken = tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => false,
                () = self.wakeup.local(), if self.settings.notify => true,
                notified = wait_for_notification(&mut listener) => {
                    if !notified {
                        listener = None;
                    }
                    notified
                }
            };
            // Let the commits that follow this one join its batch.
            if woken && !self.settings.linger.is_zero() {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(self.settings.linger) => {},
                }
            }
        }
        gauges.abort();
        if let Some(notifier) = notifier {
            notifier.abort();
        }
        let leadership = self.leadership.into_inner();
        if let Some(conn) = leadership.conn {
            // Closing the session releases the lock at once for another instance.
            if let Err(e) = conn.close().await {
                tracing::debug!(error = %e, "closing the relay's lock session");
            }
        }
        self.readiness.ready(READINESS_PART);
        let producer = self.producer.current();
        let flushed =
            tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await;
        match flushed {
            Ok(Ok(())) => tracing::info!("relay stopped; producer flushed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "relay stopped; producer flush incomplete"),
            Err(e) => tracing::warn!(error = %e, "relay stopped; producer flush task failed"),
        }
    }

    /// Says on `/health/ready` whether the relay can publish: not ready after
    /// a batch that had rows and published none of them (each of its records
    /// waited `message.timeout.ms` for Kafka, or the producer or the database
    /// refused at once), ready again with the first batch that publishes or
    /// finds nothing to publish. Intake never waits on this: orders are
    /// still taken and wait in the outbox.
    fn report_readiness(&self, outcome: &Result<BatchOutcome, RelayError>) {
        match outcome {
            Ok(_) | Err(RelayError::Delivery { published: 1.., .. }) => {
                self.readiness.ready(READINESS_PART)
            }
            Err(e) => self.readiness.not_ready(
                READINESS_PART,
                format!(
                    "the outbox relay cannot publish; orders are taken and wait in the outbox: {}",
                    platform::error::chain(e)
                ),
            ),
        }
    }

    /// After a failed batch: a fatal producer error fails every later send
    /// too, so the producer is replaced and the failed rows, still in the
    /// outbox, go out through the new one with the next batch.
    fn rebuild_producer_if_fatal(&self) {
        match self.producer.rebuild_if_fatal() {
            Ok(None) => {}
            Ok(Some(fatal)) => tracing::error!(
                error = %fatal,
                "the relay's producer raised a fatal error; replaced it with a new one, \
                 the batch's rows are published again through it"
            ),
            Err(e) => {
                tracing::error!(error = %e, "the relay's producer raised a fatal error and could not be replaced yet");
                self.readiness.not_ready(
                    READINESS_PART,
                    format!(
                        "the relay's producer raised a fatal error and could not be replaced: {e}"
                    ),
                );
            }
        }
    }

    /// Publishes one batch if this instance is (or becomes) the active relay;
    /// see the module documentation.
    #[tracing::instrument(name = "relay_batch", skip_all, fields(rows = tracing::field::Empty))]
    pub async fn publish_batch(&self) -> Result<BatchOutcome, RelayError> {
        let mut leadership = self.leadership.lock().await;
        let outcome = self.lead_and_publish(&mut leadership).await;
        self.metrics.batch_in_flight.set(0);
        if let Ok(batch) = &outcome
            && batch.claimed > 0
        {
            self.metrics.batches.observe(batch.claimed as f64);
        }
        if let Err(RelayError::Database(_)) = outcome {
            // The session may be broken: drop it (and the lock with it) and
            // start over with a new one.
            leadership.conn = None;
            leadership.leading = false;
        }
        self.wakeup.set_leading(leadership.leading);
        outcome
    }

    async fn lead_and_publish(
        &self,
        leadership: &mut Leadership,
    ) -> Result<BatchOutcome, RelayError> {
        let conn = match &mut leadership.conn {
            Some(conn) => conn,
            None => {
                let mut conn = PgConnection::connect_with(&lock_session(&self.pool)).await?;
                // The relay's writes (deleting published rows, parking) need
                // not wait for the WAL flush: a delete lost in a database
                // crash only makes its rows publish again, which consumers'
                // dedup absorbs, and the WAL keeps commits in order, so what
                // reappears is the newest deletes, later events of a key with
                // their earlier ones. The order's own transaction, and every
                // consumer's, stay synchronous.
                sqlx::query("SET synchronous_commit = off")
                    .execute(&mut conn)
                    .await?;
                leadership.conn.insert(conn)
            }
        };
        if !leadership.leading {
            leadership.leading = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(self.settings.lock_key)
                .fetch_one(&mut *conn)
                .await?;
            if !leadership.leading {
                // Another instance is the active relay; it publishes these rows.
                return Ok(BatchOutcome::default());
            }
            tracing::info!("this instance is now the active relay");
        }
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id, event_id, topic, record_key, event_type, schema_version, payload, traceparent
             FROM outbox o
             WHERE o.parked_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM outbox p
                               WHERE p.parked_at IS NOT NULL
                                 AND p.record_key = o.record_key AND p.id < o.id)
             ORDER BY o.id
             LIMIT $1",
        )
        .bind(self.settings.batch_size)
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            return Ok(BatchOutcome::default());
        }
        tracing::Span::current().record("rows", rows.len());
        self.metrics.batch_in_flight.set(1);

        let outcomes = self.publish_in_waves(&rows).await;

        let mut delivered = Vec::new();
        let (mut partitions, mut offsets) = (Vec::new(), Vec::new());
        let (mut parked_ids, mut parked_reasons) = (Vec::new(), Vec::new());
        let mut first_error = None;
        let mut failed = 0;
        for (row, outcome) in rows.iter().zip(outcomes) {
            match outcome {
                RowOutcome::Delivered(at) => {
                    delivered.push(row.id);
                    partitions.push(at.partition);
                    offsets.push(at.offset);
                }
                RowOutcome::Parked(reason) => {
                    tracing::error!(
                        outbox_id = row.id,
                        event_id = %row.event_id,
                        key = %row.record_key,
                        event_type = %row.event_type,
                        reason = %reason,
                        "Kafka refuses this event for good: parked; later events of its key are held \
                         until it is retried or discarded (orderflow-admin outbox)"
                    );
                    parked_ids.push(row.id);
                    parked_reasons.push(reason);
                }
                RowOutcome::Retry(e) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
                RowOutcome::Held => {}
            }
        }
        let mut tx = conn.begin().await?;
        // Delete what Kafka acknowledged and keep where it went, in one statement.
        sqlx::query(
            "WITH sent AS (DELETE FROM outbox WHERE id = ANY($1)
                           RETURNING id, event_id, record_key, event_type)
             INSERT INTO published_events
                 (record_key, event_id, event_type, kafka_partition, kafka_offset)
             SELECT s.record_key, s.event_id, s.event_type, d.kafka_partition, d.kafka_offset
             FROM sent s
             JOIN UNNEST($1::int8[], $2::int4[], $3::int8[])
                  AS d (id, kafka_partition, kafka_offset) ON d.id = s.id
             ON CONFLICT DO NOTHING",
        )
        .bind(&delivered)
        .bind(&partitions)
        .bind(&offsets)
        .execute(&mut *tx)
        .await?;
        if !parked_ids.is_empty() {
            sqlx::query(
                "UPDATE outbox SET parked_at = now(), park_reason = p.reason
                 FROM UNNEST($1::int8[], $2::text[]) AS p (id, reason)
                 WHERE outbox.id = p.id",
            )
            .bind(&parked_ids)
            .bind(&parked_reasons)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.metrics.published.inc_by(delivered.len() as u64);
        self.metrics.parked_total.inc_by(parked_ids.len() as u64);
        match first_error {
            None => Ok(BatchOutcome {
                claimed: rows.len(),
                published: delivered.len(),
                parked: parked_ids.len(),
            }),
            Some(first) => Err(RelayError::Delivery {
                failed,
                total: rows.len(),
                published: delivered.len(),
                first,
            }),
        }
    }

    /// Publishes `rows` wave by wave (see the module documentation); one
    /// outcome per row.
    async fn publish_in_waves(&self, rows: &[OutboxRow]) -> Vec<RowOutcome> {
        let keys: Vec<&str> = rows.iter().map(|r| r.record_key.as_str()).collect();
        let mut outcomes: Vec<Option<RowOutcome>> = (0..rows.len()).map(|_| None).collect();
        let mut stopped: HashSet<&str> = HashSet::new();
        for wave in waves(&keys) {
            let (go, held): (Vec<usize>, Vec<usize>) =
                wave.into_iter().partition(|&i| !stopped.contains(keys[i]));
            for i in held {
                outcomes[i] = Some(RowOutcome::Held);
            }
            if go.is_empty() {
                continue;
            }
            let wave_rows: Vec<&OutboxRow> = go.iter().map(|&i| &rows[i]).collect();
            let results = self.produce_in_order(&wave_rows).await;
            for (&i, result) in go.iter().zip(results) {
                let outcome = match result {
                    Ok(at) => RowOutcome::Delivered(at),
                    Err((e, client_side)) => match classify(&e, client_side) {
                        Failure::Transient => RowOutcome::Retry(e),
                        Failure::Permanent => RowOutcome::Parked(e.to_string()),
                        Failure::Suspect => self.retry_alone(&rows[i]).await,
                    },
                };
                if !matches!(outcome, RowOutcome::Delivered(_)) {
                    stopped.insert(keys[i]);
                }
                outcomes[i] = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(RowOutcome::Held))
            .collect()
    }

    /// Produces `row` with nothing else in flight, so its record batch holds
    /// it alone: parked if Kafka refuses it even so.
    async fn retry_alone(&self, row: &OutboxRow) -> RowOutcome {
        match self.produce_in_order(&[row]).await.pop() {
            Some(Ok(at)) => RowOutcome::Delivered(at),
            Some(Err((e, client_side))) => match classify(&e, client_side) {
                Failure::Transient => RowOutcome::Retry(e),
                Failure::Suspect | Failure::Permanent => RowOutcome::Parked(e.to_string()),
            },
            None => RowOutcome::Retry(KafkaError::Canceled),
        }
    }

    /// Enqueues every row in order and waits for every delivery report;
    /// returns one outcome per row, each error with whether the client
    /// refused the record before sending it. When librdkafka's queue is
    /// full, it waits for the oldest outstanding delivery and retries the
    /// same row, so the order of the rows is never changed.
    async fn produce_in_order(&self, rows: &[&OutboxRow]) -> Vec<Settled> {
        let producer = self.producer.current();
        let mut outcomes: Vec<Option<Settled>> = Vec::with_capacity(rows.len());
        let mut in_flight: VecDeque<(usize, DeliveryFuture, tracing::Span)> = VecDeque::new();
        for (index, row) in rows.iter().enumerate() {
            outcomes.push(None);
            let span = publish_span(row);
            // The consumers continue the trace from the publish span when
            // spans are exported, else from the order's own trace context.
            let traceparent =
                platform::telemetry::traceparent_of(&span).or_else(|| row.traceparent.clone());
            let mut record = record(row, &self.source, traceparent.as_deref());
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        in_flight.push_back((index, delivery, span));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        match in_flight.pop_front() {
                            Some((i, delivery, span)) => {
                                outcomes[i] = Some(settle(delivery, &span).await);
                            }
                            None => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                    Err((e, _)) => {
                        span.record("error", tracing::field::display(&e));
                        outcomes[index] = Some(Err((e, true)));
                        break;
                    }
                }
            }
        }
        for (i, delivery, span) in in_flight {
            outcomes[i] = Some(settle(delivery, &span).await);
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Err((KafkaError::Canceled, false))))
            .collect()
    }
}

/// The Kafka record of `row`, published by `source` (`/<service>`): key =
/// order id, value = the envelope, and the headers of
/// [`shared_events::headers`], ours and CloudEvents' alike.
fn record<'a>(
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

/// Where Kafka put a record.
#[derive(Debug, Clone, Copy)]
struct Delivered {
    partition: i32,
    offset: i64,
}

/// A record's delivery report: where it went, or the error and whether the
/// client refused it before sending.
type Settled = Result<Delivered, (KafkaError, bool)>;

/// The span of one row's publication, from `send` to its delivery report: a
/// producer span in the order's trace (the row's `traceparent`), linked from
/// the relay batch it belongs to.
fn publish_span(row: &OutboxRow) -> tracing::Span {
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

/// Waits for a delivery report; a failure is recorded in the row's `span`.
async fn settle(delivery: DeliveryFuture, span: &tracing::Span) -> Settled {
    let outcome = match delivery.await {
        Ok(Ok(d)) => Ok(Delivered {
            partition: d.partition,
            offset: d.offset,
        }),
        Ok(Err((e, _))) => Err((e, false)),
        Err(_) => Err((KafkaError::Canceled, false)),
    };
    if let Err((e, _)) = &outcome {
        span.record("error", tracing::field::display(e));
    }
    outcome
}

/// The shortest time between two wake-up `NOTIFY`s of this instance: the
/// commits of one interval share one notification.
const NOTIFY_INTERVAL: Duration = Duration::from_millis(5);

/// Tells the other instances' relays about this instance's commits, with at
/// most one `NOTIFY` per [`NOTIFY_INTERVAL`], outside any order transaction.
async fn notify_other_instances(pool: PgPool, wakeup: Wakeup, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = wakeup.others() => {}
        }
        if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %e, "wake-up NOTIFY failed; the active relay polls");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(NOTIFY_INTERVAL) => {}
        }
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

async fn update_gauges(pool: PgPool, metrics: RelayMetrics, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while !shutdown.is_cancelled() {
        tick.tick().await;
        let row: Result<(i64, Option<f64>, i64, i64), _> = sqlx::query_as(
            "SELECT count(*),
                    (extract(epoch FROM now() - min(created_at)) * 1000)::float8,
                    count(*) FILTER (WHERE parked_at IS NOT NULL),
                    count(*) FILTER (WHERE parked_at IS NULL AND EXISTS (
                        SELECT 1 FROM outbox p
                        WHERE p.parked_at IS NOT NULL
                          AND p.record_key = o.record_key AND p.id < o.id))
             FROM outbox o",
        )
        .fetch_one(&pool)
        .await;
        if let Ok((backlog, age_ms, parked, held)) = row {
            metrics.backlog.set(backlog);
            metrics.oldest_age_ms.set(age_ms.unwrap_or(0.0) as i64);
            metrics.parked.set(parked);
            metrics.held.set(held);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_take_one_row_per_key_in_order() {
        let keys = ["a", "b", "a", "c", "a", "b"];
        assert_eq!(waves(&keys), vec![vec![0, 1, 3], vec![2, 5], vec![4]]);
        assert_eq!(waves::<&str>(&[]), Vec::<Vec<usize>>::new());
    }

    #[test]
    fn only_refusals_of_the_record_itself_are_suspects() {
        let produce = |code| KafkaError::MessageProduction(code);
        assert_eq!(
            classify(&produce(RDKafkaErrorCode::MessageSizeTooLarge), true),
            Failure::Permanent
        );
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::PolicyViolation,
            RDKafkaErrorCode::InvalidRecord,
        ] {
            assert_eq!(
                classify(&produce(code), false),
                Failure::Suspect,
                "{code:?}"
            );
        }
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::QueueFull,
        ] {
            assert_eq!(
                classify(&produce(code), false),
                Failure::Transient,
                "{code:?}"
            );
        }
        assert_eq!(classify(&KafkaError::Canceled, false), Failure::Transient);
    }
}

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
//!    row of the same key, nor of a key with a record still in flight, nor
//!    of a *benched* partition (below). Rows are deleted once sent, so
//!    "unsent" is simply "still there": a row whose transaction committed
//!    after a higher id is picked up by a later batch, never skipped (the
//!    high-water-mark trap of outbox relays that poll `id > last_seen`).
//! 2. Publish them in waves: the first wave holds the first row of each key,
//!    the second the second row of each key, and so on, and a wave starts
//!    only when the previous one is settled. A key whose row failed, or is
//!    still in flight, sends nothing more in this batch. So a later event of
//!    an order is never produced before Kafka has acknowledged the earlier
//!    one: neither librdkafka's retries nor a record failing on
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
//! # One partition stuck
//!
//! A partition whose leader is away (its broker stopped or cut off, with no
//! in-sync replica to take over), or whose produce requests fail (too few
//! in-sync replicas), keeps its records in librdkafka until
//! `message.timeout.ms`. Waiting for them would make every wave, and so every
//! order, wait that long, and their rows, the oldest, would head every next
//! claim. So a wave waits at most [`WAVE_WAIT`] (1 s) for its reports. A
//! record not reported by then stays in flight (librdkafka keeps retrying
//! it; its report is collected by a later batch, which then deletes the row
//! or leaves it for a retry), its key is left out of every claim meanwhile,
//! and its partition is *benched*: the claim leaves out the partition's
//! rows until its records are reported, and for a growing backoff after one
//! of them failed; then its rows are claimed again, and that wave is the
//! probe. Healthy partitions flow at their usual pace; the stuck one's keys
//! wait, in order, and flow once it takes records.
//!
//! The claim tells a row's partition by the partitioner's hash of its key
//! (murmur2, as Kafka's Java client and this producer's `murmur2_random`
//! compute it), stored with the row at enqueue (`key_hash`), modulo the
//! partition count read from the topic's metadata at start. Order never
//! depends on that computation being right (keys in flight are excluded by
//! key, and a held key sends nothing more in a batch); only which rows wait
//! does. Benched partitions are shown by `outbox_relay_partition_benched`,
//! a `warn` naming the topic and partition, and `/health/ready`, which stays
//! 200 and lists them under `degraded` while others take records.
//!
//! # When Kafka cannot take records
//!
//! A record that failed with nothing delivered after it makes
//! `/health/ready` answer 503 with the reason, until a record is delivered
//! again; intake goes on, the rows wait in the outbox. A *fatal* producer error (a fenced
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
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use platform::health::Readiness;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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

mod bench;

use bench::{Bench, Change};

/// How long a wave waits for its delivery reports. A healthy partition
/// acknowledges within milliseconds; a record not reported by then is left in
/// flight (librdkafka keeps retrying it until `message.timeout.ms`), its
/// partition is benched and the batch goes on without it, so a partition
/// that cannot take records costs the others at most this much per wave,
/// never `message.timeout.ms`.
const WAVE_WAIT: Duration = Duration::from_secs(1);

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
    benched: Family<Vec<(String, String)>, Gauge>,
    late: Gauge,
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
            benched: Family::default(),
            late: Gauge::default(),
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
        registry.register(
            "outbox_relay_partition_benched",
            "1 for each partition (topic, partition) whose rows the relay keeps out of its batches because it cannot take records now",
            m.benched.clone(),
        );
        registry.register(
            "outbox_relay_late_records",
            "Records sent by the relay that were not acknowledged within a wave's wait and are still in flight",
            m.late.clone(),
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
    /// Sent, and not reported within the wave's wait: still in flight.
    Late(InFlight),
    /// Not produced: an earlier row of its key failed or is late in this
    /// batch, or its partition is benched.
    Held,
}

/// A record whose delivery report has not come yet, and the span of its
/// publication (closed when the report comes).
struct InFlight {
    delivery: DeliveryFuture,
    span: tracing::Span,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InFlight")
    }
}

/// A row whose record was late in an earlier batch: its key is kept out of
/// the claim until its report comes (then it is deleted, or claimed again).
#[derive(Debug)]
struct Late {
    row: OutboxRow,
    partition: Option<i32>,
    record: InFlight,
}

/// The name under which the relay reports on [`Readiness`].
const READINESS_PART: &str = "relay";

/// The session that holds the relay lock, if this instance is the active
/// relay, and what the relay carries from one batch to the next.
struct Leadership {
    conn: Option<PgConnection>,
    leading: bool,
    /// Records of earlier batches still in flight.
    late: Vec<Late>,
    /// The partitions kept out of the claim.
    bench: Bench,
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
    /// The topic's partition count as the broker's metadata says (the
    /// configured count until it has been read).
    partitions: OnceLock<i32>,
    /// Whether a delivery to another partition than computed was logged.
    partition_mismatch_logged: AtomicBool,
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
        let bench = Bench::new(settings.max_backoff);
        Ok(Relay {
            source,
            partitions: OnceLock::new(),
            partition_mismatch_logged: AtomicBool::new(false),
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
                late: Vec::new(),
                bench,
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
        self.learn_partition_count().await;
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
            let wait = match outcome {
                Ok(batch) if batch.claimed as i64 >= self.settings.batch_size => {
                    backoff.reset();
                    continue;
                }
                Ok(_) => {
                    backoff.reset();
                    self.settings.poll_interval
                }
                Err(e @ RelayError::Delivery { .. }) => {
                    // The partitions that failed are benched, each with its
                    // own backoff: the others go on at the usual pace.
                    self.metrics.publish_errors.inc();
                    self.rebuild_producer_if_fatal();
                    backoff.reset();
                    tracing::warn!(error = %platform::error::chain(&e), "relay batch: some records failed; their partitions are benched");
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

    /// Says on `/health/ready` whether the relay can publish: not ready when
    /// the database failed, or when a record failed and none was delivered
    /// since (Kafka takes nothing: each record waited `message.timeout.ms`,
    /// or the producer refused at once); ready again with the first record
    /// delivered. While some partitions are benched and others take records,
    /// it stays ready and names the benched ones. Intake never waits on
    /// this: orders are still taken and wait in the outbox.
    fn report_readiness(&self, outcome: &Result<BatchOutcome, RelayError>, bench: &Bench) {
        let cannot_publish = match outcome {
            Err(e @ RelayError::Database(_)) => Some(platform::error::chain(e)),
            _ => bench.failing().map(str::to_owned),
        };
        if let Some(reason) = cannot_publish {
            self.readiness.not_ready(
                READINESS_PART,
                format!(
                    "the outbox relay cannot publish; orders are taken and wait in the outbox: {reason}"
                ),
            );
            return;
        }
        self.readiness.ready(READINESS_PART);
        let benched: Vec<String> = bench
            .benched()
            .map(|(partition, for_, reason)| {
                format!(
                    "{}/{partition} for {} s ({reason})",
                    self.kafka.topic,
                    for_.as_secs()
                )
            })
            .collect();
        if !benched.is_empty() {
            self.readiness.degraded(
                READINESS_PART,
                format!(
                    "partitions that cannot take records now, their orders wait in the outbox \
                     while the others flow: {}",
                    benched.join(", ")
                ),
            );
        }
    }

    /// The partition count of the relay's topic, read from the broker's
    /// metadata once the topic exists: the partitioner picks a key's
    /// partition among the partitions the topic really has, which may differ
    /// from the configured count when the topic was created before.
    async fn learn_partition_count(&self) {
        let producer = self.producer.current();
        let topic = self.kafka.topic.clone();
        let read = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(10))
                .map(|m| m.topics().first().map_or(0, |t| t.partitions().len()))
        })
        .await;
        match read {
            Ok(Ok(count)) if count > 0 => {
                let count = i32::try_from(count).unwrap_or(i32::MAX);
                let _ = self.partitions.set(count);
            }
            Ok(Ok(_)) | Ok(Err(_)) | Err(_) => tracing::warn!(
                topic = %self.kafka.topic,
                partitions = self.kafka.partitions,
                "could not read the topic's partition count; assuming the configured one"
            ),
        }
    }

    /// The partition the producer's partitioner picks for `row`, if it is a
    /// record of the relay's topic.
    fn partition_of(&self, row: &OutboxRow) -> Option<i32> {
        (row.topic == self.kafka.topic).then(|| {
            shared_events::topics::partition_of(row.record_key.as_bytes(), self.partition_count())
        })
    }

    fn partition_count(&self) -> i32 {
        self.partitions
            .get()
            .copied()
            .unwrap_or(self.kafka.partitions)
    }

    /// Logs what a delivery, failure or late report changed on the bench,
    /// and checks the computed partition against the one Kafka reports.
    fn log_bench(&self, partition: Option<i32>, change: Change, detail: &str) {
        let Some(partition) = partition else {
            return;
        };
        let topic = self.kafka.topic.as_str();
        match change {
            Change::Benched => tracing::warn!(
                topic,
                partition,
                reason = detail,
                "partition cannot take records: its rows stay in the outbox, out of the relay's \
                 batches, and are retried after a backoff; the other partitions keep flowing"
            ),
            Change::Back(after) => tracing::info!(
                topic,
                partition,
                benched_for = ?after,
                "partition takes records again: its rows flow"
            ),
            Change::Still | Change::None => {}
        }
    }

    /// Warns once when Kafka put a record on another partition than the
    /// relay computed: the topic's partition count changed. Order is not
    /// at stake (keys in flight are held by key), only which rows a bench
    /// keeps out.
    fn check_partition(&self, computed: Option<i32>, at: &Delivered) {
        if computed.is_some_and(|p| p != at.partition)
            && !self.partition_mismatch_logged.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                topic = %self.kafka.topic,
                computed = ?computed,
                delivered = at.partition,
                partitions = self.partition_count(),
                "a record went to another partition than the relay computed: the topic's \
                 partition count changed; restart the service so its relay reads it again"
            );
        }
    }

    /// Sets the bench's gauges.
    fn record_bench(&self, leadership: &Leadership) {
        self.metrics.benched.clear();
        for (partition, _, _) in leadership.bench.benched() {
            self.metrics
                .benched
                .get_or_create(&vec![
                    ("topic".to_owned(), self.kafka.topic.clone()),
                    ("partition".to_owned(), partition.to_string()),
                ])
                .set(1);
        }
        self.metrics
            .late
            .set(i64::try_from(leadership.late.len()).unwrap_or(i64::MAX));
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
        if leadership.leading || outcome.is_err() {
            self.report_readiness(&outcome, &leadership.bench);
        } else {
            // Another instance publishes: this one has nothing to say.
            self.readiness.ready(READINESS_PART);
        }
        self.record_bench(&leadership);
        outcome
    }

    async fn lead_and_publish(
        &self,
        leadership: &mut Leadership,
    ) -> Result<BatchOutcome, RelayError> {
        let Leadership {
            conn,
            leading,
            late,
            bench,
        } = leadership;
        let conn = match conn {
            Some(conn) => conn,
            None => {
                let mut fresh = PgConnection::connect_with(&lock_session(&self.pool)).await?;
                // The relay's writes (deleting published rows, parking) need
                // not wait for the WAL flush: a delete lost in a database
                // crash only makes its rows publish again, which consumers'
                // dedup absorbs, and the WAL keeps commits in order, so what
                // reappears is the newest deletes, later events of a key with
                // their earlier ones. The order's own transaction, and every
                // consumer's, stay synchronous.
                sqlx::query("SET synchronous_commit = off")
                    .execute(&mut fresh)
                    .await?;
                conn.insert(fresh)
            }
        };
        if !*leading {
            *leading = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(self.settings.lock_key)
                .fetch_one(&mut *conn)
                .await?;
            if !*leading {
                // Another instance is the active relay; it publishes these rows.
                return Ok(BatchOutcome::default());
            }
            tracing::info!("this instance is now the active relay");
        }
        // The keys of records still in flight stay out of this claim, the
        // row whose report has just come included (it is deleted below, after
        // the claim): a later row of such a key is never sent before the
        // earlier one is acknowledged, whatever partition the bench thinks
        // it is on.
        let in_flight: Vec<String> = late.iter().map(|l| l.row.record_key.clone()).collect();
        let reported = take_reported(late).await;
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id, event_id, topic, record_key, event_type, schema_version, payload, traceparent
             FROM outbox o
             WHERE o.parked_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM outbox p
                               WHERE p.parked_at IS NOT NULL
                                 AND p.record_key = o.record_key AND p.id < o.id)
               AND NOT (o.record_key = ANY($2))
               AND NOT (o.topic = $3 AND o.key_hash IS NOT NULL
                        AND o.key_hash % $4 = ANY($5))
             ORDER BY o.id
             LIMIT $1",
        )
        .bind(self.settings.batch_size)
        .bind(&in_flight)
        .bind(&self.kafka.topic)
        .bind(self.partition_count())
        .bind(bench.excluded(Instant::now()))
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() && reported.is_empty() {
            return Ok(BatchOutcome::default());
        }
        tracing::Span::current().record("rows", rows.len());
        self.metrics.batch_in_flight.set(1);

        let partitions: Vec<Option<i32>> = rows.iter().map(|r| self.partition_of(r)).collect();
        let outcomes = self.publish_in_waves(&rows, &partitions, bench).await;

        let mut delivered = Vec::new();
        let (mut partitions_at, mut offsets) = (Vec::new(), Vec::new());
        let (mut parked_ids, mut parked_reasons) = (Vec::new(), Vec::new());
        let mut first_error = None;
        let mut failed = 0;
        let reported_count = reported.len();
        for (row, partition, settled) in reported {
            match settled {
                Ok(at) => {
                    self.log_bench(
                        partition,
                        bench.delivered(partition, true, Instant::now()),
                        "",
                    );
                    delivered.push(row.id);
                    partitions_at.push(at.partition);
                    offsets.push(at.offset);
                }
                Err((e, _)) => {
                    let (change, _) = bench.failed(partition, &e.to_string(), true, Instant::now());
                    self.log_bench(partition, change, &e.to_string());
                    failed += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        for ((row, partition), outcome) in rows.iter().zip(partitions).zip(outcomes) {
            match outcome {
                RowOutcome::Delivered(at) => {
                    delivered.push(row.id);
                    partitions_at.push(at.partition);
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
                RowOutcome::Late(record) => late.push(Late {
                    row: row.clone(),
                    partition,
                    record,
                }),
                RowOutcome::Held => {}
            }
        }
        let partitions = partitions_at;
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
                total: rows.len() + reported_count,
                published: delivered.len(),
                first,
            }),
        }
    }

    /// Publishes `rows` wave by wave (see the module documentation); one
    /// outcome per row. `partitions` is each row's partition, if known; a
    /// partition found late or failing in a wave is benched at once, and
    /// its rows in the later waves are held.
    async fn publish_in_waves(
        &self,
        rows: &[OutboxRow],
        partitions: &[Option<i32>],
        bench: &mut Bench,
    ) -> Vec<RowOutcome> {
        let keys: Vec<&str> = rows.iter().map(|r| r.record_key.as_str()).collect();
        let mut outcomes: Vec<Option<RowOutcome>> = (0..rows.len()).map(|_| None).collect();
        let mut stopped: HashSet<&str> = HashSet::new();
        for wave in waves(&keys) {
            let now = Instant::now();
            let (go, held): (Vec<usize>, Vec<usize>) = wave.into_iter().partition(|&i| {
                !stopped.contains(keys[i]) && !bench.is_excluded(partitions[i], now)
            });
            for i in held {
                // Its key sends nothing more in this batch, even if the
                // bench's backoff ends before the next wave.
                stopped.insert(keys[i]);
                outcomes[i] = Some(RowOutcome::Held);
            }
            if go.is_empty() {
                continue;
            }
            let wave_rows: Vec<&OutboxRow> = go.iter().map(|&i| &rows[i]).collect();
            let results = self
                .produce_in_order(&wave_rows, Instant::now() + WAVE_WAIT)
                .await;
            for (&i, result) in go.iter().zip(results) {
                let outcome = match result {
                    Report::Settled(Ok(at)) => RowOutcome::Delivered(at),
                    Report::Settled(Err((e, client_side))) => match classify(&e, client_side) {
                        Failure::Transient => RowOutcome::Retry(e),
                        Failure::Permanent => RowOutcome::Parked(e.to_string()),
                        Failure::Suspect => self.retry_alone(&rows[i]).await,
                    },
                    Report::Late(record) => RowOutcome::Late(record),
                };
                let now = Instant::now();
                let partition = partitions[i];
                match &outcome {
                    RowOutcome::Delivered(at) => {
                        self.check_partition(partition, at);
                        self.log_bench(partition, bench.delivered(partition, false, now), "");
                    }
                    RowOutcome::Retry(e) => {
                        let (change, _) = bench.failed(partition, &e.to_string(), false, now);
                        self.log_bench(partition, change, &e.to_string());
                    }
                    RowOutcome::Late(_) => {
                        let change = bench.late(partition, now);
                        if change == Change::Benched {
                            tracing::info!(
                                topic = %self.kafka.topic,
                                partition,
                                wait = ?WAVE_WAIT,
                                "records not acknowledged within a wave's wait: left in flight, \
                                 their partition is out of the batches until they are reported"
                            );
                        }
                    }
                    RowOutcome::Parked(_) | RowOutcome::Held => {}
                }
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
        match self
            .produce_in_order(&[row], Instant::now() + WAVE_WAIT)
            .await
            .pop()
        {
            Some(Report::Settled(Ok(at))) => RowOutcome::Delivered(at),
            Some(Report::Settled(Err((e, client_side)))) => match classify(&e, client_side) {
                Failure::Transient => RowOutcome::Retry(e),
                Failure::Suspect | Failure::Permanent => RowOutcome::Parked(e.to_string()),
            },
            Some(Report::Late(record)) => RowOutcome::Late(record),
            None => RowOutcome::Retry(KafkaError::Canceled),
        }
    }

    /// Enqueues every row in order and waits for the delivery reports until
    /// `deadline`; returns one report per row, each error with whether the
    /// client refused the record before sending it, or the record still in
    /// flight. When librdkafka's queue is full, it waits for the oldest
    /// outstanding delivery and retries the same row, so the order of the
    /// rows is never changed.
    async fn produce_in_order(&self, rows: &[&OutboxRow], deadline: Instant) -> Vec<Report> {
        let producer = self.producer.current();
        let mut outcomes: Vec<Option<Report>> = Vec::with_capacity(rows.len());
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
                                outcomes[i] = Some(Report::Settled(settled(delivery.await, &span)));
                            }
                            None => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                    Err((e, _)) => {
                        span.record("error", tracing::field::display(&e));
                        outcomes[index] = Some(Report::Settled(Err((e, true))));
                        break;
                    }
                }
            }
        }
        for (i, mut delivery, span) in in_flight {
            let deadline = tokio::time::Instant::from_std(deadline);
            outcomes[i] = Some(
                match tokio::time::timeout_at(deadline, &mut delivery).await {
                    Ok(report) => Report::Settled(settled(report, &span)),
                    Err(_) => Report::Late(InFlight { delivery, span }),
                },
            );
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Report::Settled(Err((KafkaError::Canceled, false)))))
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

/// A record's delivery report, or the record still in flight.
enum Report {
    Settled(Settled),
    Late(InFlight),
}

/// What a delivery report says; a failure is recorded in the row's `span`.
fn settled(
    report: <DeliveryFuture as std::future::Future>::Output,
    span: &tracing::Span,
) -> Settled {
    let outcome = match report {
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

/// Takes the rows of earlier batches whose reports have come, with their
/// partition and report; the others stay in `late`. Never waits.
async fn take_reported(late: &mut Vec<Late>) -> Vec<(OutboxRow, Option<i32>, Settled)> {
    let mut reported = Vec::new();
    let mut waiting = Vec::with_capacity(late.len());
    for mut l in late.drain(..) {
        match tokio::time::timeout(Duration::ZERO, &mut l.record.delivery).await {
            Ok(report) => {
                let settled = settled(report, &l.record.span);
                reported.push((l.row, l.partition, settled));
            }
            Err(_) => waiting.push(l),
        }
    }
    *late = waiting;
    reported
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

//! The inbox: an idempotent consumer runtime, written once for every service
//! that reacts to order events.
//!
//! A service supplies a [`Handler`]: how to read a record into its own narrow
//! type (tolerant reader: unknown fields ignored, unknown event types skipped
//! and counted) and what effect to apply. The runtime does the rest, for each
//! record in partition order:
//!
//! 1. Decode the envelope and let the handler read it. A record that cannot
//!    be read goes to the [`crate::dead_letter`] topic and the consumer moves on.
//! 2. In ONE database transaction: insert `(consumer, event_id)` into
//!    `processed_events` (`ON CONFLICT DO NOTHING`; zero rows means a
//!    duplicate, so the effect is skipped), apply the handler's effect,
//!    commit. The primary key, not a check-then-insert, makes this hold under
//!    concurrent delivery too.
//! 3. Only then store the record's offset; librdkafka commits stored offsets
//!    in the background and synchronously before a partition is revoked. A
//!    crash between 2 and 3 means redelivery, which step 2 absorbs.
//!
//! # Whose fault
//!
//! Only the record's own faults send it to the dead-letter topic: a value
//! that is not an envelope, a payload the service's reader refuses, an effect
//! that rejects the event as invalid ([`ApplyError::Invalid`]). The readers
//! check everything the service's tables would refuse (lengths, ranges, NUL
//! characters), so the database is never the judge of a record. Every
//! database error is the service's own failure (the server away, a revoked
//! privilege, a bad migration): the same record is retried with capped
//! backoff, never skipped and never committed past, the service reports not
//! ready on `/health/ready` with the reason, `inbox_stalled` is 1 and each
//! attempt is logged (`warn` while the database is away, `error` when it
//! refuses the work); it resumes by itself once the database takes the work
//! again. A stall longer than `max.poll.interval.ms` (5 min) makes the
//! consumer leave its group until it polls again; its partitions are then
//! redelivered to whoever owns them, and the dedup table absorbs that.
//!
//! A dead letter the dead-letter topic itself refuses for good (too large
//! once the `dlq.*` headers are added, say) is written again without its
//! value, naming where the original stays (source topic, partition and
//! offset) and counted in `inbox_dead_letters_without_value`; if even that
//! is refused it is logged at `error` with the same coordinates and counted
//! in `inbox_dead_letters_unwritten`. The consumer moves on either way: one
//! bad record must not stall every partition.
//!
//! Processed-event records, and the cancellations remembered for orders not
//! seen yet, are purged after a retention window that must be longer than any
//! redelivery can take.
//!
//! # Rebuilding a service's view from the topic
//!
//! A consuming service's tables are a view of the order topic, so they can be
//! rebuilt from it: start the service against an empty database, in a NEW
//! consumer group that starts from the earliest offset, and let it catch up.
//!
//! ```text
//! createdb -O invoicing invoicing_rebuild          # an empty database
//! DATABASE_URL=postgres://invoicing:invoicing@127.0.0.1:15432/invoicing_rebuild \
//! KAFKA_GROUP_ID=invoicing-rebuild-20261121 \
//! KAFKA_AUTO_OFFSET_RESET=earliest \
//! HTTP_ADDR=127.0.0.1:0 \
//!   invoicing-service
//! ```
//!
//! The migrations create the schema; the new group has no committed offsets,
//! so it reads every partition from the start; the dedup table is empty, so
//! every event applies once again. The rebuild has caught up when the
//! `inbox_consumer_lag` metric reaches 0 (it is sampled every 5 s). Rows
//! equal the original's except for their surrogate ids and commit timestamps
//! (`issued_at`, `created_at`), which are the rebuild's own. Records the
//! reader rejects are dead-lettered again, to the rebuild group's own
//! `<topic>.dlq.<group>`. The view is complete only if the topic's retention
//! still holds the whole history; cut over by pointing the service at the
//! rebuilt database with the rebuild group (its offsets continue from there).
//!
//! # Tables
//!
//! [`MIGRATOR`] (`messaging/migrations/`) creates the dedup table and the
//! table of cancellations seen before their order (which the effects use
//! through [`crate::cancellation`] and the inbox purges), in every consuming
//! service's database:
//!
//! ```sql
//! CREATE TABLE processed_events (
//!     consumer     TEXT        NOT NULL,
//!     event_id     UUID        NOT NULL,
//!     processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
//!     PRIMARY KEY (consumer, event_id)
//! );
//! CREATE INDEX processed_events_processed_at ON processed_events (processed_at);
//! CREATE TABLE cancellations (
//!     order_id    UUID        PRIMARY KEY,
//!     recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
//! );
//! CREATE INDEX cancellations_recorded_at ON cancellations (recorded_at);
//! ```

use std::future::Future;
use std::sync::Arc;
#[cfg(feature = "fault-injection")]
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use platform::health::Readiness;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Message, TopicPartitionList};
use shared_events::{RawEnvelope, TraceParent, headers};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::dead_letter::DeadLetter;
use crate::kafka::{KafkaSettings, TopicSpec, ensure_topics_patiently};

/// The inbox's own tables (`processed_events`, `cancellations`), applied in
/// every consuming service's database next to the service's schema and
/// tracked in `_inbox_migrations`, apart from the service's own migrations.
pub static MIGRATOR: std::sync::LazyLock<sqlx::migrate::Migrator> =
    std::sync::LazyLock::new(|| {
        let mut migrator = sqlx::migrate!();
        migrator.dangerous_set_table_name("_inbox_migrations");
        migrator
    });

/// What the runtime knows about a record besides the service's decoded view.
#[derive(Debug, Clone)]
pub struct EventMeta {
    /// The envelope's event id (the dedup key).
    pub event_id: Uuid,
    /// The envelope's event type.
    pub event_type: String,
    /// The envelope's schema version.
    pub schema_version: u32,
    /// The order the event is about.
    pub order_id: Uuid,
    /// When the event happened.
    pub occurred_at: DateTime<Utc>,
}

/// A record the service's reader refuses: it goes to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejection(pub String);

/// Why an effect could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The event breaks the service's rules: dead-letter it.
    #[error("the event was rejected: {0}")]
    Invalid(String),
    /// The database failed: the service's fault, never the record's; the
    /// record is retried until the database takes the work.
    #[error("the database did not apply the effect")]
    Database(#[from] sqlx::Error),
}

/// What a consuming service supplies: its reader and its effect.
pub trait Handler: Send + Sync + 'static {
    /// The service's own, narrow view of an event.
    type Event: Send + Sync;

    /// Reads the envelope into the service's view: `Ok(None)` for event types
    /// the service does not handle (skipped and counted), `Err` for records it
    /// can never process (dead-lettered).
    fn decode(&self, envelope: &RawEnvelope) -> Result<Option<Self::Event>, Rejection>;

    /// Applies the effect on `conn`, inside the transaction that also records
    /// the event as processed. Must not commit.
    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        meta: &'a EventMeta,
        event: &'a Self::Event,
    ) -> impl Future<Output = Result<(), ApplyError>> + Send + 'a;
}

/// A deliberate crash point for the chaos run and the tests (only in builds
/// with the `fault-injection` feature).
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Abort the process after the Nth committed effect, before its offset is
    /// stored (`FAULT_ABORT_AFTER_COMMIT=N`; used by `cargo xtask chaos`).
    AbortProcessAfterCommit(u64),
    /// Stop the runtime the same way, without storing the offset (in-process tests).
    StopAfterCommit(u64),
}

/// How the inbox consumes.
#[derive(Debug, Clone, clap::Args)]
pub struct InboxSettings {
    /// The consumer group (also the dedup namespace in processed_events).
    #[arg(
        id = "kafka_group_id",
        long = "kafka-group-id",
        env = "KAFKA_GROUP_ID",
        default_value = "inbox"
    )]
    pub group_id: String,
    /// Where a new consumer group starts reading.
    #[arg(
        id = "kafka_auto_offset_reset",
        long = "kafka-auto-offset-reset",
        env = "KAFKA_AUTO_OFFSET_RESET",
        default_value = "earliest",
        value_parser = ["earliest", "latest"]
    )]
    pub auto_offset_reset: String,
    /// How often stored offsets are committed.
    #[arg(
        id = "kafka_auto_commit_interval",
        long = "kafka-auto-commit-interval-ms",
        env = "KAFKA_AUTO_COMMIT_INTERVAL_MS",
        default_value = "1000",
        value_parser = platform::config::millis
    )]
    pub auto_commit_interval: Duration,
    /// Longest the broker holds a fetch waiting for data.
    #[arg(
        id = "kafka_fetch_wait_max",
        long = "kafka-fetch-wait-max-ms",
        env = "KAFKA_FETCH_WAIT_MAX_MS",
        default_value = "100",
        value_parser = platform::config::millis
    )]
    pub fetch_wait_max: Duration,
    /// How long the group waits for a silent (crashed) member before reassigning its partitions (librdkafka's default is 45 s)
    #[arg(
        id = "kafka_session_timeout",
        long = "kafka-session-timeout-ms",
        env = "KAFKA_SESSION_TIMEOUT_MS",
        default_value = "10000",
        value_parser = platform::config::millis
    )]
    pub session_timeout: Duration,
    /// Dedup records and early cancellations older than this are purged (keep it longer than any redelivery)
    #[arg(
        id = "processed_retention",
        long = "processed-retention-hours",
        env = "PROCESSED_RETENTION_HOURS",
        default_value = "168",
        value_parser = platform::config::hours
    )]
    pub processed_retention: Duration,
    /// How often the purge runs.
    #[arg(
        id = "processed_purge_interval",
        long = "processed-purge-interval-secs",
        env = "PROCESSED_PURGE_INTERVAL_SECS",
        default_value = "3600",
        value_parser = platform::config::secs
    )]
    pub purge_interval: Duration,
    /// Cap of the retry delay while the database fails or refuses the effects.
    #[arg(
        id = "consumer_max_backoff",
        long = "consumer-max-backoff-ms",
        env = "CONSUMER_MAX_BACKOFF_MS",
        default_value = "5000",
        value_parser = platform::config::millis
    )]
    pub max_backoff: Duration,
    /// Fault injection: abort after the Nth effect commit, before its offset is stored.
    #[cfg(feature = "fault-injection")]
    #[arg(
        id = "fault_abort_after_commit",
        long = "fault-abort-after-commit",
        env = "FAULT_ABORT_AFTER_COMMIT",
        hide = true
    )]
    pub abort_after_commit: Option<u64>,
    /// A crash point set by an in-process test.
    #[cfg(feature = "fault-injection")]
    #[arg(skip)]
    pub fault: Option<Fault>,
}

impl InboxSettings {
    /// The defaults, in consumer group `group_id` (for tests and tools).
    pub fn new(group_id: &str) -> Self {
        InboxSettings {
            group_id: group_id.to_owned(),
            auto_offset_reset: "earliest".to_owned(),
            auto_commit_interval: Duration::from_millis(1_000),
            fetch_wait_max: Duration::from_millis(100),
            session_timeout: Duration::from_millis(10_000),
            processed_retention: Duration::from_secs(7 * 24 * 3600),
            purge_interval: Duration::from_secs(3600),
            max_backoff: Duration::from_secs(5),
            #[cfg(feature = "fault-injection")]
            abort_after_commit: None,
            #[cfg(feature = "fault-injection")]
            fault: None,
        }
    }

    /// The crash point, if one is set.
    #[cfg(feature = "fault-injection")]
    fn crash_point(&self) -> Option<Fault> {
        self.fault.or(self
            .abort_after_commit
            .filter(|n| *n > 0)
            .map(Fault::AbortProcessAfterCommit))
    }
}

/// The inbox's Prometheus metrics.
#[derive(Debug, Clone, Default)]
pub struct InboxMetrics {
    processed: Counter,
    duplicates: Counter,
    dead_lettered: Counter,
    dead_letters_without_value: Counter,
    dead_letters_unwritten: Counter,
    skipped: Counter,
    retries: Counter,
    purged: Counter,
    lag: Gauge,
    stalled: Gauge,
}

impl InboxMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = InboxMetrics::default();
        registry.register(
            "inbox_records_processed",
            "Records whose effect was applied",
            m.processed.clone(),
        );
        registry.register(
            "inbox_duplicates_skipped",
            "Redelivered records acknowledged without a second effect",
            m.duplicates.clone(),
        );
        registry.register(
            "inbox_dead_lettered",
            "Records sent to the dead-letter topic",
            m.dead_lettered.clone(),
        );
        registry.register(
            "inbox_dead_letters_without_value",
            "Dead letters the dead-letter topic refused whole, written again without their value",
            m.dead_letters_without_value.clone(),
        );
        registry.register(
            "inbox_dead_letters_unwritten",
            "Refused records the dead-letter topic refused even without their value (logged with their offset)",
            m.dead_letters_unwritten.clone(),
        );
        registry.register(
            "inbox_stalled",
            "1 while the inbox retries a record because the database refuses or cannot take its effect",
            m.stalled.clone(),
        );
        registry.register(
            "inbox_unknown_skipped",
            "Records of event types this service does not handle",
            m.skipped.clone(),
        );
        registry.register(
            "inbox_retries",
            "Retries of a record's effect or dead letter after a failure of the service",
            m.retries.clone(),
        );
        registry.register(
            "inbox_processed_events_purged",
            "Processed-event and cancellation records purged after the retention window",
            m.purged.clone(),
        );
        registry.register(
            "inbox_consumer_lag",
            "Records behind the partitions' end, summed over assigned partitions",
            m.lag.clone(),
        );
        m
    }
}

/// Why the inbox stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// Kafka client creation or subscription failed.
    #[error("the Kafka consumer could not be created or subscribed")]
    Kafka(#[from] KafkaError),
    /// A [`Fault::StopAfterCommit`] fired.
    #[cfg(feature = "fault-injection")]
    #[error("injected fault: stopped after a commit, before storing its offset")]
    InjectedStop,
}

/// Rebalance and statistics callbacks of the inbox's consumer.
struct InboxContext {
    metrics: InboxMetrics,
}

impl ClientContext for InboxContext {
    fn stats(&self, statistics: Statistics) {
        let lag: i64 = statistics
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
            .map(|p| p.consumer_lag)
            .sum();
        self.metrics.lag.set(lag);
    }
}

impl ConsumerContext for InboxContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(partitions) => {
                // No commit here: with enable.auto.commit, librdkafka commits
                // the stored offsets of revoked partitions itself when it
                // unassigns them (rdkafka_assignment.c), without blocking
                // this callback's thread on a broker round trip.
                tracing::info!(partitions = %describe(partitions), "partitions revoked");
            }
            Rebalance::Assign(partitions) => {
                tracing::info!(partitions = %describe(partitions), "partitions assigned");
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _: &TopicPartitionList) {
        match result {
            Ok(()) => {}
            // Nothing stored since the last commit: routine.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!(
                error = %e,
                "offset commit failed; the records since the last commit will be delivered again (dedup absorbs them)"
            ),
        }
    }
}

/// The longest pause after an error from the consumer queue. librdkafka
/// reports lost connections there (`BrokerTransportFailure`, `AllBrokersDown`)
/// and reconnects by itself; each report is one event in the same queue as
/// the records, so pausing long after each one would leave the consumer
/// working through stale reports long after the broker is back (with a 5 s
/// pause it lagged 50 s behind a 3 s broker restart).
const CONSUMER_ERROR_MAX_BACKOFF: Duration = Duration::from_millis(500);

/// How long a stopping inbox waits for its final offset commit and for the
/// consumer to leave its group.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Commits the stored offsets and closes `consumer` (leaving the group) on a
/// thread of its own, waiting at most `timeout`. With the brokers gone,
/// librdkafka's synchronous commit and its close can block indefinitely, and a
/// service asked to stop must stop: after `timeout` the thread is left behind
/// and ends with the process. Offsets not committed then are delivered again
/// to the partitions' next owner, and the dedup table absorbs them.
async fn close_within(consumer: StreamConsumer<InboxContext>, timeout: Duration) {
    let (closed, on_closed) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("inbox-close".into())
        .spawn(move || {
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %e, "final offset commit");
            }
            drop(consumer);
            // The receiver is gone only if we stopped waiting.
            let _ = closed.send(());
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no thread to close the consumer on; closing it unbounded");
        return;
    }
    if tokio::time::timeout(timeout, on_closed).await.is_err() {
        tracing::warn!(
            ?timeout,
            "consumer did not commit and close in time (brokers unreachable?); stopping without it"
        );
    }
}

fn describe(partitions: &TopicPartitionList) -> String {
    partitions
        .elements()
        .iter()
        .map(|e| format!("{}[{}]", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(",")
}

enum Outcome {
    Applied,
    Duplicate,
    Skipped,
    DeadLettered,
    Interrupted,
}

/// The name under which the inbox reports on [`Readiness`].
const READINESS_PART: &str = "inbox";

/// The consumer runtime; see the module documentation.
pub struct Inbox<H: Handler> {
    pool: PgPool,
    handler: Arc<H>,
    kafka: KafkaSettings,
    settings: InboxSettings,
    metrics: InboxMetrics,
    readiness: Readiness,
    dead_letter: DeadLetter,
    #[cfg(feature = "fault-injection")]
    commits: AtomicU64,
}

impl<H: Handler> Inbox<H> {
    /// An inbox for `handler`, consuming `kafka.topic` in `settings.group_id`,
    /// dead-lettering through `producer`, reporting stalls on `readiness`.
    pub fn new(
        pool: PgPool,
        handler: H,
        kafka: KafkaSettings,
        settings: InboxSettings,
        metrics: InboxMetrics,
        readiness: Readiness,
        producer: FutureProducer,
    ) -> Self {
        let dead_letter = DeadLetter::new(
            producer,
            shared_events::topics::dead_letter(&kafka.topic, &settings.group_id),
            settings.group_id.clone(),
        );
        Inbox {
            pool,
            handler: Arc::new(handler),
            kafka,
            settings,
            metrics,
            readiness,
            dead_letter,
            #[cfg(feature = "fault-injection")]
            commits: AtomicU64::new(0),
        }
    }

    /// The inbox of a consuming service configured by `config`: its
    /// dead-letter producer made, its metrics registered on `registry`.
    pub fn for_service(
        pool: PgPool,
        handler: H,
        config: &crate::consumer::ConsumerConfig,
        registry: &mut prometheus_client::registry::Registry,
        readiness: Readiness,
    ) -> Result<Self, KafkaError> {
        let producer = crate::kafka::producer(&config.kafka, &config.producer)?;
        Ok(Inbox::new(
            pool,
            handler,
            config.kafka.clone(),
            config.inbox.clone(),
            InboxMetrics::register(registry),
            readiness,
            producer,
        ))
    }

    /// The inbox as a service's background task: it consumes until the
    /// service stops, and its failure stops the service.
    pub fn into_task(self) -> platform::app::BackgroundTask {
        platform::app::BackgroundTask::fallible("inbox", move |stop| self.run(stop))
    }

    /// The topics this inbox needs: the source topic and its dead-letter topic.
    pub fn topics(&self) -> Vec<TopicSpec> {
        vec![
            self.kafka.topic_spec(&self.kafka.topic),
            self.kafka.topic_spec(self.dead_letter.topic()),
        ]
    }

    /// Consumes until `shutdown` fires (then commits stored offsets and
    /// returns `Ok`), or until an injected fault stops it.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), InboxError> {
        if !ensure_topics_patiently(
            &self.kafka,
            &self.topics(),
            self.settings.max_backoff,
            &shutdown,
        )
        .await
        {
            return Ok(());
        }
        let consumer: StreamConsumer<InboxContext> = self
            .kafka
            .client_config()
            .set("group.id", &self.settings.group_id)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", &self.settings.auto_offset_reset)
            .set(
                "auto.commit.interval.ms",
                self.settings.auto_commit_interval.as_millis().to_string(),
            )
            .set(
                "fetch.wait.max.ms",
                self.settings.fetch_wait_max.as_millis().to_string(),
            )
            .set(
                "session.timeout.ms",
                self.settings.session_timeout.as_millis().to_string(),
            )
            // A third of the session timeout, as Kafka recommends.
            .set(
                "heartbeat.interval.ms",
                (self.settings.session_timeout.as_millis() / 3)
                    .max(100)
                    .to_string(),
            )
            .set("statistics.interval.ms", "5000")
            .create_with_context(InboxContext {
                metrics: self.metrics.clone(),
            })?;
        consumer.subscribe(&[&self.kafka.topic])?;
        tracing::info!(topic = %self.kafka.topic, group = %self.settings.group_id, "inbox consuming");

        let purge = tokio::spawn(purge_processed(
            self.pool.clone(),
            self.settings.clone(),
            self.metrics.clone(),
            shutdown.clone(),
        ));
        let mut errors = Backoff::new(Duration::from_millis(50), CONSUMER_ERROR_MAX_BACKOFF);
        let result = loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                m = consumer.recv() => m,
            };
            let record = match message {
                Ok(m) => m.detach(),
                Err(e) => {
                    let delay = errors.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "consumer error");
                    tokio::select! {
                        () = shutdown.cancelled() => break Ok(()),
                        () = tokio::time::sleep(delay) => continue,
                    }
                }
            };
            errors.reset();
            let span = tracing::info_span!(
                "record",
                topic = record.topic(),
                partition = record.partition(),
                offset = record.offset(),
                event_id = tracing::field::Empty,
                event_type = tracing::field::Empty,
                order_id = tracing::field::Empty,
                trace_id = tracing::field::Empty,
            );
            let outcome = self.process(&record, &shutdown).instrument(span).await;
            #[cfg(feature = "fault-injection")]
            if matches!(outcome, Outcome::Applied) {
                match self.fault_fires() {
                    Some(Fault::AbortProcessAfterCommit(_)) => {
                        tracing::error!(
                            "injected fault: aborting after commit, before offset store"
                        );
                        std::process::abort();
                    }
                    Some(Fault::StopAfterCommit(_)) => break Err(InboxError::InjectedStop),
                    None => {}
                }
            }
            match outcome {
                Outcome::Interrupted => break Ok(()),
                Outcome::Applied
                | Outcome::Duplicate
                | Outcome::Skipped
                | Outcome::DeadLettered => {
                    if let Err(e) =
                        consumer.store_offset(record.topic(), record.partition(), record.offset())
                    {
                        // The partition was revoked while we worked on it; its
                        // new owner will see the record again and dedup absorbs it.
                        tracing::warn!(error = %e, partition = record.partition(),
                            offset = record.offset(), "offset not stored (partition revoked?)");
                    }
                }
            }
        };
        purge.abort();
        if result.is_ok() {
            close_within(consumer, CLOSE_TIMEOUT).await;
            tracing::info!("inbox stopped");
        }
        result
    }

    /// The crash point, when this commit is the one it is set at.
    #[cfg(feature = "fault-injection")]
    fn fault_fires(&self) -> Option<Fault> {
        let n = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        self.settings.crash_point().filter(|fault| match fault {
            Fault::AbortProcessAfterCommit(at) | Fault::StopAfterCommit(at) => n == *at,
        })
    }

    async fn process(&self, record: &OwnedMessage, shutdown: &CancellationToken) -> Outcome {
        let span = tracing::Span::current();
        if let Some(tp) = traceparent(record) {
            span.record("trace_id", tp.trace_id());
        }
        let Some(value) = record.payload() else {
            return self.reject(record, "record has no value", shutdown).await;
        };
        let envelope = match RawEnvelope::from_slice(value) {
            Ok(e) => e,
            Err(e) => {
                return self
                    .reject(record, &platform::error::chain(&e), shutdown)
                    .await;
            }
        };
        span.record("event_id", tracing::field::display(envelope.event_id));
        span.record("event_type", envelope.event_type.as_str());
        span.record("order_id", tracing::field::display(envelope.order_id));
        let event = match self.handler.decode(&envelope) {
            Ok(Some(event)) => event,
            Ok(None) => {
                tracing::debug!("event type not handled here; skipped");
                self.metrics.skipped.inc();
                return Outcome::Skipped;
            }
            Err(rejection) => return self.reject(record, &rejection.0, shutdown).await,
        };
        let meta = EventMeta {
            event_id: envelope.event_id,
            event_type: envelope.event_type.clone(),
            schema_version: envelope.schema_version,
            order_id: envelope.order_id,
            occurred_at: envelope.occurred_at,
        };
        let mut backoff = Backoff::new(Duration::from_millis(100), self.settings.max_backoff);
        let mut stalled = false;
        let outcome = loop {
            match self.apply_once(&meta, &event).await {
                Ok(true) => {
                    self.metrics.processed.inc();
                    break Outcome::Applied;
                }
                Ok(false) => {
                    tracing::info!("duplicate event; effect already applied");
                    self.metrics.duplicates.inc();
                    break Outcome::Duplicate;
                }
                Err(ApplyError::Invalid(reason)) => {
                    break self.reject(record, &reason, shutdown).await;
                }
                Err(ApplyError::Database(e)) => {
                    // The service's failure, not the record's: hold this
                    // record (and with it the offset) until the database
                    // takes the work again.
                    self.metrics.retries.inc();
                    self.metrics.stalled.set(1);
                    stalled = true;
                    let delay = backoff.next_delay();
                    let at = format!(
                        "{}[{}]@{}",
                        record.topic(),
                        record.partition(),
                        record.offset()
                    );
                    if platform::db::is_transient(&e) {
                        tracing::warn!(error = %e, retry_in = ?delay, "database unavailable; retrying the same record");
                        self.readiness.not_ready(
                            READINESS_PART,
                            format!("the database is unavailable; retrying the record at {at}"),
                        );
                    } else {
                        tracing::error!(error = %e, retry_in = ?delay,
                            "the database refuses the effect (a privilege, the schema?); \
                             retrying the same record until it is fixed, nothing is skipped");
                        let code = sqlstate(&e)
                            .map(|c| format!(" (SQLSTATE {c})"))
                            .unwrap_or_default();
                        self.readiness.not_ready(
                            READINESS_PART,
                            format!("the database refuses the effects{code}; retrying the record at {at}"),
                        );
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => break Outcome::Interrupted,
                        () = tokio::time::sleep(delay) => {},
                    }
                }
            }
        };
        if stalled && !matches!(outcome, Outcome::Interrupted) {
            tracing::info!("the database takes the effects again; resuming");
            self.metrics.stalled.set(0);
            self.readiness.ready(READINESS_PART);
        }
        outcome
    }

    /// One attempt: dedup record and effect in one transaction. `Ok(false)`
    /// for a duplicate.
    async fn apply_once(&self, meta: &EventMeta, event: &H::Event) -> Result<bool, ApplyError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
        )
        .bind(&self.settings.group_id)
        .bind(meta.event_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        self.handler.apply(&mut tx, meta, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn reject(
        &self,
        record: &OwnedMessage,
        reason: &str,
        shutdown: &CancellationToken,
    ) -> Outcome {
        tracing::warn!(
            reason,
            dlq = self.dead_letter.topic(),
            "poison record dead-lettered"
        );
        let mut backoff = Backoff::new(Duration::from_millis(100), self.settings.max_backoff);
        let mut without_value = false;
        loop {
            let sent = if without_value {
                self.dead_letter.send_without_value(record, reason).await
            } else {
                self.dead_letter.send(record, reason).await
            };
            match sent {
                Ok(()) => {
                    self.metrics.dead_lettered.inc();
                    if without_value {
                        self.metrics.dead_letters_without_value.inc();
                    }
                    return Outcome::DeadLettered;
                }
                Err(e) if crate::dead_letter::refused_for_good(&e) && !without_value => {
                    tracing::warn!(error = %e, partition = record.partition(), offset = record.offset(),
                        "the dead-letter topic refuses this record; writing the dead letter without its value \
                         (the original stays at its offset in the source topic)");
                    without_value = true;
                }
                Err(e) if crate::dead_letter::refused_for_good(&e) => {
                    tracing::error!(error = %e, topic = record.topic(), partition = record.partition(),
                        offset = record.offset(), reason,
                        "the dead-letter topic refuses even the record's reference; not dead-lettered: \
                         the record stays only at this offset in the source topic");
                    self.metrics.dead_letters_unwritten.inc();
                    return Outcome::DeadLettered;
                }
                Err(e) => {
                    self.metrics.retries.inc();
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "dead-letter publish failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return Outcome::Interrupted,
                        () = tokio::time::sleep(delay) => {},
                    }
                }
            }
        }
    }
}

/// The SQLSTATE of a database error, if the server sent one.
fn sqlstate(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

fn traceparent(record: &OwnedMessage) -> Option<TraceParent> {
    let headers = record.headers()?;
    headers
        .iter()
        .find(|h| h.key == headers::TRACEPARENT)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse().ok())
}

async fn purge_processed(
    pool: PgPool,
    settings: InboxSettings,
    metrics: InboxMetrics,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(settings.purge_interval);
    let retention_secs = settings.processed_retention.as_secs_f64();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {},
        }
        // One statement for both tables: the dedup records of this group,
        // and the cancellations remembered for orders whose placement never
        // came within the window.
        let purged: Result<(i64, i64), _> = sqlx::query_as(
            "WITH processed AS (
                 DELETE FROM processed_events
                 WHERE consumer = $1 AND processed_at < now() - make_interval(secs => $2)
                 RETURNING 1
             ), cancellations AS (
                 DELETE FROM cancellations
                 WHERE recorded_at < now() - make_interval(secs => $2)
                 RETURNING 1
             )
             SELECT (SELECT count(*) FROM processed), (SELECT count(*) FROM cancellations)",
        )
        .bind(&settings.group_id)
        .bind(retention_secs)
        .fetch_one(&pool)
        .await;
        match purged {
            Ok((processed, cancellations)) => {
                let rows = u64::try_from(processed + cancellations).unwrap_or(0);
                metrics.purged.inc_by(rows);
                if rows > 0 {
                    tracing::info!(
                        processed,
                        cancellations,
                        "purged records older than the retention window"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "purging old processed-event and cancellation records failed")
            }
        }
    }
}

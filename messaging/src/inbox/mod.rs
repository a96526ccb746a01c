//! The inbox: an idempotent consumer runtime, written once for every service
//! that reacts to order events.
//!
//! A service supplies a [`Handler`]: how to read a record into its own narrow
//! type (tolerant reader: unknown fields ignored, unknown event types skipped
//! and counted) and the effects of a batch of events. The runtime does the
//! rest, a batch at a time:
//!
//! 1. **Natural batching.** Wait for a record, then take whatever else has
//!    already arrived, up to `INBOX_BATCH_MAX`, without waiting to fill the
//!    batch: at low load a batch is one record and latency stays minimal; at
//!    high load batches grow, and one transaction serves many records.
//! 2. **Read.** Decode each envelope and let the handler read it. A record
//!    that cannot be read goes to the [`crate::dead_letter`] topic; its
//!    neighbours go on.
//! 3. **One transaction for the batch.** Lock the batch's orders (sorted, so
//!    concurrent batches cannot deadlock), insert every event id into
//!    `processed_events` in one statement (`ON CONFLICT DO NOTHING RETURNING`:
//!    the ids that come back are new, the rest are duplicates), apply the
//!    effects of the new events (the handler's set-based statements, in
//!    record order), commit. The primary key, not a check-then-insert, makes
//!    this hold under concurrent delivery too. An effect that rejects one
//!    event ([`ApplyError::Invalid`], naming it) dead-letters that event and
//!    the batch is applied again without it.
//! 4. **Offsets after the commit.** Only then store, for each partition, the
//!    highest offset of the batch; librdkafka commits stored offsets in the
//!    background and when a partition is revoked. A crash between 3 and 4
//!    means redelivery, which step 3 absorbs.
//!
//! Every record keeps the guarantees of one-record processing: per-partition
//! order, one effect per event id, the offset only after the effect's commit,
//! and cancellations honoured whichever of an order's events arrives first.
//! A shutdown or a revoke never cuts a batch in half: the batch commits and
//! stores its offsets (then the revoke commits them), or it rolls back and
//! stores none (then its records are delivered again and the dedup absorbs
//! what a previous attempt committed).
//!
//! # Whose fault
//!
//! Only the record's own faults send it to the dead-letter topic: a value
//! that is not an envelope, a key that is not its envelope's `order_id`
//! ([`crate::reader::check_key`]), a payload the service's reader refuses, an effect
//! that rejects the event as invalid ([`ApplyError::Invalid`]). The readers
//! check everything the service's tables would refuse (lengths, ranges, NUL
//! characters), so the database is never the judge of a record. Every
//! database error is the service's own failure (the server away, a revoked
//! privilege, a bad migration): the same batch is retried with capped
//! backoff, never skipped and never committed past, the service reports not
//! ready on `/health/ready` with the reason, `inbox_stalled` is 1 and each
//! attempt is logged (`warn` while the database is away, `error` when it
//! refuses the work); it resumes by itself once the database takes the work
//! again. Kafka refusing the service (a missing ACL on its topic, its group
//! or its dead-letter topic) is the service's fault too: the inbox stalls on
//! the record it could not dead-letter, or reads nothing while its reads are
//! refused, reports not ready with the reason, and resumes by itself once
//! the ACL is back (checking its access every few seconds when no record
//! arrives to show it). A stall longer than `max.poll.interval.ms` (5 min) makes the
//! consumer leave its group until it polls again; its partitions are then
//! redelivered to whoever owns them, and the dedup table absorbs that.
//!
//! A dead letter the dead-letter topic itself refuses for good (too large
//! once the `dlq.*` headers are added, say) is written again without its
//! value, naming where the original stays (source topic, partition and
//! offset) and counted in `inbox_dead_letters_without_value`; if even that
//! is refused it is logged at `error` with the same coordinates and counted
//! in `inbox_dead_letters_unwritten`. The consumer moves on either way: one
//! bad record must not stall every partition. A dead-letter topic that takes
//! nothing at all (deleted, unwritable) is the service's fault, not the
//! record's: the consumer holds the record and retries, reporting the stall
//! as above, until the topic takes the dead letter.
//!
//! A committed offset that is no longer in the log (retention deleted
//! records the group never read) stops its partition and is reported the
//! same way, never reset (the `consumer` module's "Never a silent reset"). The
//! gauge `inbox_oldest_unprocessed_age_seconds` shows a stall growing long
//! before a retention window ends.
//!
//! # Replays
//!
//! Besides the source topic, the group reads its own retry topic
//! (`<topic>.retry.<group>`), where an operator replays the group's dead
//! letters (`orderflow-admin dlq replay`): a replay reaches only the group
//! that refused the record. The retry topic has the source topic's partition
//! count and the same keys, so an order's replays keep their order; against
//! the order's events on the source topic they have none, and need none: the
//! dedup skips a replay of an applied event, and an `OrderPlaced` that comes
//! after its `OrderCancelled` is created cancelled.
//!
//! Processed-event records are purged after a retention window that must be
//! longer than any redelivery can take; a cancellation remembered for an
//! order is kept while the order has no effect in this service
//! ([`Handler::effect_table`]), and purged with the window once it has.
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
//!
//! and `dead_letters`, where each dead letter written is noted (consumer,
//! source topic, partition and offset, key, event type, reason, time) for
//! the read API; see [`crate::dead_letter`].

mod batch;
mod consumer;
mod metrics;
mod purge;
mod settings;
mod stall;

use std::future::Future;
use std::sync::Arc;
#[cfg(feature = "fault-injection")]
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use platform::health::Readiness;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use shared_events::RawEnvelope;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::dead_letter::DeadLetter;
use crate::kafka::{
    KafkaSettings, ProducerSettings, RebuildingProducer, TopicSpec, ensure_topics_patiently,
    partition_count,
};

pub use metrics::InboxMetrics;
#[cfg(feature = "fault-injection")]
pub use settings::Fault;
pub use settings::InboxSettings;

/// The inbox's own tables (`processed_events`, `cancellations`, `dead_letters`), applied in
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

/// Why a batch's effects could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// One event breaks the service's rules: dead-letter it, apply the rest.
    #[error("event {index} of the batch was rejected: {reason}")]
    Invalid {
        /// Its position in the events given to [`Handler::apply`].
        index: usize,
        /// Why, for the dead letter.
        reason: String,
    },
    /// The database failed: the service's fault, never the records'; the
    /// batch is retried until the database takes the work.
    #[error("the database did not apply the effects")]
    Database(#[from] sqlx::Error),
}

/// One new event of a batch, as [`Handler::apply`] receives it.
#[derive(Debug)]
pub struct NewEvent<'a, E> {
    /// What the runtime read from the envelope.
    pub meta: &'a EventMeta,
    /// The service's own view of the event.
    pub event: &'a E,
}

/// What a consuming service supplies: its reader and its effects.
pub trait Handler: Send + Sync + 'static {
    /// The service's own, narrow view of an event.
    type Event: Send + Sync;

    /// Reads the envelope into the service's view: `Ok(None)` for event types
    /// the service does not handle (skipped and counted), `Err` for records it
    /// can never process (dead-lettered).
    fn decode(&self, envelope: &RawEnvelope) -> Result<Option<Self::Event>, Rejection>;

    /// The table of this service's effects, one row per order in its
    /// `order_id` column (`invoices`, `shipments`): a remembered
    /// cancellation is kept while its order has no row there, so that a
    /// placement replayed however late is still created cancelled.
    fn effect_table(&self) -> &'static str;

    /// Applies the effects of `events` (each new, in record order) on `conn`,
    /// inside the transaction that records them as processed and that holds
    /// the lock of each of their orders. Must not commit. Set-based
    /// statements serve the whole batch in a round trip each.
    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        events: &'a [NewEvent<'a, Self::Event>],
    ) -> impl Future<Output = Result<(), ApplyError>> + Send + 'a;
}

/// Why the inbox stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// Kafka client creation or subscription failed.
    #[error("the Kafka consumer could not be created or subscribed")]
    Kafka(#[from] KafkaError),
    /// A [`Fault::StopAfterCommit`] fired.
    #[cfg(feature = "fault-injection")]
    #[error("injected fault: stopped after a commit, before storing its offsets")]
    InjectedStop,
}

/// How often a consumer that Kafka refuses checks whether its access is back,
/// when no record arrives to show it.
const ACCESS_PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// The consumer runtime; see the module documentation.
pub struct Inbox<H: Handler> {
    pool: PgPool,
    handler: Arc<H>,
    kafka: KafkaSettings,
    settings: InboxSettings,
    metrics: InboxMetrics,
    stall: stall::Stall,
    dead_letter: DeadLetter,
    retry_topic: String,
    #[cfg(feature = "fault-injection")]
    commits: AtomicU64,
}

impl<H: Handler> Inbox<H> {
    /// An inbox for `handler`, consuming `kafka.topic` in `settings.group_id`,
    /// dead-lettering through `producer` (replaced after a fatal error),
    /// reporting stalls on `readiness`.
    pub fn new(
        pool: PgPool,
        handler: H,
        kafka: KafkaSettings,
        settings: InboxSettings,
        metrics: InboxMetrics,
        readiness: Readiness,
        producer: RebuildingProducer,
    ) -> Self {
        let dead_letter = DeadLetter::new(
            producer,
            shared_events::topics::dead_letter(&kafka.topic, &settings.group_id),
            settings.group_id.clone(),
        );
        let retry_topic = shared_events::topics::retry(&kafka.topic, &settings.group_id);
        let stall = stall::Stall::new(readiness, metrics.stalled.clone());
        Inbox {
            pool,
            handler: Arc::new(handler),
            kafka,
            settings,
            metrics,
            stall,
            dead_letter,
            retry_topic,
            #[cfg(feature = "fault-injection")]
            commits: AtomicU64::new(0),
        }
    }

    /// The inbox of a consuming service reading `kafka` with `settings`: its
    /// dead-letter producer made with `producer`, its metrics registered on
    /// `registry`.
    pub fn for_service(
        pool: PgPool,
        handler: H,
        kafka: &KafkaSettings,
        producer: &ProducerSettings,
        settings: &InboxSettings,
        registry: &mut prometheus_client::registry::Registry,
        readiness: Readiness,
    ) -> Result<Self, KafkaError> {
        let rebuilds = prometheus_client::metrics::counter::Counter::default();
        registry.register(
            "inbox_dead_letter_producer_rebuilds",
            "Dead-letter producers replaced after a fatal error (a fenced idempotent producer, say)",
            rebuilds.clone(),
        );
        let producer = RebuildingProducer::new(kafka, producer, rebuilds)?;
        Ok(Inbox::new(
            pool,
            handler,
            kafka.clone(),
            settings.clone(),
            InboxMetrics::register(registry),
            readiness,
            producer,
        ))
    }

    /// The inbox as a service's background task: it consumes until the
    /// service stops, and its failure stops the service.
    pub fn into_task(self) -> platform::task::BackgroundTask {
        platform::task::BackgroundTask::fallible("inbox", move |stop| self.run(stop))
    }

    /// The topics this inbox needs besides its retry topic: the source topic
    /// and its dead-letter topic, each with its retention.
    pub fn topics(&self) -> Vec<TopicSpec> {
        vec![
            self.kafka.topic_spec(&self.kafka.topic),
            self.kafka
                .topic_spec(self.dead_letter.topic())
                .retained_for(self.settings.dead_letter_retention),
        ]
    }

    /// The group's retry topic, `<topic>.retry.<group>`: where an operator
    /// replays this group's dead letters, read by this group only. It has
    /// `partitions` partitions, the source topic's count, so that it spreads
    /// orders as the source topic does.
    pub fn retry_topic(&self, partitions: i32) -> TopicSpec {
        self.kafka
            .topic_spec(&self.retry_topic)
            .with_partitions(partitions)
            .retained_for(self.settings.retry_retention)
    }

    /// Creates the topics this inbox needs unless they exist, retrying until
    /// the brokers take it; `false` if `shutdown` came first.
    async fn provision(&self, shutdown: &CancellationToken) -> bool {
        let patience = self.settings.max_backoff;
        if !ensure_topics_patiently(&self.kafka, &self.topics(), patience, shutdown).await {
            return false;
        }
        // The source topic may have been created by someone else, with
        // another count than configured: the retry topic copies what it has.
        let partitions = match partition_count(&self.kafka, &self.kafka.topic).await {
            Ok(partitions) => partitions,
            Err(e) => {
                tracing::warn!(error = %platform::error::chain(&e),
                    "the source topic's partition count is unknown; the retry topic gets the configured count");
                self.kafka.partitions
            }
        };
        ensure_topics_patiently(
            &self.kafka,
            &[self.retry_topic(partitions)],
            patience,
            shutdown,
        )
        .await
    }

    /// Consumes until `shutdown` fires (then commits stored offsets and
    /// returns `Ok`), or until an injected fault stops it.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), InboxError> {
        if !self.provision(&shutdown).await {
            return Ok(());
        }
        let consumer = consumer::subscribe(
            &self.kafka,
            &self.settings,
            self.metrics.clone(),
            &[&self.kafka.topic, &self.retry_topic],
        )?;
        tracing::info!(topic = %self.kafka.topic, retry_topic = %self.retry_topic,
            group = %self.settings.group_id, "inbox consuming");
        if !self.settings.deduplicates() {
            tracing::warn!(
                "FAULT_DEDUP_OFF: the inbox applies every delivery, redeliveries included; \
                 effects will be applied twice (fault-injection build, for the audit's self-test)"
            );
        }

        let purge = tokio::spawn(purge::purge_processed(
            self.pool.clone(),
            self.settings.clone(),
            self.handler.effect_table(),
            self.metrics.clone(),
            shutdown.clone(),
        ));
        let reset = Arc::new(tokio::sync::Notify::new());
        let placing = tokio::spawn(consumer::keep_placed(
            Arc::clone(&consumer),
            Arc::clone(&reset),
            self.stall.clone(),
            self.settings.max_backoff,
            shutdown.clone(),
        ));
        let result = self.consume(&consumer, &reset, &shutdown).await;
        purge.abort();
        placing.abort();
        // The placing task's handle must be gone before the consumer closes.
        let _ = placing.await;
        if result.is_ok() {
            consumer::close_within(consumer, consumer::CLOSE_TIMEOUT).await;
            tracing::info!("inbox stopped");
        }
        result
    }

    /// The batch loop: take a batch, process it, store its offsets.
    async fn consume(
        &self,
        consumer: &consumer::InboxConsumer,
        reset: &tokio::sync::Notify,
        shutdown: &CancellationToken,
    ) -> Result<(), InboxError> {
        let mut errors = Backoff::new(
            Duration::from_millis(50),
            consumer::CONSUMER_ERROR_MAX_BACKOFF,
        );
        let mut denied = false;
        loop {
            let records = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                batch = self.next_batch(consumer) => Some(batch),
                // Refused, librdkafka retries on its own, but an idle topic
                // would bring no record to show that the access is back.
                () = tokio::time::sleep(ACCESS_PROBE_INTERVAL), if denied => None,
            };
            let records = match records {
                Some(Ok(records)) => {
                    errors.reset();
                    if denied {
                        denied = false;
                        self.access_restored();
                    }
                    records
                }
                Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => {
                    // A partition whose offset is out of range: stopped by
                    // librdkafka, reported by the placing task; the rest go on.
                    tracing::debug!("a partition needs placing (auto.offset.reset=error)");
                    reset.notify_one();
                    continue;
                }
                Some(Err(e)) => {
                    let delay = errors.next_delay();
                    if let Some(code) = crate::kafka::denied(&e) {
                        denied = true;
                        tracing::error!(error = %e, retry_in = ?delay,
                            "Kafka refuses this service's reads (an ACL?); nothing is read or skipped until it is fixed");
                        self.stall.stop(
                            stall::Cause::KafkaAccess,
                            format!(
                                "Kafka refuses this service's reads of {} in group {} ({code})",
                                self.kafka.topic, self.settings.group_id
                            ),
                        );
                    } else {
                        tracing::warn!(error = %e, retry_in = ?delay, "consumer error");
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep(delay) => continue,
                    }
                }
                None => {
                    if self.may_read().await {
                        denied = false;
                        self.access_restored();
                    }
                    continue;
                }
            };
            self.metrics.oldest_unprocessed.hold(&records);
            let span = tracing::info_span!("batch", records = records.len());
            let processed = self.process(&records, shutdown).instrument(span).await;
            if processed == batch::Processed::Interrupted {
                return Ok(());
            }
            #[cfg(feature = "fault-injection")]
            match self.fault_fires() {
                Some(Fault::AbortProcessAfterCommit(_)) => {
                    tracing::error!("injected fault: aborting after commit, before offset store");
                    std::process::abort();
                }
                Some(Fault::StopAfterCommit(_)) => return Err(InboxError::InjectedStop),
                None => {}
            }
            store_offsets(consumer, &records);
            self.metrics.oldest_unprocessed.release();
        }
    }

    /// Reports ready again once Kafka takes this service's reads.
    fn access_restored(&self) {
        tracing::info!("Kafka takes this service's reads again; resuming");
        self.stall.resume(stall::Cause::KafkaAccess);
    }

    /// Whether this service may read its topic and its group's offsets now:
    /// a metadata request for the topic and an offset fetch in the group,
    /// as the service's principal.
    async fn may_read(&self) -> bool {
        let mut config = self.kafka.client_config();
        config.set("group.id", &self.settings.group_id);
        let topic = self.kafka.topic.clone();
        let probe = tokio::task::spawn_blocking(move || -> Result<(), KafkaError> {
            let client: rdkafka::consumer::BaseConsumer = config.create()?;
            let timeout = Duration::from_secs(5);
            let metadata = client.fetch_metadata(Some(&topic), timeout)?;
            if let Some(error) = metadata.topics().iter().find_map(|t| t.error()) {
                return Err(KafkaError::MetadataFetch(error.into()));
            }
            let mut partitions = TopicPartitionList::new();
            partitions.add_partition(&topic, 0);
            client.committed_offsets(partitions, timeout)?;
            Ok(())
        });
        matches!(probe.await, Ok(Ok(())))
    }

    /// Waits for a record, then takes what else has already arrived, up to
    /// the batch cap, without waiting for more.
    async fn next_batch(
        &self,
        consumer: &consumer::InboxConsumer,
    ) -> Result<Vec<OwnedMessage>, KafkaError> {
        let first = consumer.recv().await?.detach();
        let cap = usize::try_from(self.settings.batch_max).unwrap_or(usize::MAX);
        let mut records = vec![first];
        while records.len() < cap {
            match tokio::time::timeout(Duration::ZERO, consumer.recv()).await {
                Ok(Ok(record)) => records.push(record.detach()),
                // An error report (a lost connection, say): the batch so far
                // is processed, and the next wait meets the error again if it lasts.
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "consumer error while filling a batch");
                    break;
                }
                Err(_nothing_more_yet) => break,
            }
        }
        Ok(records)
    }

    /// The crash point, when this batch commit is the one it is set at.
    #[cfg(feature = "fault-injection")]
    fn fault_fires(&self) -> Option<Fault> {
        let n = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        self.settings.crash_point().filter(|fault| match fault {
            Fault::AbortProcessAfterCommit(at) | Fault::StopAfterCommit(at) => n == *at,
        })
    }
}

/// Stores, for each partition of `records`, the offset after its highest
/// record. A partition revoked meanwhile refuses: its new owner reads the
/// records again, and the dedup table absorbs them.
fn store_offsets(consumer: &consumer::InboxConsumer, records: &[OwnedMessage]) {
    let mut highest: std::collections::BTreeMap<(&str, i32), i64> = Default::default();
    for record in records {
        let offset = highest
            .entry((record.topic(), record.partition()))
            .or_insert(record.offset());
        *offset = (*offset).max(record.offset());
    }
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), offset) in highest {
        // The next offset to read, as a commit records it.
        if let Err(e) = offsets.add_partition_offset(topic, partition, Offset::Offset(offset + 1)) {
            tracing::warn!(error = %e, topic, partition, offset, "offset not stored");
        }
    }
    if let Err(e) = consumer.store_offsets(&offsets) {
        tracing::warn!(error = %e, "offsets not stored (partitions revoked?); the records will be delivered again");
    }
}

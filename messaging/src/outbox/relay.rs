//! The relay: turns committed outbox rows into Kafka records.
//!
//! Only one relay per database is active ([`super::leadership`]); the
//! others wait for its lock.
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
//! ([`super::Wakeup`], [`super::wakeup`]), and polls as a fallback, because a
//! notification sent while the listener reconnects is lost.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use platform::health::Readiness;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use sqlx::{Connection, FromRow, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::bench::{Bench, Change};
use super::leadership::RelayLock;
use super::metrics::{RelayMetrics, update_gauges};
#[cfg(feature = "fault-injection")]
use super::settings::FatalErrorSwitch;
use super::settings::RelaySettings;
use super::wakeup::{Wakeup, listen, notify_other_instances, wait_for_notification};
use super::waves::{Delivered, Late, RowOutcome, take_reported};
use crate::backoff::Backoff;
use crate::kafka::{KafkaSettings, ProducerSettings, RebuildingProducer, ensure_topics_patiently};

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

/// A claimed outbox row: what the relay publishes.
#[derive(Debug, Clone, FromRow)]
pub(super) struct OutboxRow {
    pub(super) id: i64,
    pub(super) event_id: Uuid,
    pub(super) topic: String,
    pub(super) record_key: String,
    pub(super) event_type: String,
    pub(super) schema_version: i32,
    pub(super) payload: String,
    pub(super) traceparent: Option<String>,
}

/// The name under which the relay reports on [`Readiness`].
const READINESS_PART: &str = "relay";

/// The session that holds the relay lock, if this instance is the active
/// relay, and what the relay carries from one batch to the next.
struct Leadership {
    lock: RelayLock,
    /// Records of earlier batches still in flight.
    late: Vec<Late>,
    /// The partitions kept out of the claim.
    bench: Bench,
}

/// Publishes outbox rows to Kafka; see the module documentation.
pub struct Relay {
    pool: PgPool,
    pub(super) kafka: KafkaSettings,
    pub(super) producer: RebuildingProducer,
    settings: RelaySettings,
    metrics: RelayMetrics,
    wakeup: Wakeup,
    readiness: Readiness,
    leadership: tokio::sync::Mutex<Leadership>,
    /// The CloudEvents `ce_source` of every record: `/<client.id>`, i.e. `/order-service`.
    pub(super) source: String,
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
                lock: RelayLock::default(),
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
        // Closing the session releases the lock at once for another instance.
        self.leadership.into_inner().lock.release().await;
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
    pub(super) fn log_bench(&self, partition: Option<i32>, change: Change, detail: &str) {
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
    pub(super) fn check_partition(&self, computed: Option<i32>, at: &Delivered) {
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
            leadership.lock.forget();
        }
        self.wakeup.set_leading(leadership.lock.held());
        if leadership.lock.held() || outcome.is_err() {
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
        let Leadership { lock, late, bench } = leadership;
        let Some(conn) = lock.take(&self.pool, self.settings.lock_key).await? else {
            // Another instance is the active relay; it publishes these rows.
            return Ok(BatchOutcome::default());
        };
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
}

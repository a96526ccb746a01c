//! The inbox's Kafka consumer: how it is configured, what its callbacks
//! report (rebalances, commit failures, lag), where it starts on a partition
//! ([`place`]), and how it is closed.
//!
//! # Never a silent reset
//!
//! librdkafka's `auto.offset.reset=earliest` serves two cases alike: a group
//! that never committed on a partition (a new group: start at the first
//! record), and a committed offset that is no longer in the log (retention
//! deleted records the group never read: start at the first record left,
//! skipping the rest without a word). Only the first is harmless. So the
//! consumer runs with `auto.offset.reset=error`, and tells the cases apart
//! itself. When partitions are assigned, it looks up the group's committed
//! offsets, and gives each partition without one the start of a new group
//! (`KAFKA_AUTO_OFFSET_RESET`) in the assignment itself: librdkafka cannot
//! seek a partition it has stopped on the error, so the start must be
//! decided before. A committed offset outside the log then makes librdkafka
//! stop that partition and report `ERR__AUTO_OFFSET_RESET`; [`place`] finds
//! it and reports it, the partition stays stopped, and the inbox is not
//! ready and logs the partition and how many records are gone.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
    StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::InboxMetrics;
use super::settings::InboxSettings;
use crate::kafka::{KafkaSettings, Rebootstrap, STATISTICS_INTERVAL_MS};

/// The inbox's consumer, shared with the task that places its partitions.
pub(super) type InboxConsumer = Arc<StreamConsumer<InboxContext>>;

/// The consumer of `settings.group_id` on `kafka`'s brokers, subscribed to
/// `topics` (the source topic and the group's retry topic). Offsets are
/// committed automatically, but only those the inbox stored after its batch
/// committed (`enable.auto.offset.store=false`).
pub(super) fn subscribe(
    kafka: &KafkaSettings,
    settings: &InboxSettings,
    metrics: InboxMetrics,
    topics: &[&str],
) -> Result<InboxConsumer, KafkaError> {
    let mut config = kafka.client_config();
    config
        .set("group.id", &settings.group_id)
        .set("group.protocol", &settings.group_protocol)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        // Never reset by itself: see the module documentation and [`place`].
        .set("auto.offset.reset", "error")
        .set(
            "auto.commit.interval.ms",
            settings.auto_commit_interval.as_millis().to_string(),
        )
        .set(
            "fetch.wait.max.ms",
            settings.fetch_wait_max.as_millis().to_string(),
        )
        .set("fetch.min.bytes", settings.fetch_min_bytes.to_string())
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
    // Under KIP-848 the broker owns the session and the heartbeat
    // (group.consumer.session.timeout.ms, group.consumer.heartbeat.interval.ms)
    // and librdkafka refuses to create a consumer that sets them.
    if settings.group_protocol == "consumer" {
        // The broker's default assignor (uniform) balances the count of
        // partitions over both topics, and may give one instance every
        // partition of the source topic and the other the retry topic's:
        // range splits each topic over the instances, as the classic
        // protocol's range assignor does.
        config.set("group.remote.assignor", "range");
    }
    if settings.group_protocol == "classic" {
        config
            .set(
                "session.timeout.ms",
                settings.session_timeout.as_millis().to_string(),
            )
            // A third of the session timeout, as Kafka recommends.
            .set(
                "heartbeat.interval.ms",
                (settings.session_timeout.as_millis() / 3)
                    .max(100)
                    .to_string(),
            );
    }
    let rebootstrap = Rebootstrap::new(&kafka.bootstrap_servers);
    let binder = rebootstrap.binder();
    let consumer: StreamConsumer<InboxContext> = config.create_with_context(InboxContext {
        metrics,
        new_group_start: new_group_start(settings),
        unplaced: std::sync::Mutex::default(),
        rebootstrap,
    })?;
    binder.attach(consumer.client());
    consumer.subscribe(topics)?;
    Ok(Arc::new(consumer))
}

/// Where a group starts a partition it has no committed offset on.
fn new_group_start(settings: &InboxSettings) -> Offset {
    match settings.auto_offset_reset.as_str() {
        "latest" => Offset::End,
        _ => Offset::Beginning,
    }
}

/// A partition whose next record is no longer in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OutOfRange {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Where the group would read next (its position, else its committed offset).
    pub next: i64,
    /// The first offset still in the log.
    pub log_start: i64,
    /// The offset after the last record in the log.
    pub log_end: i64,
}

impl OutOfRange {
    /// How many records the group never read are gone (0 when the offset is
    /// beyond the log's end, after the log was truncated).
    pub fn skipped(&self) -> i64 {
        (self.log_start - self.next).max(0)
    }
}

impl std::fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}[{}] would read next at offset {}, but the log starts at offset {} (and ends before {})",
            self.topic, self.partition, self.next, self.log_start, self.log_end
        )
    }
}

/// How long one offset or watermark request may take.
const PLACE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an assigned partition does not advance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stopped {
    /// Its next offset is outside the log.
    OutOfRange(OutOfRange),
    /// librdkafka stopped it, but the group has no offset for it: the
    /// committed offsets could not be read when it was assigned. It starts
    /// at its next assignment (a restart of the service).
    Unplaced {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stopped::OutOfRange(o) => write!(f, "{o}: {} record(s) would be skipped", o.skipped()),
            Stopped::Unplaced { topic, partition } => write!(
                f,
                "{topic}[{partition}] has no committed offset and was not placed when assigned \
                 (its committed offset could not be read then); restart the service"
            ),
        }
    }
}

/// The assigned partitions that do not advance, after librdkafka met
/// `auto.offset.reset=error` on some of them (it does not say which, so all
/// are looked at): those whose next offset (position, else committed
/// offset) is outside the log, and those with none at all. Blocking: run it
/// off the async workers.
pub(super) fn place(consumer: &StreamConsumer<InboxContext>) -> Result<Vec<Stopped>, KafkaError> {
    let assignment = consumer.assignment()?;
    let committed = consumer.committed_offsets(assignment.clone(), PLACE_TIMEOUT)?;
    let positions = consumer.position()?;
    let mut stopped = Vec::new();
    for assigned in assignment.elements() {
        let (topic, partition) = (assigned.topic(), assigned.partition());
        let offset_in = |list: &TopicPartitionList| match list
            .find_partition(topic, partition)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        };
        let Some(next) = offset_in(&positions).or_else(|| offset_in(&committed)) else {
            // A partition that started where a new group starts, and has
            // not delivered a record yet, has no position either: only a
            // partition librdkafka met the error on is stopped.
            if assigned_without_start(consumer, topic, partition) {
                stopped.push(Stopped::Unplaced {
                    topic: topic.to_owned(),
                    partition,
                });
            }
            continue;
        };
        let (log_start, log_end) = consumer.fetch_watermarks(topic, partition, PLACE_TIMEOUT)?;
        if !(log_start..=log_end).contains(&next) {
            stopped.push(Stopped::OutOfRange(OutOfRange {
                topic: topic.to_owned(),
                partition,
                next,
                log_start,
                log_end,
            }));
        }
    }
    Ok(stopped)
}

/// Whether `topic[partition]` was assigned without a start (no committed
/// offset, and the lookup at assignment failed): the context remembers the
/// partitions it gave a start to.
fn assigned_without_start(
    consumer: &StreamConsumer<InboxContext>,
    topic: &str,
    partition: i32,
) -> bool {
    consumer
        .context()
        .unplaced
        .lock()
        .is_ok_and(|unplaced| unplaced.contains(&(topic.to_owned(), partition)))
}

/// Rebalance and statistics callbacks of the inbox's consumer.
pub(super) struct InboxContext {
    metrics: InboxMetrics,
    /// Where a partition without a committed offset starts.
    new_group_start: Offset,
    /// Partitions assigned while their committed offsets could not be read
    /// (so none was given a start): see [`place`].
    unplaced: std::sync::Mutex<std::collections::HashSet<(String, i32)>>,
    /// Gives the consumer its bootstrap servers back when it has no broker left.
    rebootstrap: Rebootstrap,
}

impl InboxContext {
    /// Gives each partition of `assigned` that the group has no committed
    /// offset on the start of a new group; the others keep theirs (an
    /// unset offset: librdkafka reads the committed one). Runs in the
    /// rebalance callback, before the partitions are assigned.
    fn start_new_partitions(
        &self,
        consumer: &BaseConsumer<Self>,
        assigned: &mut TopicPartitionList,
    ) {
        let committed = consumer.committed_offsets(assigned.clone(), PLACE_TIMEOUT);
        let Ok(mut unplaced) = self.unplaced.lock() else {
            return;
        };
        let committed = match committed {
            Ok(committed) => committed,
            Err(e) => {
                tracing::error!(error = %e, partitions = %describe(assigned),
                    "the committed offsets of the assigned partitions could not be read; a partition \
                     without one stops (reported) until it is assigned again");
                unplaced.extend(
                    assigned
                        .elements()
                        .iter()
                        .map(|e| (e.topic().to_owned(), e.partition())),
                );
                return;
            }
        };
        for element in committed.elements() {
            let (topic, partition) = (element.topic(), element.partition());
            unplaced.remove(&(topic.to_owned(), partition));
            if !matches!(element.offset(), Offset::Offset(_)) {
                tracing::info!(topic, partition, start = ?self.new_group_start,
                    "no committed offset on this partition (a new group, or a new topic of it): \
                     starting where a new group starts");
                if let Err(e) =
                    assigned.set_partition_offset(topic, partition, self.new_group_start)
                {
                    tracing::warn!(error = %e, topic, partition, "setting the start of a new partition");
                }
            }
        }
    }
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
        self.rebootstrap.check(&statistics);
    }
}

impl ConsumerContext for InboxContext {
    /// rdkafka's own rebalance, with the start of partitions that have no
    /// committed offset set in the assignment first (see the module
    /// documentation: with `auto.offset.reset=error`, nothing else starts
    /// them).
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let (rebalance, changed) = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.start_new_partitions(consumer, partitions);
                let rebalance = Rebalance::Assign(partitions);
                self.pre_rebalance(consumer, &rebalance);
                let assigned = if cooperative {
                    consumer.incremental_assign(partitions)
                } else {
                    consumer.assign(partitions)
                };
                (Rebalance::Assign(partitions), assigned)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let rebalance = Rebalance::Revoke(partitions);
                self.pre_rebalance(consumer, &rebalance);
                let revoked = if cooperative {
                    consumer.incremental_unassign(partitions)
                } else {
                    consumer.unassign()
                };
                (Rebalance::Revoke(partitions), revoked)
            }
            other => {
                let rebalance = Rebalance::Error(KafkaError::Rebalance(other.into()));
                self.pre_rebalance(consumer, &rebalance);
                // As rdkafka does: an error drops the assignment.
                let dropped = if cooperative {
                    consumer.incremental_unassign(partitions)
                } else {
                    consumer.unassign()
                };
                (rebalance, dropped)
            }
        };
        if let Err(e) = changed {
            tracing::warn!(error = %e, "changing the assignment in the rebalance");
        }
        self.post_rebalance(consumer, &rebalance);
    }

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

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, _rebalance: &Rebalance<'_>) {
        // After an eager (classic) or incremental (KIP-848) change alike, the
        // assignment is what the instance owns now.
        match consumer.assignment() {
            Ok(owned) => {
                let owned = i64::try_from(owned.count()).unwrap_or(i64::MAX);
                self.metrics.assigned.set(owned);
            }
            Err(e) => tracing::debug!(error = %e, "reading the assignment"),
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
pub(super) const CONSUMER_ERROR_MAX_BACKOFF: Duration = Duration::from_millis(500);

/// How long a stopping inbox waits for its final offset commit and for the
/// consumer to leave its group.
pub(super) const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Commits the stored offsets and closes `consumer` (leaving the group) on a
/// thread of its own, waiting at most `timeout`. With the brokers gone,
/// librdkafka's synchronous commit and its close can block indefinitely, and a
/// service asked to stop must stop: after `timeout` the thread is left behind
/// and ends with the process. Offsets not committed then are delivered again
/// to the partitions' next owner, and the dedup table absorbs them.
pub(super) async fn close_within(consumer: InboxConsumer, timeout: Duration) {
    let (closed, on_closed) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("inbox-close".into())
        .spawn(move || {
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %e, "final offset commit");
            }
            // The last handle: dropping it closes the consumer.
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

/// Watches the partitions librdkafka stops: each time `reset` is notified
/// (the consumer met `auto.offset.reset=error`), runs [`place`]; while a
/// partition is stopped, says so through `stall` (logged at `error` once
/// per partition, with the records that would be skipped) and looks again
/// every `recheck` (a revoked partition ends the stall). Ends when
/// `shutdown` fires.
pub(super) async fn keep_placed(
    consumer: InboxConsumer,
    reset: Arc<tokio::sync::Notify>,
    stall: super::stall::Stall,
    recheck: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut reported: Vec<Stopped> = Vec::new();
    let mut failed = false;
    loop {
        let look_again = failed || !reported.is_empty();
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = reset.notified() => {},
            () = tokio::time::sleep(recheck), if look_again => {},
        }
        let placing = Arc::clone(&consumer);
        let placed = tokio::task::spawn_blocking(move || place(&placing)).await;
        let stopped = match placed {
            Ok(Ok(stopped)) => stopped,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, retry_in = ?recheck, "looking at the stopped partitions failed; retrying");
                failed = true;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the task looking at the stopped partitions failed; retrying");
                failed = true;
                continue;
            }
        };
        failed = false;
        for gone in stopped.iter().filter(|o| !reported.contains(o)) {
            match gone {
                Stopped::OutOfRange(gone) => tracing::error!(
                    topic = %gone.topic,
                    partition = gone.partition,
                    next_offset = gone.next,
                    log_start = gone.log_start,
                    log_end = gone.log_end,
                    records_skipped = gone.skipped(),
                    "the partition's next record is no longer in the log (retention deleted what this \
                     group never read); the partition is stopped, nothing is skipped: restore the missing \
                     events or reset the group's offset on purpose (README, delivery guarantees)"
                ),
                Stopped::Unplaced { .. } => {
                    tracing::error!(partition = %gone, "a partition is stopped")
                }
            }
        }
        if stopped.is_empty() {
            if !reported.is_empty() {
                tracing::info!("no partition is stopped any more; resuming");
                stall.resume(super::stall::Cause::Offsets);
            }
        } else {
            let reason = stopped
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            stall.stop(
                super::stall::Cause::Offsets,
                format!("stopped on an offset out of range, never reset: {reason}"),
            );
        }
        reported = stopped;
    }
}

//! The inbox's Kafka consumer: how it is configured, what its callbacks
//! report (rebalances, commit failures, lag), and how it is closed.

use std::time::Duration;

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, TopicPartitionList};

use super::InboxMetrics;
use super::settings::InboxSettings;
use crate::kafka::KafkaSettings;

/// The inbox's consumer.
pub(super) type InboxConsumer = StreamConsumer<InboxContext>;

/// The consumer of `settings.group_id` on `kafka`'s brokers, subscribed to
/// `kafka.topic`. Offsets are committed automatically, but only those the
/// inbox stored after its batch committed (`enable.auto.offset.store=false`).
pub(super) fn subscribe(
    kafka: &KafkaSettings,
    settings: &InboxSettings,
    metrics: InboxMetrics,
) -> Result<InboxConsumer, KafkaError> {
    let mut config = kafka.client_config();
    config
        .set("group.id", &settings.group_id)
        .set("group.protocol", &settings.group_protocol)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", &settings.auto_offset_reset)
        .set(
            "auto.commit.interval.ms",
            settings.auto_commit_interval.as_millis().to_string(),
        )
        .set(
            "fetch.wait.max.ms",
            settings.fetch_wait_max.as_millis().to_string(),
        )
        .set("fetch.min.bytes", settings.fetch_min_bytes.to_string())
        .set("statistics.interval.ms", "5000");
    // Under KIP-848 the broker owns the session and the heartbeat
    // (group.consumer.session.timeout.ms, group.consumer.heartbeat.interval.ms)
    // and librdkafka refuses to create a consumer that sets them.
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
    let consumer: InboxConsumer = config.create_with_context(InboxContext { metrics })?;
    consumer.subscribe(&[&kafka.topic])?;
    Ok(consumer)
}

/// Rebalance and statistics callbacks of the inbox's consumer.
pub(super) struct InboxContext {
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
pub(super) async fn close_within(consumer: StreamConsumer<InboxContext>, timeout: Duration) {
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

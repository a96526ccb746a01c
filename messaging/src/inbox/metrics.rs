//! The inbox's Prometheus metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::{MetricType, TypedMetric};
use rdkafka::Message;
use rdkafka::message::OwnedMessage;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The inbox's Prometheus metrics.
#[derive(Debug, Clone)]
pub struct InboxMetrics {
    pub(super) batches: Histogram,
    pub(super) event_latency: Histogram,
    pub(super) processed: Counter,
    pub(super) duplicates: Counter,
    pub(super) dead_lettered: Counter,
    pub(super) dead_letters_without_value: Counter,
    pub(super) dead_letters_unwritten: Counter,
    pub(super) skipped: Counter,
    pub(super) retries: Counter,
    pub(super) purged: Counter,
    pub(super) lag: Gauge,
    pub(super) stalled: Gauge,
    pub(super) assigned: Gauge,
    pub(super) oldest_unprocessed: OldestUnprocessed,
}

/// The age of the oldest record the inbox holds and has not finished (its
/// offset not stored yet), in seconds when scraped; 0 while it holds none.
///
/// The inbox takes records in arrival order per partition, so the batch in
/// hand holds each of its partitions' head record: while a batch is stuck
/// (the database refusing its effects, the dead-letter topic away) this age
/// grows with the stall, second by second, and it reaches the topic's
/// retention only if the stall does. A consumer that keeps up shows the
/// latency of its batches; one that falls behind shows how far behind its
/// batches' records are. Measured from each record's timestamp (the
/// producer's create time), so the clocks of producer and consumer count.
#[derive(Debug, Clone, Default)]
pub(super) struct OldestUnprocessed {
    /// The oldest held record's timestamp in ms since the epoch; 0 for none.
    since_ms: Arc<AtomicI64>,
}

impl OldestUnprocessed {
    /// The inbox holds `records` until [`OldestUnprocessed::release`].
    pub(super) fn hold(&self, records: &[OwnedMessage]) {
        let oldest = records
            .iter()
            .filter_map(|r| r.timestamp().to_millis())
            .min()
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        self.since_ms.store(oldest, Ordering::Relaxed);
    }

    /// The inbox holds no record.
    pub(super) fn release(&self) {
        self.since_ms.store(0, Ordering::Relaxed);
    }

    /// The age now, in seconds.
    fn age_secs(&self) -> f64 {
        match self.since_ms.load(Ordering::Relaxed) {
            0 => 0.0,
            since => {
                let ms = chrono::Utc::now().timestamp_millis().saturating_sub(since);
                // Milliseconds to seconds: the value is far below 2^52.
                #[allow(clippy::cast_precision_loss)]
                let secs = ms.max(0) as f64 / 1000.0;
                secs
            }
        }
    }
}

impl TypedMetric for OldestUnprocessed {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for OldestUnprocessed {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.age_secs())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

impl Default for InboxMetrics {
    fn default() -> Self {
        InboxMetrics {
            batches: crate::batch_histogram(),
            // 5 ms to about 82 s, doubling.
            event_latency: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.005, 2.0, 15),
            ),
            processed: Counter::default(),
            duplicates: Counter::default(),
            dead_lettered: Counter::default(),
            dead_letters_without_value: Counter::default(),
            dead_letters_unwritten: Counter::default(),
            skipped: Counter::default(),
            retries: Counter::default(),
            purged: Counter::default(),
            lag: Gauge::default(),
            stalled: Gauge::default(),
            assigned: Gauge::default(),
            oldest_unprocessed: OldestUnprocessed::default(),
        }
    }
}

impl InboxMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = InboxMetrics::default();
        registry.register(
            "inbox_batch_records",
            "Records per batch (each batch is one database transaction)",
            m.batches.clone(),
        );
        registry.register(
            "inbox_event_latency_seconds",
            "From an event's occurred_at (its commit in order-service) to the commit of its effect here",
            m.event_latency.clone(),
        );
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
            "1 while the inbox retries a batch because the database refuses or cannot take its effects",
            m.stalled.clone(),
        );
        registry.register(
            "inbox_unknown_skipped",
            "Records of event types this service does not handle",
            m.skipped.clone(),
        );
        registry.register(
            "inbox_retries",
            "Retries of a batch or a dead letter after a failure of the service",
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
        registry.register(
            "inbox_oldest_unprocessed_age_seconds",
            "Age of the oldest record the inbox holds unfinished (from its timestamp), 0 while it holds none: \
             it grows with a stall, long before the topic's retention ends",
            m.oldest_unprocessed.clone(),
        );
        registry.register(
            "inbox_partitions_assigned",
            "Partitions this instance owns in its consumer group",
            m.assigned.clone(),
        );
        m
    }
}

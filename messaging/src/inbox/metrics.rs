//! The inbox's Prometheus metrics.

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
            "inbox_partitions_assigned",
            "Partitions this instance owns in its consumer group",
            m.assigned.clone(),
        );
        m
    }
}

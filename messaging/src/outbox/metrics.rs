//! The relay's Prometheus metrics, and the task that samples the outbox's
//! backlog, parked and held rows for its gauges.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// The relay's Prometheus metrics.
#[derive(Debug, Clone)]
pub struct RelayMetrics {
    pub(super) batches: Histogram,
    pub(super) published: Counter,
    pub(super) publish_errors: Counter,
    pub(super) parked_total: Counter,
    pub(super) backlog: Gauge,
    pub(super) oldest_age_ms: Gauge,
    pub(super) parked: Gauge,
    pub(super) held: Gauge,
    pub(super) batch_in_flight: Gauge,
    pub(super) producer_rebuilds: Counter,
    pub(super) benched: Family<Vec<(String, String)>, Gauge>,
    pub(super) late: Gauge,
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

/// Samples the outbox every second for the gauges, until `shutdown`.
pub(super) async fn update_gauges(
    pool: PgPool,
    metrics: RelayMetrics,
    shutdown: CancellationToken,
) {
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

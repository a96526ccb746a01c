//! The order counters, registered on the service's Prometheus registry and
//! served by the platform's `/metrics` route.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// Counters of what the API did; cloning shares the counters.
#[derive(Debug, Clone, Default)]
pub struct OrderMetrics {
    placed: Counter,
    cancelled: Counter,
    idempotent_replays: Counter,
}

impl OrderMetrics {
    /// Creates the counters and registers them on `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = OrderMetrics::default();
        registry.register(
            "orders_placed",
            "Orders accepted and committed (replays not counted)",
            metrics.placed.clone(),
        );
        registry.register(
            "orders_cancelled",
            "Orders cancelled (repeated cancels not counted)",
            metrics.cancelled.clone(),
        );
        registry.register(
            "orders_idempotent_replays",
            "POST /orders retries answered with the order an earlier request placed",
            metrics.idempotent_replays.clone(),
        );
        metrics
    }

    /// Counts a newly placed order.
    pub fn order_placed(&self) {
        self.placed.inc();
    }

    /// Counts a cancellation that changed an order.
    pub fn order_cancelled(&self) {
        self.cancelled.inc();
    }

    /// Counts a retry answered from an earlier request.
    pub fn idempotent_replay(&self) {
        self.idempotent_replays.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_the_exposition() {
        let mut registry = Registry::default();
        let metrics = OrderMetrics::register(&mut registry);
        metrics.order_placed();
        metrics.order_placed();
        metrics.idempotent_replay();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("orders_placed_total 2"), "{text}");
        assert!(text.contains("orders_cancelled_total 0"), "{text}");
        assert!(text.contains("orders_idempotent_replays_total 1"), "{text}");
    }
}

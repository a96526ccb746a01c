//! The messaging machinery of the order flow, written once.
//!
//! The producing side is a transactional [`outbox`]: a service writes its
//! state change and an outbox row in one database transaction, and the
//! outbox's relay turns committed rows into Kafka records (idempotent
//! producer, `acks=all`, key = order id), deleting each row only after Kafka
//! has acknowledged it. The consuming side is the [`inbox`]: a runtime that polls a
//! topic, lets the service decode each record into its own narrow type,
//! applies the service's effect and the processed-event record in one
//! transaction, and only then stores the offset. Records that can never be
//! processed go to a [`dead_letter`] topic; transient failures are retried
//! with capped [`backoff`]. [`kafka`] holds the client settings shared by both
//! sides and the explicit topic provisioning that nothing may skip. There is
//! no HTTP here, and no web crate: a service runs its relay or inbox as a
//! [`platform::task::BackgroundTask`]; the shell of a consuming service
//! (settings, read API, pages) is the `consumer-kit` crate.

pub mod backoff;
pub mod cancellation;
pub mod dead_letter;
pub mod inbox;
pub mod kafka;
pub mod outbox;
pub mod reader;

/// A histogram of items per batch (records of an inbox batch, events of a
/// relay batch): 1 to 4096, in powers of two.
pub(crate) fn batch_histogram() -> prometheus_client::metrics::histogram::Histogram {
    prometheus_client::metrics::histogram::Histogram::new(
        prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 13),
    )
}

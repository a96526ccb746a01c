//! The transactional outbox and its relay: events are rows, written with the
//! state change they describe, in the same transaction, and published to
//! Kafka once committed.
//!
//! A service calls [`enqueue`] inside the transaction that makes the change
//! and [`Wakeup::committed`] once it has committed; the [`Relay`], a
//! background task of the service, turns committed rows into Kafka records
//! (idempotent producer, `acks=all`, key = order id) and deletes each row
//! only after Kafka has acknowledged it, so publication is at-least-once and
//! in order per key. One concern per file:
//!
//! - `enqueue`: the row an event becomes ([`OutboxMessage`], [`enqueue`]);
//! - `relay`: the relay's loop and one batch (claim, publish, record);
//! - `waves`: how a batch is published without reordering a key;
//! - `bench`: the partitions kept out of the batches while they cannot take
//!   records;
//! - `record`: the Kafka record of a row and the span of its publication;
//! - `leadership`: one active relay per database (an advisory lock);
//! - `wakeup`: waking the relay in-process and across instances (`NOTIFY`);
//! - `settings` and `metrics`: [`RelaySettings`], [`RelayMetrics`];


mod bench;
mod enqueue;
mod leadership;
mod metrics;
mod record;
mod relay;
mod settings;
mod wakeup;
mod waves;

pub use enqueue::{OutboxMessage, enqueue};
pub use leadership::{RELAY_LOCK_KEY, lock_session};
pub use metrics::RelayMetrics;
pub use relay::{BatchOutcome, Relay, RelayError};
#[cfg(feature = "fault-injection")]
pub use settings::FatalErrorSwitch;
pub use settings::RelaySettings;
pub use wakeup::{CHANNEL, Wakeup};

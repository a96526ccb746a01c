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
//! - [`parked`]: the operator's side, listing, retrying and discarding the
//!   rows Kafka refused for good (`orderflow-admin outbox`).
//!
//! # Tables
//!
//! [`MIGRATOR`] (`messaging/migrations/outbox/`, tracked in
//! `_outbox_migrations`) creates the outbox's tables in the publishing
//! service's database, next to the service's own schema: `outbox` (the rows
//! to publish, with their parking and their key's partition hash),
//! `outbox_discarded` (parked rows an operator discarded, with why and by
//! whom) and `published_events` (where each published event went). The
//! migration files are the definition; the relay's and the operator's SQL
//! are checked against them by the end-to-end tests.

mod bench;
mod enqueue;
mod leadership;
mod metrics;
pub mod parked;
mod record;
mod relay;
mod settings;
mod wakeup;
mod waves;

/// The outbox's own tables (`outbox`, `outbox_discarded`,
/// `published_events`), applied in the database of every service that
/// publishes through it, after the service's own schema, and tracked in
/// `_outbox_migrations`, apart from the service's own migrations.
pub static MIGRATOR: std::sync::LazyLock<sqlx::migrate::Migrator> =
    std::sync::LazyLock::new(|| {
        let mut migrator = sqlx::migrate!("migrations/outbox");
        migrator.dangerous_set_table_name("_outbox_migrations");
        migrator
    });

pub use enqueue::{OutboxMessage, enqueue};
pub use leadership::{RELAY_LOCK_KEY, lock_session};
pub use metrics::RelayMetrics;
pub use relay::{BatchOutcome, Relay, RelayError};
#[cfg(feature = "fault-injection")]
pub use settings::FatalErrorSwitch;
pub use settings::RelaySettings;
pub use wakeup::{CHANNEL, Wakeup};

//! The order service: where the order flow begins.
//!
//! It accepts orders over HTTP (`POST /orders`), validates them completely
//! before anything is written, and stores each order together with its
//! `OrderPlaced` event in one PostgreSQL transaction: the event is a row in
//! the transactional outbox, not a Kafka call from the handler, so an order is
//! never committed without its event nor announced without being committed.
//! The outbox relay from the `messaging` crate runs inside this process and
//! turns committed rows into Kafka records; the invoicing and shipping
//! services react to them. Cancelling works the same way (`OrderCancelled`),
//! and retries are safe: `Idempotency-Key` makes placing an order idempotent,
//! and cancelling is idempotent by nature.
//!
//! - [`config`]: the environment variables the service reads at start-up.
//! - [`domain`]: the validated order ([`domain::NewOrder`]) and money arithmetic.
//! - [`api`]: the HTTP surface: request and response bodies, handlers, errors.
//! - [`pages`]: the web pages: the orders, the new-order form, one order with
//!   its live journey through the flow, and the overview with live charts.
//! - [`store`]: the SQL: orders, lines, idempotency keys, outbox rows.
//! - [`events`]: the domain's facts in the shared event contract.
//! - [`metrics`]: the order counters on the Prometheus registry.
//! - [`app`]: wiring: pool, migrations, listener, background tasks, shutdown.

#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod events;
pub mod metrics;
pub mod pages;
pub mod store;

pub use app::{StartupError, build};
pub use config::Config;
pub use platform_web::app::{App, RunError};

//! End-to-end tests of the order flow, against real Kafka and PostgreSQL.
//!
//! One test binary (one link, one run) with a module per area. Every test
//! takes the infrastructure from the environment (`cargo xtask test` provides
//! it) and gets its own database and topic, so tests run in parallel and never
//! see each other's data.

mod admin;
mod consumers;
mod drift;
mod flow;
mod harness;
mod hostile;
mod order_api_client;
mod orders_api;
mod relay;

//! End-to-end tests of the order flow, against real Kafka and PostgreSQL.
//!
//! One test binary (one link, one run) with a module per area. Every test
//! gets the infrastructure through `TestInfra::acquire` (the environment's,
//! which `cargo xtask test` provides, else containers where Docker runs;
//! [`acquisition`] keeps it the only way) and gets its own database and topic,
//! so tests run in parallel and never see each other's data. A test of the
//! whole flow starts it with `e2e::flow::TestFlow`. A large area is a folder:
//! its `mod.rs` holds what its tests share, and each file one behaviour.

mod acquisition;
mod admin;
mod boundary;
mod broker_restarts;
mod consumers;
mod error_messages;
mod flow;
mod harness;
mod hostile;
mod inbox_batches;
mod kafka_access;
mod openapi;
mod order_api_client;
mod orders_api;
mod pages;
mod relay;
mod running_figures;
mod schema;
mod stalls;
mod traces;

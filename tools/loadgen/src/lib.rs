//! Load for the order flow: realistic, varied orders, reproducible from a seed.
//!
//! `cargo xtask chaos` places them while it injects faults and then audits
//! every invoice and shipment against what it sent; `cargo xtask bench`
//! places them on a fixed schedule. Both read [`GeneratedOrder::expected`] to
//! know what the consumers should end up with. Like the other tools, this
//! crate speaks the public HTTP API through `orderflow-client` and links no
//! service crate.
//!
//! [`open_loop`] is the benchmark's client: requests on a fixed schedule,
//! latency from each request's due time; the `loadgen` binary runs it.

pub mod open_loop;
pub mod order;

pub use order::{ExpectedLine, ExpectedOrder, GeneratedOrder, OrderGenerator};

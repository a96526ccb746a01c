//! The typed client of the three HTTP APIs of the order flow.
//!
//! Everything outside the services that talks to them over HTTP does it
//! through this crate: the dev tool's stack (health checks), the demo, the
//! rebuild, the chaos and benchmark runs, the load generator and the
//! end-to-end tests. It holds the requests a client sends ([`PlaceOrder`],
//! [`CancelOrder`]) and the answers it reads ([`Order`], [`Invoice`],
//! [`Shipment`], [`Balance`], [`ToPick`], each list a [`Page`]) as the README documents them, and an
//! [`ApiClient`] that sends the one and reads the other. The services keep
//! their own server-side types and never link this crate; the end-to-end
//! tests prove that this crate reads what they answer.
//!
//! The types are tolerant readers: fields a service adds later are ignored.
//! Where a caller needs the raw exchange (a load client counting 503s, a
//! probe that expects problem+json), [`ApiClient`] also returns a [`Reply`]
//! with the status, the media type and the body, without judging it.

mod client;
mod error;
mod invoices;
mod metrics;
mod orders;
mod page;
mod shipments;

pub use client::{ApiClient, Reply};
pub use error::ClientError;
pub use invoices::{Balance, Invoice};
pub use metrics::metric_value;
pub use orders::{Address, CancelOrder, Customer, Order, OrderLine, PlaceOrder, PricedLine};
pub use page::Page;
pub use shipments::{Recipient, Shipment, ShipmentLine, ToPick};

//! The public language of the order flow.
//!
//! Everything that crosses a service boundary is defined here and nowhere else:
//! the [`Envelope`] every record value is wrapped in, the event payloads
//! ([`OrderPlaced`], [`OrderCancelled`]), the Kafka [`topics`] and record
//! [`headers`], and the W3C [`TraceParent`] that lets one order be followed
//! through every service. Golden JSON [`samples`] pin the wire format: a test
//! keeps them equal to what this code serialises, and the consumers' contract
//! tests run every sample through their tolerant readers. The JSON Schema of
//! each event type and version ([`schema`]) is generated from these types and
//! committed beside the samples.
//!
//! Producers serialise the full types below. Consumers do not have to: they
//! decode the [`Envelope`] with their own narrow payload type and ignore every
//! field they do not need, so adding a field here never breaks them. With the
//! `arbitrary` feature, [`arbitrary`] adds property-test generators for those
//! readers' tests.

#[cfg(feature = "arbitrary")]
pub mod arbitrary;
mod envelope;
pub mod headers;
mod order;
pub mod samples;
pub mod schema;
pub mod topics;
mod trace;

pub use envelope::{Envelope, EnvelopeError, Event, EventType, RawEnvelope};
pub use order::{Address, Customer, OrderCancelled, OrderLine, OrderPlaced};
pub use trace::{TraceParent, TraceParentError};

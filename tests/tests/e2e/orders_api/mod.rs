//! The order API against a real PostgreSQL (no Kafka: nothing here needs the
//! relay; the tests read the outbox rows the relay would publish).
//!
//! Each test starts its own service on a fresh database
//! ([`OrdersApi::start`]) and drives it over HTTP with `reqwest`, then
//! checks the tables directly: an answer is only half the story when the
//! promise is "nothing was written" or "exactly one event".

mod idempotency;
mod listing_and_cancelling;
mod placing;
mod validation;

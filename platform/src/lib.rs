//! The plumbing every service of the order flow shares, so that each service
//! crate holds only its domain.
//!
//! - [`problem`]: RFC 9457 `application/problem+json` errors, and a layer that
//!   turns every bare error response (a 405 from the router, a 408 from the
//!   timeout) into one, so clients always get a body they can act on.
//! - [`app`]: one way to run a service: HTTP server and background tasks
//!   until shutdown, drained in a fixed order.
//! - [`http`]: the server: common layers (tracing span per request, timeout,
//!   a concurrency limit that sheds excess load with 503), health and
//!   metrics routes, graceful shutdown.
//! - [`db`]: connection pool settings and the classification of database
//!   errors into "unavailable, retry" and "bug".
//! - [`error`]: an error and its causes on one line, each cause once.
//! - [`money`]: ISO 4217 currencies and their decimal places; amounts in
//!   minor units written and read in the currency's own units.
//! - [`openapi`]: each service's OpenAPI 3.1 document and reference page.
//! - [`health`]: readiness beyond the database: parts of a service that say
//!   they cannot work, and why.
//! - [`schema`]: JSON Schemas that say exactly what validation accepts
//!   (trimmed text, e-mail, codes, ids), for the OpenAPI documents.
//! - [`pagination`]: the `limit` / `cursor` query and the `{ items, next_cursor }` page.
//! - [`services`]: the facts about each service (name, port, database,
//!   consumer group) that the services and every tool read.
//! - [`config`]: typed reading of environment variables with local defaults.
//! - [`telemetry`]: the tracing subscriber.
//! - [`shutdown`]: SIGTERM / Ctrl-C as a cancellation token.
//! - [`web`]: what the services' pages share: the page frame, the assets,
//!   the security headers, and the `Host` allowlist and cross-site check
//!   every request passes.

pub mod app;
pub mod config;
pub mod db;
pub mod error;
pub mod health;
pub mod http;
pub mod money;
pub mod openapi;
pub mod pagination;
pub mod problem;
pub mod schema;
pub mod services;
pub mod shutdown;
pub mod telemetry;
pub mod web;

pub use problem::{FieldError, Problem};

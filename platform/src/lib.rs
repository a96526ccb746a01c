//! The plumbing every part of the order flow shares, without the web: what
//! the services, the `messaging` library and the tools all need. The web
//! half (the HTTP server, problem+json, OpenAPI, pagination, the pages'
//! frame and the `App` that runs a service) is `platform-web`, so that a
//! library or a tool that serves no HTTP compiles no web crate.
//!
//! - [`config`]: settings declared once (environment variable, default,
//!   help), with each service's own defaults.
//! - [`db`]: connection pool settings and the classification of database
//!   errors into "unavailable, retry" and "bug".
//! - [`error`]: an error and its causes on one line, each cause once.
//! - [`health`]: readiness beyond the database: parts of a service that say
//!   they cannot work, and why.
//! - [`money`]: ISO 4217 currencies and their decimal places; amounts in
//!   minor units written and read in the currency's own units.
//! - [`services`]: the registry of the flow's services (name, port,
//!   database, consumer group) that the services and every tool read.
//! - [`shutdown`]: SIGTERM / Ctrl-C as a cancellation token.
//! - [`task`]: the background tasks a service runs beside its HTTP server.
//! - [`telemetry`]: the tracing subscriber and trace-context propagation;
//!   with the `otlp` feature, the OTLP span export of the services.

pub mod config;
pub mod db;
pub mod error;
pub mod health;
pub mod money;
pub mod services;
pub mod shutdown;
pub mod task;
pub mod telemetry;

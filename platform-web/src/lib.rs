//! The web half of every service of the order flow (the other half, with
//! no web crate in it, is `platform`).
//!
//! - [`problem`]: RFC 9457 `application/problem+json` errors, and a layer that
//!   turns every bare error response (a 405 from the router, a 408 from the
//!   timeout) into one, so clients always get a body they can act on.
//! - [`app`]: one way to run a service: HTTP server and background tasks
//!   until shutdown, drained in a fixed order.
//! - [`config`]: the HTTP settings (address, limits, allowed hosts).
//! - [`http`]: the server: common layers (tracing span per request, timeout,
//!   a concurrency limit that sheds excess load with 503), health and
//!   metrics routes, graceful shutdown.
//! - [`openapi`]: each service's OpenAPI 3.1 document and reference page.
//! - [`schema`]: JSON Schemas that say exactly what validation accepts
//!   (trimmed text, e-mail, codes, ids), for the OpenAPI documents.
//! - [`pagination`]: the `limit` / `cursor` query and the `{ items, next_cursor }` page.
//! - [`web`]: what the services' pages share: the page frame, the assets,
//!   the security headers, and the `Host` allowlist and cross-site check
//!   every request passes.

pub mod app;
pub mod config;
pub mod http;
pub mod openapi;
pub mod pagination;
pub mod problem;
pub mod schema;
pub mod web;

pub use problem::{FieldError, Problem};

//! The web pages of order-service, beside its JSON API:
//!
//! - `GET /`: the orders, newest first, a page at a time ([`list`]);
//! - `GET /new`, `POST /new`: the new-order form ([`new_order`], [`form`]);
//! - `GET /order/{id}`: one order with its live journey and a cancel
//!   button; `POST /order/{id}/cancel`; `GET /order/{id}/journey`, the
//!   journey fragment `live.js` refreshes ([`order`], [`journey`]);
//! - `GET /overview`: the three services with live charts from their
//!   `/metrics`; `GET /overview/charts`, the fragment ([`overview`]).
//!
//! The pages go through the same gates as the API: the form is read into
//! the API's request type and validated by its rules, an order is placed
//! and cancelled by the same store calls, and hostile input gets a 4xx page
//! that says what is wrong, with nothing written. Form posts from another
//! site's page are refused, as is every unsafe request to the service from
//! one, by the platform's [`platform_web::web::security::guard`].

pub mod form;
pub mod journey;
mod list;
mod new_order;
mod order;
pub mod overview;
pub mod upstream;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use platform_web::web::form::MAX_FORM_BYTES;
use platform_web::web::{PageError, PageLinks};

use crate::api::AppState;
use crate::store::StoreError;

pub use overview::Overview;
pub use upstream::Upstream;

/// What the pages share.
#[derive(Debug, Clone)]
pub struct Pages {
    app: AppState,
    links: Arc<PageLinks>,
    upstream: Upstream,
    overview: Overview,
}

impl Pages {
    /// The pages over the API's state, linking to `links`, reading the
    /// consumers through `upstream`, charting with `overview`.
    pub fn new(app: AppState, links: PageLinks, upstream: Upstream, overview: Overview) -> Self {
        Pages {
            app,
            links: Arc::new(links),
            upstream,
            overview,
        }
    }
}

/// The page routes, with the shared assets (the cross-site check is the
/// platform's, on every unsafe request of the service).
pub fn routes(pages: Pages) -> Router {
    Router::new()
        .route("/", get(list::list))
        .route("/new", get(new_order::blank).post(new_order::submit))
        .route("/order/{id}", get(order::show))
        .route("/order/{id}/cancel", post(order::cancel))
        .route("/order/{id}/journey", get(order::journey))
        .route("/overview", get(overview::show))
        .route("/overview/charts", get(overview::charts))
        .merge(platform_web::web::assets::routes())
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .with_state(pages)
}

/// A store failure as a page: 503 when the database is only unavailable.
fn store_error(error: StoreError) -> PageError {
    match error {
        StoreError::Database(e) => PageError::database(&e),
        other => {
            tracing::error!(error = %platform::error::chain(&other), "page failed");
            PageError::internal()
        }
    }
}

//! What the services' web pages share: the page frame and its navigation
//! ([`layout`]), the assets every page loads ([`assets`]), the headers, the
//! `Host` allowlist and the cross-site check that keep a service safe to
//! reach from a browser ([`security`]), strict
//! form reading ([`form`]), how amounts and times read ([`format`]), and
//! where a browser reaches each service's pages ([`PageLinks`]).
//!
//! The pages are server-rendered HTML written with `maud`, which checks the
//! templates at compile time and escapes everything it interpolates: a
//! customer's `<script>` is shown as text. Forms work without JavaScript;
//! the one script, `live.js`, only refreshes the parts of a page that change
//! (an order's journey, the overview's charts) from fragments the server
//! rendered and escaped. Every asset is embedded in the binary and served by
//! the service itself: no CDN, no build step, nothing fetched from elsewhere.

pub mod assets;
pub mod form;
pub mod format;
pub mod layout;
pub mod security;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};

use platform::services::{self, ORDER_SERVICE, ServiceFacts};

/// Where a browser reaches each service's pages, for the links between them:
/// one setting per service of the registry ([`services::ALL`]), named after
/// it: `--order-service-url` / `ORDER_SERVICE_URL`, default its local
/// address (`http://127.0.0.1:8081`), and so on for every consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageLinks {
    /// Where a browser reaches order-service's pages (every service's pages link there).
    pub order: String,
    /// Where a browser reaches each other service's pages: (its name, URL),
    /// in the registry's order.
    others: Vec<(&'static str, String)>,
}

impl PageLinks {
    /// The local defaults: each service on 127.0.0.1 at its port.
    pub fn local() -> Self {
        PageLinks {
            order: ORDER_SERVICE.local_url(),
            others: services::ALL
                .iter()
                .filter(|s| s.name != ORDER_SERVICE.name)
                .map(|s| (s.name, s.local_url()))
                .collect(),
        }
    }

    /// Where a browser reaches `service`'s pages.
    ///
    /// # Panics
    /// When `service` is not in the registry ([`services::ALL`]).
    pub fn of(&self, service: &ServiceFacts) -> &str {
        if service.name == ORDER_SERVICE.name {
            return &self.order;
        }
        self.others
            .iter()
            .find(|(name, _)| *name == service.name)
            .map(|(_, url)| url.as_str())
            .unwrap_or_else(|| panic!("{} is not in platform::services::ALL", service.name))
    }

    /// The same links with `service`'s pages at `url`.
    pub fn with(mut self, service: &ServiceFacts, url: impl Into<String>) -> Self {
        self.set(service, url.into());
        self
    }

    /// Puts `service`'s pages at `url`.
    pub fn set(&mut self, service: &ServiceFacts, url: String) {
        if service.name == ORDER_SERVICE.name {
            self.order = url;
        } else if let Some((_, old)) = self.others.iter_mut().find(|(n, _)| *n == service.name) {
            *old = url;
        } else {
            self.others.push((service.name, url));
        }
    }

    /// The setting of `service`'s page address, declared once for every service.
    fn arg(service: &ServiceFacts) -> clap::Arg {
        let help = if service.name == ORDER_SERVICE.name {
            format!(
                "Where a browser reaches {}'s pages (every service's pages link there)",
                service.name
            )
        } else {
            format!("Where a browser reaches {}'s pages", service.name)
        };
        clap::Arg::new(Self::arg_id(service))
            .long(service.url_flag())
            .env(service.url_var())
            .default_value(service.local_url())
            .value_parser(base_url)
            .value_name(service.short.to_ascii_uppercase())
            .action(clap::ArgAction::Set)
            .help(help)
    }

    /// The argument id of `service`'s page address: `order_service_url`, ...
    fn arg_id(service: &ServiceFacts) -> String {
        service.url_flag().replace('-', "_")
    }
}

impl clap::Args for PageLinks {
    fn augment_args(command: clap::Command) -> clap::Command {
        services::ALL
            .iter()
            .fold(command, |command, service| command.arg(Self::arg(service)))
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

impl clap::FromArgMatches for PageLinks {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut links = PageLinks::local();
        links.update_from_arg_matches(matches)?;
        Ok(links)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        for service in services::ALL {
            let id = Self::arg_id(service);
            match matches.try_get_one::<String>(&id) {
                Ok(Some(url)) => self.set(service, url.clone()),
                Ok(None) => {}
                Err(e) => {
                    return Err(clap::Error::raw(
                        clap::error::ErrorKind::InvalidValue,
                        format!("{id}: {e}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `http://127.0.0.1:<port>` of `service`: where `cargo xtask up` and
/// docker-compose publish it.
pub fn local_url(service: &ServiceFacts) -> String {
    service.local_url()
}

/// Parses a base URL: `http://` or `https://`, no query or fragment; a
/// trailing slash is dropped.
pub fn base_url(value: &str) -> Result<String, String> {
    let trimmed = value.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(['?', '#', ' ']) => Ok(trimmed.to_owned()),
        _ => Err(format!(
            "{value:?} is not a base URL such as http://127.0.0.1:8081"
        )),
    }
}

/// A page that could not be shown: an HTML answer with a status and a
/// message a person can act on. Server faults are logged by whoever makes
/// one; the message never carries internals.
#[derive(Debug, Clone)]
pub struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    /// An error page with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        PageError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request cannot be read.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// The API's refusal of a query (`problem`), as a page with its status and detail.
    pub fn from_problem(problem: &crate::Problem) -> Self {
        Self::new(problem.status(), problem.detail())
    }

    /// 404: nothing at this address.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 503: the database (or another service) is unavailable; try again.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// 500: our fault; the cause was logged.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the server failed to show this page; the error was logged",
        )
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message shown.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// A database error as a page: 503 when it is only unavailable, 500 otherwise (logged).
    pub fn database(error: &sqlx::Error) -> Self {
        if platform::db::is_transient(error) {
            tracing::warn!(error = %error, "database unavailable");
            Self::unavailable("the database is unavailable; try again in a moment")
        } else {
            tracing::error!(error = %error, "page failed");
            Self::internal()
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = html! {
            h1 { (self.status.as_u16()) " " (title) }
            p.error-message { (self.message) }
            p { a href="/" { "Back to the list" } }
        };
        (self.status, Html(layout::bare(title, body).into_string())).into_response()
    }
}

/// A page's query string read into `T`; an unreadable one is a 400 page.
pub fn query<T>(
    query: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, PageError> {
    query.map(|axum::extract::Query(q)| q).map_err(|e| {
        PageError::bad_request(format!(
            "the query string cannot be read: {}",
            e.body_text()
        ))
    })
}

/// The page of a list a query asks for (`?limit=&cursor=`, and `order_id=`
/// where a list can be narrowed to one order); a bad value is a 400 page.
pub fn list_query(
    query: Result<
        axum::extract::Query<crate::pagination::OrderListQuery>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Result<(Option<uuid::Uuid>, crate::pagination::PageRequest), PageError> {
    self::query(query)?
        .parse()
        .map_err(|problem| PageError::from_problem(&problem))
}

/// An id from a page's path; anything but a UUID is a 400 page naming `what`.
pub fn path_id(raw: &str, what: &str) -> Result<uuid::Uuid, PageError> {
    raw.parse().map_err(|_| {
        PageError::bad_request(format!(
            "the {what} id in the address must be a UUID; got {:?}",
            raw.chars().take(60).collect::<String>()
        ))
    })
}

/// What a consuming service's pages read: its own database, and where the
/// other services' pages are.
#[derive(Debug, Clone)]
pub struct ReadModel {
    /// The service's database.
    pub pool: sqlx::PgPool,
    /// Where the pages link to.
    pub links: std::sync::Arc<PageLinks>,
}

impl ReadModel {
    /// A consuming service's pages: `GET /` (`list`), `show` at `show_path`
    /// (e.g. `/invoice/{id}`) and the service's `more` pages, over `pool`,
    /// with the shared assets.
    pub fn routes<L, LT, S, ST>(
        pool: sqlx::PgPool,
        links: PageLinks,
        show_path: &str,
        list: L,
        show: S,
        more: axum::Router<ReadModel>,
    ) -> axum::Router
    where
        L: axum::handler::Handler<LT, ReadModel>,
        S: axum::handler::Handler<ST, ReadModel>,
        LT: 'static,
        ST: 'static,
    {
        axum::Router::new()
            .route("/", axum::routing::get(list))
            .route(show_path, axum::routing::get(show))
            .merge(more)
            .merge(assets::routes())
            .with_state(ReadModel {
                pool,
                links: std::sync::Arc::new(links),
            })
    }
}

/// A rendered page as a 200 response.
pub fn ok(markup: Markup) -> Response {
    Html(markup.into_string()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_http_without_a_trailing_slash() {
        assert_eq!(
            base_url("http://127.0.0.1:8082/").unwrap(),
            "http://127.0.0.1:8082"
        );
        assert_eq!(
            base_url("https://shop.example").unwrap(),
            "https://shop.example"
        );
        for bad in ["", "127.0.0.1:8082", "ftp://x", "http://", "http://a?b"] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
    }

    #[derive(Debug, clap::Parser)]
    struct Links {
        #[command(flatten)]
        links: PageLinks,
    }

    #[test]
    fn the_declared_defaults_are_where_each_service_listens_locally() {
        let declared: Links =
            platform::config::defaults(<Links as clap::CommandFactory>::command()).unwrap();
        let local = PageLinks::local();
        for service in services::ALL {
            assert_eq!(declared.links.of(service), local.of(service), "{service}");
        }
    }

    #[test]
    fn an_error_page_escapes_its_message() {
        let response = PageError::bad_request("<script>alert(1)</script>").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
}

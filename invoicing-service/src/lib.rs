//! Invoicing: the consumer that bills placed orders.
//!
//! In the order flow, invoicing reads the `orders` topic in its own consumer
//! group (`invoicing`) and keeps its own database. Each `OrderPlaced` issues
//! one invoice (customer, billing address, currency, priced lines and a total
//! computed here, not trusted from the event); each `OrderCancelled` cancels
//! it, even when the cancellation arrives first. Both move the customer's
//! open [`balance`], a running figure that only the inbox's dedup keeps
//! exactly-once (what the chaos audit checks from outside). The consumer runtime
//! (dedup, offset after effect, dead-lettering, retries) is
//! [`messaging::inbox`]; this crate supplies only its [`reader`] (the tolerant
//! reader), its effects and queries ([`store`]), its read [`api`] and its
//! [`pages`]. The
//! process around them is [`platform::app`]; [`messaging::inbox`] also documents how to
//! rebuild the invoices from the topic's history.

pub mod api;
pub mod balance;
pub mod invoice;
pub mod pages;
pub mod reader;
pub mod store;

use messaging::cancellation;
use messaging::consumer::{self, ConsumerConfig};
use messaging::inbox::{ApplyError, Handler, NewEvent, Rejection};
use messaging::reader::OrderEvent;
use platform::services::INVOICING_SERVICE;
use shared_events::RawEnvelope;
use sqlx::PgConnection;
use sqlx::migrate::Migrator;

pub use messaging::consumer::StartupError;
pub use platform::app::{App, RunError};

use crate::reader::InvoicingEvent;

/// The service's configuration; [`cli`] reads it with its defaults.
pub type Config = ConsumerConfig;

/// The command line: every setting with this service's defaults.
pub fn cli() -> clap::Command {
    messaging::consumer::cli(&INVOICING_SERVICE, ABOUT)
}

const ABOUT: &str = "Issues one invoice per placed order (billing address, prices, totals) from the orders topic; serves the invoices over HTTP.";

/// Connects and migrates the database, assembles the inbox and the read API
/// and binds the listener; nothing runs until [`App::run_until_stopped`].
pub async fn build(config: Config) -> Result<App, StartupError> {
    let service = consumer::prepare(&config, &MIGRATOR, Invoicing).await?;
    let routes = api::routes(service.pool.clone())
        .merge(pages::routes(service.pool.clone(), config.links.clone()));
    let name = INVOICING_SERVICE.name;
    let app = App::serve(
        name,
        &config.http,
        routes,
        service.pool,
        service.readiness,
        service.registry,
    );
    Ok(app.await?.with_task(service.inbox.into_task()))
}

/// The service's own tables (the inbox adds its own, [`messaging::inbox::MIGRATOR`]).
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// The invoicing service's reader and effects.
#[derive(Debug, Clone, Copy, Default)]
pub struct Invoicing;

impl Handler for Invoicing {
    type Event = InvoicingEvent;

    fn decode(&self, envelope: &RawEnvelope) -> Result<Option<InvoicingEvent>, Rejection> {
        reader::read(envelope)
    }

    fn effect_table(&self) -> &'static str {
        "invoices"
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[NewEvent<'_, InvoicingEvent>],
    ) -> Result<(), ApplyError> {
        let (placed, cancelled) = OrderEvent::split(events);
        store::issue(conn, &placed).await?;
        balance::apply(conn, &placed, &cancelled).await?;
        cancellation::cancel(conn, &cancelled, "invoices").await?;
        Ok(())
    }
}

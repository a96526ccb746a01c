//! Invoicing: the consumer that bills placed orders.
//!
//! In the order flow, invoicing reads the `orders` topic in its own consumer
//! group (`invoicing`) and keeps its own database. Each `OrderPlaced` issues
//! one invoice (customer, billing address, currency, priced lines and a total
//! computed here, not trusted from the event); each `OrderCancelled` cancels
//! it, even when the cancellation arrives first. The consumer runtime
//! (dedup, offset after effect, dead-lettering, retries) is
//! [`messaging::inbox`]; this crate supplies only its [`reader`] (the tolerant
//! reader), its effects and queries ([`store`]) and its read [`api`]. The
//! process around them is [`messaging::service`], which also documents how to
//! rebuild the invoices from the topic's history.

pub mod api;
pub mod invoice;
pub mod reader;
pub mod store;

use messaging::inbox::{ApplyError, EventMeta, Handler, Rejection};
use messaging::service::{ConsumingService, ServiceApp, ServiceConfig};
use shared_events::RawEnvelope;
use sqlx::PgConnection;
use sqlx::migrate::Migrator;

use crate::reader::InvoicingEvent;

pub use messaging::service::{RunError, StartupError};

/// Every environment variable the service reads at start-up.
pub const ENV_VARS: &[&str] = messaging::service::ENV_VARS;

/// The service's configuration (`Config::from_env()` reads [`ENV_VARS`]).
pub type Config = ServiceConfig<Invoicing>;

/// The started service: `local_addr()`, `run_until_stopped(shutdown)`.
pub type App = ServiceApp<Invoicing>;

/// Connects, migrates and binds the service; see [`ServiceApp::build`].
pub async fn build(config: Config) -> Result<App, StartupError> {
    App::build(config).await
}

static MIGRATOR: Migrator = sqlx::migrate!();

/// The invoicing service: its reader, its effects and its read API.
#[derive(Debug, Clone, Copy, Default)]
pub struct Invoicing;

impl ConsumingService for Invoicing {
    const NAME: &'static str = "invoicing";
    const DEFAULT_PORT: u16 = 8082;
    const DEFAULT_DATABASE_URL: &'static str =
        "postgres://invoicing:invoicing@127.0.0.1:15432/invoicing";

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn routes(pool: sqlx::PgPool) -> axum::Router {
        api::routes(pool)
    }
}

impl Handler for Invoicing {
    type Event = InvoicingEvent;

    fn decode(&self, envelope: &RawEnvelope) -> Result<Option<InvoicingEvent>, Rejection> {
        reader::read(envelope)
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        meta: &EventMeta,
        event: &InvoicingEvent,
    ) -> Result<(), ApplyError> {
        match event {
            InvoicingEvent::Placed(invoice) => store::issue(conn, meta.order_id, invoice).await?,
            InvoicingEvent::Cancelled => store::cancel(conn, meta.order_id).await?,
        }
        Ok(())
    }
}

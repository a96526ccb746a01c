//! Shipping: the consumer that turns placed orders into parcels to send.
//!
//! In the order flow, shipping reads the `orders` topic in its own consumer
//! group (`shipping`) and keeps its own database. Each `OrderPlaced` creates
//! one pending shipment (recipient, shipping address, what to pack); each
//! `OrderCancelled` cancels it, even when the cancellation arrives first.
//! Shipping holds no price, e-mail address or billing address: its reader
//! does not declare them, so they never reach its tables or its API. Several
//! instances in the one group split the topic's partitions between them. The
//! consumer runtime (dedup, offset after effect, dead-lettering, retries) is
//! [`messaging::inbox`]; this crate supplies only its [`reader`] (the tolerant
//! reader), its effects and queries ([`store`]) and its read [`api`]. The
//! process around them is [`messaging::service`], which also documents how to
//! rebuild the shipments from the topic's history.

pub mod api;
pub mod reader;
pub mod shipment;
pub mod store;

use messaging::inbox::{ApplyError, EventMeta, Handler, Rejection};
use messaging::service::{ConsumingService, ServiceApp, ServiceConfig};
use shared_events::RawEnvelope;
use sqlx::PgConnection;
use sqlx::migrate::Migrator;

use crate::reader::ShippingEvent;

pub use messaging::service::{RunError, StartupError};

/// Every environment variable the service reads at start-up.
pub const ENV_VARS: &[&str] = messaging::service::ENV_VARS;

/// The service's configuration (`Config::from_env()` reads [`ENV_VARS`]).
pub type Config = ServiceConfig<Shipping>;

/// The started service: `local_addr()`, `run_until_stopped(shutdown)`.
pub type App = ServiceApp<Shipping>;

/// Connects, migrates and binds the service; see [`ServiceApp::build`].
pub async fn build(config: Config) -> Result<App, StartupError> {
    App::build(config).await
}

static MIGRATOR: Migrator = sqlx::migrate!();

/// The shipping service: its reader, its effects and its read API.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shipping;

impl ConsumingService for Shipping {
    const NAME: &'static str = "shipping";
    const DEFAULT_PORT: u16 = 8083;
    const DEFAULT_DATABASE_URL: &'static str =
        "postgres://shipping:shipping@127.0.0.1:15432/shipping";

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn routes(pool: sqlx::PgPool) -> axum::Router {
        api::routes(pool)
    }
}

impl Handler for Shipping {
    type Event = ShippingEvent;

    fn decode(&self, envelope: &RawEnvelope) -> Result<Option<ShippingEvent>, Rejection> {
        reader::read(envelope)
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        meta: &EventMeta,
        event: &ShippingEvent,
    ) -> Result<(), ApplyError> {
        match event {
            ShippingEvent::Placed(shipment) => store::create(conn, meta.order_id, shipment).await?,
            ShippingEvent::Cancelled => store::cancel(conn, meta.order_id).await?,
        }
        Ok(())
    }
}

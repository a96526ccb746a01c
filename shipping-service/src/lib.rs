//! Shipping: the consumer that turns placed orders into parcels to send.
//!
//! In the order flow, shipping reads the `orders` topic in its own consumer
//! group (`shipping`) and keeps its own database. Each `OrderPlaced` creates
//! one pending shipment (recipient, shipping address, what to pack); each
//! `OrderCancelled` cancels it, even when the cancellation arrives first.
//! Both move the [`pick_list`], a running figure of the units to pick per
//! SKU that only the inbox's dedup keeps exactly-once (what the chaos audit
//! checks from outside).
//! Shipping holds no price, e-mail address or billing address: its reader
//! does not declare them, so they never reach its tables or its API. Several
//! instances in the one group split the topic's partitions between them. The
//! consumer runtime (dedup, offset after effect, dead-lettering, retries) is
//! [`messaging::inbox`]; this crate supplies only its [`reader`] (the tolerant
//! reader), its effects and queries ([`store`]), its read [`api`] and its
//! [`pages`]. The
//! process around them is [`platform::app`]; [`messaging::inbox`] also documents how to
//! rebuild the shipments from the topic's history.

pub mod api;
pub mod pages;
pub mod pick_list;
pub mod reader;
pub mod shipment;
pub mod store;

use messaging::cancellation;
use messaging::consumer::{self, ConsumerConfig};
use messaging::inbox::{ApplyError, Handler, NewEvent, Rejection};
use messaging::reader::OrderEvent;
use platform::services::SHIPPING_SERVICE;
use shared_events::RawEnvelope;
use sqlx::PgConnection;
use sqlx::migrate::Migrator;

pub use messaging::consumer::StartupError;
pub use platform::app::{App, RunError};

use crate::reader::ShippingEvent;

/// The service's configuration; [`cli`] reads it with its defaults.
pub type Config = ConsumerConfig;

/// The command line: every setting with this service's defaults.
pub fn cli() -> clap::Command {
    messaging::consumer::cli(&SHIPPING_SERVICE, ABOUT)
}

const ABOUT: &str = "Creates one shipment per placed order (recipient, shipping address, what to pack; no prices) from the orders topic; serves the shipments over HTTP.";

/// Connects and migrates the database, assembles the inbox and the read API
/// and binds the listener; nothing runs until [`App::run_until_stopped`].
pub async fn build(config: Config) -> Result<App, StartupError> {
    let service = consumer::prepare(&config, &MIGRATOR, Shipping).await?;
    let routes = api::routes(service.pool.clone())
        .merge(pages::routes(service.pool.clone(), config.links.clone()));
    let name = SHIPPING_SERVICE.name;
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

/// The shipping service's reader and effects.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shipping;

impl Handler for Shipping {
    type Event = ShippingEvent;

    fn decode(&self, envelope: &RawEnvelope) -> Result<Option<ShippingEvent>, Rejection> {
        reader::read(envelope)
    }

    fn effect_table(&self) -> &'static str {
        "shipments"
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[NewEvent<'_, ShippingEvent>],
    ) -> Result<(), ApplyError> {
        let (placed, cancelled) = OrderEvent::split(events);
        store::create(conn, &placed).await?;
        pick_list::apply(conn, &placed, &cancelled).await?;
        cancellation::cancel(conn, &cancelled, "shipments").await?;
        Ok(())
    }
}

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
//! process around them is [`platform::app`]; [`messaging::inbox`] also documents how to
//! rebuild the shipments from the topic's history.

pub mod api;
pub mod reader;
pub mod shipment;
pub mod store;

use std::sync::Arc;

use messaging::consumer::ConsumerConfig;
use messaging::inbox::{ApplyError, EventMeta, Handler, Inbox, Rejection};
use platform::app::BindError;
use platform::db::StartupError as DbError;
use platform::health::Readiness;
use platform::http::with_common_layers;
use platform::services::SHIPPING_SERVICE;
use prometheus_client::registry::Registry;
use shared_events::RawEnvelope;
use sqlx::PgConnection;
use sqlx::migrate::Migrator;

pub use platform::app::{App, RunError};

use crate::reader::ShippingEvent;

/// The service's configuration; [`cli`] reads it with its defaults.
pub type Config = ConsumerConfig;

/// The command line: every setting with this service's defaults.
pub fn cli() -> clap::Command {
    messaging::consumer::cli(&SHIPPING_SERVICE, ABOUT)
}

const ABOUT: &str = "Creates one shipment per placed order (recipient, shipping address, what to pack; no prices) from the orders topic; serves the shipments over HTTP.";

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be reached or migrated.
    #[error("the shipping database could not be readied")]
    Database(#[from] DbError),
    /// The dead-letter producer could not be created.
    #[error("the dead-letter producer could not be created")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The HTTP address could not be bound.
    #[error("the read API could not listen")]
    Bind(#[from] BindError),
}

/// Connects and migrates the database, assembles the inbox and the read API
/// and binds the listener; nothing runs until [`App::run_until_stopped`].
pub async fn build(config: Config) -> Result<App, StartupError> {
    let pool = config.database.connect_and_migrate(&MIGRATOR).await?;
    let mut registry = Registry::default();
    let readiness = Readiness::new();
    let inbox = Inbox::for_service(
        pool.clone(),
        Shipping,
        &config,
        &mut registry,
        readiness.clone(),
    )?;
    let routes = api::routes(pool.clone());
    let router = with_common_layers(
        routes,
        pool,
        readiness,
        Arc::new(registry),
        config.http.limits(),
    );
    Ok(App::bind(SHIPPING_SERVICE.name, config.http.addr, router)
        .await?
        .with_task(inbox.into_task()))
}

static MIGRATOR: Migrator = sqlx::migrate!();

/// The shipping service's reader and effects.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shipping;

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

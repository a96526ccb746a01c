//! Shipping: the consumer that turns placed orders into parcels to send.
//!
//! In the order flow, shipping reads the `orders` topic in its own consumer
//! group (`shipping`) and keeps its own database. Each `OrderPlaced` creates
//! one pending shipment (recipient, shipping address, what to pack); each
//! `OrderCancelled` cancels it, even when the cancellation arrives first.
//! Both move the [`pick_list`], a running figure of the units to pick per
//! SKU that only the inbox's dedup keeps exactly-once (what the chaos audit
//! checks from outside).
//!
//! Shipping holds no price, e-mail address or billing address: its reader
//! does not declare them, so they never reach its tables or its API. Several
//! instances in the one group split the topic's partitions between them.
//!
//! This crate is its domain only: the [`reader`] (the tolerant reader), the
//! [`shipment`] it makes, its effects ([`store`], [`pick_list`]) and its
//! [`pages`]. The service around them (settings, inbox, cancellation rule,
//! read API, page frame, process) is [`consumer_kit`]; [`messaging::inbox`]
//! documents how to rebuild the shipments from the topic's history.

pub mod pages;
pub mod pick_list;
pub mod reader;
pub mod shipment;
pub mod store;

use axum::Router;
use consumer_kit::{Consumer, ReadModel};
use maud::Markup;
use messaging::inbox::{ApplyError, EventMeta, Rejection};
use platform::services::{SHIPPING_SERVICE, ServiceFacts};
use platform_web::web::PageLinks;
use shared_events::RawEnvelope;
use sqlx::migrate::Migrator;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::reader::ShippingEvent;
use crate::shipment::{NewShipment, Shipment};

consumer_kit::reader_contract_tests!(Shipping);

/// The service's own tables (the inbox adds its own, [`messaging::inbox::MIGRATOR`]).
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// The shipping service's domain.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shipping;

impl Consumer for Shipping {
    const SERVICE: ServiceFacts = SHIPPING_SERVICE;
    const ABOUT: &'static str = "Creates one shipment per placed order (recipient, shipping address, what to pack; no prices) from the orders topic; serves the shipments over HTTP.";
    const READ_MODEL: ReadModel = ReadModel {
        table: "shipments",
        view: "shipments_with_lines",
        singular: "shipment",
    };

    type Placed = NewShipment;
    type Item = Shipment;
    type Row = store::ShipmentRow;

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn read(&self, envelope: &RawEnvelope) -> Result<Option<ShippingEvent>, Rejection> {
        reader::read(envelope)
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        placed: &[(&EventMeta, &NewShipment)],
        cancelled: &[Uuid],
    ) -> Result<(), ApplyError> {
        store::create(conn, placed).await?;
        pick_list::apply(conn, placed, cancelled).await?;
        Ok(())
    }

    fn item(row: store::ShipmentRow) -> Result<Shipment, sqlx::Error> {
        Shipment::try_from(row)
    }

    fn id(shipment: &Shipment) -> Uuid {
        shipment.id
    }

    fn list_intro(&self, _links: &PageLinks) -> Markup {
        pages::intro()
    }

    fn list_table(&self, shipments: &[Shipment], links: &PageLinks) -> Markup {
        pages::table(shipments, links)
    }

    fn show(&self, shipment: &Shipment, links: &PageLinks) -> (String, Markup) {
        pages::shipment(shipment, links)
    }

    fn more_api(&self) -> Option<(Router<PgPool>, utoipa::openapi::OpenApi)> {
        Some(consumer_kit::figure::api::<pick_list::PickList>())
    }

    fn more_pages(&self) -> Router<consumer_kit::pages::PageState> {
        consumer_kit::figure::page::<pick_list::PickList, Self>()
    }
}

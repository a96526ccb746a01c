//! The journey of one order through the flow, composed from what each
//! service says about it:
//!
//! - placed: the order's commit (this service's database);
//! - published: where the relay put each event (partition, offset, time),
//!   which it records as Kafka acknowledges it (`published_events`);
//! - invoiced and shipped: the invoice and the shipment, from the
//!   consumers' APIs (`GET /invoices?order_id=`, `GET /shipments?order_id=`);
//! - cancelled, here and downstream, when the order was cancelled;
//! - the records of the order a consumer refused, from its dead letters
//!   (`GET /dead-letters?order_id=`).
//!
//! The fragment [`Journey::render`] writes is refreshed by `live.js` until
//! every step has happened; without JavaScript a reload shows the news.

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use messaging::dead_letter::Recorded;
use platform::services::{INVOICING_SERVICE, SHIPPING_SERVICE};
use platform_web::web::PageLinks;
use platform_web::web::format::{elapsed, time};
use shared_events::EventType;
use uuid::Uuid;

use super::upstream::{Consumer, Effect, Upstream};
use crate::store::{OrderRecord, PublishedEvent, Store, StoreError};

/// What a consumer said about the order.
#[derive(Debug, Clone)]
pub enum Downstream {
    /// Its invoice or shipment.
    Made(Effect),
    /// Nothing yet.
    NotYet,
    /// The consumer did not answer; why.
    Unavailable(String),
}

/// Everything known about one order's way through the flow.
#[derive(Debug, Clone)]
pub struct Journey {
    order_id: Uuid,
    placed_at: DateTime<Utc>,
    cancelled_at: Option<DateTime<Utc>>,
    cancel_reason: Option<String>,
    published: Vec<PublishedEvent>,
    invoice: Downstream,
    shipment: Downstream,
    dead_letters: Vec<(Consumer, Recorded)>,
    unanswered: Vec<String>,
}

impl Journey {
    /// Asks this service's database and both consumers about `order`.
    pub async fn compose(
        store: &Store,
        upstream: &Upstream,
        order: &OrderRecord,
    ) -> Result<Self, StoreError> {
        let (published, invoice, shipment, invoicing_dead, shipping_dead) = tokio::join!(
            store.published_events(order.id),
            upstream.effect_of(Consumer::Invoicing, order.id),
            upstream.effect_of(Consumer::Shipping, order.id),
            upstream.dead_letters(Consumer::Invoicing, order.id),
            upstream.dead_letters(Consumer::Shipping, order.id),
        );
        let downstream = |answer: Result<Option<Effect>, _>| match answer {
            Ok(Some(effect)) => Downstream::Made(effect),
            Ok(None) => Downstream::NotYet,
            Err(e) => Downstream::Unavailable(platform::error::chain(&e)),
        };
        let mut dead_letters = Vec::new();
        let mut unanswered = Vec::new();
        for (consumer, answer) in [
            (Consumer::Invoicing, invoicing_dead),
            (Consumer::Shipping, shipping_dead),
        ] {
            match answer {
                Ok(records) => dead_letters.extend(records.into_iter().map(|r| (consumer, r))),
                Err(e) => unanswered.push(platform::error::chain(&e)),
            }
        }
        Ok(Journey {
            order_id: order.id,
            placed_at: order.placed_at,
            cancelled_at: order.cancelled_at,
            cancel_reason: order.cancel_reason.clone(),
            published: published?,
            invoice: downstream(invoice),
            shipment: downstream(shipment),
            dead_letters,
            unanswered,
        })
    }

    fn published(&self, event: EventType) -> Option<&PublishedEvent> {
        self.published
            .iter()
            .find(|p| p.event_type == event.as_str())
    }

    fn cancelled_downstream(effect: &Downstream) -> bool {
        matches!(effect, Downstream::Made(e) if e.status == "cancelled")
    }

    /// Whether every step has happened: nothing more will change.
    pub fn is_complete(&self) -> bool {
        let made = |d: &Downstream| matches!(d, Downstream::Made(_));
        let placed = self.published(EventType::OrderPlaced).is_some()
            && made(&self.invoice)
            && made(&self.shipment);
        let cancelled = self.cancelled_at.is_none()
            || (self.published(EventType::OrderCancelled).is_some()
                && Self::cancelled_downstream(&self.invoice)
                && Self::cancelled_downstream(&self.shipment));
        placed && cancelled && self.unanswered.is_empty()
    }

    /// The journey as a fragment of the order page: refreshed by `live.js`
    /// (`data-live-url`) until it is complete.
    pub fn render(&self, links: &PageLinks) -> Markup {
        let live_url = format!("/order/{}/journey", self.order_id);
        let complete = self.is_complete();
        // Slower when a consumer refused a record: what is missing may never come.
        let every = if self.dead_letters.is_empty() {
            1000
        } else {
            5000
        };
        html! {
            section #journey data-live-url=[(!complete).then_some(&live_url)]
                data-live-every=(every) data-complete=(complete) {
                ol.journey {
                    (step("placed", "Placed", Some(self.placed_at), None,
                        html! { "committed in order-service's database" }))
                    (self.published_step(EventType::OrderPlaced, "Published", self.placed_at))
                    (self.downstream_step("invoiced", "Invoiced", Consumer::Invoicing, &self.invoice, links))
                    (self.downstream_step("shipped", "Shipped", Consumer::Shipping, &self.shipment, links))
                    @if let Some(cancelled_at) = self.cancelled_at {
                        (step("cancelled", "Cancelled", Some(cancelled_at), Some(self.placed_at), html! {
                            @if let Some(reason) = &self.cancel_reason { "reason: " q { (reason) } }
                            @else { "no reason given" }
                        }))
                        (self.published_step(EventType::OrderCancelled, "Cancel published", cancelled_at))
                        (self.cancelled_step("invoice-cancelled", "Invoice cancelled", &self.invoice))
                        (self.cancelled_step("shipment-cancelled", "Shipment cancelled", &self.shipment))
                    }
                    @for (consumer, dead) in &self.dead_letters {
                        li.failed data-step="dead-lettered" {
                            span.mark {}
                            span.step { "Dead-lettered" }
                            span {
                                (consumer.service()) " refused "
                                (dead.event_type.as_deref().unwrap_or("a record"))
                                " at partition " (dead.source_partition) ", offset " (dead.source_offset)
                                ": " q.dead-letter-reason { (dead.reason) }
                            }
                            span.gap { (time(dead.dead_lettered_at)) }
                        }
                    }
                    @for why in &self.unanswered {
                        li.failed data-step="unanswered" { span.mark {} span.step { "Unknown" } span { (why) } span {} }
                    }
                }
                p.live-note {
                    @if complete { "Every step has happened." }
                    @else { "Updating live as the order travels…" }
                }
            }
        }
    }

    fn published_step(&self, event: EventType, label: &str, after: DateTime<Utc>) -> Markup {
        let name = match event {
            EventType::OrderPlaced => "published",
            EventType::OrderCancelled => "cancel-published",
        };
        match self.published(event) {
            Some(p) => step(
                name,
                label,
                Some(p.published_at),
                Some(after),
                html! {
                    (event.as_str()) " on partition " (p.kafka_partition) ", offset " (p.kafka_offset)
                },
            ),
            None => waiting(name, label, "waiting in the outbox for the relay"),
        }
    }

    fn downstream_step(
        &self,
        name: &str,
        label: &str,
        consumer: Consumer,
        effect: &Downstream,
        links: &PageLinks,
    ) -> Markup {
        let after = self
            .published(EventType::OrderPlaced)
            .map_or(self.placed_at, |p| p.published_at);
        match (effect, consumer) {
            (Downstream::Made(e), Consumer::Invoicing) => step(
                name,
                label,
                Some(e.at),
                Some(after),
                html! { a href={ (links.of(&INVOICING_SERVICE)) "/invoice/" (e.id) } { "invoice " (short(e.id)) } " issued" },
            ),
            (Downstream::Made(e), Consumer::Shipping) => step(
                name,
                label,
                Some(e.at),
                Some(after),
                html! { a href={ (links.of(&SHIPPING_SERVICE)) "/shipment/" (e.id) } { "shipment " (short(e.id)) } " created, to be packed" },
            ),
            (Downstream::NotYet, _) => waiting(
                name,
                label,
                &format!("{} has not made it yet", consumer.service()),
            ),
            (Downstream::Unavailable(why), _) => html! {
                li.failed data-step=(name) { span.mark {} span.step { (label) } span { (why) } span {} }
            },
        }
    }

    fn cancelled_step(&self, name: &str, label: &str, effect: &Downstream) -> Markup {
        if Self::cancelled_downstream(effect) {
            step(name, label, None, None, html! { "status cancelled" })
        } else {
            waiting(name, label, "not yet")
        }
    }
}

/// The last eight hex digits of a UUID (the random end of a UUIDv7, whose
/// start is its time), enough to tell one from another on a page.
fn short(id: Uuid) -> String {
    let hex = id.simple().to_string();
    hex[hex.len() - 8..].to_owned()
}

/// A step that happened (at `at`, `after` the previous one if known).
fn step(
    name: &str,
    label: &str,
    at: Option<DateTime<Utc>>,
    after: Option<DateTime<Utc>>,
    detail: Markup,
) -> Markup {
    html! {
        li.done data-step=(name) {
            span.mark {}
            span.step { (label) }
            span { (detail) @if let Some(at) = at { br; span.muted { (time(at)) } } }
            span.gap { @if let (Some(at), Some(after)) = (at, after) { (elapsed(after, at)) } }
        }
    }
}

fn waiting(name: &str, label: &str, why: &str) -> Markup {
    html! {
        li.waiting data-step=(name) { span.mark {} span.step { (label) } span { (why) } span {} }
    }
}

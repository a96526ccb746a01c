//! Parked outbox events: what Kafka refused for good, and what waits behind it.
//!
//! The relay parks an event Kafka will never take as it is (too large for
//! the topic, refused by its policy) and holds the later events of the same
//! key, so one order's events stay in order while every other order flows.
//! An operator fixes the cause (raises the topic's `max.message.bytes`, say)
//! and retries, or decides the event must not be published and discards it:
//! the row moves to `outbox_discarded` with the reason, who discarded it and
//! what that does to the order, and the events held behind it flow.
//!
//! A discard changes what the consumers ever see of an order: without its
//! `OrderPlaced` the order is never invoiced nor shipped; without its
//! `OrderCancelled` its invoice and shipment stay active. So the command
//! line states that [`consequence`] and asks for confirmation first.
//!
//! The operations themselves (their SQL and the relay's wake-up) are the
//! outbox's own, [`messaging::outbox::parked`]; this module words their
//! refusals for the command line and says what a discard means for an order.

use messaging::outbox::parked::{self, ParkedError};
pub use messaging::outbox::parked::{Discard, Discarded, Parked, Selection};
use sqlx::PgPool;

use crate::AdminError;

/// The parked events, oldest first, each with how many events it holds back.
pub async fn parked(pool: &PgPool) -> Result<Vec<Parked>, AdminError> {
    parked::list(pool).await.map_err(|e| refusal(e, ""))
}

/// Unparks the selected events so the relay tries them again (and wakes it);
/// how many were parked.
pub async fn retry(pool: &PgPool, selection: Selection) -> Result<u64, AdminError> {
    parked::retry(pool, selection)
        .await
        .map_err(|e| refusal(e, ""))
}

/// What discarding `parked` does to its order, in words an operator reads
/// before confirming: which consumer effects it prevents or leaves standing.
pub fn consequence(parked: &Parked) -> String {
    let order = &parked.record_key;
    let held = match parked.held {
        0 => String::new(),
        n => format!(" The {n} later event(s) of the order held behind it are published."),
    };
    match parked.event_type.as_str() {
        "OrderPlaced" => format!(
            "Order {order} is lost for both consumers: it is never invoiced and never shipped, \
             while order-service keeps showing it as placed.{held}"
        ),
        "OrderCancelled" => format!(
            "The cancellation of order {order} never reaches the consumers: its invoice stays \
             open and its shipment stays pending, while order-service shows it cancelled.{held}"
        ),
        other => format!("No consumer ever receives this {other} of order {order}.{held}"),
    }
}

/// The parked event with outbox id `id`, or why there is none.
pub async fn parked_one(pool: &PgPool, id: i64) -> Result<Parked, AdminError> {
    parked::find(pool, id)
        .await
        .map_err(|e| refusal(e, ONLY_PARKED))
}

/// Removes a parked event from the outbox into `outbox_discarded` with the
/// reason, who discarded it and the consequence, releasing the events held
/// behind it.
pub async fn discard(pool: &PgPool, discard: Discard<'_>) -> Result<Discarded, AdminError> {
    if discard.reason.trim().is_empty() {
        return Err(AdminError::Refused(
            "say why the event is discarded (--reason): it is kept with the event".into(),
        ));
    }
    if discard.by.trim().is_empty() {
        return Err(AdminError::Refused(
            "say who discards the event (--by): it is kept with the event".into(),
        ));
    }
    parked::discard(pool, discard)
        .await
        .map_err(|e| refusal(e, ONLY_PARKED))
}

/// What a discard's refusal adds to "is not parked".
const ONLY_PARKED: &str = "; only parked events can be discarded";

/// An operation's failure as the command line says it: a row that is not
/// parked points at `outbox list` (and `more`), a database error keeps what
/// was being done.
fn refusal(error: ParkedError, more: &str) -> AdminError {
    match error {
        ParkedError::NotParked(id) => AdminError::Refused(format!(
            "outbox event #{id} is not parked (see `orderflow-admin outbox list`){more}"
        )),
        ParkedError::Database { what, source } => AdminError::Database { what, source },
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;

    fn parked(event_type: &str, held: i64) -> Parked {
        Parked {
            id: 7,
            event_id: Uuid::nil(),
            event_type: event_type.to_owned(),
            record_key: "0193a1b2-0000-7000-8000-000000000001".to_owned(),
            size: 20_000,
            created_at: Utc::now(),
            parked_at: Utc::now(),
            park_reason: "Broker: Message size too large".to_owned(),
            held,
        }
    }

    #[test]
    fn a_discard_says_what_becomes_of_the_order() {
        let placed = consequence(&parked("OrderPlaced", 1));
        assert!(
            placed.starts_with(
                "Order 0193a1b2-0000-7000-8000-000000000001 is lost for both consumers: \
                 it is never invoiced and never shipped"
            ),
            "{placed}"
        );
        assert!(
            placed.ends_with("The 1 later event(s) of the order held behind it are published."),
            "{placed}"
        );
        let cancelled = consequence(&parked("OrderCancelled", 0));
        assert!(
            cancelled.contains("its invoice stays open and its shipment stays pending"),
            "{cancelled}"
        );
        assert!(!cancelled.contains("held behind it"), "{cancelled}");
    }
}

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

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::AdminError;

/// A parked outbox event.
#[derive(Debug, Clone, FromRow)]
pub struct Parked {
    /// The outbox row's id.
    pub id: i64,
    /// The event's id.
    pub event_id: Uuid,
    /// Its type.
    pub event_type: String,
    /// Its record key (the order id).
    pub record_key: String,
    /// The size of its value in bytes.
    pub size: i32,
    /// When it was committed.
    pub created_at: DateTime<Utc>,
    /// When the relay parked it.
    pub parked_at: DateTime<Utc>,
    /// Kafka's error.
    pub park_reason: String,
    /// Later events of the same key held behind it.
    pub held: i64,
}

/// Which parked events to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Every parked event.
    All,
    /// The one with this outbox id.
    Id(i64),
}

/// A parked event discarded by an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discarded {
    /// The event's id.
    pub event_id: Uuid,
    /// Its type.
    pub event_type: String,
    /// Its key.
    pub record_key: String,
    /// Events of the same key that were held behind it and now flow.
    pub released: i64,
}

/// The parked events, oldest first, each with how many events it holds back.
pub async fn parked(pool: &PgPool) -> Result<Vec<Parked>, AdminError> {
    sqlx::query_as(
        "SELECT p.id, p.event_id, p.event_type, p.record_key, octet_length(p.payload) AS size,
                p.created_at, p.parked_at, p.park_reason,
                (SELECT count(*) FROM outbox h
                 WHERE h.record_key = p.record_key AND h.id > p.id AND h.parked_at IS NULL) AS held
         FROM outbox p
         WHERE p.parked_at IS NOT NULL
         ORDER BY p.id",
    )
    .fetch_all(pool)
    .await
    .map_err(AdminError::database("listing the parked outbox events"))
}

/// Unparks the selected events so the relay tries them again (and wakes it);
/// how many were parked.
pub async fn retry(pool: &PgPool, selection: Selection) -> Result<u64, AdminError> {
    let id = match selection {
        Selection::All => None,
        Selection::Id(id) => Some(id),
    };
    let mut tx = pool
        .begin()
        .await
        .map_err(AdminError::database("starting the retry"))?;
    let retried = sqlx::query(
        "UPDATE outbox SET parked_at = NULL, park_reason = NULL
         WHERE parked_at IS NOT NULL AND ($1::int8 IS NULL OR id = $1)",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(AdminError::database("unparking the outbox events"))?
    .rows_affected();
    if let (Some(id), 0) = (id, retried) {
        return Err(AdminError::Refused(format!(
            "outbox event #{id} is not parked (see `orderflow-admin outbox list`)"
        )));
    }
    // Wake the relay now rather than at its next poll.
    sqlx::query("SELECT pg_notify('outbox', '')")
        .execute(&mut *tx)
        .await
        .map_err(AdminError::database("waking the relay"))?;
    tx.commit()
        .await
        .map_err(AdminError::database("committing the retry"))?;
    Ok(retried)
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
    parked(pool).await?.into_iter().find(|p| p.id == id).ok_or_else(|| {
        AdminError::Refused(format!(
            "outbox event #{id} is not parked (see `orderflow-admin outbox list`); only parked events can be discarded"
        ))
    })
}

/// A discard an operator has confirmed: which event, why, who, and what it
/// does to the order (kept with the event in `outbox_discarded`).
#[derive(Debug, Clone, Copy)]
pub struct Discard<'a> {
    /// The outbox id of the parked event.
    pub id: i64,
    /// Why it is discarded.
    pub reason: &'a str,
    /// Who discards it.
    pub by: &'a str,
    /// What it does to the order ([`consequence`]).
    pub consequence: &'a str,
}

/// Removes a parked event from the outbox into `outbox_discarded` with the
/// reason, who discarded it and the consequence, releasing the events held
/// behind it.
pub async fn discard(pool: &PgPool, discard: Discard<'_>) -> Result<Discarded, AdminError> {
    let Discard {
        id,
        reason,
        by,
        consequence,
    } = discard;
    if reason.trim().is_empty() {
        return Err(AdminError::Refused(
            "say why the event is discarded (--reason): it is kept with the event".into(),
        ));
    }
    if by.trim().is_empty() {
        return Err(AdminError::Refused(
            "say who discards the event (--by): it is kept with the event".into(),
        ));
    }
    let mut tx = pool
        .begin()
        .await
        .map_err(AdminError::database("starting the discard"))?;
    let moved: Option<(Uuid, String, String)> = sqlx::query_as(
        "WITH gone AS (
             DELETE FROM outbox WHERE id = $1 AND parked_at IS NOT NULL
             RETURNING event_id, topic, record_key, event_type, schema_version, payload,
                       traceparent, created_at, parked_at, park_reason
         )
         INSERT INTO outbox_discarded (event_id, topic, record_key, event_type, schema_version,
                                       payload, traceparent, created_at, parked_at, park_reason,
                                       discard_reason, discarded_by, consequence)
         SELECT event_id, topic, record_key, event_type, schema_version, payload, traceparent,
                created_at, parked_at, park_reason, $2, $3, $4
         FROM gone
         RETURNING event_id, event_type, record_key",
    )
    .bind(id)
    .bind(reason.trim())
    .bind(by.trim())
    .bind(consequence)
    .fetch_optional(&mut *tx)
    .await
    .map_err(AdminError::database(format!(
        "discarding outbox event #{id}"
    )))?;
    let Some((event_id, event_type, record_key)) = moved else {
        return Err(AdminError::Refused(format!(
            "outbox event #{id} is not parked (see `orderflow-admin outbox list`); only parked events can be discarded"
        )));
    };
    let released: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE record_key = $1 AND parked_at IS NULL",
    )
    .bind(&record_key)
    .fetch_one(&mut *tx)
    .await
    .map_err(AdminError::database("counting the released events"))?;
    sqlx::query("SELECT pg_notify('outbox', '')")
        .execute(&mut *tx)
        .await
        .map_err(AdminError::database("waking the relay"))?;
    tx.commit()
        .await
        .map_err(AdminError::database("committing the discard"))?;
    Ok(Discarded {
        event_id,
        event_type,
        record_key,
        released,
    })
}

#[cfg(test)]
mod tests {
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

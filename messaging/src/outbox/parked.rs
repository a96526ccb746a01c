//! Parked rows: the operator's side of the outbox.
//!
//! The relay parks an event Kafka will never take as it is (too large for
//! the topic, refused by its policy) and holds the later events of the same
//! key behind it, so one order's events stay in order while every other
//! order flows. An operator fixes the cause (raises the topic's
//! `max.message.bytes`, say) and [`retry`]s, or decides the event must not be
//! published and [`discard`]s it: the row moves to `outbox_discarded` with
//! the reason, who discarded it and what that does to the order, and the
//! events held behind it flow. Both wake the active relay with a `NOTIFY` on
//! [`CHANNEL`] in their transaction, so it acts at once rather than at its
//! next poll. `orderflow-admin outbox` is the command line over these.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use super::wakeup::CHANNEL;

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

/// A discard an operator has confirmed: which event, why, who, and what it
/// does to the order (kept with the event in `outbox_discarded`).
#[derive(Debug, Clone, Copy)]
pub struct Discard<'a> {
    /// The outbox id of the parked event.
    pub id: i64,
    /// Why it is discarded (not empty).
    pub reason: &'a str,
    /// Who discards it (not empty).
    pub by: &'a str,
    /// What it does to the order, as the operator was told before confirming.
    pub consequence: &'a str,
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

/// Why a parked-row operation did nothing.
#[derive(Debug, thiserror::Error)]
pub enum ParkedError {
    /// The row asked for is not parked (or not in the outbox at all).
    #[error("outbox event #{0} is not parked")]
    NotParked(i64),
    /// A statement failed; nothing was changed.
    #[error("{what}")]
    Database {
        /// What was being done.
        what: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

fn database(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> ParkedError {
    let what = what.into();
    move |source| ParkedError::Database { what, source }
}

/// The parked events, oldest first, each with how many events it holds back.
pub async fn list(pool: &PgPool) -> Result<Vec<Parked>, ParkedError> {
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
    .map_err(database("listing the parked outbox events"))
}

/// The parked event with outbox id `id`.
pub async fn find(pool: &PgPool, id: i64) -> Result<Parked, ParkedError> {
    list(pool)
        .await?
        .into_iter()
        .find(|p| p.id == id)
        .ok_or(ParkedError::NotParked(id))
}

/// Unparks the selected events so the relay tries them again, and wakes it;
/// how many were parked.
pub async fn retry(pool: &PgPool, selection: Selection) -> Result<u64, ParkedError> {
    let id = match selection {
        Selection::All => None,
        Selection::Id(id) => Some(id),
    };
    let mut tx = pool.begin().await.map_err(database("starting the retry"))?;
    let retried = sqlx::query(
        "UPDATE outbox SET parked_at = NULL, park_reason = NULL
         WHERE parked_at IS NOT NULL AND ($1::int8 IS NULL OR id = $1)",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(database("unparking the outbox events"))?
    .rows_affected();
    if let (Some(id), 0) = (id, retried) {
        return Err(ParkedError::NotParked(id));
    }
    wake_relay(&mut tx).await?;
    tx.commit()
        .await
        .map_err(database("committing the retry"))?;
    Ok(retried)
}

/// Moves a parked event from the outbox into `outbox_discarded` with the
/// reason, who discarded it and the consequence, releasing the events held
/// behind it, and wakes the relay.
pub async fn discard(pool: &PgPool, discard: Discard<'_>) -> Result<Discarded, ParkedError> {
    let Discard {
        id,
        reason,
        by,
        consequence,
    } = discard;
    let mut tx = pool
        .begin()
        .await
        .map_err(database("starting the discard"))?;
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
    .map_err(database(format!("discarding outbox event #{id}")))?;
    let Some((event_id, event_type, record_key)) = moved else {
        return Err(ParkedError::NotParked(id));
    };
    let released: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE record_key = $1 AND parked_at IS NULL",
    )
    .bind(&record_key)
    .fetch_one(&mut *tx)
    .await
    .map_err(database("counting the released events"))?;
    wake_relay(&mut tx).await?;
    tx.commit()
        .await
        .map_err(database("committing the discard"))?;
    Ok(Discarded {
        event_id,
        event_type,
        record_key,
        released,
    })
}

/// Wakes the active relay when the transaction commits, rather than at its
/// next poll: an operator's command is rare, so this `NOTIFY` costs the
/// orders' commits nothing (see [`super::Wakeup`]).
async fn wake_relay(conn: &mut PgConnection) -> Result<(), ParkedError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(conn)
        .await
        .map_err(database("waking the relay"))?;
    Ok(())
}

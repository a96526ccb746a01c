//! Cancellations that may overtake their order.
//!
//! A consumer cannot assume that an order's `OrderCancelled` comes after its
//! `OrderPlaced`: an operator may discard a parked event, or replay an old
//! dead letter. So a cancellation is remembered (the inbox's `cancellations`
//! table) whether or not the order's effect exists yet, and an effect
//! created later is created already cancelled. Both effects take a
//! transaction-scoped advisory lock on the order first: the "was it
//! cancelled?" check is a check-then-insert, safe only while the order is
//! locked, also when two deliveries of one order race through a rebalance.

use sqlx::PgConnection;
use uuid::Uuid;

/// Locks `order_id` until the end of the transaction on `conn`.
pub async fn lock_order(conn: &mut PgConnection, order_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))")
        .bind(order_id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Remembers that `order_id` was cancelled (once; later calls change nothing).
pub async fn note(conn: &mut PgConnection, order_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO cancellations (order_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(order_id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// The SQL that tells an effect's insert whether its order was cancelled
/// first, for `order_id` bound as `$param`: `TRUE` when a cancellation is
/// remembered.
pub fn was_cancelled_sql(param: usize) -> String {
    format!("EXISTS (SELECT 1 FROM cancellations WHERE order_id = ${param})")
}

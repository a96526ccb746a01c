//! Cancellations that may overtake their order.
//!
//! A consumer cannot assume that an order's `OrderCancelled` comes after its
//! `OrderPlaced`: an operator may discard a parked event, or replay an old
//! dead letter. So a cancellation is remembered (the inbox's `cancellations`
//! table) whether or not the order's effect exists yet, and an effect
//! created later is created already cancelled. The inbox locks every order
//! of a batch ([`lock_orders`]) before the effects run: the "was it
//! cancelled?" check is a check-then-insert, safe only while the order is
//! locked, also when two deliveries of one order race through a rebalance.

use sqlx::PgConnection;
use uuid::Uuid;

/// Locks each of `orders` until the end of the transaction on `conn`, in
/// one statement and in the order of their lock keys, so that two
/// transactions locking overlapping sets wait for each other instead of
/// deadlocking. The inbox takes these locks for every batch.
pub async fn lock_orders(conn: &mut PgConnection, orders: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(k.key)
         FROM (SELECT DISTINCT hashtextextended(o::text, 0) AS key
               FROM unnest($1::uuid[]) AS o
               ORDER BY key) AS k",
    )
    .bind(orders)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Remembers that each of `orders` was cancelled (once; later calls change nothing).
pub async fn note(conn: &mut PgConnection, orders: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO cancellations (order_id)
         SELECT o FROM unnest($1::uuid[]) AS o
         ON CONFLICT DO NOTHING",
    )
    .bind(orders)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Cancels the effects of `orders` in `table` (a consumer's table with a
/// `status` column), and remembers the cancellations for effects not created
/// yet. How many existing effects were cancelled.
pub async fn cancel(
    conn: &mut PgConnection,
    orders: &[Uuid],
    table: &'static str,
) -> Result<u64, sqlx::Error> {
    if orders.is_empty() {
        return Ok(0);
    }
    note(conn, orders).await?;
    let sql = format!("UPDATE {table} SET status = 'cancelled' WHERE order_id = ANY($1)");
    let cancelled = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(orders)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(cancelled)
}

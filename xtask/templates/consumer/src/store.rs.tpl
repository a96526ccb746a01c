//! The effect of order events on {{name}}'s table, a whole batch at once,
//! inside the inbox's transaction (it never commits). The inbox has locked
//! the batch's orders; an entry honours a cancellation that came first.

use messaging::inbox::EventMeta;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::NewEntry;

/// Records the entries of `placed`, in one statement: open, or already
/// cancelled when the order's cancellation came first. An order recorded
/// already (another `OrderPlaced` of it) keeps its entry.
pub async fn record(
    conn: &mut PgConnection,
    placed: &[(&EventMeta, &NewEntry)],
) -> Result<(), sqlx::Error> {
    if placed.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&NewEntry) -> &str| placed.iter().map(|(_, e)| f(e)).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO {{name}}_entries (id, order_id, status, customer_name, currency, total_cents, units)
         SELECT n.id, n.order_id,
             CASE WHEN EXISTS (SELECT 1 FROM cancellations c WHERE c.order_id = n.order_id)
                  THEN 'cancelled' ELSE 'open' END,
             n.customer_name, n.currency, n.total_cents, n.units
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int8[], $6::int4[])
             AS n (id, order_id, customer_name, currency, total_cents, units)
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(placed.iter().map(|_| Uuid::now_v7()).collect::<Vec<_>>())
    .bind(placed.iter().map(|(e, _)| e.order_id).collect::<Vec<_>>())
    .bind(column(|e| &e.customer_name))
    .bind(column(|e| &e.currency))
    .bind(placed.iter().map(|(_, e)| e.total_cents).collect::<Vec<_>>())
    .bind(placed.iter().map(|(_, e)| e.units).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

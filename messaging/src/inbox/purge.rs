//! Forgetting what no redelivery can need any more: dedup records,
//! remembered cancellations whose order has its effect, and the notes of
//! dead letters written, older than the retention window.
//!
//! A cancellation note whose order has no effect in this consumer is kept
//! however old it is: the order's `OrderPlaced` may still come (a dead
//! letter replayed months later), and it must then be created cancelled,
//! not open. Such notes are few (cancellations of orders this consumer
//! refused or never saw), so keeping them costs little; a note whose order
//! has its effect has done its work (the effect carries the cancellation),
//! and goes with the window.

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::InboxMetrics;
use super::settings::InboxSettings;

/// Purges every `settings.purge_interval` until `shutdown` fires.
/// `effect_table` is the service's table of effects ([`super::Handler::effect_table`]).
pub(super) async fn purge_processed(
    pool: PgPool,
    settings: InboxSettings,
    effect_table: &'static str,
    metrics: InboxMetrics,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(settings.purge_interval);
    let retention_secs = settings.processed_retention.as_secs_f64();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {},
        }
        // One statement for the three tables: the dedup records of this
        // group, the cancellations whose order has its effect, the notes of
        // dead letters.
        let sql = format!(
            "WITH processed AS (
                 DELETE FROM processed_events
                 WHERE consumer = $1 AND processed_at < now() - make_interval(secs => $2)
                 RETURNING 1
             ), cancellations AS (
                 DELETE FROM cancellations c
                 WHERE recorded_at < now() - make_interval(secs => $2)
                   AND EXISTS (SELECT 1 FROM {effect_table} e WHERE e.order_id = c.order_id)
                 RETURNING 1
             ), dead_letters AS (
                 DELETE FROM dead_letters
                 WHERE consumer = $1 AND dead_lettered_at < now() - make_interval(secs => $2)
                 RETURNING 1
             )
             SELECT (SELECT count(*) FROM processed),
                    (SELECT count(*) FROM cancellations) + (SELECT count(*) FROM dead_letters)"
        );
        let purged: Result<(i64, i64), _> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(&settings.group_id)
            .bind(retention_secs)
            .fetch_one(&pool)
            .await;
        match purged {
            Ok((processed, cancellations)) => {
                let rows = u64::try_from(processed + cancellations).unwrap_or(0);
                metrics.purged.inc_by(rows);
                if rows > 0 {
                    tracing::info!(
                        processed,
                        cancellations,
                        "purged records older than the retention window"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %platform::error::chain(&e), "purging old processed-event and cancellation records failed")
            }
        }
    }
}

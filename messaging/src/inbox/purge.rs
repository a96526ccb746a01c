//! Forgetting what no redelivery can need any more: dedup records,
//! remembered early cancellations and the notes of dead letters written,
//! older than the retention window.

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::InboxMetrics;
use super::settings::InboxSettings;

/// Purges every `settings.purge_interval` until `shutdown` fires.
pub(super) async fn purge_processed(
    pool: PgPool,
    settings: InboxSettings,
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
        // One statement for both tables: the dedup records of this group,
        // and the cancellations remembered for orders whose placement never
        // came within the window.
        let purged: Result<(i64, i64), _> = sqlx::query_as(
            "WITH processed AS (
                 DELETE FROM processed_events
                 WHERE consumer = $1 AND processed_at < now() - make_interval(secs => $2)
                 RETURNING 1
             ), cancellations AS (
                 DELETE FROM cancellations
                 WHERE recorded_at < now() - make_interval(secs => $2)
                 RETURNING 1
             ), dead_letters AS (
                 DELETE FROM dead_letters
                 WHERE consumer = $1 AND dead_lettered_at < now() - make_interval(secs => $2)
                 RETURNING 1
             )
             SELECT (SELECT count(*) FROM processed),
                    (SELECT count(*) FROM cancellations) + (SELECT count(*) FROM dead_letters)",
        )
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

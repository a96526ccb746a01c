//! Latencies: HDR histograms and the percentiles the report shows.
//!
//! - **HTTP**: from each request's *due* time in the open-loop schedule to its
//!   complete answer (the load generator measures it).
//! - **End to end**: from the commit of the order's transaction to the commit
//!   of the invoice's (and of the shipment's) transaction. Each commit time is
//!   `pg_xact_commit_timestamp(xmin)` of the row, read after the run, with
//!   `track_commit_timestamp = on` (see [`super::infra`]). All three databases
//!   live on one server, so the two times come from one clock. The
//!   `placed_at`/`issued_at`/`created_at` columns are not used: they hold
//!   `now()`, the *start* of each transaction, which is up to one transaction
//!   (an fsync) off from its commit at either end.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use sqlx::PgPool;
use uuid::Uuid;

use super::BenchError;

/// The percentiles of one latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub(crate) struct Percentiles {
    /// Values recorded.
    pub(crate) count: u64,
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) max: f64,
}

/// A histogram of microseconds from 1 µs to 10 minutes, 3 significant digits.
pub(crate) fn histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .map_err(|e| BenchError::Run(format!("cannot create a histogram: {e}")))
}

/// Records `micros`, clamped into the histogram's range.
pub(crate) fn record(histogram: &mut Histogram<u64>, micros: u64) {
    histogram.saturating_record(micros.max(1));
}

impl Percentiles {
    /// The percentiles of `histogram` (microseconds), or `None` when it is empty.
    pub(crate) fn of(histogram: &Histogram<u64>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Some(Percentiles {
            count: histogram.len(),
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        })
    }
}

/// The end-to-end latencies of some orders: to the invoice and to the shipment.
#[derive(Debug)]
pub(crate) struct EndToEnd {
    pub(crate) invoice: Histogram<u64>,
    pub(crate) shipment: Histogram<u64>,
    /// To the later of the two: when the order had reached both consumers.
    pub(crate) both: Histogram<u64>,
    /// Orders without an invoice (not processed in time).
    pub(crate) missing_invoices: usize,
    /// Orders without a shipment.
    pub(crate) missing_shipments: usize,
}

/// Commit time of the order, invoice and shipment of each of `order_ids`.
pub(crate) async fn end_to_end(
    orders: &PgPool,
    invoicing: &PgPool,
    shipping: &PgPool,
    order_ids: &[Uuid],
) -> Result<EndToEnd, BenchError> {
    let placed = commit_times(
        orders,
        "SELECT id, pg_xact_commit_timestamp(xmin) FROM orders WHERE id = ANY($1)",
        order_ids,
    )
    .await?;
    let invoiced = commit_times(
        invoicing,
        "SELECT order_id, pg_xact_commit_timestamp(xmin) FROM invoices WHERE order_id = ANY($1)",
        order_ids,
    )
    .await?;
    let shipped = commit_times(
        shipping,
        "SELECT order_id, pg_xact_commit_timestamp(xmin) FROM shipments WHERE order_id = ANY($1)",
        order_ids,
    )
    .await?;
    let (invoice, missing_invoices) = between(&placed, &invoiced, order_ids)?;
    let (shipment, missing_shipments) = between(&placed, &shipped, order_ids)?;
    let (both, _) = between(&placed, &later(&invoiced, &shipped), order_ids)?;
    Ok(EndToEnd {
        invoice,
        shipment,
        both,
        missing_invoices,
        missing_shipments,
    })
}

async fn commit_times(
    pool: &PgPool,
    query: &'static str,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, DateTime<Utc>>, BenchError> {
    let rows: Vec<(Uuid, Option<DateTime<Utc>>)> =
        sqlx::query_as(query).bind(ids).fetch_all(pool).await?;
    rows.into_iter()
        .map(|(id, at)| {
            at.map(|at| (id, at)).ok_or_else(|| {
                BenchError::Run(format!(
                    "row of {id} has no commit timestamp (is track_commit_timestamp on?)"
                ))
            })
        })
        .collect()
}

/// The later of the two times of each id present in both maps.
fn later(
    a: &HashMap<Uuid, DateTime<Utc>>,
    b: &HashMap<Uuid, DateTime<Utc>>,
) -> HashMap<Uuid, DateTime<Utc>> {
    a.iter()
        .filter_map(|(id, at)| b.get(id).map(|other| (*id, (*at).max(*other))))
        .collect()
}

/// A histogram of `to - from` per order, and how many orders lack a `to`.
fn between(
    from: &HashMap<Uuid, DateTime<Utc>>,
    to: &HashMap<Uuid, DateTime<Utc>>,
    ids: &[Uuid],
) -> Result<(Histogram<u64>, usize), BenchError> {
    let mut histogram = histogram()?;
    let mut missing = 0;
    for id in ids {
        match (from.get(id), to.get(id)) {
            (Some(start), Some(end)) => {
                let micros = (*end - *start).num_microseconds().unwrap_or(i64::MAX);
                record(&mut histogram, u64::try_from(micros).unwrap_or(0));
            }
            _ => missing += 1,
        }
    }
    Ok((histogram, missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram_in_milliseconds() {
        let mut h = histogram().expect("histogram");
        for micros in 1..=1000 {
            record(&mut h, micros * 1000);
        }
        let p = Percentiles::of(&h).expect("not empty");
        assert_eq!(p.count, 1000);
        assert!((p.p50 - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99 - 990.0).abs() < 1.0, "{p:?}");
        assert!((p.max - 1000.0).abs() < 1.0, "{p:?}");
        assert_eq!(Percentiles::of(&histogram().expect("histogram")), None);
    }

    #[test]
    fn end_to_end_pairs_orders_with_their_effects() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("time");
        let from = HashMap::from([(a, t0), (b, t0)]);
        let to = HashMap::from([(a, t0 + chrono::Duration::milliseconds(25))]);
        let (h, missing) = between(&from, &to, &[a, b]).expect("between");
        assert_eq!(missing, 1);
        assert_eq!(h.len(), 1);
        assert!((24_900..=25_100).contains(&h.max()), "{}", h.max());
    }

    #[test]
    fn both_effects_count_from_the_later_one_and_need_both() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("time");
        let ms = chrono::Duration::milliseconds;
        let invoiced = HashMap::from([(a, t0 + ms(5)), (b, t0 + ms(1))]);
        let shipped = HashMap::from([(a, t0 + ms(9))]);
        assert_eq!(later(&invoiced, &shipped), HashMap::from([(a, t0 + ms(9))]));
    }
}

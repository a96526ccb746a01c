//! After a scenario: wait until the flow is quiet, then check every accepted
//! order against invoicing's and shipping's databases.
//!
//! "Quiet" means: every accepted order has an invoice and a shipment, the
//! outbox is empty, and both consumer groups have committed up to the end of
//! the topic. A scenario that does not get there within its deadline has lost
//! orders or a stuck consumer, and the audit says which.
//!
//! Two kinds of duplicate effect are looked for, and they measure different
//! things. A second invoice or shipment for an order ([`audit`]) cannot
//! happen whatever the inbox does: `UNIQUE(order_id)` forbids it, so that
//! check guards the schema and the content, not the dedup. The running
//! figures ([`running_figures`]: each customer's open balance per currency,
//! the units to pick per SKU) are moved by every event a consumer applies,
//! with no key to stop a second application, so they equal what their rows
//! add up to only if the inbox applied each event once. That check is the
//! one that sees the inbox's dedup from outside.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use devinfra::private::Pools;
use orderflow_client::{PricedLine, ShipmentLine};
use platform::services;
use rdkafka::message::{Message, OwnedMessage};
use shared_events::topics::ORDERS as ORDERS_TOPIC;
use sqlx::Row;
use uuid::Uuid;

use super::ChaosError;
use super::load::Accepted;
use super::topic::LagReader;

/// How often the flow is probed while waiting for it to settle.
const SETTLE_PROBE: Duration = Duration::from_millis(500);

/// How many examples of each kind of problem the report shows.
const SHOWN: usize = 3;

/// The state of the flow at one probe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    pub(crate) invoiced: usize,
    pub(crate) shipped: usize,
    pub(crate) outbox: i64,
    pub(crate) invoicing_lag: i64,
    pub(crate) shipping_lag: i64,
}

impl Progress {
    fn settled(&self, orders: usize) -> bool {
        self.invoiced == orders
            && self.shipped == orders
            && self.outbox == 0
            && self.invoicing_lag == 0
            && self.shipping_lag == 0
    }
}

/// Waits until the flow has settled for `accepted` or `timeout` passes;
/// returns the last probe and whether it settled.
pub(crate) async fn settle(
    pools: &Pools,
    bootstrap: &str,
    accepted: &[Accepted],
    timeout: Duration,
) -> Result<(Progress, bool), ChaosError> {
    let ids: Vec<Uuid> = accepted.iter().map(|a| a.order_id).collect();
    let groups: Vec<&str> = services::consumers()
        .filter_map(|s| s.consumer_group)
        .collect();
    let lag = LagReader::new(bootstrap, &groups, ORDERS_TOPIC)?;
    let started = Instant::now();
    loop {
        let progress = probe(pools, &lag, &ids).await?;
        if progress.settled(ids.len()) {
            return Ok((progress, true));
        }
        if started.elapsed() >= timeout {
            return Ok((progress, false));
        }
        tokio::time::sleep(SETTLE_PROBE).await;
    }
}

async fn probe(pools: &Pools, lag: &LagReader, ids: &[Uuid]) -> Result<Progress, ChaosError> {
    let count = |pool: &sqlx::PgPool, sql: &'static str| {
        let pool = pool.clone();
        let ids = ids.to_vec();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(ids)
                .fetch_one(&pool)
                .await
                .map_err(ChaosError::Database)
        }
    };
    let outbox = async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox")
            .fetch_one(&pools.orders)
            .await
            .map_err(ChaosError::Database)
    };
    let (invoiced, shipped, outbox) = tokio::try_join!(
        count(
            &pools.invoicing,
            "SELECT count(DISTINCT order_id) FROM invoices WHERE order_id = ANY($1)"
        ),
        count(
            &pools.shipping,
            "SELECT count(DISTINCT order_id) FROM shipments WHERE order_id = ANY($1)"
        ),
        outbox,
    )?;
    let (invoicing_lag, shipping_lag) = match lag.lags().await?[..] {
        [invoicing, shipping] => (invoicing, shipping),
        _ => {
            return Err(ChaosError::Scenario(
                "expected the lag of two groups".into(),
            ));
        }
    };
    Ok(Progress {
        invoiced: usize::try_from(invoiced).unwrap_or(0),
        shipped: usize::try_from(shipped).unwrap_or(0),
        outbox,
        invoicing_lag,
        shipping_lag,
    })
}

/// What the audit of one scenario found.
#[derive(Debug, Default, Clone)]
pub(crate) struct Findings {
    /// Accepted orders without an invoice or without a shipment.
    pub(crate) lost: usize,
    /// Effects applied more than once: second invoices or shipments, extra
    /// lines, and orders placed twice for one client request.
    pub(crate) duplicate_effects: usize,
    /// Invoices or shipments whose content differs from the order.
    pub(crate) wrong_content: usize,
    /// Examples of each problem.
    pub(crate) examples: Vec<String>,
}

impl Findings {
    fn example(&mut self, text: String) {
        if self.examples.len() < SHOWN * 3 {
            self.examples.push(text);
        }
    }

    /// Lines beyond the order's count as duplicate effects; any difference
    /// between what a consumer recorded and what was ordered as wrong content.
    fn compare<T: PartialEq + std::fmt::Debug>(
        &mut self,
        what: &str,
        order: Uuid,
        extra_lines: usize,
        got: T,
        want: T,
    ) {
        self.duplicate_effects += extra_lines;
        if got != want {
            self.wrong_content += 1;
            self.example(format!("{what} of {order}: got {got:?}, expected {want:?}"));
        }
    }
}

/// Rows grouped by their `order_id` column.
fn by_order(
    rows: &[sqlx::postgres::PgRow],
) -> Result<HashMap<Uuid, Vec<&sqlx::postgres::PgRow>>, ChaosError> {
    let mut grouped: HashMap<Uuid, Vec<&sqlx::postgres::PgRow>> = HashMap::new();
    for row in rows {
        let id: Uuid = row.try_get("order_id").map_err(ChaosError::Database)?;
        grouped.entry(id).or_default().push(row);
    }
    Ok(grouped)
}

/// Checks every accepted order's invoice and shipment, and looks for orders
/// the service created that the client never got an id for.
pub(crate) async fn audit(
    pools: &Pools,
    accepted: &[Accepted],
    window: (SystemTime, SystemTime),
) -> Result<Findings, ChaosError> {
    let ids: Vec<Uuid> = accepted.iter().map(|a| a.order_id).collect();
    let mut findings = Findings::default();

    let invoices = sqlx::query(
        "SELECT order_id, status, customer_name, billing_city, currency, total_cents, lines::text AS lines
         FROM invoices_with_lines WHERE order_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&pools.invoicing)
    .await
    .map_err(ChaosError::Database)?;
    let shipments = sqlx::query(
        "SELECT order_id, status, recipient_name, shipping_street, shipping_city, lines::text AS lines
         FROM shipments_with_lines WHERE order_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&pools.shipping)
    .await
    .map_err(ChaosError::Database)?;

    let invoices_by_order = by_order(&invoices)?;
    let shipments_by_order = by_order(&shipments)?;

    for order in accepted {
        let expected = &order.expected;
        let invoices = invoices_by_order
            .get(&order.order_id)
            .map_or(&[][..], Vec::as_slice);
        let shipments = shipments_by_order
            .get(&order.order_id)
            .map_or(&[][..], Vec::as_slice);
        if invoices.is_empty() || shipments.is_empty() {
            findings.lost += 1;
            findings.example(format!(
                "lost: order {} has {} invoice(s) and {} shipment(s)",
                order.order_id,
                invoices.len(),
                shipments.len()
            ));
            continue;
        }
        let extra = invoices.len() - 1 + shipments.len() - 1;
        if extra > 0 {
            findings.duplicate_effects += extra;
            findings.example(format!(
                "duplicate: order {} has {} invoices and {} shipments",
                order.order_id,
                invoices.len(),
                shipments.len()
            ));
        }

        let invoice = invoices[0];
        let lines: Vec<PricedLine> = json_column(invoice, "lines")?;
        let got = (
            text(invoice, "status")?,
            text(invoice, "customer_name")?,
            text(invoice, "billing_city")?,
            text(invoice, "currency")?,
            invoice
                .try_get::<i64, _>("total_cents")
                .map_err(ChaosError::Database)?,
            lines
                .iter()
                .map(|l| (l.sku.clone(), l.quantity, l.unit_price_cents))
                .collect::<Vec<_>>(),
        );
        let want = (
            if order.cancelled { "cancelled" } else { "open" }.to_owned(),
            expected.customer_name.clone(),
            expected.billing_city.clone(),
            expected.currency.clone(),
            expected.total_cents,
            expected
                .lines
                .iter()
                .map(|l| (l.sku.clone(), l.quantity, l.unit_price_cents))
                .collect::<Vec<_>>(),
        );
        let extra = lines.len().saturating_sub(expected.lines.len());
        findings.compare("invoice", order.order_id, extra, got, want);

        let shipment = shipments[0];
        let lines: Vec<ShipmentLine> = json_column(shipment, "lines")?;
        let got = (
            text(shipment, "status")?,
            text(shipment, "recipient_name")?,
            text(shipment, "shipping_street")?,
            text(shipment, "shipping_city")?,
            lines
                .iter()
                .map(|l| (l.sku.clone(), l.quantity))
                .collect::<Vec<_>>(),
        );
        let want = (
            if order.cancelled {
                "cancelled"
            } else {
                "pending"
            }
            .to_owned(),
            expected.customer_name.clone(),
            expected.shipping_street.clone(),
            expected.shipping_city.clone(),
            expected
                .lines
                .iter()
                .map(|l| (l.sku.clone(), l.quantity))
                .collect::<Vec<_>>(),
        );
        let extra = lines.len().saturating_sub(expected.lines.len());
        findings.compare("shipment", order.order_id, extra, got, want);
    }

    // An order the service created during the scenario that no client holds an
    // id for: a retried request placed twice.
    let (from, to) = (
        DateTime::<Utc>::from(window.0),
        DateTime::<Utc>::from(window.1),
    );
    // (A probe sent while PostgreSQL was away that was still accepted is not
    // one: the PostgreSQL scenario's own check reports it.)
    let unclaimed: Vec<Uuid> = sqlx::query_scalar(
        "SELECT o.id FROM orders o LEFT JOIN idempotency_keys k ON k.order_id = o.id
         WHERE o.placed_at BETWEEN $1 AND $2 AND NOT (o.id = ANY($3))
           AND (k.key IS NULL OR k.key NOT LIKE $4 || '%')",
    )
    .bind(from)
    .bind(to)
    .bind(&ids)
    .bind(super::faults::PROBE_KEY_PREFIX)
    .fetch_all(&pools.orders)
    .await
    .map_err(ChaosError::Database)?;
    if !unclaimed.is_empty() {
        findings.duplicate_effects += unclaimed.len();
        findings.example(format!(
            "{} order(s) placed that no client request got back, e.g. {}",
            unclaimed.len(),
            unclaimed[0]
        ));
    }
    Ok(findings)
}

/// How far the consumers' running figures are from the rows they must equal.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunningFigures {
    /// Customers' balances (per currency) that differ from the total of
    /// their open invoices.
    pub balances_off: usize,
    /// SKUs whose units to pick differ from the pending shipments' lines.
    pub skus_off: usize,
    /// Examples, a few of each.
    pub examples: Vec<String>,
}

impl RunningFigures {
    /// Duplicate (or lost) effects by the non-idempotent checks: the figures
    /// that differ from their rows.
    pub fn off(&self) -> usize {
        self.balances_off + self.skus_off
    }
}

/// Compares invoicing's balances with its open invoices, customer by customer
/// and currency by currency, and shipping's pick list with its pending
/// shipments, SKU by SKU, over the whole of each database. A figure and its
/// rows are written in one transaction, so each comparison (one statement,
/// one snapshot) holds at any moment, settled or not.
pub async fn running_figures(
    invoicing: &sqlx::PgPool,
    shipping: &sqlx::PgPool,
) -> Result<RunningFigures, sqlx::Error> {
    let balances: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT customer_email, currency,
                COALESCE(b.open_cents, 0), COALESCE(r.open_cents, 0)::bigint
         FROM customer_balances b
         FULL JOIN (SELECT customer_email, currency, sum(total_cents) AS open_cents
                    FROM invoices WHERE status = 'open'
                    GROUP BY customer_email, currency) r USING (customer_email, currency)
         WHERE COALESCE(b.open_cents, 0) <> COALESCE(r.open_cents, 0)
         ORDER BY customer_email, currency",
    )
    .fetch_all(invoicing)
    .await?;
    let skus: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT sku, COALESCE(p.units, 0), COALESCE(r.units, 0)::bigint
         FROM pick_list p
         FULL JOIN (SELECT l.sku, sum(l.quantity) AS units
                    FROM shipments s JOIN shipment_lines l ON l.shipment_id = s.id
                    WHERE s.status = 'pending'
                    GROUP BY l.sku) r USING (sku)
         WHERE COALESCE(p.units, 0) <> COALESCE(r.units, 0)
         ORDER BY sku",
    )
    .fetch_all(shipping)
    .await?;
    let examples = balances
        .iter()
        .take(SHOWN)
        .map(|(customer, currency, running, rows)| {
            format!(
                "balance of {customer} in {currency}: {running} cents, but their open invoices total {rows}"
            )
        })
        .chain(skus.iter().take(SHOWN).map(|(sku, running, rows)| {
            format!("{sku}: {running} units to pick, but the pending shipments hold {rows}")
        }))
        .collect();
    Ok(RunningFigures {
        balances_off: balances.len(),
        skus_off: skus.len(),
        examples,
    })
}

/// Orders whose events reached the topic out of order, checked for every
/// accepted order over `records` (the scenario's part of the topic): an order
/// is reordered when its first `OrderCancelled` comes before its first
/// `OrderPlaced` in its partition, or comes without any `OrderPlaced`, or
/// when its events span partitions. Later copies of an event (a relay's
/// republication) are absorbed by the consumers and do not count.
pub(crate) fn reordered(records: &[OwnedMessage], accepted: &[Accepted]) -> (usize, Vec<String>) {
    let mut sorted: Vec<&OwnedMessage> = records.iter().collect();
    sorted.sort_by_key(|r| (r.partition(), r.offset()));
    // Per key: the partitions seen and the event types in partition order.
    let mut by_key: HashMap<&[u8], (Vec<i32>, Vec<String>)> = HashMap::new();
    for record in &sorted {
        let Some(key) = record.key() else { continue };
        let entry = by_key.entry(key).or_default();
        if !entry.0.contains(&record.partition()) {
            entry.0.push(record.partition());
        }
        entry
            .1
            .push(super::topic::header(record, "event_type").unwrap_or_default());
    }
    let mut count = 0;
    let mut examples = Vec::new();
    for order in accepted {
        let key = order.order_id.to_string();
        let Some((partitions, events)) = by_key.get(key.as_bytes()) else {
            continue;
        };
        let placed = events.iter().position(|e| e == "OrderPlaced");
        let cancelled = events.iter().position(|e| e == "OrderCancelled");
        let wrong = partitions.len() > 1
            || match (placed, cancelled) {
                (Some(p), Some(c)) => c < p,
                (None, Some(_)) => true,
                _ => false,
            };
        if wrong {
            count += 1;
            if examples.len() < SHOWN {
                examples.push(format!(
                    "reordered: order {} has {events:?} in partition(s) {partitions:?}",
                    order.order_id
                ));
            }
        }
    }
    (count, examples)
}

/// Seconds from `fault` until every order accepted before it had both its
/// invoice and its shipment committed (0 if they all had them before the
/// fault). Commit times come from PostgreSQL's `track_commit_timestamp`.
pub(crate) async fn recovery_after(
    pools: &Pools,
    accepted: &[Accepted],
    fault: SystemTime,
) -> Result<f64, ChaosError> {
    let before: Vec<Uuid> = accepted
        .iter()
        .filter(|a| a.at <= fault)
        .map(|a| a.order_id)
        .collect();
    if before.is_empty() {
        return Ok(0.0);
    }
    let latest = |pool: sqlx::PgPool, sql: &'static str| {
        let before = before.clone();
        async move {
            sqlx::query_scalar::<_, Option<DateTime<Utc>>>(sql)
                .bind(before)
                .fetch_one(&pool)
                .await
                .map_err(ChaosError::Database)
        }
    };
    let (invoiced, shipped) = tokio::try_join!(
        latest(
            pools.invoicing.clone(),
            "SELECT max(pg_xact_commit_timestamp(xmin)) FROM invoices WHERE order_id = ANY($1)"
        ),
        latest(
            pools.shipping.clone(),
            "SELECT max(pg_xact_commit_timestamp(xmin)) FROM shipments WHERE order_id = ANY($1)"
        ),
    )?;
    let fault = DateTime::<Utc>::from(fault);
    let last = invoiced.into_iter().chain(shipped).max();
    Ok(last.map_or(0.0, |last| {
        (last - fault).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6
    }))
}

fn text(row: &sqlx::postgres::PgRow, column: &str) -> Result<String, ChaosError> {
    row.try_get(column).map_err(ChaosError::Database)
}

fn json_column<T: serde::de::DeserializeOwned>(
    row: &sqlx::postgres::PgRow,
    column: &str,
) -> Result<T, ChaosError> {
    let raw: String = row.try_get(column).map_err(ChaosError::Database)?;
    serde_json::from_str(&raw)
        .map_err(|e| ChaosError::Scenario(format!("column {column} is not the expected JSON: {e}")))
}

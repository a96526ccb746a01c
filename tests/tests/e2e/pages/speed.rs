//! The order list stays fast with a million orders.

use std::time::{Duration, Instant};

use anyhow::ensure;
use reqwest::StatusCode;

use super::Flow;

/// The orders the million-order measurement seeds.
const MILLION: i64 = 1_000_000;

/// The median time of `runs` answers to `GET url`, each checked to be 200
/// and to hold `expect`.
async fn median_answer(url: &str, expect: &str, runs: usize) -> anyhow::Result<Duration> {
    let client = reqwest::Client::new();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let response = client.get(url).send().await?;
        ensure!(
            response.status() == StatusCode::OK,
            "{url}: {}",
            response.status()
        );
        let body = response.text().await?;
        times.push(started.elapsed());
        ensure!(body.contains(expect), "{url} does not show {expect:?}");
    }
    times.sort_unstable();
    Ok(times[runs / 2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_list_answers_fast_with_a_million_orders() -> anyhow::Result<()> {
    let flow = Flow::order_service_only().await?;
    let seeding = Instant::now();
    // Set-based: one statement per table. Ids are UUIDv7 built from each
    // order's placed_at (one millisecond apart), as the service makes them.
    sqlx::query(
        "INSERT INTO orders (id, status, customer_name, customer_email,
             billing_street, billing_zip, billing_city, billing_country,
             shipping_street, shipping_zip, shipping_city, shipping_country,
             currency, total_cents, placed_at)
         SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::int8), 12, '0') || '7'
                 || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid,
                'placed', 'Customer ' || n, 'c' || n || '@example.com',
                n || ' Ledger Lane', '10115', 'Berlin', 'DE',
                n || ' Dock Road', '20457', 'Hamburg', 'DE', 'EUR', 2999, t
         FROM (SELECT n, md5(n::text) AS h,
                      date_trunc('milliseconds', now()) - make_interval(secs => ($1 - n) / 1000.0) AS t
               FROM generate_series(1, $1) AS n) AS s",
    )
    .bind(MILLION)
    .execute(&flow.orders)
    .await?;
    sqlx::query(
        "INSERT INTO order_lines (order_id, line_no, sku, name, quantity, unit_price_cents, line_total_cents)
         SELECT id, 0, 'SKU-1', 'Product', 1, 2999, 2999 FROM orders",
    )
    .execute(&flow.orders)
    .await?;
    sqlx::query("ANALYZE orders, order_lines")
        .execute(&flow.orders)
        .await?;
    let seeded = seeding.elapsed();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&flow.orders)
        .await?;
    ensure!(count == MILLION, "{count} orders seeded");

    let middle: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM orders ORDER BY id DESC OFFSET $1 LIMIT 1")
            .bind(MILLION / 2)
            .fetch_one(&flow.orders)
            .await?;
    let newest = format!("Customer {MILLION}");
    let first = median_answer(&flow.order("/"), &newest, 7).await?;
    let deep = median_answer(
        &flow.order(&format!("/?cursor={middle}")),
        &format!("Customer {}", MILLION / 2 - 1),
        7,
    )
    .await?;
    let json = median_answer(&flow.order("/orders?limit=50"), &newest, 7).await?;
    println!(
        "order list with {MILLION} orders (seeded in {seeded:.1?}): first page {first:.1?}, \
         a page half-way down {deep:.1?}, GET /orders?limit=50 {json:.1?} (median of 7, 50 orders a page)"
    );
    for (what, took) in [
        ("first page", first),
        ("deep page", deep),
        ("JSON page", json),
    ] {
        ensure!(took < Duration::from_secs(1), "{what} took {took:?}");
    }
    // A million orders is 400 MB; this test's database need not keep them.
    sqlx::query("TRUNCATE orders, order_lines CASCADE")
        .execute(&flow.orders)
        .await?;
    Ok(())
}

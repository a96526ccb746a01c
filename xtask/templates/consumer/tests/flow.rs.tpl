//! {{name}}-service's own end-to-end test, on a real Kafka and PostgreSQL
//! (`cargo xtask test` provides them): an order placed over order-service's
//! HTTP API reaches {{name}}-service through the outbox, the relay and Kafka
//! and is recorded once; the same record delivered again records nothing
//! more; the order's cancellation cancels its entry.

use anyhow::Context as _;
use consumer_kit::Consumer as _;
use e2e::TestInfra;
use e2e::services::{EventProducer, ServiceUnderTest, consumer_config, fresh_group, wait_until};
use {{name}}_service::{{Name}};
use platform::services::ORDER_SERVICE;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The entries of `order_id`, as `GET /entries?order_id=` lists them.
async fn entries(service: &ServiceUnderTest, order_id: &str) -> anyhow::Result<Vec<Value>> {
    let page = service
        .get_ok(&format!("/entries?order_id={order_id}"))
        .await?;
    Ok(page["items"].as_array().context("items")?.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placed_order_is_recorded_once_and_its_cancellation_cancels_it() -> anyhow::Result<()> {
    let infra = TestInfra::acquire().await?;
    let topic = infra.fresh_topic(3).await?;
    let (orders_url, _) = infra.fresh_database(&ORDER_SERVICE).await?;
    let (url, _) = infra.fresh_database(&{{Name}}::SERVICE).await?;
    let orders = order_service::build(order_service::Config::for_flow(
        orders_url,
        e2e::admin_kafka(infra.kafka_bootstrap_servers(), &topic),
    ))
    .await?;
    let orders_base = format!("http://{}", orders.local_addr());
    let stop_orders = CancellationToken::new();
    let orders_task = tokio::spawn(orders.run_until_stopped(stop_orders.clone()));
    let group = fresh_group({{Name}}::SERVICE.short);
    let service = ServiceUnderTest::start::<{{Name}}>(consumer_config::<{{Name}}>(
        &infra, &url, &topic, &group,
    ))
    .await?;

    // An order placed over HTTP is recorded, once, with its total and units.
    let client = reqwest::Client::new();
    let order: Value = client
        .post(format!("{orders_base}/orders"))
        .json(&json!({
            "customer": { "name": "Grace Hopper", "email": "grace@example.com" },
            "billing_address": { "street": "1 Compiler Way", "zip": "10115", "city": "Berlin", "country": "DE" },
            "shipping_address": { "street": "1 Compiler Way", "zip": "10115", "city": "Berlin", "country": "DE" },
            "currency": "EUR",
            "lines": [
                { "sku": "COBOL-1", "name": "Manual", "quantity": 2, "unit_price_cents": 1500 },
                { "sku": "NANO-1", "name": "Nanosecond wire", "quantity": 1, "unit_price_cents": 99 }
            ]
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = order["id"].as_str().context("the order's id")?.to_owned();
    wait_until("the order's entry", || async {
        Ok(!entries(&service, &id).await?.is_empty())
    })
    .await?;
    let recorded = entries(&service, &id).await?;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["total_cents"], 3099);
    assert_eq!(recorded[0]["units"], 3);
    assert_eq!(recorded[0]["status"], "open");

    // The same record delivered twice is applied once.
    let twice = uuid::Uuid::now_v7();
    let producer = EventProducer::new(&infra, &topic)?;
    let event = e2e::events::placed(twice);
    producer.send(&event).await?;
    producer.send(&event).await?;
    wait_until("the second delivery to be recognised", || async {
        Ok(service.metric("inbox_duplicates_skipped").await? >= 1)
    })
    .await?;
    assert_eq!(entries(&service, &twice.to_string()).await?.len(), 1);

    // The cancellation over HTTP cancels the entry.
    client
        .post(format!("{orders_base}/orders/{id}/cancel"))
        .json(&json!({ "reason": "changed my mind" }))
        .send()
        .await?
        .error_for_status()?;
    wait_until("the entry to be cancelled", || async {
        Ok(entries(&service, &id)
            .await?
            .iter()
            .any(|e| e["status"] == "cancelled"))
    })
    .await?;
    assert_eq!(entries(&service, &id).await?.len(), 1);
    assert_eq!(service.metric("inbox_dead_lettered").await?, 0);

    service.stop().await?;
    stop_orders.cancel();
    orders_task.await??;
    Ok(())
}

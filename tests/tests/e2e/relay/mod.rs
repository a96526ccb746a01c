//! The outbox relay against real Kafka and PostgreSQL.
//!
//! Orders go in over HTTP; what comes out is read straight from the topic.
//! The faults are real too: a relay is killed by aborting its task in the
//! middle of a backlog (its transaction is dropped uncommitted and its
//! producer destroyed, as in a crash), two service instances share one
//! database, and a private Kafka broker is stopped and started while orders
//! keep arriving.

mod delivery;
mod kafka_outages;
mod recovery;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use e2e::services::{header, metric};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use shared_events::Envelope;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One running order-service instance with its relay.
pub(crate) struct OrderService {
    base: String,
    client: Client,
    stop: CancellationToken,
    task: JoinHandle<Result<(), order_service::RunError>>,
}

impl OrderService {
    pub(crate) async fn start(config: order_service::Config) -> anyhow::Result<Self> {
        // Silent unless asked: `RUST_LOG=messaging=debug cargo xtask test`.
        if std::env::var_os("RUST_LOG").is_some() {
            platform::telemetry::init();
        }
        let app = order_service::build(config).await?;
        let base = format!("http://{}", app.local_addr());
        let stop = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(stop.clone()));
        Ok(OrderService {
            base,
            client: Client::new(),
            stop,
            task,
        })
    }

    pub(crate) async fn place(&self, i: usize) -> anyhow::Result<Value> {
        self.place_body(&order(i)).await
    }

    pub(super) async fn place_body(&self, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .client
            .post(format!("{}/orders", self.base))
            .json(body)
            .send()
            .await?;
        anyhow::ensure!(
            response.status() == StatusCode::CREATED,
            "POST /orders: {}",
            response.status()
        );
        Ok(response.json().await?)
    }

    pub(super) async fn cancel(&self, id: &str) -> anyhow::Result<()> {
        let response = self
            .client
            .post(format!("{}/orders/{id}/cancel", self.base))
            .json(&json!({ "reason": "test" }))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "cancel: {}",
            response.status()
        );
        Ok(())
    }

    /// `GET /health/ready`: its status and its body.
    pub(super) async fn readiness(&self) -> anyhow::Result<(StatusCode, String)> {
        let response = self
            .client
            .get(format!("{}/health/ready", self.base))
            .send()
            .await?;
        Ok((response.status(), response.text().await?))
    }

    /// The value of `name` on `/metrics`.
    pub(super) async fn metric(&self, name: &str) -> anyhow::Result<u64> {
        metric(&self.client, &self.base, name).await
    }

    /// Graceful stop: drains HTTP, lets the relay finish its batch.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await??;
        Ok(())
    }

    /// A crash: the task is dropped wherever it is.
    pub(super) async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

pub(super) fn order(i: usize) -> Value {
    json!({
        "customer": { "name": format!("Customer {i}"), "email": format!("c{i}@example.com") },
        "billing_address": { "street": "1 Analytical Way", "zip": "10115", "city": "Berlin", "country": "DE" },
        "shipping_address": { "street": "2 Engine Road", "zip": "80331", "city": "Munich", "country": "DE" },
        "currency": "EUR",
        "lines": [ { "sku": format!("SKU-{i}"), "name": "Thing", "quantity": 1 + i % 3, "unit_price_cents": 100 + i } ]
    })
}

/// An order of 100 lines with the longest product names the API accepts:
/// its `OrderPlaced` event is about 30 kB.
pub(super) fn oversized_order() -> Value {
    let mut body = order(0);
    body["lines"] = (0..100)
        .map(|i| {
            json!({
                "sku": format!("LARGE-{i:03}"),
                "name": format!("{:-<200}", format!("Oversized catalogue item {i} ")),
                "quantity": 1,
                "unit_price_cents": 100,
            })
        })
        .collect();
    body
}

pub(crate) fn id_of(order: &Value) -> String {
    order["id"].as_str().unwrap_or_default().to_owned()
}

pub(crate) async fn outbox_len(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(pool)
        .await?)
}

/// Records on `topic` so far: the sum of its partitions' high watermarks.
pub(super) async fn topic_len(bootstrap: &str, topic: &str) -> anyhow::Result<i64> {
    let bootstrap = bootstrap.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer =
            devinfra::kafka::access::admin_client_config(&bootstrap).create()?;
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        let partitions = metadata
            .topics()
            .first()
            .map(|t| t.partitions().len())
            .ok_or_else(|| anyhow!("no metadata for {topic}"))?;
        let mut total = 0;
        for p in 0..partitions {
            let (low, high) =
                consumer.fetch_watermarks(&topic, i32::try_from(p)?, Duration::from_secs(10))?;
            total += high - low;
        }
        Ok(total)
    })
    .await?
}

pub(super) fn event_id(record: &OwnedMessage) -> anyhow::Result<Uuid> {
    let envelope: Envelope<Value> = serde_json::from_slice(record.payload().unwrap_or_default())?;
    Ok(envelope.event_id)
}

/// Per order (record key): the event types in partition order. Checks that
/// every key stays in one partition.
pub(super) fn events_per_order(
    records: &[OwnedMessage],
) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut sorted: Vec<&OwnedMessage> = records.iter().collect();
    sorted.sort_by_key(|r| (r.partition(), r.offset()));
    let mut partitions: HashMap<String, i32> = HashMap::new();
    let mut per_order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in sorted {
        let key = String::from_utf8(record.key().unwrap_or_default().to_vec())?;
        let partition = *partitions.entry(key.clone()).or_insert(record.partition());
        anyhow::ensure!(
            partition == record.partition(),
            "order {key} spans partitions"
        );
        let kind = header(record, "event_type").context("event_type header")?;
        per_order.entry(key).or_default().push(kind);
    }
    Ok(per_order)
}

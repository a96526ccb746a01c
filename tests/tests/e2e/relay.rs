//! The outbox relay against real Kafka and PostgreSQL.
//!
//! Orders go in over HTTP; what comes out is read straight from the topic.
//! The faults are real too: a relay is killed by aborting its task in the
//! middle of a backlog (its transaction is dropped uncommitted and its
//! producer destroyed, as in a crash), two service instances share one
//! database, and a private Kafka broker is stopped and started while orders
//! keep arriving.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use e2e::services::{header, read_records, wait_until};
use e2e::{ServiceRole, TestInfra};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use shared_events::{Envelope, OrderCancelled, OrderPlaced};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One running order-service instance with its relay.
struct OrderService {
    base: String,
    client: Client,
    stop: CancellationToken,
    task: JoinHandle<Result<(), order_service::RunError>>,
}

impl OrderService {
    async fn start(config: order_service::Config) -> anyhow::Result<Self> {
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

    async fn place(&self, i: usize) -> anyhow::Result<Value> {
        let response = self
            .client
            .post(format!("{}/orders", self.base))
            .json(&order(i))
            .send()
            .await?;
        anyhow::ensure!(
            response.status() == StatusCode::CREATED,
            "POST /orders: {}",
            response.status()
        );
        Ok(response.json().await?)
    }

    async fn cancel(&self, id: &str) -> anyhow::Result<()> {
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

    /// Graceful stop: drains HTTP, lets the relay finish its batch.
    async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await??;
        Ok(())
    }

    /// A crash: the task is dropped wherever it is.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

fn order(i: usize) -> Value {
    json!({
        "customer": { "name": format!("Customer {i}"), "email": format!("c{i}@example.com") },
        "billing_address": { "street": "1 Analytical Way", "zip": "10115", "city": "Berlin", "country": "DE" },
        "shipping_address": { "street": "2 Engine Road", "zip": "80331", "city": "Munich", "country": "DE" },
        "currency": "EUR",
        "lines": [ { "sku": format!("SKU-{i}"), "name": "Thing", "quantity": 1 + i % 3, "unit_price_cents": 100 + i } ]
    })
}

async fn outbox_len(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(pool)
        .await?)
}

/// Records on `topic` so far: the sum of its partitions' high watermarks.
async fn topic_len(bootstrap: &str, topic: &str) -> anyhow::Result<i64> {
    let bootstrap = bootstrap.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()?;
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

fn event_id(record: &OwnedMessage) -> anyhow::Result<Uuid> {
    let envelope: Envelope<Value> = serde_json::from_slice(record.payload().unwrap_or_default())?;
    Ok(envelope.event_id)
}

/// Per order (record key): the event types in partition order. Checks that
/// every key stays in one partition.
fn events_per_order(records: &[OwnedMessage]) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_placed_and_cancelled_order_becomes_exactly_one_record() -> anyhow::Result<()> {
    let infra = TestInfra::acquire().await?;
    let topic = infra.fresh_topic(6).await?;
    let (url, pool) = infra.fresh_database(ServiceRole::Orders).await?;
    let service = OrderService::start(order_service::Config::for_flow(
        url,
        infra.kafka_bootstrap_servers(),
        &topic,
    ))
    .await?;

    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut placed = Vec::new();
    for i in 0..6 {
        let response = service
            .client
            .post(format!("{}/orders", service.base))
            .header("traceparent", traceparent)
            .json(&order(i))
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::CREATED);
        placed.push(response.json::<Value>().await?);
    }
    let cancelled: Vec<String> = placed[..2]
        .iter()
        .map(|o| o["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    for id in &cancelled {
        service.cancel(id).await?;
    }

    wait_until("the outbox to drain", || async {
        Ok(outbox_len(&pool).await? == 0)
    })
    .await?;
    let records = read_records(&infra, &topic, 8).await?;
    // The outbox is empty, so everything the relay will ever publish is on the
    // topic now: exactly eight records, not just at least eight.
    assert_eq!(topic_len(infra.kafka_bootstrap_servers(), &topic).await?, 8);

    let by_order = events_per_order(&records)?;
    for order in &placed {
        let id = order["id"].as_str().unwrap_or_default();
        let expected: Vec<&str> = if cancelled.iter().any(|c| c == id) {
            vec!["OrderPlaced", "OrderCancelled"]
        } else {
            vec!["OrderPlaced"]
        };
        assert_eq!(
            by_order
                .get(id)
                .map(|v| v.iter().map(String::as_str).collect::<Vec<_>>()),
            Some(expected),
            "{id}"
        );
    }
    for record in &records {
        let key = std::str::from_utf8(record.key().unwrap_or_default())?;
        assert_eq!(
            header(record, "content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(header(record, "schema_version").as_deref(), Some("1"));
        let tp: shared_events::TraceParent = header(record, "traceparent")
            .context("traceparent header")?
            .parse()?;
        if header(record, "event_type").as_deref() == Some("OrderPlaced") {
            // The placing requests carried a trace; the cancels started their own.
            assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        }
        let id = event_id(record)?;
        assert_eq!(header(record, "event_id"), Some(id.to_string()));
        match header(record, "event_type").as_deref() {
            Some("OrderPlaced") => {
                let env: Envelope<OrderPlaced> =
                    serde_json::from_slice(record.payload().unwrap_or_default())?;
                assert_eq!(env.order_id.to_string(), key);
                let order = placed
                    .iter()
                    .find(|o| o["id"] == key)
                    .context("the record's order was placed")?;
                assert_eq!(
                    env.data.total_cents,
                    order["total_cents"].as_i64().unwrap_or(-1)
                );
                assert_eq!(env.data.customer.email, order["customer"]["email"]);
                assert_eq!(
                    env.data.placed_at,
                    order["placed_at"]
                        .as_str()
                        .unwrap_or_default()
                        .parse::<chrono::DateTime<chrono::Utc>>()?
                );
            }
            Some("OrderCancelled") => {
                let env: Envelope<OrderCancelled> =
                    serde_json::from_slice(record.payload().unwrap_or_default())?;
                assert_eq!(env.order_id.to_string(), key);
                assert_eq!(env.data.reason.as_deref(), Some("test"));
            }
            other => panic!("unexpected event type {other:?}"),
        }
    }
    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_backlog_loses_nothing_and_repeats_at_most_its_batch()
-> anyhow::Result<()> {
    const ORDERS: usize = 400;
    const BATCH: i64 = 25;
    let infra = TestInfra::acquire().await?;
    let topic = infra.fresh_topic(6).await?;
    let (url, pool) = infra.fresh_database(ServiceRole::Orders).await?;
    let bootstrap = infra.kafka_bootstrap_servers().to_owned();

    // A backlog: orders accepted while the relay is held off.
    let mut config = order_service::Config::for_flow(url.clone(), &bootstrap, &topic);
    config.relay.batch_size = BATCH;
    let held = OrderService::start(order_service::Config {
        relay: messaging::relay::RelaySettings {
            enabled: false,
            ..config.relay.clone()
        },
        ..config.clone()
    })
    .await?;
    for i in 0..ORDERS {
        held.place(i).await?;
    }
    held.stop().await?;
    let expected: HashSet<Uuid> = sqlx::query_scalar("SELECT event_id FROM outbox")
        .fetch_all(&pool)
        .await?
        .into_iter()
        .collect();
    assert_eq!(expected.len(), ORDERS);

    // A relay that is killed once it has published part of the backlog.
    let doomed = OrderService::start(config.clone()).await?;
    wait_until("the relay to publish part of the backlog", || async {
        Ok(topic_len(&bootstrap, &topic).await? >= BATCH)
    })
    .await?;
    doomed.kill().await;
    let left = outbox_len(&pool).await?;
    assert!(
        left > 0,
        "the relay finished before it was killed; the test proves nothing"
    );

    // A new instance takes over and drains the rest.
    let successor = OrderService::start(config).await?;
    wait_until("the successor to drain the outbox", || async {
        Ok(outbox_len(&pool).await? == 0)
    })
    .await?;
    successor.stop().await?;

    let total = usize::try_from(topic_len(&bootstrap, &topic).await?)?;
    let records = read_records(&infra, &topic, total).await?;
    let published: HashSet<Uuid> = records.iter().map(event_id).collect::<Result<_, _>>()?;
    assert_eq!(published, expected, "every event arrives");
    let duplicates = total - ORDERS;
    assert!(
        duplicates <= usize::try_from(BATCH)?,
        "{duplicates} duplicates: more than the batch in flight ({BATCH})"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_never_reorder_an_orders_events() -> anyhow::Result<()> {
    const ORDERS: usize = 60;
    let infra = TestInfra::acquire().await?;
    let topic = infra.fresh_topic(6).await?;
    let (url, pool) = infra.fresh_database(ServiceRole::Orders).await?;
    let bootstrap = infra.kafka_bootstrap_servers();
    let mut config = order_service::Config::for_flow(url, bootstrap, &topic);
    // Small batches and fast polling: the two relays contend as often as possible.
    config.relay.batch_size = 3;
    config.relay.poll_interval = Duration::from_millis(10);
    let a = Arc::new(OrderService::start(config.clone()).await?);
    let b = Arc::new(OrderService::start(config).await?);

    // Each order is placed on one instance and cancelled at once on the other.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..ORDERS {
        let (placer, canceller) = if i % 2 == 0 {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        tasks.spawn(async move {
            let order = placer.place(i).await?;
            canceller
                .cancel(order["id"].as_str().unwrap_or_default())
                .await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    wait_until("both relays to drain the outbox", || async {
        Ok(outbox_len(&pool).await? == 0)
    })
    .await?;
    let records = read_records(&infra, &topic, 2 * ORDERS).await?;
    assert_eq!(
        topic_len(bootstrap, &topic).await?,
        i64::try_from(2 * ORDERS)?,
        "one active relay at a time publishes each row once"
    );
    for (order, events) in events_per_order(&records)? {
        assert_eq!(events, ["OrderPlaced", "OrderCancelled"], "order {order}");
    }
    let a = Arc::into_inner(a).context("no task holds instance a")?;
    let b = Arc::into_inner(b).context("no task holds instance b")?;
    a.stop().await?;
    b.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_keep_coming_while_kafka_is_down_and_all_arrive_in_order() -> anyhow::Result<()> {
    const BEFORE: usize = 10;
    const DURING: usize = 40;
    let infra = TestInfra::acquire().await?;
    // A private broker this test may stop without disturbing the others: a
    // native one also where the rest runs in containers.
    xtask::prereq::native_test(
        "relay::orders_keep_coming_while_kafka_is_down_and_all_arrive_in_order",
        "it stops and restarts a broker of its own",
        xtask::prereq::NativeNeeds::Kafka,
    )
    .await?;
    let runtime = Arc::new(xtask::DevInfra::from_env()?.kafka_runtime().await?);
    let dir = std::env::temp_dir().join(format!("e2e-kafka-{}", Uuid::new_v4().simple()));
    let mut cluster =
        xtask::KafkaCluster::new(runtime, &dir, xtask::NodePorts::free(1)?)?.kill_on_drop(true);
    cluster.start().await?;
    let bootstrap = cluster.bootstrap_servers();

    let (url, pool) = infra.fresh_database(ServiceRole::Orders).await?;
    let topic = format!("orders-{}", Uuid::new_v4().simple());
    let mut config = order_service::Config::for_flow(url, &bootstrap, &topic);
    config.relay.max_backoff = Duration::from_millis(500);
    config.producer.message_timeout_ms = 3_000;
    let service = OrderService::start(config).await?;

    let mut ids = Vec::new();
    for i in 0..BEFORE {
        ids.push(
            service.place(i).await?["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    wait_until("the first orders to be published", || async {
        Ok(outbox_len(&pool).await? == 0)
    })
    .await?;

    let broker = cluster.broker_mut(1).context("node 1")?;
    broker.stop().await?;
    // Orders are still accepted; their events wait in the outbox.
    for i in BEFORE..BEFORE + DURING {
        let order = service.place(i).await?;
        let id = order["id"].as_str().unwrap_or_default().to_owned();
        if i % 4 == 0 {
            service.cancel(&id).await?;
        }
        ids.push(id);
    }
    assert!(
        outbox_len(&pool).await? >= i64::try_from(DURING)?,
        "the backlog grows while Kafka is down"
    );

    cluster.start().await?;
    wait_until("the backlog to drain after Kafka is back", || async {
        Ok(outbox_len(&pool).await? == 0)
    })
    .await?;
    service.stop().await?;

    let cancels = (BEFORE..BEFORE + DURING).filter(|i| i % 4 == 0).count();
    let expected = BEFORE + DURING + cancels;
    let total = usize::try_from(topic_len(&bootstrap, &topic).await?)?;
    let records = read_records(&infra.with_kafka(&bootstrap), &topic, total).await?;
    let distinct: HashSet<Uuid> = records.iter().map(event_id).collect::<Result<_, _>>()?;
    assert_eq!(distinct.len(), expected, "every event arrives");
    for (order, events) in events_per_order(&records)? {
        // A redelivered duplicate may come later (consumers absorb it); what
        // must hold is that the order is placed before it is cancelled.
        let placed = events.iter().position(|e| e == "OrderPlaced");
        let cancelled = events.iter().position(|e| e == "OrderCancelled");
        assert!(placed.is_some(), "order {order}: never placed");
        if let Some(c) = cancelled {
            assert!(
                placed < Some(c),
                "order {order}: {events:?} is out of order"
            );
        }
        assert!(ids.contains(&order));
    }
    cluster.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

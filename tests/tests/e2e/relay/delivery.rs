//! Every placed and cancelled order becomes exactly one record, on the partition
//! Kafka's own client would pick, in order, across batching, crashes and a second
//! instance.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use e2e::TestInfra;
use e2e::services::{header, metric, read_records, wait_until};
use platform::services::ORDER_SERVICE;
use rdkafka::Message;
use reqwest::StatusCode;
use serde_json::Value;
use shared_events::{Envelope, OrderCancelled, OrderPlaced};
use uuid::Uuid;

use super::{OrderService, event_id, events_per_order, order, outbox_len, topic_len};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_placed_and_cancelled_order_becomes_exactly_one_record() -> anyhow::Result<()> {
    let infra = TestInfra::acquire().await?;
    let topic = infra.fresh_topic(6).await?;
    let (url, pool) = infra.fresh_database(&ORDER_SERVICE).await?;
    let service = OrderService::start(order_service::Config::for_flow(
        url,
        e2e::admin_kafka(infra.kafka_bootstrap_servers(), &topic),
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
        // The CloudEvents Kafka binding (binary mode), alongside our own headers.
        assert_eq!(header(record, "ce_specversion").as_deref(), Some("1.0"));
        assert_eq!(header(record, "ce_id"), Some(id.to_string()));
        assert_eq!(header(record, "ce_type"), header(record, "event_type"));
        assert_eq!(
            header(record, "ce_source").as_deref(),
            Some("/order-service")
        );
        assert_eq!(header(record, "ce_subject").as_deref(), Some(key));
        let schema_file = match header(record, "event_type").as_deref() {
            Some("OrderPlaced") => "order_placed.v1.schema.json",
            _ => "order_cancelled.v1.schema.json",
        };
        assert_eq!(
            header(record, "ce_dataschema"),
            Some(format!("{}{schema_file}", shared_events::schema::ID_PREFIX))
        );
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

/// Keys pick partitions as Kafka's Java client does (murmur2), so an order's
/// events share a partition with whatever a Java producer, Kafka Connect or
/// the console producer writes under the same key. librdkafka's default
/// partitioner (CRC32) would spread them differently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_lands_on_the_partition_kafkas_java_client_picks_for_its_key()
-> anyhow::Result<()> {
    const ORDERS: usize = 24;
    let infra = TestInfra::acquire().await?;
    let topic = infra.fresh_topic(6).await?;
    let (url, pool) = infra.fresh_database(&ORDER_SERVICE).await?;
    let config = order_service::Config::for_flow(
        url,
        e2e::admin_kafka(infra.kafka_bootstrap_servers(), &topic),
    );
    let service = OrderService::start(config).await?;
    for i in 0..ORDERS {
        service.place(i).await?;
    }
    wait_until("the outbox to drain", || async {
        Ok(outbox_len(&pool).await? == 0)
    })
    .await?;
    service.stop().await?;
    let records = read_records(&infra, &topic, ORDERS).await?;
    let mut partitions = HashSet::new();
    for record in &records {
        let key = record.key().context("a record without a key")?;
        assert_eq!(
            record.partition(),
            shared_events::topics::partition_of(key, 6),
            "key {}",
            String::from_utf8_lossy(key)
        );
        partitions.insert(record.partition());
    }
    assert!(partitions.len() > 1, "the keys spread: {partitions:?}");
    Ok(())
}

/// RELAY_LINGER_MS: a commit wakes the relay, which waits that long for the
/// commits that follow before it claims rows. So two batches start at least
/// a linger apart, and orders placed one after the other for a time T travel
/// in at most T / linger + 2 batches, however slow the machine is. Without
/// the linger each order, placed after the previous one was answered, goes
/// out in a batch of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_relay_linger_orders_placed_in_a_row_share_batches() -> anyhow::Result<()> {
    const ORDERS: u64 = 20;
    const LINGER: Duration = Duration::from_millis(100);
    let infra = TestInfra::acquire().await?;
    let topic = infra.fresh_topic(6).await?;
    let (url, pool) = infra.fresh_database(&ORDER_SERVICE).await?;
    let mut config = order_service::Config::for_flow(
        url,
        e2e::admin_kafka(infra.kafka_bootstrap_servers(), &topic),
    );
    config.relay.linger = LINGER;
    let service = OrderService::start(config).await?;
    let metric = |name: &'static str| metric(&service.client, &service.base, name);
    // A first order, published once the relay runs its loop.
    service.place(0).await?;
    wait_until("the first order to be published", || async {
        Ok(outbox_len(&pool).await? == 0 && metric("outbox_relay_batch_events_sum").await? == 1)
    })
    .await?;
    let batches_before = metric("outbox_relay_batch_events_count").await?;

    let started = std::time::Instant::now();
    for i in 1..=ORDERS {
        service.place(usize::try_from(i)?).await?;
    }
    let placing = started.elapsed();
    wait_until("every order to be published", || async {
        Ok(outbox_len(&pool).await? == 0
            && metric("outbox_relay_batch_events_sum").await? == 1 + ORDERS)
    })
    .await?;
    let batches = metric("outbox_relay_batch_events_count").await? - batches_before;
    let bound = u64::try_from(placing.as_millis() / LINGER.as_millis())? + 2;
    assert!(
        batches <= bound.min(ORDERS - 1),
        "{ORDERS} orders placed in {placing:?} went out in {batches} batches; \
         with a {LINGER:?} linger at most {bound}"
    );
    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_backlog_loses_nothing_and_repeats_at_most_its_batch()
-> anyhow::Result<()> {
    const ORDERS: usize = 400;
    const COPIES: i32 = 50;
    const BATCH: i64 = 25;
    let infra = TestInfra::acquire().await?;
    let topic = infra.fresh_topic(6).await?;
    let (url, pool) = infra.fresh_database(&ORDER_SERVICE).await?;
    let bootstrap = infra.kafka_bootstrap_servers().to_owned();

    // A backlog: orders accepted while the relay is held off.
    let mut config =
        order_service::Config::for_flow(url.clone(), e2e::admin_kafka(&bootstrap, &topic));
    config.relay.batch_size = BATCH;
    let held = OrderService::start(order_service::Config {
        relay: messaging::outbox::RelaySettings {
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
    // Long enough that the relay is still at work when it is killed however
    // fast it runs: behind the orders' own events, each event again under
    // new event ids, COPIES times over (one row per order in each stretch).
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, record_key, event_type, schema_version, payload, traceparent)
         SELECT x.new_id, x.topic, x.record_key, x.event_type, x.schema_version,
                jsonb_set(x.payload::jsonb, '{event_id}', to_jsonb(x.new_id::text))::text,
                x.traceparent
         FROM (SELECT gen_random_uuid() AS new_id, c.copy, o.id AS row_id, o.topic, o.record_key,
                      o.event_type, o.schema_version, o.payload, o.traceparent
               FROM outbox o CROSS JOIN generate_series(1, $1) AS c (copy)) AS x
         ORDER BY x.copy, x.row_id",
    )
    .bind(COPIES)
    .execute(&pool)
    .await?;
    let expected: HashSet<Uuid> = sqlx::query_scalar("SELECT event_id FROM outbox")
        .fetch_all(&pool)
        .await?
        .into_iter()
        .collect();
    assert_eq!(expected.len(), ORDERS * (1 + usize::try_from(COPIES)?));

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
    let duplicates = total - expected.len();
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
    let (url, pool) = infra.fresh_database(&ORDER_SERVICE).await?;
    let bootstrap = infra.kafka_bootstrap_servers();
    let mut config = order_service::Config::for_flow(url, e2e::admin_kafka(bootstrap, &topic));
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

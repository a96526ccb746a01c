//! Kafka away, wholly or one partition at a time: orders keep being taken, only
//! the affected orders wait, and the relay holds no transaction open meanwhile.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use e2e::TestInfra;
use e2e::private_kafka::PrivateKafka;
use e2e::services::{read_records, wait_until};
use platform::services::ORDER_SERVICE;
use rdkafka::consumer::{BaseConsumer, Consumer};
use reqwest::StatusCode;
use sqlx::PgPool;
use uuid::Uuid;

use super::{OrderService, event_id, events_per_order, id_of, outbox_len, topic_len};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_keep_coming_while_kafka_is_down_and_all_arrive_in_order() -> anyhow::Result<()> {
    const BEFORE: usize = 10;
    const DURING: usize = 40;
    let infra = TestInfra::acquire().await?;
    // A private broker this test may stop without disturbing the others: a
    // native one also where the rest runs in containers.
    devinfra::prereq::native_test(
        "relay::orders_keep_coming_while_kafka_is_down_and_all_arrive_in_order",
        "it stops and restarts a broker of its own",
        devinfra::prereq::NativeNeeds::Kafka,
    )
    .await?;
    let runtime = Arc::new(devinfra::DevInfra::from_env()?.kafka_runtime().await?);
    let dir = std::env::temp_dir().join(format!("e2e-kafka-{}", Uuid::new_v4().simple()));
    let mut cluster = devinfra::KafkaCluster::new(runtime, &dir, devinfra::NodePorts::free(1)?)?
        .kill_on_drop(true);
    cluster.start().await?;
    let bootstrap = cluster.bootstrap_servers();

    let (url, pool) = infra.fresh_database(&ORDER_SERVICE).await?;
    let topic = format!("orders-{}", Uuid::new_v4().simple());
    let mut config = order_service::Config::for_flow(url, e2e::admin_kafka(&bootstrap, &topic));
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
    // Readiness says the relay cannot publish, while intake answered 201 throughout.
    wait_until("readiness to say the relay cannot publish", || async {
        let (status, body) = service.readiness().await?;
        Ok(status == StatusCode::SERVICE_UNAVAILABLE && body.contains("relay cannot publish"))
    })
    .await?;

    cluster.start().await?;
    wait_until("the backlog to drain after Kafka is back", || async {
        Ok(outbox_len(&pool).await? == 0)
    })
    .await?;
    wait_until("readiness to be back", || async {
        Ok(service.readiness().await?.0 == StatusCode::OK)
    })
    .await?;
    service.stop().await?;

    let cancels = (BEFORE..BEFORE + DURING).filter(|i| i % 4 == 0).count();
    let expected = BEFORE + DURING + cancels;
    let total = usize::try_from(topic_len(&bootstrap, &topic).await?)?;
    let records = read_records(&infra.with_kafka(&bootstrap), &topic, total).await?;
    let distinct: HashSet<Uuid> = records.iter().map(event_id).collect::<Result<_, _>>()?;
    let per_order = events_per_order(&records)?;
    let incomplete: Vec<&String> = ids
        .iter()
        .filter(|id| !per_order.contains_key(*id))
        .collect();
    assert_eq!(
        distinct.len(),
        expected,
        "every event arrives ({total} records on the topic; orders with no event: {incomplete:?})"
    );
    for (order, events) in per_order {
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

/// How long an order on a partition that takes records may wait in the
/// outbox while another partition cannot take any: generous for a slow
/// machine, and a sixth of the producer's `message.timeout.ms` below, which
/// is what each batch waited before partitions were benched.
const HEALTHY_BOUND: Duration = Duration::from_secs(20);

/// The producer's `message.timeout.ms` in the stuck-partition test.
const STUCK_MESSAGE_TIMEOUT_MS: u32 = 120_000;

/// The outbox rows whose key maps to partition `partition` of `partitions`,
/// and the others, as counts.
async fn outbox_by_partition(
    pool: &PgPool,
    partitions: i32,
    partition: i32,
) -> anyhow::Result<(usize, usize)> {
    let keys: Vec<String> = sqlx::query_scalar("SELECT record_key FROM outbox")
        .fetch_all(pool)
        .await?;
    let on = keys
        .iter()
        .filter(|k| shared_events::topics::partition_of(k.as_bytes(), partitions) == partition)
        .count();
    Ok((on, keys.len() - on))
}

/// Creates `topic` on the three-node `bootstrap` with partition `i` on node
/// `i + 1` alone: stopping a node leaves its partition without any replica
/// to take over (and `min.insync.replicas=1`, so the others take records
/// with their one replica).
async fn create_topic_one_partition_per_node(bootstrap: &str, topic: &str) -> anyhow::Result<()> {
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        devinfra::kafka::access::admin_client_config(bootstrap).create()?;
    let assignment: [&[i32]; 3] = [&[1], &[2], &[3]];
    let new = rdkafka::admin::NewTopic::new(
        topic,
        3,
        rdkafka::admin::TopicReplication::Variable(&assignment),
    )
    .set("min.insync.replicas", "1");
    let options =
        rdkafka::admin::AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics(&[new], &options).await? {
        result.map_err(|(topic, code)| anyhow!("creating topic {topic}: {code}"))?;
    }
    let (bootstrap, name) = (bootstrap.to_owned(), topic.to_owned());
    wait_until("every partition of the topic to have a leader", || {
        let (bootstrap, name) = (bootstrap.clone(), name.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                let consumer: BaseConsumer =
                    devinfra::kafka::access::admin_client_config(&bootstrap).create()?;
                let metadata = consumer.fetch_metadata(Some(&name), Duration::from_secs(5))?;
                Ok(metadata.topics().first().is_some_and(|t| {
                    t.partitions().len() == 3 && t.partitions().iter().all(|p| p.leader() > 0)
                }))
            })
            .await?
        }
    })
    .await
}

/// The failure this guards against: a wave waited `message.timeout.ms` for
/// the records of a partition whose leader was gone, and those rows stayed
/// at the head of every oldest-first claim, so each batch waited again and
/// every order, whatever its partition, took minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_partition_that_cannot_take_records_holds_back_only_its_own_orders()
-> anyhow::Result<()> {
    const ROUNDS: usize = 3;
    const PER_ROUND: usize = 12;
    const MAX_PER_ROUND: usize = 60;
    const STUCK: i32 = 2;
    let infra = TestInfra::acquire().await?;
    devinfra::prereq::native_test(
        "relay::one_partition_that_cannot_take_records_holds_back_only_its_own_orders",
        "it stops one node of a three-node cluster of its own",
        devinfra::prereq::NativeNeeds::Kafka,
    )
    .await?;
    let runtime = Arc::new(devinfra::DevInfra::from_env()?.kafka_runtime().await?);
    let dir = std::env::temp_dir().join(format!("e2e-kafka-{}", Uuid::new_v4().simple()));
    let mut cluster = devinfra::KafkaCluster::new(runtime, &dir, devinfra::NodePorts::free(3)?)?
        .kill_on_drop(true);
    cluster.start().await?;
    let bootstrap = cluster.bootstrap_servers();
    let topic = format!("orders-{}", Uuid::new_v4().simple());
    create_topic_one_partition_per_node(&bootstrap, &topic).await?;

    let (url, pool) = infra.fresh_database(&ORDER_SERVICE).await?;
    let mut kafka = e2e::admin_kafka(&bootstrap, &topic);
    kafka.partitions = 3;
    let mut config = order_service::Config::for_flow(url, kafka);
    config.producer.message_timeout_ms = STUCK_MESSAGE_TIMEOUT_MS;
    let service = OrderService::start(config).await?;

    // Partition 2 lives on node 3 alone: stopped, it has no leader.
    cluster.broker_mut(3).context("node 3")?.stop().await?;

    let mut ids = Vec::new();
    let mut cancelled = HashSet::new();
    let on_stuck = |id: &str| shared_events::topics::partition_of(id.as_bytes(), 3) == STUCK;
    for round in 0..ROUNDS {
        // At least PER_ROUND orders, and more until one of them maps to the
        // stuck partition: ids are random, and 12 of them miss a given
        // partition of three in 0.8 % of rounds, which would leave nothing
        // to hold back.
        let mut placed_in_round = 0;
        let mut stuck_in_round = 0;
        while placed_in_round < PER_ROUND || stuck_in_round == 0 {
            anyhow::ensure!(
                placed_in_round < MAX_PER_ROUND,
                "round {round}: none of {placed_in_round} orders maps to partition {STUCK}"
            );
            let i = ids.len();
            let id = id_of(&service.place(i).await?);
            if i % 3 == 0 {
                service.cancel(&id).await?;
                cancelled.insert(id.clone());
            }
            stuck_in_round += usize::from(on_stuck(&id));
            placed_in_round += 1;
            ids.push(id);
        }
        // Every order on the other partitions reaches Kafka (its row is
        // deleted only once acknowledged) well before message.timeout.ms.
        let placed = tokio::time::Instant::now();
        loop {
            let (stuck, others) = outbox_by_partition(&pool, 3, STUCK).await?;
            if others == 0 {
                anyhow::ensure!(
                    stuck > 0,
                    "round {round}: the stuck partition's orders wait in the outbox \
                     (none is left there, and {stuck_in_round} of this round's orders map to it)"
                );
                break;
            }
            anyhow::ensure!(
                placed.elapsed() < HEALTHY_BOUND,
                "round {round}: {others} event(s) of orders on partitions that take records \
                 still in the outbox after {HEALTHY_BOUND:?} (message.timeout.ms is \
                 {STUCK_MESSAGE_TIMEOUT_MS} ms): one stuck partition holds back every order"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Intake stays ready; readiness names the benched partition.
    let benched = format!("{topic}/{STUCK}");
    wait_until("readiness to name the benched partition", || async {
        let (status, body) = service.readiness().await?;
        Ok(status == StatusCode::OK && body.contains("degraded") && body.contains(&benched))
    })
    .await?;

    cluster.start().await?;
    wait_until("the stuck partition's backlog to drain", || async {
        Ok(outbox_len(&pool).await? == 0)
    })
    .await?;
    wait_until("readiness to name no benched partition", || async {
        let (status, body) = service.readiness().await?;
        Ok(status == StatusCode::OK && !body.contains("degraded"))
    })
    .await?;
    service.stop().await?;

    let expected = ids.len() + cancelled.len();
    let total = usize::try_from(topic_len(&bootstrap, &topic).await?)?;
    let records = read_records(&infra.with_kafka(&bootstrap), &topic, total).await?;
    let distinct: HashSet<Uuid> = records.iter().map(event_id).collect::<Result<_, _>>()?;
    assert_eq!(distinct.len(), expected, "every event arrives, none lost");
    let per_order = events_per_order(&records)?;
    for id in &ids {
        let events = per_order
            .get(id)
            .with_context(|| format!("order {id} never arrived"))?;
        let expected: &[&str] = if cancelled.contains(id) {
            &["OrderPlaced", "OrderCancelled"]
        } else {
            &["OrderPlaced"]
        };
        // A record that was late and then delivered twice would show as a
        // repeat; the first occurrences must be in order.
        let mut firsts: Vec<&str> = Vec::new();
        for e in events {
            if !firsts.contains(&e.as_str()) {
                firsts.push(e);
            }
        }
        assert_eq!(firsts, expected, "order {id}: {events:?}");
    }
    cluster.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_kafka_is_away_the_relay_holds_no_transaction_open() -> anyhow::Result<()> {
    let infra = TestInfra::acquire().await?;
    let mut kafka =
        PrivateKafka::start("relay::while_kafka_is_away_the_relay_holds_no_transaction_open")
            .await?;
    let bootstrap = kafka.cluster.bootstrap_servers();
    let (url, pool) = infra.fresh_database(&ORDER_SERVICE).await?;
    let database = url
        .rsplit('/')
        .next()
        .and_then(|tail| tail.split('?').next())
        .unwrap_or_default()
        .to_owned();
    let topic = format!("orders-{}", Uuid::new_v4().simple());
    let mut config = order_service::Config::for_flow(url, e2e::admin_kafka(&bootstrap, &topic));
    // Records wait this long for Kafka before they fail; much longer than
    // the window observed below.
    config.producer.message_timeout_ms = 30_000;
    let service = OrderService::start(config).await?;
    service.place(0).await?;
    wait_until("the first order to be published", || async {
        Ok(outbox_len(&pool).await? == 0)
    })
    .await?;

    kafka
        .cluster
        .broker_mut(1)
        .context("node 1")?
        .stop()
        .await?;
    for i in 1..4 {
        service.place(i).await?;
    }
    // For a few seconds of the outage, while the relay waits on Kafka, no
    // transaction of the order database may stay open: an open one holds
    // back vacuum and a pooled connection for as long as Kafka is away.
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(infra.admin_url())
        .await?;
    let mut longest = 0.0_f64;
    for _ in 0..30 {
        let age: f64 = sqlx::query_scalar(
            "SELECT coalesce(max(extract(epoch FROM now() - xact_start)), 0)::float8
             FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&database)
        .fetch_one(&admin)
        .await?;
        longest = longest.max(age);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        outbox_len(&pool).await? >= 3,
        "the outage was observed with events waiting"
    );
    assert!(
        longest < 2.0,
        "a transaction stayed open {longest:.1}s while Kafka was away"
    );

    kafka.cluster.start().await?;
    wait_until("the backlog to drain after Kafka is back", || async {
        Ok(outbox_len(&pool).await? == 0)
    })
    .await?;
    service.stop().await?;
    kafka.stop().await
}

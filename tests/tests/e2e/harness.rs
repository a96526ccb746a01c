//! Proof that the ground is real: the Kafka and PostgreSQL these tests get
//! behave as the flow relies on, before any service is tested on top of them.
//!
//! - Kafka keeps every acknowledged record and keeps order within a partition,
//!   and one key always lands in one partition (what "key = order id" buys).
//! - Each service role can write and read its own database.
//! - No service role can open another service's database.

use platform::services::{self, ServiceFacts};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use e2e::{TestInfra, database_of, with_database};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::time::{Instant, timeout_at};

/// Records produced in the Kafka round trip.
const RECORDS: usize = 600;
/// Distinct keys among them (orders, each with several events).
const KEYS: usize = 40;
/// Partitions of the test topic.
const PARTITIONS: i32 = 6;
/// How long the consumer may take to read everything back.
const CONSUME_DEADLINE: Duration = Duration::from_secs(60);

/// What the producer was told about one record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    key: String,
    payload: String,
}

#[tokio::test]
async fn kafka_returns_every_acknowledged_record_in_partition_order() -> anyhow::Result<()> {
    let infra = TestInfra::acquire().await?;
    let topic = infra.fresh_topic(PARTITIONS).await?;

    let producer: FutureProducer = infra
        .kafka_config()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .context("creating the producer")?;

    // Key i % KEYS, payload "<key>#<n>" where n counts that key's records: the
    // order a consumer must see them in.
    let mut per_key = vec![0usize; KEYS];
    let records: Vec<Sent> = (0..RECORDS)
        .map(|i| {
            let k = i % KEYS;
            let n = per_key[k];
            per_key[k] += 1;
            Sent {
                key: format!("order-{k:03}"),
                payload: format!("order-{k:03}#{n}"),
            }
        })
        .collect();

    // Enqueue everything first (many in flight, as a relay does), then collect
    // the delivery reports.
    let mut deliveries = Vec::with_capacity(RECORDS);
    for record in &records {
        let future = producer
            .send_result(
                FutureRecord::to(&topic)
                    .key(&record.key)
                    .payload(&record.payload),
            )
            .map_err(|(e, _)| e)
            .context("enqueueing a record")?;
        deliveries.push(future);
    }
    let mut acknowledged: HashMap<(i32, i64), Sent> = HashMap::with_capacity(RECORDS);
    for (record, delivery) in records.iter().zip(deliveries) {
        let delivery = delivery
            .await
            .context("the producer dropped a delivery report")?
            .map_err(|(e, _)| e)
            .with_context(|| format!("delivering {}", record.payload))?;
        acknowledged.insert((delivery.partition, delivery.offset), record.clone());
    }
    ensure!(
        acknowledged.len() == RECORDS,
        "two records acknowledged at one offset"
    );

    let consumer: StreamConsumer = infra
        .kafka_config()
        .set("group.id", format!("e2e-harness-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the consumer")?;
    consumer.subscribe(&[&topic])?;

    let deadline = Instant::now() + CONSUME_DEADLINE;
    let mut received: Vec<(i32, i64, Sent)> = Vec::with_capacity(RECORDS);
    while received.len() < RECORDS {
        let message = match timeout_at(deadline, consumer.recv()).await {
            Ok(message) => message?,
            Err(_) => bail!(
                "read {} of {RECORDS} records within {}s",
                received.len(),
                CONSUME_DEADLINE.as_secs()
            ),
        };
        let text =
            |bytes: Option<&[u8]>| String::from_utf8_lossy(bytes.unwrap_or_default()).into_owned();
        received.push((
            message.partition(),
            message.offset(),
            Sent {
                key: text(message.key()),
                payload: text(message.payload()),
            },
        ));
    }

    // Complete and exact: every record read is the one acknowledged at that position.
    let mut seen = HashSet::new();
    for (partition, offset, record) in &received {
        ensure!(
            seen.insert((*partition, *offset)),
            "read {partition}/{offset} twice"
        );
        ensure!(
            acknowledged.get(&(*partition, *offset)) == Some(record),
            "{partition}/{offset} holds {record:?}, not what was acknowledged there"
        );
    }

    // Ordered: offsets rise within each partition, and each key's records come
    // back in the order they were produced, all from one partition.
    let mut last_offset: BTreeMap<i32, i64> = BTreeMap::new();
    let mut key_partition: HashMap<&str, i32> = HashMap::new();
    let mut key_next: HashMap<&str, usize> = HashMap::new();
    for (partition, offset, record) in &received {
        if let Some(previous) = last_offset.insert(*partition, *offset) {
            ensure!(
                *offset > previous,
                "partition {partition}: offset {offset} after {previous}"
            );
        }
        let home = *key_partition.entry(&record.key).or_insert(*partition);
        ensure!(
            home == *partition,
            "{} read from partitions {home} and {partition}",
            record.key
        );
        let expected = key_next.entry(&record.key).or_insert(0);
        ensure!(
            record.payload == format!("{}#{expected}", record.key),
            "{} arrived out of order: expected #{expected}",
            record.payload
        );
        *expected += 1;
    }
    ensure!(
        last_offset.len() > 1,
        "all {KEYS} keys landed in one partition; keys should spread over {PARTITIONS}"
    );
    Ok(())
}

#[tokio::test]
async fn each_service_role_writes_and_reads_its_own_databases() -> anyhow::Result<()> {
    let infra = TestInfra::acquire().await?;
    for role in services::ALL {
        let (url, pool) = infra.fresh_database(role).await?;
        let database = database_of(&url).context("fresh database URL has a database")?;
        let (user, current): (String, String) =
            sqlx::query_as("select current_user::text, current_database()::text")
                .fetch_one(&pool)
                .await?;
        ensure!(
            user == role.role(),
            "connected as {user}, not {}",
            role.role()
        );
        ensure!(
            current == database,
            "connected to {current}, not {database}"
        );
        write_and_read_back(&pool, role).await?;

        // The service's own long-lived database works the same way.
        let own = PgPool::connect(infra.service_url(role))
            .await
            .with_context(|| format!("connecting to the {} database", role.role()))?;
        let own_name: String = sqlx::query_scalar("select current_database()::text")
            .fetch_one(&own)
            .await?;
        ensure!(
            own_name == role.role(),
            "{} URL leads to {own_name}",
            role.role()
        );
        own.close().await;
        pool.close().await;
    }
    Ok(())
}

async fn write_and_read_back(pool: &PgPool, role: &'static ServiceFacts) -> anyhow::Result<()> {
    sqlx::raw_sql("create table note (id bigint primary key, body text not null)")
        .execute(pool)
        .await
        .with_context(|| format!("{} creating a table in its database", role.role()))?;
    for id in 1..=3i64 {
        sqlx::query("insert into note (id, body) values ($1, $2)")
            .bind(id)
            .bind(format!("{} note {id}", role.role()))
            .execute(pool)
            .await?;
    }
    let bodies: Vec<String> = sqlx::query_scalar("select body from note order by id")
        .fetch_all(pool)
        .await?;
    let expected: Vec<String> = (1..=3)
        .map(|id| format!("{} note {id}", role.role()))
        .collect();
    ensure!(bodies == expected, "read back {bodies:?}");
    Ok(())
}

#[tokio::test]
async fn no_service_role_can_open_another_services_database() -> anyhow::Result<()> {
    let infra = TestInfra::acquire().await?;
    // A fresh database of each role, besides the three long-lived ones.
    let mut fresh = Vec::new();
    for owner in services::ALL {
        let (url, pool) = infra.fresh_database(owner).await?;
        pool.close().await;
        let database = database_of(&url).context("fresh database URL has a database")?;
        fresh.push((owner, database.to_owned()));
    }
    let long_lived: Vec<_> = services::ALL
        .iter()
        .map(|owner| (owner, owner.role().to_owned()))
        .collect();

    for intruder in services::ALL {
        for (owner, database) in fresh.iter().chain(&long_lived) {
            if *owner == intruder {
                continue;
            }
            let url = with_database(infra.service_url(intruder), database)?;
            match PgConnection::connect(&url).await {
                Ok(_) => bail!(
                    "{} connected to {}'s database {database}",
                    intruder.role(),
                    owner.role()
                ),
                Err(sqlx::Error::Database(e)) => ensure!(
                    e.code().as_deref() == Some("42501")
                        && e.message().contains("permission denied for database"),
                    "{} on {database}: expected permission denied (42501), got {} {}",
                    intruder.role(),
                    e.code().unwrap_or_default(),
                    e.message()
                ),
                Err(e) => bail!("{} on {database}: {e}", intruder.role()),
            }
        }
    }
    Ok(())
}

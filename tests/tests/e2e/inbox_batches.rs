//! The batched inbox against real Kafka and PostgreSQL: a batch applies many
//! records in one transaction, and every record keeps the guarantees it had
//! alone. Each test puts its records on the topic before the consumer starts,
//! so that they arrive in one fetch and make one batch (checked on the
//! `inbox_batch_records` histogram), then breaks something in the middle.

use platform::services::INVOICING_SERVICE;
use std::collections::HashSet;

use anyhow::{Context as _, ensure};
use e2e::TestInfra;
use e2e::events::placed;
use e2e::services::{
    EventProducer, ServiceUnderTest, consumer_config, fresh_group, group_members, init_logs,
    read_records, wait_until,
};
use invoicing_service::Invoicing;
use messaging::inbox::{
    ApplyError, Fault, Handler, Inbox, InboxError, InboxMetrics, NewEvent, Rejection,
};
use platform::health::Readiness;
use rdkafka::Message;
use serde::Deserialize;
use shared_events::RawEnvelope;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One consumer of a fresh topic of `partitions`, on a fresh invoicing
/// database, in a fresh group.
struct Setup {
    infra: TestInfra,
    topic: String,
    group: String,
    database_url: String,
    pool: PgPool,
    producer: EventProducer,
}

impl Setup {
    async fn new(partitions: i32) -> anyhow::Result<Self> {
        init_logs();
        let infra = TestInfra::acquire().await?;
        let topic = infra.fresh_topic(partitions).await?;
        let producer = EventProducer::new(&infra, &topic)?;
        let (database_url, pool) = infra.fresh_database(&INVOICING_SERVICE).await?;
        Ok(Setup {
            group: fresh_group("invoicing"),
            infra,
            topic,
            database_url,
            pool,
            producer,
        })
    }

    async fn start(&self) -> anyhow::Result<ServiceUnderTest> {
        ServiceUnderTest::start::<Invoicing>(self.config()).await
    }

    fn config(&self) -> consumer_kit::ConsumerConfig {
        consumer_config::<Invoicing>(&self.infra, &self.database_url, &self.topic, &self.group)
    }

    async fn invoices_of(&self, orders: &[Uuid]) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM invoices WHERE order_id = ANY($1)")
                .bind(orders)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_in_the_middle_of_a_batch_is_applied_once() -> anyhow::Result<()> {
    let setup = Setup::new(1).await?;
    let before = placed(Uuid::now_v7());
    setup.producer.send(&before).await?;
    let first = setup.start().await?;
    wait_until("the first order to be invoiced", || async {
        Ok(setup.invoices_of(&[before.order_id]).await? == 1)
    })
    .await?;
    first.stop().await?;

    // One batch: two new orders, the first again in between (a relay that
    // published twice), and a copy of the order already processed.
    let (a, b) = (placed(Uuid::now_v7()), placed(Uuid::now_v7()));
    for event in [&a, &a, &before, &b] {
        setup.producer.send(event).await?;
    }
    let second = setup.start().await?;
    wait_until("the batch to be processed", || async {
        Ok(second.metric("inbox_records_processed").await?
            + second.metric("inbox_duplicates_skipped").await?
            == 4)
    })
    .await?;
    assert_eq!(
        second.metric("inbox_batch_records_count").await?,
        1,
        "one batch"
    );
    assert_eq!(second.metric("inbox_records_processed").await?, 2);
    assert_eq!(second.metric("inbox_duplicates_skipped").await?, 2);
    assert_eq!(
        setup
            .invoices_of(&[before.order_id, a.order_id, b.order_id])
            .await?,
        3
    );
    second.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_in_the_middle_of_a_batch_is_dead_lettered_and_its_neighbours_commit()
-> anyhow::Result<()> {
    let setup = Setup::new(1).await?;
    let (a, b) = (placed(Uuid::now_v7()), placed(Uuid::now_v7()));
    setup.producer.send(&a).await?;
    setup
        .producer
        .send_raw(&Uuid::now_v7().to_string(), b"{ not an envelope")
        .await?;
    setup.producer.send(&b).await?;
    let service = setup.start().await?;
    wait_until("both orders to be invoiced", || async {
        Ok(setup.invoices_of(&[a.order_id, b.order_id]).await? == 2)
    })
    .await?;
    assert_eq!(
        service.metric("inbox_batch_records_count").await?,
        1,
        "one batch"
    );
    assert_eq!(service.metric("inbox_dead_lettered").await?, 1);
    let dlq = shared_events::topics::dead_letter(&setup.topic, &setup.group);
    let dead = read_records(&setup.infra, &dlq, 1).await?;
    assert_eq!(dead[0].payload(), Some(&b"{ not an envelope"[..]));
    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_a_batch_commit_before_its_offsets_redelivers_without_a_second_effect()
-> anyhow::Result<()> {
    let setup = Setup::new(1).await?;
    let orders: Vec<_> = (0..5).map(|_| placed(Uuid::now_v7())).collect();
    for event in &orders {
        setup.producer.send(event).await?;
    }
    let ids: Vec<Uuid> = orders.iter().map(|e| e.order_id).collect();
    let mut faulty = setup.config();
    faulty.inbox.fault = Some(Fault::StopAfterCommit(1));
    let crashing = ServiceUnderTest::start::<Invoicing>(faulty).await?;
    let stopped = crashing.stopped().await?;
    ensure!(
        matches!(&stopped, Err(error) if matches!(error.task_error::<InboxError>(), Some(InboxError::InjectedStop))),
        "stopped with {stopped:?}"
    );
    assert_eq!(setup.invoices_of(&ids).await?, 5, "the batch committed");

    let restarted = setup.start().await?;
    wait_until("the redelivered batch to be absorbed", || async {
        Ok(restarted.metric("inbox_duplicates_skipped").await? == 5)
    })
    .await?;
    assert_eq!(restarted.metric("inbox_records_processed").await?, 0);
    assert_eq!(setup.invoices_of(&ids).await?, 5, "no second invoice");
    restarted.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_mid_batch_retries_the_whole_batch_and_skips_nothing()
-> anyhow::Result<()> {
    let setup = Setup::new(1).await?;
    // The schema first, then a lock that holds the batch mid-transaction.
    setup.start().await?.stop().await?;
    let orders: Vec<_> = (0..5).map(|_| placed(Uuid::now_v7())).collect();
    for event in &orders {
        setup.producer.send(event).await?;
    }
    let mut lock = setup.pool.begin().await?;
    sqlx::query("LOCK TABLE invoices IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await?;
    let service = setup.start().await?;
    let database = setup
        .database_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(setup.infra.admin_url())
        .await?;
    let waiting = || async {
        let pid: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity
             WHERE datname = $1 AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()
               -- the purge waits for the table too (it keeps the notes of
               -- cancellations whose order has no invoice): not the batch
               AND query NOT LIKE '%DELETE FROM processed_events%'",
        )
        .bind(&database)
        .fetch_optional(&admin)
        .await?;
        Ok::<_, anyhow::Error>(pid)
    };
    wait_until(
        "the batch to wait for the table, its transaction open",
        || async { Ok(waiting().await?.is_some()) },
    )
    .await?;
    // The connection under the batch dies: the database is "away" mid-batch.
    let pid = waiting().await?.context("the waiting backend")?;
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&admin)
        .await?;
    lock.rollback().await?;

    let ids: Vec<Uuid> = orders.iter().map(|e| e.order_id).collect();
    wait_until("every order to be invoiced after the outage", || async {
        Ok(setup.invoices_of(&ids).await? == 5)
    })
    .await?;
    assert!(
        service.metric("inbox_retries").await? >= 1,
        "the batch was retried"
    );
    assert_eq!(service.metric("inbox_records_processed").await?, 5);
    assert_eq!(service.metric("inbox_dead_lettered").await?, 0);
    service.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_while_a_batch_is_in_flight_loses_nothing_and_applies_nothing_twice()
-> anyhow::Result<()> {
    let setup = Setup::new(4).await?;
    setup.start().await?.stop().await?;
    let first_half: Vec<_> = (0..20).map(|_| placed(Uuid::now_v7())).collect();
    for event in &first_half {
        setup.producer.send(event).await?;
    }
    // Instance a takes the batch and is held inside its transaction.
    let mut lock = setup.pool.begin().await?;
    sqlx::query("LOCK TABLE invoices IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await?;
    let a = setup.start().await?;
    let database = setup
        .database_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    wait_until("instance a's batch to be in flight", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
        )
        .bind(&database)
        .fetch_one(&setup.pool)
        .await?;
        Ok(waiting > 0)
    })
    .await?;
    // Instance b joins: the group must take partitions from a mid-batch.
    let b = setup.start().await?;
    wait_until("the group to start rebalancing", || async {
        let (state, _) = group_members(&setup.infra, &setup.group).await?;
        Ok(state != "Stable")
    })
    .await?;
    lock.rollback().await?;
    wait_until("the group to settle with both instances", || async {
        Ok(group_members(&setup.infra, &setup.group).await? == ("Stable".to_owned(), 2))
    })
    .await?;
    let second_half: Vec<_> = (0..20).map(|_| placed(Uuid::now_v7())).collect();
    for event in &second_half {
        setup.producer.send(event).await?;
    }
    let ids: Vec<Uuid> = first_half
        .iter()
        .chain(&second_half)
        .map(|e| e.order_id)
        .collect();
    wait_until("all 40 orders to be invoiced", || async {
        Ok(setup.invoices_of(&ids).await? == 40)
    })
    .await?;
    let processed =
        a.metric("inbox_records_processed").await? + b.metric("inbox_records_processed").await?;
    assert_eq!(
        processed, 40,
        "each event applied once across both instances"
    );
    assert!(
        a.metric("inbox_records_processed").await? >= 20,
        "a finished the batch it held when the group rebalanced"
    );
    a.stop().await?;
    b.stop().await
}

// ---- an effect that rejects one event of a batch ---------------------------

/// A consumer of the test's own: it records each order's currency, and its
/// effect refuses the currency `XXX` (a rule only the effect can check).
#[derive(Debug, Clone, Copy)]
struct Ledger;

#[derive(Deserialize)]
struct Priced {
    currency: String,
}

impl Handler for Ledger {
    type Event = String;

    fn decode(&self, envelope: &RawEnvelope) -> Result<Option<String>, Rejection> {
        let priced: Priced = messaging::reader::read_order_event(envelope)?;
        Ok(Some(priced.currency))
    }

    fn effect_table(&self) -> &'static str {
        "ledger"
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[NewEvent<'_, String>],
    ) -> Result<(), ApplyError> {
        if let Some(index) = events.iter().position(|e| e.event == "XXX") {
            return Err(ApplyError::Invalid {
                index,
                reason: "currency XXX is not kept in the ledger".into(),
            });
        }
        let orders: Vec<Uuid> = events.iter().map(|e| e.meta.order_id).collect();
        let currencies: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
        sqlx::query("INSERT INTO ledger SELECT * FROM UNNEST($1::uuid[], $2::text[])")
            .bind(&orders)
            .bind(&currencies)
            .execute(conn)
            .await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_effect_rejecting_one_event_mid_batch_dead_letters_it_alone() -> anyhow::Result<()> {
    let setup = Setup::new(1).await?;
    sqlx::raw_sql("CREATE TABLE ledger (order_id UUID PRIMARY KEY, currency TEXT NOT NULL)")
        .execute(&setup.pool)
        .await?;
    messaging::inbox::MIGRATOR.run(&setup.pool).await?;
    let mut events: Vec<_> = (0..5).map(|_| placed(Uuid::now_v7())).collect();
    events[2].data.currency = "XXX".into();
    for event in &events {
        setup.producer.send(event).await?;
    }

    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = InboxMetrics::register(&mut registry);
    let mut kafka = setup.infra.kafka_settings(&setup.topic);
    kafka.partitions = 1;
    let producer =
        messaging::kafka::RebuildingProducer::new(&kafka, &Default::default(), Default::default())?;
    let inbox = Inbox::new(
        setup.pool.clone(),
        Ledger,
        kafka,
        messaging::inbox::InboxSettings::new(&setup.group),
        metrics,
        Readiness::new(),
        producer,
    );
    let stop = CancellationToken::new();
    let running = tokio::spawn(inbox.run(stop.clone()));

    let kept: Vec<Uuid> = events
        .iter()
        .filter(|e| e.data.currency != "XXX")
        .map(|e| e.order_id)
        .collect();
    wait_until("the four other events to be in the ledger", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger WHERE order_id = ANY($1)")
            .bind(&kept)
            .fetch_one(&setup.pool)
            .await?;
        Ok(n == 4)
    })
    .await?;
    let dlq = shared_events::topics::dead_letter(&setup.topic, &setup.group);
    let dead = read_records(&setup.infra, &dlq, 1).await?;
    let reason =
        e2e::services::header(&dead[0], shared_events::headers::DLQ_ERROR).unwrap_or_default();
    assert!(reason.contains("currency XXX"), "{reason}");
    let processed: HashSet<Uuid> = sqlx::query_scalar("SELECT event_id FROM processed_events")
        .fetch_all(&setup.pool)
        .await?
        .into_iter()
        .collect();
    assert!(
        !processed.contains(&events[2].event_id),
        "the rejected event is not recorded as processed"
    );
    assert_eq!(processed.len(), 4);
    stop.cancel();
    running.await??;
    Ok(())
}

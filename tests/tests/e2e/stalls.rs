//! Stalls that time or an operator's act cause, which a consumer must report
//! instead of hiding: a committed offset fallen below the log start
//! (retention deleted records the group never read), and a dead-letter
//! topic that takes nothing. Each stops the consumer with `/health/ready`
//! 503 and the reason, and `inbox_stalled` 1; none skips a record. And the
//! retention windows those stalls race: set on purpose on the topics a
//! consumer creates.

use anyhow::ensure;
use e2e::TestInfra;
use e2e::events::placed;
use e2e::services::{
    ConsumerUnderTest, EventProducer, ServiceUnderTest, consumer_config, fresh_group, init_logs,
    wait_until,
};
use invoicing_service::Invoicing;
use platform::services::INVOICING_SERVICE;
use reqwest::StatusCode;
use uuid::Uuid;

/// The invoices of `order` that `service` shows.
async fn invoices(service: &ServiceUnderTest, order: Uuid) -> anyhow::Result<usize> {
    Ok(service
        .get_ok(&format!("/invoices?order_id={order}"))
        .await?["items"]
        .as_array()
        .map_or(0, Vec::len))
}

/// `/health/ready`'s status and body as text.
async fn readiness(service: &ServiceUnderTest) -> anyhow::Result<(StatusCode, String)> {
    let (status, _, body) = service.get("/health/ready").await?;
    Ok((status, body.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offset_below_the_log_start_stops_its_group_loudly_while_a_new_group_starts_there()
-> anyhow::Result<()> {
    init_logs();
    let infra = TestInfra::acquire().await?;
    let topic = infra.fresh_topic(1).await?;
    let producer = EventProducer::new(&infra, &topic)?;
    let group = fresh_group(Invoicing::SERVICE.short);
    let (url, _pool) = infra.fresh_database(&INVOICING_SERVICE).await?;
    let config = consumer_config::<Invoicing>(&infra, &url, &topic, &group);

    let first = Uuid::now_v7();
    producer.send(&placed(first)).await?;
    let invoicing = ServiceUnderTest::start::<Invoicing>(config.clone()).await?;
    wait_until("the first order to be invoiced", || async {
        Ok(invoices(&invoicing, first).await? == 1)
    })
    .await?;
    // Stopping commits the group's offset: 1.
    invoicing.stop().await?;

    // While the group is away, three orders come (offsets 1 to 3), and
    // retention deletes the first two before the group is back.
    let later: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    for order in &later {
        producer.send(&placed(*order)).await?;
    }
    infra.delete_records_before(&topic, 0, 3).await?;

    let invoicing = ServiceUnderTest::start::<Invoicing>(config.clone()).await?;
    wait_until("invoicing to stop on the gap and say so", || async {
        let (status, body) = readiness(&invoicing).await?;
        Ok(status == StatusCode::SERVICE_UNAVAILABLE
            && body.contains(&format!("{topic}[0]"))
            && body.contains("2 record(s) would be skipped"))
    })
    .await?;
    ensure!(invoicing.metric("inbox_stalled").await? == 1);
    // The partition stopped: the order after the gap is not invoiced, as it
    // would be at once after a silent reset to the log start.
    ensure!(invoices(&invoicing, later[2]).await? == 0);

    // A new group has nothing to lose: it starts at the first record left.
    let (new_url, _new_pool) = infra.fresh_database(&INVOICING_SERVICE).await?;
    let new_group = fresh_group(Invoicing::SERVICE.short);
    let rebuilt = ServiceUnderTest::start::<Invoicing>(consumer_config::<Invoicing>(
        &infra, &new_url, &topic, &new_group,
    ))
    .await?;
    wait_until("the new group to invoice the record left", || async {
        Ok(invoices(&rebuilt, later[2]).await? == 1)
    })
    .await?;
    ensure!(readiness(&rebuilt).await?.0 == StatusCode::OK);
    ensure!(rebuilt.metric("inbox_stalled").await? == 0);
    // And the stalled group is still stopped, still saying why.
    ensure!(readiness(&invoicing).await?.0 == StatusCode::SERVICE_UNAVAILABLE);
    ensure!(invoices(&invoicing, later[2]).await? == 0);
    rebuilt.stop().await?;

    // The operator's decision, taken on purpose (README, retention
    // windows): the gap's events are gone, so the group goes on from the
    // log start. With the service stopped, its offset is reset; started
    // again, it resumes there and is ready.
    invoicing.stop().await?;
    infra.commit_offset(&group, &topic, 0, 3).await?;
    let invoicing = ServiceUnderTest::start::<Invoicing>(config).await?;
    wait_until("the reset group to invoice the record left", || async {
        Ok(invoices(&invoicing, later[2]).await? == 1)
    })
    .await?;
    wait_until("the reset group to report ready", || async {
        Ok(readiness(&invoicing).await?.0 == StatusCode::OK)
    })
    .await?;
    ensure!(invoicing.metric("inbox_stalled").await? == 0);
    invoicing.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_topic_that_takes_nothing_stalls_the_consumer_visibly_until_it_is_back()
-> anyhow::Result<()> {
    init_logs();
    let infra = TestInfra::acquire().await?;
    let topic = infra.fresh_topic(1).await?;
    let producer = EventProducer::new(&infra, &topic)?;
    let group = fresh_group(Invoicing::SERVICE.short);
    let (url, _pool) = infra.fresh_database(&INVOICING_SERVICE).await?;
    let mut config = consumer_config::<Invoicing>(&infra, &url, &topic, &group);
    // A dead letter not delivered within 5 s fails (and is retried).
    config.producer.message_timeout_ms = 5_000;
    let invoicing = ServiceUnderTest::start::<Invoicing>(config).await?;
    let ready = Uuid::now_v7();
    producer.send(&placed(ready)).await?;
    wait_until("the consumer to run", || async {
        Ok(invoices(&invoicing, ready).await? == 1)
    })
    .await?;

    // An operator deletes the dead-letter topic; then a poison record comes,
    // and an order behind it.
    let dlq = shared_events::topics::dead_letter(&topic, &group);
    infra.delete_topic(&dlq).await?;
    producer.send_raw("order-7", b"not an envelope").await?;
    let behind = Uuid::now_v7();
    producer.send(&placed(behind)).await?;
    wait_until("invoicing to report the stall", || async {
        let (status, body) = readiness(&invoicing).await?;
        Ok(status == StatusCode::SERVICE_UNAVAILABLE && body.contains(&dlq))
    })
    .await?;
    ensure!(invoicing.metric("inbox_stalled").await? == 1);
    ensure!(invoicing.metric("inbox_dead_lettered").await? == 0);
    // The age of the record it holds shows the stall, growing with it.
    const AGE: &str = "inbox_oldest_unprocessed_age_seconds";
    let age = invoicing.metric(AGE).await?;
    ensure!(
        age >= 1,
        "the held record's age is {age} s during the stall"
    );
    wait_until("the held record's age to grow", || async {
        Ok(invoicing.metric(AGE).await? > age)
    })
    .await?;
    ensure!(
        invoices(&invoicing, behind).await? == 0,
        "the order behind the poison waits for the poison's dead letter"
    );

    // The topic is back: the consumer resumes by itself.
    infra.create_topic(&dlq, 1, &[]).await?;
    wait_until("the dead letter and the order behind it", || async {
        Ok(invoicing.metric("inbox_dead_lettered").await? == 1
            && invoices(&invoicing, behind).await? == 1)
    })
    .await?;
    wait_until("invoicing to report ready again", || async {
        Ok(readiness(&invoicing).await?.0 == StatusCode::OK)
    })
    .await?;
    ensure!(invoicing.metric("inbox_stalled").await? == 0);
    wait_until("no record to be held unfinished", || async {
        Ok(invoicing.metric(AGE).await? == 0)
    })
    .await?;
    invoicing.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topics_a_consumer_creates_keep_records_for_their_configured_retention()
-> anyhow::Result<()> {
    init_logs();
    let infra = TestInfra::acquire().await?;
    let topic = infra.fresh_topic(1).await?;
    let group = fresh_group(Invoicing::SERVICE.short);
    let (url, _pool) = infra.fresh_database(&INVOICING_SERVICE).await?;
    let mut config = consumer_config::<Invoicing>(&infra, &url, &topic, &group);
    let hours = |h: u64| std::time::Duration::from_secs(h * 3600);
    config.inbox.retry_retention = hours(3);
    config.inbox.dead_letter_retention = hours(5);
    let invoicing = ServiceUnderTest::start::<Invoicing>(config).await?;
    let (retry, dlq) = (
        shared_events::topics::retry(&topic, &group),
        shared_events::topics::dead_letter(&topic, &group),
    );
    wait_until("the consumer to create its topics", || async {
        Ok(infra
            .topic_config(&retry, "retention.ms")
            .await
            .is_ok_and(|value| value.is_some()))
    })
    .await?;
    let retention = |topic: String| {
        let infra = &infra;
        async move { infra.topic_config(&topic, "retention.ms").await }
    };
    ensure!(retention(retry).await?.as_deref() == Some("10800000"));
    ensure!(retention(dlq).await?.as_deref() == Some("18000000"));
    invoicing.stop().await
}

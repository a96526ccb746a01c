//! Records a consumer cannot apply: dead-lettered when poison, waited for when
//! the fault is the consumer's own, and kept when the dead-letter topic refuses them.

use anyhow::ensure;
use e2e::TestInfra;
use e2e::events::placed;
use e2e::services::ConsumerUnderTest;
use e2e::services::{
    EventProducer, ServiceUnderTest, consumer_config, fresh_group, header, init_logs, read_records,
    wait_until,
};
use invoicing_service::Invoicing;
use platform::services::INVOICING_SERVICE;
use rdkafka::Message;
use reqwest::StatusCode;
use shared_events::headers;
use uuid::Uuid;

use super::Flow;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_are_dead_lettered_and_the_orders_after_them_processed() -> anyhow::Result<()>
{
    let flow = Flow::start(1).await?;
    let garbage_key = "not-an-order";
    let garbage = b"\x00\xffthis is not JSON".to_vec();
    let bad_order = Uuid::now_v7();
    let mut invalid = placed(bad_order);
    invalid.data.lines[0].quantity = 0;
    let invalid_value = serde_json::to_vec(&invalid)?;
    // A valid event under another order's key: it would land on that order's
    // partition, outside its own order's sequence.
    let forged_order = Uuid::now_v7();
    let other_order = Uuid::now_v7();
    let forged_value = serde_json::to_vec(&placed(forged_order))?;
    let poison = [
        (garbage_key.to_owned(), garbage.clone()),
        (bad_order.to_string(), invalid_value.clone()),
        (other_order.to_string(), forged_value.clone()),
    ];
    let mut positions = Vec::new();
    for (key, value) in &poison {
        positions.push(flow.producer.send_raw(key, value).await?);
    }
    let good_order = Uuid::now_v7();
    flow.producer.send(&placed(good_order)).await?;
    flow.wait_for(good_order, "open", "pending").await?;
    assert!(
        flow.invoicing
            .of_order("invoices", bad_order)
            .await?
            .is_empty()
    );
    for order in [bad_order, forged_order, other_order] {
        assert!(flow.invoicing.of_order("invoices", order).await?.is_empty());
        assert!(flow.shipping.of_order("shipments", order).await?.is_empty());
    }

    for instance in [&flow.invoicing, &flow.shipping] {
        let dlq = shared_events::topics::dead_letter(&flow.topic, &instance.group);
        let mut records = read_records(&flow.infra, &dlq, poison.len()).await?;
        records.sort_by_key(|r| {
            header(r, headers::DLQ_SOURCE_OFFSET).and_then(|o| o.parse::<i64>().ok())
        });
        for (record, ((key, value), (partition, offset))) in
            records.iter().zip(poison.iter().zip(&positions))
        {
            assert_eq!(record.key(), Some(key.as_bytes()), "{dlq}: original key");
            assert_eq!(record.payload(), Some(&value[..]), "{dlq}: original value");
            let error = header(record, headers::DLQ_ERROR).unwrap_or_default();
            assert!(!error.is_empty(), "{dlq}: a reason");
            assert_eq!(
                header(record, headers::DLQ_SOURCE_TOPIC).as_deref(),
                Some(flow.topic.as_str())
            );
            assert_eq!(
                header(record, headers::DLQ_SOURCE_PARTITION),
                Some(partition.to_string())
            );
            assert_eq!(
                header(record, headers::DLQ_SOURCE_OFFSET),
                Some(offset.to_string())
            );
            assert_eq!(
                header(record, headers::DLQ_CONSUMER).as_deref(),
                Some(instance.group.as_str())
            );
        }
        let reason = header(&records[1], headers::DLQ_ERROR).unwrap_or_default();
        assert!(
            reason.contains("quantity"),
            "the reason names the field: {reason}"
        );
        let reason = header(&records[2], headers::DLQ_ERROR).unwrap_or_default();
        assert!(
            reason.contains("record key") && reason.contains(&forged_order.to_string()),
            "the reason names the key and the order: {reason}"
        );
        assert_eq!(instance.service.metric("inbox_dead_lettered").await?, 3);
    }
    flow.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_privilege_stalls_the_consumer_until_it_is_back_and_dead_letters_nothing()
-> anyhow::Result<()> {
    const ORDERS: usize = 5;
    let flow = Flow::start(3).await?;
    let role = INVOICING_SERVICE.role();
    // An operator's mistake: invoicing may no longer write its invoices.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "REVOKE INSERT ON invoices FROM {role}"
    )))
    .execute(&flow.invoicing.pool)
    .await?;
    let orders: Vec<Uuid> = (0..ORDERS).map(|_| Uuid::now_v7()).collect();
    for order in &orders {
        flow.producer.send(&placed(*order)).await?;
    }
    // Shipping is not affected; invoicing says it cannot work, and does
    // not blame the records for it.
    for order in &orders {
        wait_until("the shipment", || async {
            Ok(flow.shipping.of_order("shipments", *order).await?.len() == 1)
        })
        .await?;
    }
    wait_until("invoicing to report not ready", || async {
        Ok(flow.invoicing.service.get("/health/ready").await?.0 == StatusCode::SERVICE_UNAVAILABLE)
    })
    .await?;
    assert_eq!(flow.invoicing.count("invoices").await?, 0);
    assert_eq!(
        flow.invoicing.service.metric("inbox_dead_lettered").await?,
        0
    );

    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "GRANT INSERT ON invoices TO {role}"
    )))
    .execute(&flow.invoicing.pool)
    .await?;
    for order in &orders {
        flow.wait_for(*order, "open", "pending").await?;
    }
    wait_until("invoicing to report ready again", || async {
        Ok(flow.invoicing.service.get("/health/ready").await?.0 == StatusCode::OK)
    })
    .await?;
    assert_eq!(
        flow.invoicing.service.metric("inbox_dead_lettered").await?,
        0
    );
    flow.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_its_topic_refuses_is_kept_without_its_value_and_the_consumer_goes_on()
-> anyhow::Result<()> {
    init_logs();
    let infra = TestInfra::acquire().await?;
    let topic = infra.fresh_topic(1).await?;
    let group = fresh_group(Invoicing::SERVICE.short);
    // A dead-letter topic that takes small records only: a poison record of
    // 4 kB, with the dead-letter headers added, is too large for it.
    let dlq = shared_events::topics::dead_letter(&topic, &group);
    infra
        .create_topic(&dlq, 1, &[("max.message.bytes", "2048")])
        .await?;
    let (database_url, _pool) = infra.fresh_database(&INVOICING_SERVICE).await?;
    let service = ServiceUnderTest::start::<Invoicing>(consumer_config::<Invoicing>(
        &infra,
        &database_url,
        &topic,
        &group,
    ))
    .await?;
    let producer = EventProducer::new(&infra, &topic)?;
    let poison_key = Uuid::now_v7().to_string();
    let (partition, offset) = producer.send_raw(&poison_key, &[b'x'; 4096]).await?;
    let good = Uuid::now_v7();
    producer.send(&placed(good)).await?;
    wait_until("the order after the poison to be invoiced", || async {
        let page = service
            .get_ok(&format!("/invoices?order_id={good}"))
            .await?;
        Ok(page["items"]
            .as_array()
            .is_some_and(|items| items.len() == 1))
    })
    .await?;

    let records = read_records(&infra, &dlq, 1).await?;
    let record = &records[0];
    assert_eq!(record.key(), Some(poison_key.as_bytes()));
    assert_eq!(record.payload(), None, "the value was left out");
    assert_eq!(
        header(record, headers::DLQ_SOURCE_PARTITION),
        Some(partition.to_string())
    );
    assert_eq!(
        header(record, headers::DLQ_SOURCE_OFFSET),
        Some(offset.to_string())
    );
    assert!(
        header(record, headers::DLQ_ERROR).is_some_and(|e| !e.is_empty()),
        "the reason is kept"
    );
    assert_eq!(service.metric("inbox_dead_lettered").await?, 1);
    assert_eq!(service.metric("inbox_dead_letters_without_value").await?, 1);
    service.stop().await
}

/// A fatal error of the dead-letter producer (as a fenced idempotent
/// producer raises; here librdkafka's `rd_kafka_test_fatal_error`) fails
/// every send of that instance: the failed send replaces it at once, counts
/// it, and the inbox's retry of the dead letter goes through the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_fatal_error_the_dead_letter_producer_is_rebuilt_and_the_retry_goes_through()
-> anyhow::Result<()> {
    use messaging::dead_letter::DeadLetter;
    use messaging::kafka::RebuildingProducer;
    use rdkafka::message::{OwnedMessage, Timestamp};

    let infra = TestInfra::acquire().await?;
    let topic = infra.fresh_topic(1).await?;
    let dlq = infra.fresh_topic(1).await?;
    let rebuilds = prometheus_client::metrics::counter::Counter::<u64>::default();
    let producer = RebuildingProducer::new(
        &e2e::admin_kafka(infra.kafka_bootstrap_servers(), &topic),
        &Default::default(),
        rebuilds.clone(),
    )?;
    let dead_letter = DeadLetter::new(producer.clone(), dlq.clone(), "a-consumer".into());
    let refused = OwnedMessage::new(
        Some(b"{\"not\": \"an event\"}".to_vec()),
        Some(b"some-order".to_vec()),
        topic,
        Timestamp::NotAvailable,
        0,
        7,
        None,
    );

    producer.inject_fatal_error("injected by a test");
    ensure!(
        dead_letter.send(&refused, "not an event").await.is_err(),
        "the fenced instance fails the send"
    );
    assert_eq!(rebuilds.get(), 1, "and is replaced at once");
    dead_letter.send(&refused, "not an event").await?;
    assert_eq!(rebuilds.get(), 1, "a healthy instance is kept");
    let letters = read_records(&infra, &dlq, 1).await?;
    assert_eq!(
        letters[0].payload(),
        refused.payload(),
        "the retry went through"
    );
    Ok(())
}

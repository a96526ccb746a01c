//! `orderflow-admin dead-letters`: listing and replaying dead letters, applied by
//! their own consumer only, and never multiplied.

use anyhow::{Context as _, ensure};
use e2e::TestInfra;
use e2e::events::{cancelled, placed};
use e2e::services::{
    ConsumerUnderTest, EventProducer, ServiceUnderTest, consumer_config, fresh_group, init_logs,
    read_records, wait_until,
};
use invoicing_service::Invoicing;
use messaging::dead_letter::DeadLetter;
use platform::services::{INVOICING_SERVICE, SHIPPING_SERVICE};
use rdkafka::Message;
use serde_json::Value;
use shared_events::Envelope;
use shipping_service::Shipping;
use uuid::Uuid;

use super::{admin, items};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_listed_replayed_and_applied_by_its_consumer_only() -> anyhow::Result<()> {
    init_logs();
    let infra = TestInfra::acquire().await?;
    let bootstrap = infra.kafka_bootstrap_servers().to_owned();
    let topic = infra.fresh_topic(3).await?;
    let producer = EventProducer::new(&infra, &topic)?;
    let (shipping_url, _) = infra.fresh_database(&SHIPPING_SERVICE).await?;
    let shipping_group = fresh_group(Shipping::SERVICE.short);
    let shipping = ServiceUnderTest::start::<Shipping>(consumer_config::<Shipping>(
        &infra,
        &shipping_url,
        &topic,
        &shipping_group,
    ))
    .await?;

    // An order shipping has applied, and that an earlier invoicing refused
    // (a bug since fixed): its dead letter is in invoicing's topic.
    let order = Uuid::now_v7();
    producer.send(&placed(order)).await?;
    wait_until("the shipment", || async {
        Ok(items(&shipping, &format!("/shipments?order_id={order}"))
            .await?
            .len()
            == 1)
    })
    .await?;
    let source = read_records(&infra, &topic, 1).await?.remove(0);
    let invoicing_group = fresh_group(Invoicing::SERVICE.short);
    let dlq = shared_events::topics::dead_letter(&topic, &invoicing_group);
    infra.create_topic(&dlq, 1, &[]).await?;
    let dead_letters = messaging::kafka::RebuildingProducer::new(
        &e2e::admin_kafka(infra.kafka_bootstrap_servers(), &topic),
        &Default::default(),
        Default::default(),
    )?;
    DeadLetter::new(dead_letters, dlq.clone(), invoicing_group.clone())
        .send(&source, "refused by invoicing 1.0 (since fixed)")
        .await?;

    // The fixed invoicing starts at the topic's end: it has the record only
    // through the dead letter.
    let (invoicing_url, _) = infra.fresh_database(&INVOICING_SERVICE).await?;
    let mut config = consumer_config::<Invoicing>(&infra, &invoicing_url, &topic, &invoicing_group);
    config.inbox.auto_offset_reset = "latest".into();
    let invoicing = ServiceUnderTest::start::<Invoicing>(config).await?;
    // Once it has taken an order placed now, it reads from its position (a
    // marker sent before it found its position is skipped, so one is sent
    // every second until one is taken).
    let marker = Uuid::now_v7();
    let polls = std::sync::atomic::AtomicUsize::new(0);
    wait_until("invoicing to take orders placed from now on", || async {
        if polls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .is_multiple_of(10)
        {
            producer.send(&placed(marker)).await?;
        }
        Ok(!items(&invoicing, &format!("/invoices?order_id={marker}"))
            .await?
            .is_empty())
    })
    .await?;
    let listed = admin(&[
        "dlq",
        "list",
        &invoicing_group,
        "--topic",
        &topic,
        "--bootstrap-servers",
        &bootstrap,
    ])
    .await?;
    ensure!(listed.contains("1 dead letter(s)"), "{listed}");
    ensure!(
        listed.contains(&format!("OrderPlaced {}", placed_event_id(&source)?)),
        "{listed}"
    );
    ensure!(
        listed.contains("refused by invoicing 1.0 (since fixed)"),
        "{listed}"
    );
    ensure!(
        listed.contains(&format!(
            "{topic}[{}]@{}",
            source.partition(),
            source.offset()
        )),
        "{listed}"
    );

    let replayed = admin(&[
        "dlq",
        "replay",
        &invoicing_group,
        "--all",
        "--topic",
        &topic,
        "--bootstrap-servers",
        &bootstrap,
    ])
    .await?;
    ensure!(
        replayed.contains(&format!(
            "republished 1 dead letter(s) to {}",
            shared_events::topics::retry(&topic, &invoicing_group)
        )),
        "{replayed}"
    );
    ensure!(
        replayed.contains(&format!(
            "group {invoicing_group} took 1 of 1 replayed record(s): 1 applied"
        )),
        "{replayed}"
    );
    ensure!(
        items(&invoicing, &format!("/invoices?order_id={order}"))
            .await?
            .len()
            == 1,
        "the replayed order is invoiced"
    );
    // Shipping never read the replay: once it has taken a later event of
    // the order (the same partition of the source topic, where the replay
    // used to go), it has skipped no copy.
    producer.send(&cancelled(order)).await?;
    wait_until("shipping to cancel the order", || async {
        Ok(items(&shipping, &format!("/shipments?order_id={order}"))
            .await?
            .iter()
            .any(|s| s["status"] == "cancelled"))
    })
    .await?;
    ensure!(
        shipping.metric("inbox_duplicates_skipped").await? == 0,
        "shipping read a replay meant for invoicing"
    );
    invoicing.stop().await?;
    shipping.stop().await
}

fn placed_event_id(record: &rdkafka::message::OwnedMessage) -> anyhow::Result<Uuid> {
    let envelope: Envelope<Value> = serde_json::from_slice(record.payload().unwrap_or_default())?;
    Ok(envelope.event_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_poison_record_is_reported_dead_lettered_again() -> anyhow::Result<()> {
    init_logs();
    let infra = TestInfra::acquire().await?;
    let bootstrap = infra.kafka_bootstrap_servers().to_owned();
    let topic = infra.fresh_topic(1).await?;
    let group = fresh_group(Invoicing::SERVICE.short);
    let (url, _) = infra.fresh_database(&INVOICING_SERVICE).await?;
    let invoicing = ServiceUnderTest::start::<Invoicing>(consumer_config::<Invoicing>(
        &infra, &url, &topic, &group,
    ))
    .await?;
    let mut invalid = placed(Uuid::now_v7());
    invalid.data.lines[0].quantity = 0;
    let producer = EventProducer::new(&infra, &topic)?;
    producer.send(&invalid).await?;
    // Poison without an event id: not an envelope at all.
    producer
        .send_raw("order-42", b"{\"this is\": \"not an envelope\"}")
        .await?;
    wait_until("both poisons to be dead-lettered", || async {
        Ok(invoicing.metric("inbox_dead_lettered").await? == 2)
    })
    .await?;
    let replay = |selection: Vec<String>| {
        let mut args = vec![
            "dlq".to_owned(),
            "replay".to_owned(),
            group.clone(),
            "--topic".to_owned(),
            topic.clone(),
            "--bootstrap-servers".to_owned(),
            bootstrap.clone(),
        ];
        args.extend(selection);
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            admin(&args).await
        }
    };
    let took = |n: usize| {
        format!(
            "group {group} took {n} of {n} replayed record(s): 0 applied (or already applied), {n} dead-lettered again"
        )
    };
    let by_id = replay(vec!["--event-id".into(), invalid.event_id.to_string()]).await?;
    ensure!(by_id.contains(&took(1)), "{by_id}");
    // Every refusal once, the one without an event id included: the first
    // poison by its latest dead letter (the replay's), not by both; each is
    // recognised again by where its replay landed.
    let all = replay(vec!["--all".into()]).await?;
    ensure!(all.contains(&took(2)), "{all}");
    let unknown = replay(vec!["--event-id".into(), Uuid::now_v7().to_string()]).await;
    ensure!(
        unknown
            .as_ref()
            .is_err_and(|e| e.to_string().contains("no dead letter of event")),
        "{unknown:?}"
    );
    invoicing.stop().await
}

/// `orderflow-admin dlq list <group>`'s count of dead letters.
async fn dead_letters_listed(group: &str, topic: &str, bootstrap: &str) -> anyhow::Result<usize> {
    let listed = admin(&[
        "dlq",
        "list",
        group,
        "--topic",
        topic,
        "--bootstrap-servers",
        bootstrap,
    ])
    .await?;
    listed
        .split_once(" dead letter(s)")
        .and_then(|(count, _)| count.parse().ok())
        .with_context(|| format!("no count in: {listed}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_refused_by_both_consumers_and_replayed_three_times_for_one_multiplies_nowhere()
-> anyhow::Result<()> {
    init_logs();
    let infra = TestInfra::acquire().await?;
    let bootstrap = infra.kafka_bootstrap_servers().to_owned();
    // One partition: an order sent after the replays is read after them.
    let topic = infra.fresh_topic(1).await?;
    let producer = EventProducer::new(&infra, &topic)?;
    let (invoicing_url, _) = infra.fresh_database(&INVOICING_SERVICE).await?;
    let invoicing_group = fresh_group(Invoicing::SERVICE.short);
    let invoicing = ServiceUnderTest::start::<Invoicing>(consumer_config::<Invoicing>(
        &infra,
        &invoicing_url,
        &topic,
        &invoicing_group,
    ))
    .await?;
    let (shipping_url, _) = infra.fresh_database(&SHIPPING_SERVICE).await?;
    let shipping_group = fresh_group(Shipping::SERVICE.short);
    let shipping = ServiceUnderTest::start::<Shipping>(consumer_config::<Shipping>(
        &infra,
        &shipping_url,
        &topic,
        &shipping_group,
    ))
    .await?;
    // An order without lines: both consumers refuse it.
    let mut poison = placed(Uuid::now_v7());
    poison.data.lines.clear();
    producer.send(&poison).await?;
    wait_until("both consumers to dead-letter the poison", || async {
        Ok(invoicing.metric("inbox_dead_lettered").await? == 1
            && shipping.metric("inbox_dead_lettered").await? == 1)
    })
    .await?;

    for run in 1..=3 {
        let report = admin(&[
            "dlq",
            "replay",
            &invoicing_group,
            "--all",
            "--topic",
            &topic,
            "--bootstrap-servers",
            &bootstrap,
        ])
        .await?;
        ensure!(
            report.contains("republished 1 dead letter(s)")
                && report.contains(&format!(
                    "group {invoicing_group} took 1 of 1 replayed record(s): 0 applied \
                     (or already applied), 1 dead-lettered again"
                )),
            "replay {run} took the refusal once: {report}"
        );
    }
    // Shipping has read every record before this order's.
    let later = Uuid::now_v7();
    producer.send(&placed(later)).await?;
    wait_until("shipping to ship the later order", || async {
        Ok(items(&shipping, &format!("/shipments?order_id={later}"))
            .await?
            .len()
            == 1)
    })
    .await?;
    ensure!(
        dead_letters_listed(&shipping_group, &topic, &bootstrap).await? == 1,
        "shipping's dead letters are unchanged by invoicing's replays"
    );
    ensure!(shipping.metric("inbox_dead_lettered").await? == 1);
    ensure!(
        dead_letters_listed(&invoicing_group, &topic, &bootstrap).await? == 4,
        "invoicing gained one dead letter per replay"
    );
    ensure!(invoicing.metric("inbox_dead_lettered").await? == 4);
    invoicing.stop().await?;
    shipping.stop().await
}

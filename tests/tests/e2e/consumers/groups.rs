//! Consumer groups: a view rebuilt in a new group, instances splitting the
//! partitions on both rebalance protocols, and members named after their service.

use std::collections::BTreeSet;

use anyhow::ensure;
use e2e::TestInfra;
use e2e::events::{cancelled, placed};
use e2e::services::{
    EventProducer, PATIENCE, ServiceUnderTest, consumer_config, fresh_group, group_client_ids,
    init_logs, wait_until,
};
use invoicing_service::Invoicing;
use platform::services::{INVOICING_SERVICE, SHIPPING_SERVICE};
use shipping_service::Shipping;
use uuid::Uuid;

use super::{Flow, Instance, records_handled, view};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_rebuilt_from_the_topic_in_a_new_group_equals_the_original() -> anyhow::Result<()> {
    let flow = Flow::start(6).await?;
    // A history with every kind of record: orders, cancellations (after and
    // before their order), a duplicate, a second OrderPlaced of one order,
    // an event type nobody handles and a poison record.
    let orders: Vec<Uuid> = (0..12).map(|_| Uuid::now_v7()).collect();
    let mut produced = 0_u64;
    for order in &orders {
        flow.producer.send(&placed(*order)).await?;
        produced += 1;
    }
    for order in &orders[..4] {
        flow.producer.send(&cancelled(*order)).await?;
        produced += 1;
    }
    let early = Uuid::now_v7();
    flow.producer.send(&cancelled(early)).await?;
    flow.producer.send(&placed(early)).await?;
    let duplicate = placed(orders[5]);
    flow.producer.send(&duplicate).await?;
    flow.producer.send(&duplicate).await?;
    flow.producer.send(&placed(orders[6])).await?;
    let mut unknown = cancelled(orders[7]);
    unknown.event_type = "OrderGiftWrapped".into();
    flow.producer.send(&unknown).await?;
    flow.producer.send_raw("poison", b"{ not json").await?;
    produced += 7;

    for instance in [&flow.invoicing, &flow.shipping] {
        wait_until(
            &format!("{} handled {produced} records", instance.group),
            || async { Ok(records_handled(instance).await? == produced) },
        )
        .await?;
    }
    let invoices = view(&flow.invoicing, "invoices", "issued_at").await?;
    let shipments = view(&flow.shipping, "shipments", "created_at").await?;
    assert_eq!(invoices.len(), 13);
    assert_eq!(shipments.len(), 13);
    let cancelled_count = invoices
        .iter()
        .filter(|i| i["status"] == "cancelled")
        .count();
    assert_eq!(cancelled_count, 5);

    // The rebuild: an empty database, a NEW group starting from the earliest
    // offset (the documented procedure, see messaging::inbox).
    let rebuilt_invoicing =
        Instance::start::<Invoicing>(&flow.infra, &INVOICING_SERVICE, &flow.topic).await?;
    let rebuilt_shipping =
        Instance::start::<Shipping>(&flow.infra, &SHIPPING_SERVICE, &flow.topic).await?;
    for instance in [&rebuilt_invoicing, &rebuilt_shipping] {
        assert_ne!(instance.database_url, flow.invoicing.database_url);
        assert_ne!(instance.database_url, flow.shipping.database_url);
        wait_until(
            &format!("rebuild {} handled {produced} records", instance.group),
            || async { Ok(records_handled(instance).await? == produced) },
        )
        .await?;
    }
    assert_eq!(
        view(&rebuilt_invoicing, "invoices", "issued_at").await?,
        invoices
    );
    assert_eq!(
        view(&rebuilt_shipping, "shipments", "created_at").await?,
        shipments
    );

    rebuilt_invoicing.service.stop().await?;
    rebuilt_shipping.service.stop().await?;
    flow.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shipping_instances_in_one_group_split_the_partitions_and_ship_each_order_once()
-> anyhow::Result<()> {
    two_instances_split_the_partitions("classic").await
}

/// The same on KIP-848's consumer group protocol, where the broker assigns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_kip_848_protocol_two_instances_split_the_partitions_and_ship_each_order_once()
-> anyhow::Result<()> {
    two_instances_split_the_partitions("consumer").await
}

async fn two_instances_split_the_partitions(group_protocol: &str) -> anyhow::Result<()> {
    init_logs();
    let infra = TestInfra::acquire().await?;
    let topic = infra.fresh_topic(6).await?;
    let producer = EventProducer::new(&infra, &topic)?;
    let (database_url, pool) = infra.fresh_database(&SHIPPING_SERVICE).await?;
    let group = fresh_group("shipping");
    let config = || {
        let mut config = consumer_config::<Shipping>(&infra, &database_url, &topic, &group);
        config.inbox.group_protocol = group_protocol.to_owned();
        config
    };
    let first = ServiceUnderTest::start::<Shipping>(config()).await?;
    let second = ServiceUnderTest::start::<Shipping>(config()).await?;
    wait_until("both instances own partitions", || async {
        Ok(first.metric("inbox_partitions_assigned").await? > 0
            && second.metric("inbox_partitions_assigned").await? > 0)
    })
    .await?;

    const ORDERS: i64 = 60;
    let mut partitions = BTreeSet::new();
    for _ in 0..ORDERS {
        let (partition, _) = producer.send(&placed(Uuid::now_v7())).await?;
        partitions.insert(partition);
    }
    ensure!(
        partitions.len() == 6,
        "the keys did not cover every partition: {partitions:?}"
    );
    wait_until("every order has a shipment", || async {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM shipments")
            .fetch_one(&pool)
            .await?;
        Ok(count == ORDERS)
    })
    .await?;

    let (applied_first, applied_second) = (
        first.metric("inbox_records_processed").await?,
        second.metric("inbox_records_processed").await?,
    );
    assert!(
        applied_first > 0 && applied_second > 0,
        "both instances worked: {applied_first} + {applied_second}"
    );
    assert_eq!(
        applied_first + applied_second,
        ORDERS as u64,
        "each order's effect was applied exactly once"
    );
    let (shipments, orders, lines): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT order_id), (SELECT count(*) FROM shipment_lines)
         FROM shipments",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!((shipments, orders, lines), (ORDERS, ORDERS, 2 * ORDERS));
    tokio::time::timeout(PATIENCE, async {
        first.stop().await?;
        second.stop().await
    })
    .await?
}

/// Each consumer's Kafka clients say which service they are: the group's
/// members carry the service's name as `client.id`, not librdkafka's `rdkafka`.
#[tokio::test]
async fn each_consumer_group_member_is_named_after_its_service() -> anyhow::Result<()> {
    init_logs();
    let infra = TestInfra::acquire().await?;
    let topic = infra.fresh_topic(1).await?;
    let invoicing = Instance::start::<Invoicing>(&infra, &INVOICING_SERVICE, &topic).await?;
    let shipping = Instance::start::<Shipping>(&infra, &SHIPPING_SERVICE, &topic).await?;
    for (instance, name) in [
        (&invoicing, "invoicing-service"),
        (&shipping, "shipping-service"),
    ] {
        wait_until(&format!("{name} to join its group"), || async {
            Ok(!group_client_ids(&infra, &instance.group).await?.is_empty())
        })
        .await?;
        let ids = group_client_ids(&infra, &instance.group).await?;
        ensure!(ids == [name], "members of {}: {ids:?}", instance.group);
    }
    Ok(())
}

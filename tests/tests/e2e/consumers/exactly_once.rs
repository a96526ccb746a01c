//! One effect per event: duplicates, crashes between commit and offset, and
//! cancellations in either order.

use e2e::TestInfra;
use e2e::events::{cancelled, placed};
use e2e::services::ConsumerUnderTest;
use e2e::services::{
    EventProducer, ServiceUnderTest, consumer_config, fresh_group, init_logs, wait_until,
};
use invoicing_service::Invoicing;
use messaging::inbox::{Fault, InboxError};
use platform::services::{INVOICING_SERVICE, SHIPPING_SERVICE, ServiceFacts};
use shipping_service::Shipping;
use uuid::Uuid;

use super::Flow;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_three_times_has_one_effect_and_counts_two_duplicates() -> anyhow::Result<()>
{
    let flow = Flow::start(3).await?;
    let order_id = Uuid::now_v7();
    let event = placed(order_id);
    for _ in 0..3 {
        flow.producer.send(&event).await?;
    }
    for instance in [&flow.invoicing, &flow.shipping] {
        wait_until(&format!("{}: 2 duplicates", instance.group), || async {
            Ok(instance.service.metric("inbox_duplicates_skipped").await? == 2)
        })
        .await?;
        assert_eq!(instance.service.metric("inbox_records_processed").await?, 1);
    }
    assert_eq!(flow.invoicing.count("invoices").await?, 1);
    assert_eq!(flow.shipping.count("shipments").await?, 1);

    // Another OrderPlaced of the same order (a new event id, other content)
    // is processed but issues no second invoice and no second shipment.
    let mut again = placed(order_id);
    again.data.customer.name = "Someone Else".into();
    flow.producer.send(&again).await?;
    for instance in [&flow.invoicing, &flow.shipping] {
        wait_until(&format!("{}: 2 processed", instance.group), || async {
            Ok(instance.service.metric("inbox_records_processed").await? == 2)
        })
        .await?;
    }
    assert_eq!(flow.invoicing.count("invoices").await?, 1);
    assert_eq!(flow.shipping.count("shipments").await?, 1);
    let invoices = flow.invoicing.of_order("invoices", order_id).await?;
    assert_eq!(invoices[0]["customer"]["name"], "Ada Lovelace");
    flow.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_dedup_records_are_purged_and_a_cancellation_is_kept_until_its_order_has_its_effect()
-> anyhow::Result<()> {
    init_logs();
    let infra = TestInfra::acquire().await?;
    let topic = infra.fresh_topic(1).await?;
    let producer = EventProducer::new(&infra, &topic)?;
    let group = fresh_group(Shipping::SERVICE.short);
    let (database_url, pool) = infra.fresh_database(&SHIPPING_SERVICE).await?;
    let mut config = consumer_config::<Shipping>(&infra, &database_url, &topic, &group);
    config.inbox.processed_retention = std::time::Duration::from_secs(3600);
    config.inbox.purge_interval = std::time::Duration::from_millis(100);
    let service = ServiceUnderTest::start::<Shipping>(config).await?;
    let shipment_status = |order: Uuid| {
        let service = &service;
        async move {
            let page = service
                .get_ok(&format!("/shipments?order_id={order}"))
                .await?;
            Ok::<_, anyhow::Error>(page["items"][0]["status"].as_str().map(str::to_owned))
        }
    };
    // An order shipped: a cancellation note of it has done its work.
    let shipped = Uuid::now_v7();
    producer.send(&placed(shipped)).await?;
    wait_until("the shipment", || async {
        Ok(shipment_status(shipped).await?.is_some())
    })
    .await?;
    // An order cancelled long ago whose placement never came (dead-lettered,
    // say, and not replayed yet): its note must outlive the window.
    let (old_event, new_event, waiting, new_order) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    sqlx::query(
        "INSERT INTO processed_events (consumer, event_id, processed_at)
         VALUES ($1, $2, now() - interval '2 hours'), ($1, $3, now())",
    )
    .bind(&group)
    .bind(old_event)
    .bind(new_event)
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO cancellations (order_id, recorded_at)
         VALUES ($1, now() - interval '2 hours'), ($2, now() - interval '2 hours'), ($3, now())",
    )
    .bind(shipped)
    .bind(waiting)
    .bind(new_order)
    .execute(&pool)
    .await?;
    wait_until(
        "the old records with nothing left to do to be purged",
        || async {
            let left: i64 = sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM processed_events WHERE event_id = $1)
                  + (SELECT count(*) FROM cancellations WHERE order_id = $2)",
            )
            .bind(old_event)
            .bind(shipped)
            .fetch_one(&pool)
            .await?;
            Ok(left == 0)
        },
    )
    .await?;
    let kept: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM processed_events WHERE event_id = $1)
              + (SELECT count(*) FROM cancellations WHERE order_id IN ($2, $3))",
    )
    .bind(new_event)
    .bind(new_order)
    .bind(waiting)
    .fetch_one(&pool)
    .await?;
    assert_eq!(
        kept, 3,
        "records within the retention stay, and so does the old note of an order without its shipment"
    );
    // The placement comes however late (a replayed dead letter): it is
    // shipped already cancelled, never pending.
    producer.send(&placed(waiting)).await?;
    wait_until("the late order's shipment", || async {
        Ok(shipment_status(waiting).await?.is_some())
    })
    .await?;
    assert_eq!(
        shipment_status(waiting).await?.as_deref(),
        Some("cancelled")
    );
    service.stop().await
}

/// Runs `S` with a crash point after its first commit, checks that it stops
/// with the injected error, restarts it in the same group, and checks that
/// the redelivered record is absorbed: one row in `table`, duplicates >= 1.
async fn a_crash_between_commit_and_offset_has_no_double_effect<S: ConsumerUnderTest>(
    role: &'static ServiceFacts,
    table: &'static str,
) -> anyhow::Result<()> {
    init_logs();
    let infra = TestInfra::acquire().await?;
    let topic = infra.fresh_topic(3).await?;
    let producer = EventProducer::new(&infra, &topic)?;
    let (database_url, pool) = infra.fresh_database(role).await?;
    let group = fresh_group(S::SERVICE.short);

    let mut faulty = consumer_config::<S>(&infra, &database_url, &topic, &group);
    faulty.inbox.fault = Some(Fault::StopAfterCommit(1));
    let crashing = ServiceUnderTest::start::<S>(faulty).await?;
    producer.send(&placed(Uuid::now_v7())).await?;
    let stopped = crashing.stopped().await?;
    assert!(
        matches!(&stopped, Err(error) if matches!(error.task_error::<InboxError>(), Some(InboxError::InjectedStop))),
        "stopped with {stopped:?}"
    );
    let count_sql = match table {
        "invoices" => "SELECT count(*) FROM invoices",
        _ => "SELECT count(*) FROM shipments",
    };
    let count = || async {
        sqlx::query_scalar::<_, i64>(count_sql)
            .fetch_one(&pool)
            .await
    };
    assert_eq!(count().await?, 1, "the effect committed before the crash");

    let restarted =
        ServiceUnderTest::start::<S>(consumer_config::<S>(&infra, &database_url, &topic, &group))
            .await?;
    wait_until("the redelivered record is absorbed", || async {
        Ok(restarted.metric("inbox_duplicates_skipped").await? >= 1)
    })
    .await?;
    assert_eq!(count().await?, 1, "no second {table} row");
    assert_eq!(restarted.metric("inbox_records_processed").await?, 0);
    restarted.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoicing_killed_after_commit_before_offset_issues_one_invoice() -> anyhow::Result<()> {
    a_crash_between_commit_and_offset_has_no_double_effect::<Invoicing>(
        &INVOICING_SERVICE,
        "invoices",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipping_killed_after_commit_before_offset_creates_one_shipment() -> anyhow::Result<()> {
    a_crash_between_commit_and_offset_has_no_double_effect::<Shipping>(
        &SHIPPING_SERVICE,
        "shipments",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellations_apply_whether_they_arrive_after_or_before_the_order() -> anyhow::Result<()> {
    let flow = Flow::start(3).await?;
    let kept = Uuid::now_v7();
    let cancelled_after = Uuid::now_v7();
    let cancelled_before = Uuid::now_v7();

    flow.producer.send(&placed(kept)).await?;
    flow.producer.send(&placed(cancelled_after)).await?;
    flow.wait_for(cancelled_after, "open", "pending").await?;
    flow.producer.send(&cancelled(cancelled_after)).await?;
    // A relay failure can deliver an order's cancellation before the order.
    flow.producer.send(&cancelled(cancelled_before)).await?;
    flow.producer.send(&placed(cancelled_before)).await?;

    flow.wait_for(cancelled_after, "cancelled", "cancelled")
        .await?;
    flow.wait_for(cancelled_before, "cancelled", "cancelled")
        .await?;
    flow.wait_for(kept, "open", "pending").await?;
    flow.stop().await
}

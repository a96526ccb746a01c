//! The consuming services (invoicing and shipping) against real Kafka and
//! PostgreSQL: what each makes of an order, exactly-once effects under
//! duplicates and crashes, dead-lettering, cancellation in either order,
//! rebuilding a view from the topic, and scaling out within one group.
//!
//! Every test produces its events straight onto its own fresh topic (as the
//! relay would: key = order id, value = the envelope's JSON) and runs the
//! services in this process on fresh databases in fresh consumer groups.

use platform::services::{INVOICING_SERVICE, SHIPPING_SERVICE, ServiceFacts};
use std::collections::BTreeSet;

use anyhow::{Context as _, ensure};
use chrono::{DateTime, Utc};
use e2e::TestInfra;
use e2e::services::ConsumerUnderTest;
use e2e::services::{
    EventProducer, PATIENCE, ServiceUnderTest, consumer_config, fresh_group, group_client_ids,
    header, init_logs, read_records, wait_until,
};
use invoicing_service::Invoicing;
use messaging::inbox::{Fault, InboxError};
use rdkafka::Message;
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared_events::headers;
use shipping_service::Shipping;
use sqlx::PgPool;
use uuid::Uuid;

use e2e::events::{BILLING_STREET, EMAIL, cancelled, placed};

/// One service instance on its own database, in its own group.
struct Instance {
    service: ServiceUnderTest,
    pool: PgPool,
    database_url: String,
    group: String,
}

impl Instance {
    /// Starts `S` on a fresh database in a fresh group, consuming `topic`.
    async fn start<S: ConsumerUnderTest>(
        infra: &TestInfra,
        role: &'static ServiceFacts,
        topic: &str,
    ) -> anyhow::Result<Self> {
        let (database_url, pool) = infra.fresh_database(role).await?;
        let group = fresh_group(S::SERVICE.short);
        let config = consumer_config::<S>(infra, &database_url, topic, &group);
        Ok(Instance {
            service: ServiceUnderTest::start::<S>(config).await?,
            pool,
            database_url,
            group,
        })
    }

    /// The items of `GET /<collection>?order_id=<order_id>`.
    async fn of_order(&self, collection: &str, order_id: Uuid) -> anyhow::Result<Vec<Value>> {
        let page = self
            .service
            .get_ok(&format!("/{collection}?order_id={order_id}"))
            .await?;
        Ok(page["items"].as_array().cloned().unwrap_or_default())
    }

    /// Every item of `GET /<collection>` (one page of at most 500).
    async fn all(&self, collection: &str) -> anyhow::Result<Vec<Value>> {
        let page = self
            .service
            .get_ok(&format!("/{collection}?limit=500"))
            .await?;
        ensure!(page["next_cursor"].is_null(), "more than one page");
        Ok(page["items"].as_array().cloned().unwrap_or_default())
    }

    /// `SELECT count(*) FROM <table>`.
    async fn count(&self, table: &'static str) -> anyhow::Result<i64> {
        let sql = match table {
            "invoices" => "SELECT count(*) FROM invoices",
            "shipments" => "SELECT count(*) FROM shipments",
            other => anyhow::bail!("no count query for {other}"),
        };
        Ok(sqlx::query_scalar(sql).fetch_one(&self.pool).await?)
    }
}

/// A fresh topic with invoicing and shipping consuming it.
struct Flow {
    infra: TestInfra,
    topic: String,
    producer: EventProducer,
    invoicing: Instance,
    shipping: Instance,
}

impl Flow {
    async fn start(partitions: i32) -> anyhow::Result<Self> {
        init_logs();
        let infra = TestInfra::acquire().await?;
        let topic = infra.fresh_topic(partitions).await?;
        let producer = EventProducer::new(&infra, &topic)?;
        let invoicing = Instance::start::<Invoicing>(&infra, &INVOICING_SERVICE, &topic).await?;
        let shipping = Instance::start::<Shipping>(&infra, &SHIPPING_SERVICE, &topic).await?;
        Ok(Flow {
            infra,
            topic,
            producer,
            invoicing,
            shipping,
        })
    }

    /// Waits until the order's invoice and shipment exist with these statuses.
    async fn wait_for(&self, order_id: Uuid, invoice: &str, shipment: &str) -> anyhow::Result<()> {
        wait_until(
            &format!("order {order_id}: invoice {invoice}, shipment {shipment}"),
            || async {
                let invoices = self.invoicing.of_order("invoices", order_id).await?;
                let shipments = self.shipping.of_order("shipments", order_id).await?;
                Ok(matches!((&invoices[..], &shipments[..]), ([i], [s])
                    if i["status"] == invoice && s["status"] == shipment))
            },
        )
        .await
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.invoicing.service.stop().await?;
        self.shipping.service.stop().await
    }
}

/// Every key of `value`, at any depth, and every string value.
fn keys_and_strings(value: &Value, keys: &mut BTreeSet<String>, strings: &mut BTreeSet<String>) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                keys.insert(key.clone());
                keys_and_strings(field, keys, strings);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| keys_and_strings(item, keys, strings)),
        Value::String(s) => {
            strings.insert(s.clone());
        }
        _ => {}
    }
}

fn key_set(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .map(|fields| fields.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Checks `id` and the timestamp `at`, then removes them: what is left is
/// the part of a view that does not depend on when or where it was built.
fn without_id_and_time(mut item: Value, at: &str) -> anyhow::Result<Value> {
    let fields = item.as_object_mut().context("an object")?;
    let id = fields.remove("id").context("an id")?;
    let time = fields.remove(at).with_context(|| format!("a {at}"))?;
    id.as_str()
        .context("id is text")?
        .parse::<Uuid>()
        .context("id is a UUID")?;
    time.as_str()
        .context("time is text")?
        .parse::<DateTime<Utc>>()
        .with_context(|| format!("{at} is RFC 3339"))?;
    Ok(item)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_placed_yields_one_invoice_and_one_shipment_with_exactly_the_expected_fields()
-> anyhow::Result<()> {
    let flow = Flow::start(3).await?;
    let order_id = Uuid::now_v7();
    flow.producer.send(&placed(order_id)).await?;
    flow.wait_for(order_id, "open", "pending").await?;

    let [listed] = &flow.invoicing.of_order("invoices", order_id).await?[..] else {
        anyhow::bail!("one invoice expected");
    };
    let invoice = flow
        .invoicing
        .service
        .get_ok(&format!(
            "/invoices/{}",
            listed["id"].as_str().context("id")?
        ))
        .await?;
    assert_eq!(&invoice, listed, "GET by id and the list agree");
    assert_eq!(
        without_id_and_time(invoice, "issued_at")?,
        json!({
            "order_id": order_id,
            "status": "open",
            "customer": { "name": "Ada Lovelace", "email": EMAIL },
            "billing_address": { "street": BILLING_STREET, "zip": "10115", "city": "Berlin", "country": "DE" },
            "currency": "EUR",
            "lines": [
                { "sku": "IPOD-NANO", "name": "iPod nano", "quantity": 2, "unit_price_cents": 14900, "line_total_cents": 29800 },
                { "sku": "CASE.BLK_1", "name": "Leather case", "quantity": 1, "unit_price_cents": 1999, "line_total_cents": 1999 },
            ],
            "total_cents": 31799,
        })
    );

    let [listed] = &flow.shipping.of_order("shipments", order_id).await?[..] else {
        anyhow::bail!("one shipment expected");
    };
    let shipment = flow
        .shipping
        .service
        .get_ok(&format!(
            "/shipments/{}",
            listed["id"].as_str().context("id")?
        ))
        .await?;
    assert_eq!(&shipment, listed, "GET by id and the list agree");
    assert_eq!(
        key_set(&shipment),
        BTreeSet::from([
            "id",
            "order_id",
            "status",
            "recipient",
            "shipping_address",
            "lines",
            "created_at"
        ])
    );
    let (mut keys, mut strings) = (BTreeSet::new(), BTreeSet::new());
    keys_and_strings(&shipment, &mut keys, &mut strings);
    for forbidden in ["price", "total", "email", "billing", "currency"] {
        assert!(
            !keys.iter().any(|k| k.contains(forbidden)),
            "shipment has a {forbidden} key: {keys:?}"
        );
    }
    assert!(!strings.contains(EMAIL) && !strings.contains(BILLING_STREET));
    assert_eq!(
        without_id_and_time(shipment, "created_at")?,
        json!({
            "order_id": order_id,
            "status": "pending",
            "recipient": { "name": "Ada Lovelace" },
            "shipping_address": { "street": "2 Engine Road", "zip": "80331", "city": "Munich", "country": "DE" },
            "lines": [
                { "sku": "IPOD-NANO", "name": "iPod nano", "quantity": 2 },
                { "sku": "CASE.BLK_1", "name": "Leather case", "quantity": 1 },
            ],
        })
    );

    // Shipping's database has no column for a price, an e-mail or a billing
    // address, and no row holds one anywhere.
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = 'public'",
    )
    .fetch_all(&flow.shipping.pool)
    .await?;
    assert!(columns.iter().any(|(t, _)| t == "shipments"));
    for (table, column) in &columns {
        for forbidden in ["price", "total", "email", "billing", "currency"] {
            assert!(!column.contains(forbidden), "shipping has {table}.{column}");
        }
    }
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT row_to_json(s)::text FROM shipments s
         UNION ALL SELECT row_to_json(l)::text FROM shipment_lines l
         UNION ALL SELECT row_to_json(c)::text FROM cancellations c",
    )
    .fetch_all(&flow.shipping.pool)
    .await?;
    assert!(rows.len() >= 3);
    for row in rows {
        assert!(
            !row.contains(EMAIL) && !row.contains(BILLING_STREET) && !row.contains("EUR"),
            "{row}"
        );
    }
    flow.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_apis_answer_problems_for_bad_and_unknown_ids() -> anyhow::Result<()> {
    let flow = Flow::start(1).await?;
    for (instance, collection) in [(&flow.invoicing, "invoices"), (&flow.shipping, "shipments")] {
        let unknown = Uuid::now_v7();
        for (path, status) in [
            (format!("/{collection}/not-a-uuid"), StatusCode::BAD_REQUEST),
            (format!("/{collection}/{unknown}"), StatusCode::NOT_FOUND),
            (
                format!("/{collection}?order_id=42"),
                StatusCode::BAD_REQUEST,
            ),
            (format!("/{collection}?limit=0"), StatusCode::BAD_REQUEST),
            (
                format!("/{collection}?cursor=nope"),
                StatusCode::BAD_REQUEST,
            ),
        ] {
            let (got, content_type, body) = instance.service.get(&path).await?;
            assert_eq!(got, status, "GET {path}: {body}");
            assert_eq!(content_type, "application/problem+json", "GET {path}");
            assert_eq!(body["status"], status.as_u16(), "GET {path}");
        }
        let empty = instance
            .service
            .get_ok(&format!("/{collection}?order_id={unknown}"))
            .await?;
        assert_eq!(empty, json!({ "items": [], "next_cursor": null }));
    }
    flow.stop().await
}

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

/// A view without its surrogate ids and commit timestamps, in order id order.
async fn view(instance: &Instance, collection: &str, at: &str) -> anyhow::Result<Vec<Value>> {
    let mut items = instance
        .all(collection)
        .await?
        .into_iter()
        .map(|item| without_id_and_time(item, at))
        .collect::<anyhow::Result<Vec<_>>>()?;
    items.sort_by(|a, b| a["order_id"].as_str().cmp(&b["order_id"].as_str()));
    Ok(items)
}

/// Every record the instance has taken care of, whatever it did with it.
async fn records_handled(instance: &Instance) -> anyhow::Result<u64> {
    let mut handled = 0;
    for metric in [
        "inbox_records_processed",
        "inbox_duplicates_skipped",
        "inbox_dead_lettered",
        "inbox_unknown_skipped",
    ] {
        handled += instance.service.metric(metric).await?;
    }
    Ok(handled)
}

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

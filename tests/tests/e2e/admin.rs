//! `orderflow-admin` against real Kafka and PostgreSQL, driven through its
//! command line exactly as an operator types it: dead letters listed and
//! replayed (to the refusing group's retry topic, each refusal once) until
//! the consumer takes them, parked outbox events listed, retried after the
//! cause is fixed, or discarded with a reason.

use platform::services::{INVOICING_SERVICE, ORDER_SERVICE, SHIPPING_SERVICE};
use std::sync::Arc;

use anyhow::{Context as _, ensure};

use e2e::TestInfra;
use e2e::events::{cancelled, placed};
use e2e::services::{
    ConsumerUnderTest, EventProducer, ServiceUnderTest, consumer_config, fresh_group, init_logs,
    read_records, wait_until,
};
use invoicing_service::Invoicing;
use messaging::dead_letter::DeadLetter;
use rdkafka::Message;
use reqwest::Client;
use serde_json::{Value, json};
use shared_events::Envelope;
use shipping_service::Shipping;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Runs `orderflow-admin <args>` in this process, with no terminal to
/// confirm on (as in CI); its report.
async fn admin(args: &[&str]) -> anyhow::Result<String> {
    admin_answering(args, &mut orderflow_admin::cli::NoOneToAsk).await
}

/// [`admin`], with `prompt` answering its confirmations; the report, and on
/// failure the error with what was reported before it.
async fn admin_answering(
    args: &[&str],
    prompt: &mut impl orderflow_admin::cli::Prompt,
) -> anyhow::Result<String> {
    let mut out = Vec::new();
    // The tests' topics are their own, which the tool's principal has no
    // ACLs on: the administrative principal runs it.
    let admin = devinfra::kafka::access::ADMIN;
    let credentials = [
        "--kafka-sasl-mechanism",
        devinfra::kafka::access::STATIC_MECHANISM,
        "--kafka-sasl-username",
        admin.name,
        "--kafka-sasl-password",
        admin.password,
    ];
    let result = orderflow_admin::cli::run_with(
        std::iter::once("orderflow-admin")
            .chain(credentials)
            .chain(args.iter().copied()),
        &mut out,
        prompt,
    )
    .await;
    let report = String::from_utf8(out)?;
    result.map_err(|e| anyhow::anyhow!("orderflow-admin {}: {e}\n{report}", args.join(" ")))?;
    Ok(report)
}

/// An operator at a terminal who types `answer` when asked; keeps the questions.
struct Typing {
    answer: String,
    asked: Vec<String>,
}

impl orderflow_admin::cli::Prompt for Typing {
    fn ask(&mut self, question: &str) -> Option<String> {
        self.asked.push(question.to_owned());
        Some(self.answer.clone())
    }
}

async fn items(service: &ServiceUnderTest, path: &str) -> anyhow::Result<Vec<Value>> {
    Ok(service.get_ok(path).await?["items"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

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

/// An order service with its relay, on a fresh database and a topic that
/// takes records of at most 16 kB.
struct SmallTopicOrders {
    infra: TestInfra,
    topic: String,
    url: String,
    pool: sqlx::PgPool,
    base: String,
    client: Client,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), order_service::RunError>>,
}

impl SmallTopicOrders {
    async fn start() -> anyhow::Result<Self> {
        init_logs();
        let infra = TestInfra::acquire().await?;
        let topic = format!("e2e-{}", Uuid::new_v4());
        infra
            .create_topic(&topic, 2, &[("max.message.bytes", "16384")])
            .await?;
        let (url, pool) = infra.fresh_database(&ORDER_SERVICE).await?;
        let app = order_service::build(order_service::Config::for_flow(
            url.clone(),
            e2e::admin_kafka(infra.kafka_bootstrap_servers(), &topic),
        ))
        .await?;
        let base = format!("http://{}", app.local_addr());
        let stop = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(stop.clone()));
        Ok(SmallTopicOrders {
            infra,
            topic,
            url,
            pool,
            base,
            client: Client::new(),
            stop,
            task,
        })
    }

    /// Places an order too large for the topic and cancels it; its id.
    async fn place_oversized_and_cancel(&self) -> anyhow::Result<String> {
        let lines: Vec<Value> = (0..100)
            .map(|i| {
                json!({ "sku": format!("LARGE-{i:03}"),
                        "name": format!("{:-<200}", format!("Oversized catalogue item {i} ")),
                        "quantity": 1, "unit_price_cents": 100 })
            })
            .collect();
        let order = json!({
            "customer": { "name": "Ada Lovelace", "email": "ada@example.com" },
            "billing_address": { "street": "1 Analytical Way", "zip": "10115", "city": "Berlin", "country": "DE" },
            "shipping_address": { "street": "2 Engine Road", "zip": "80331", "city": "Munich", "country": "DE" },
            "currency": "EUR",
            "lines": lines,
        });
        let placed: Value = self
            .client
            .post(format!("{}/orders", self.base))
            .json(&order)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = placed["id"].as_str().context("an order id")?.to_owned();
        self.client
            .post(format!("{}/orders/{id}/cancel", self.base))
            .json(&json!({ "reason": "too big" }))
            .send()
            .await?
            .error_for_status()?;
        Ok(id)
    }

    async fn wait_parked(&self) -> anyhow::Result<()> {
        wait_until("the oversized event to be parked", || async {
            let parked: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL")
                    .fetch_one(&self.pool)
                    .await?;
            Ok(parked == 1)
        })
        .await
    }

    async fn wait_drained(&self) -> anyhow::Result<()> {
        wait_until("the outbox to drain", || async {
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
                .fetch_one(&self.pool)
                .await?;
            Ok(left == 0)
        })
        .await
    }

    /// The event types published for `order`, in order.
    async fn published(&self, order: &str, expected: usize) -> anyhow::Result<Vec<String>> {
        let records = read_records(&self.infra, &self.topic, expected).await?;
        Ok(records
            .iter()
            .filter(|r| r.key() == Some(order.as_bytes()))
            .filter_map(|r| e2e::services::header(r, "event_type"))
            .collect())
    }

    async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .context(format!("metric {name}"))?
            .trim()
            .parse()
            .context(format!("metric {name}"))
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await??;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_event_is_listed_and_published_in_order_once_retried() -> anyhow::Result<()> {
    let orders = Arc::new(SmallTopicOrders::start().await?);
    let big = orders.place_oversized_and_cancel().await?;
    orders.wait_parked().await?;
    wait_until(
        "the gauges to show the parked and the held event",
        || async {
            Ok(orders.metric("outbox_parked").await? == 1.0
                && orders.metric("outbox_held").await? == 1.0)
        },
    )
    .await?;
    let listed = admin(&["outbox", "list", "--database-url", &orders.url]).await?;
    ensure!(listed.contains("1 parked event(s)"), "{listed}");
    ensure!(
        listed.contains("OrderPlaced") && listed.contains(&big),
        "{listed}"
    );
    ensure!(listed.contains("1 event(s) held behind it"), "{listed}");
    ensure!(
        listed.to_lowercase().contains("too large"),
        "the reason: {listed}"
    );

    // The operator raises the limit that refused it, and retries.
    orders
        .infra
        .set_topic_config(&orders.topic, "max.message.bytes", None)
        .await?;
    let retried = admin(&["outbox", "retry", "--all", "--database-url", &orders.url]).await?;
    ensure!(retried.contains("retried 1 parked event(s)"), "{retried}");
    orders.wait_drained().await?;
    assert_eq!(
        orders.published(&big, 2).await?,
        ["OrderPlaced", "OrderCancelled"],
        "published in order once retried"
    );
    Arc::into_inner(orders).context("one owner")?.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discarded_event_is_kept_with_its_reason_and_releases_the_events_behind_it()
-> anyhow::Result<()> {
    let orders = SmallTopicOrders::start().await?;
    let big = orders.place_oversized_and_cancel().await?;
    orders.wait_parked().await?;
    let id: i64 = sqlx::query_scalar("SELECT id FROM outbox WHERE parked_at IS NOT NULL")
        .fetch_one(&orders.pool)
        .await?;
    let id = id.to_string();
    let discard = |reason: &'static str| {
        [
            "outbox",
            "discard",
            "--id",
            id.as_str(),
            "--reason",
            reason,
            "--by",
            "ada",
            "--database-url",
            orders.url.as_str(),
        ]
    };
    let refused = admin(&[&discard(" ")[..], &["--yes"]].concat()).await;
    ensure!(refused.is_err(), "a discard needs a reason: {refused:?}");

    // Without --yes and without a terminal: refused, after saying what it would do.
    let unconfirmed = admin(&discard("customer re-ordered in two parts"))
        .await
        .expect_err("no terminal to confirm on, no --yes")
        .to_string();
    ensure!(
        unconfirmed.contains(&format!(
            "Order {big} is lost for both consumers: it is never invoiced and never shipped"
        )),
        "{unconfirmed}"
    );
    ensure!(
        unconfirmed.contains("add --yes to confirm"),
        "{unconfirmed}"
    );
    // At a terminal, any answer but the id stops it.
    let mut hesitant = Typing {
        answer: "y".to_owned(),
        asked: Vec::new(),
    };
    let stopped =
        admin_answering(&discard("customer re-ordered in two parts"), &mut hesitant).await;
    ensure!(stopped.is_err(), "{stopped:?}");
    ensure!(
        hesitant.asked == [format!("Type {id} to discard it, anything else to stop:")],
        "{:?}",
        hesitant.asked
    );
    let still_parked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL")
            .fetch_one(&orders.pool)
            .await?;
    let none_discarded: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_discarded")
        .fetch_one(&orders.pool)
        .await?;
    assert_eq!(
        (still_parked, none_discarded),
        (1, 0),
        "nothing changes unless confirmed"
    );

    // Typing the id confirms it.
    let mut sure = Typing {
        answer: id.clone(),
        asked: Vec::new(),
    };
    let discarded =
        admin_answering(&discard("customer re-ordered in two parts"), &mut sure).await?;
    ensure!(discarded.contains("1 held event(s)"), "{discarded}");
    ensure!(discarded.contains("by ada"), "{discarded}");
    orders.wait_drained().await?;
    let kept: (String, String, String, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT event_type, discard_reason, discarded_by, discarded_as, consequence
         FROM outbox_discarded WHERE record_key = $1",
    )
    .bind(&big)
    .fetch_one(&orders.pool)
    .await?;
    let role: String = sqlx::query_scalar("SELECT session_user::text")
        .fetch_one(&orders.pool)
        .await?;
    assert_eq!(
        (kept.0.as_str(), kept.1.as_str(), kept.2.as_str()),
        ("OrderPlaced", "customer re-ordered in two parts", "ada")
    );
    assert_eq!(kept.3, Some(role), "the database role it was done as");
    ensure!(
        kept.4
            .as_deref()
            .is_some_and(|c| c.contains("is lost for both consumers")),
        "the consequence the operator confirmed: {:?}",
        kept.4
    );
    assert_eq!(orders.published(&big, 1).await?, ["OrderCancelled"]);
    orders.stop().await
}

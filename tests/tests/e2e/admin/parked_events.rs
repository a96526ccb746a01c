//! `orderflow-admin parked`: parked outbox events listed, retried in order, or
//! discarded with a reason.

use std::sync::Arc;

use anyhow::{Context as _, ensure};
use e2e::TestInfra;
use e2e::services::{init_logs, read_records, wait_until};
use platform::services::ORDER_SERVICE;
use rdkafka::Message;
use reqwest::Client;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Typing, admin, admin_answering};

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

//! Exactly-once effect, measured from outside: the consumers' running figures
//! (invoicing's open balance per customer and currency, shipping's units to
//! pick per SKU) against the rows they must add up to, as the chaos audit
//! checks them ([`chaos::audit::running_figures`]).
//!
//! An invoice or a shipment cannot be duplicated whatever the inbox does
//! (`UNIQUE(order_id)`), so only these figures show whether the inbox's
//! dedup works. The proof runs both ways on real Kafka and PostgreSQL: with
//! the dedup switched off (a test-only setting of `fault-injection` builds),
//! one event delivered twice makes the audit fail while the schema-guarded
//! rows stay single; with the dedup on, the same deliveries pass it.

use anyhow::Context as _;
use chaos::audit::{RunningFigures, running_figures};
use e2e::TestInfra;
use e2e::events::{EMAIL, cancelled, placed};
use e2e::services::{
    ConsumerUnderTest, EventProducer, ServiceUnderTest, consumer_config, fresh_group, init_logs,
    wait_until,
};
use invoicing_service::Invoicing;
use orderflow_client::ApiClient;
use platform::services::{INVOICING_SERVICE, SHIPPING_SERVICE, ServiceFacts};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shipping_service::Shipping;
use sqlx::PgPool;
use uuid::Uuid;

/// The total of [`placed`]'s order.
const TOTAL: i64 = 31_799;

/// The second customer's e-mail address, and the SKUs of their order.
const GRACE: &str = "grace@example.com";
const GRACE_SKUS: [&str; 2] = ["COBOL-1", "COBOL-2"];

/// One consumer on a fresh database in a fresh group.
struct Consumer {
    service: ServiceUnderTest,
    pool: PgPool,
}

impl Consumer {
    async fn start<S: ConsumerUnderTest>(
        infra: &TestInfra,
        role: &'static ServiceFacts,
        topic: &str,
        dedup: bool,
    ) -> anyhow::Result<Self> {
        let (url, pool) = infra.fresh_database(role).await?;
        let mut config = consumer_config::<S>(infra, &url, topic, &fresh_group(S::SERVICE.short));
        config.inbox.dedup_off = !dedup;
        Ok(Consumer {
            service: ServiceUnderTest::start::<S>(config).await?,
            pool,
        })
    }

    /// Waits until the inbox has applied `applied` records and skipped
    /// `skipped` as duplicates.
    async fn wait_for(&self, applied: u64, skipped: u64) -> anyhow::Result<()> {
        wait_until(
            &format!("{applied} records applied and {skipped} skipped as duplicates"),
            || async {
                Ok(
                    self.service.metric("inbox_records_processed").await? == applied
                        && self.service.metric("inbox_duplicates_skipped").await? == skipped,
                )
            },
        )
        .await
    }

    /// The items of `GET path`.
    async fn items(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let page = self.service.get_ok(path).await?;
        page["items"].as_array().cloned().context("a page of items")
    }
}

/// Both consumers on a fresh topic, with the inbox's dedup on or off.
struct Consumers {
    producer: EventProducer,
    invoicing: Consumer,
    shipping: Consumer,
}

impl Consumers {
    async fn start(dedup: bool) -> anyhow::Result<Self> {
        init_logs();
        let infra = TestInfra::acquire().await?;
        let topic = infra.fresh_topic(3).await?;
        Ok(Consumers {
            producer: EventProducer::new(&infra, &topic)?,
            invoicing: Consumer::start::<Invoicing>(&infra, &INVOICING_SERVICE, &topic, dedup)
                .await?,
            shipping: Consumer::start::<Shipping>(&infra, &SHIPPING_SERVICE, &topic, dedup).await?,
        })
    }

    async fn wait_for(&self, applied: u64, skipped: u64) -> anyhow::Result<()> {
        self.invoicing.wait_for(applied, skipped).await?;
        self.shipping.wait_for(applied, skipped).await
    }

    /// What the chaos audit finds.
    async fn audit(&self) -> anyhow::Result<RunningFigures> {
        Ok(running_figures(&self.invoicing.pool, &self.shipping.pool).await?)
    }

    /// Rows per order in the schema-guarded tables: (invoices, shipments).
    async fn rows_of(&self, order_id: Uuid) -> anyhow::Result<(i64, i64)> {
        let count = async |pool: &PgPool, sql: &'static str| {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(order_id)
                .fetch_one(pool)
                .await
        };
        Ok((
            count(
                &self.invoicing.pool,
                "SELECT count(*) FROM invoices WHERE order_id = $1",
            )
            .await?,
            count(
                &self.shipping.pool,
                "SELECT count(*) FROM shipments WHERE order_id = $1",
            )
            .await?,
        ))
    }

    /// The balances as (customer, currency, open cents), read with the typed client.
    async fn balances(&self) -> anyhow::Result<Vec<(String, String, i64)>> {
        let balances = ApiClient::new()?
            .balances(self.invoicing.service.base_url())
            .await?;
        Ok(balances
            .into_iter()
            .map(|b| (b.customer_email, b.currency, b.open_cents))
            .collect())
    }

    /// The pick list as (SKU, units), read with the typed client.
    async fn pick_list(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let to_pick = ApiClient::new()?
            .pick_list(self.shipping.service.base_url())
            .await?;
        Ok(to_pick.into_iter().map(|p| (p.sku, p.units)).collect())
    }

    /// One order of Ada's delivered twice, and one of Grace's (other SKUs)
    /// placed once and cancelled twice: three distinct events, two
    /// redelivered. The two customers keep the redeliveries from cancelling
    /// each other out in one balance.
    async fn send_with_redeliveries(&self) -> anyhow::Result<(Uuid, Uuid)> {
        let (ada, grace) = (Uuid::now_v7(), Uuid::now_v7());
        let twice = placed(ada);
        let mut graces = placed(grace);
        graces.data.customer.email = GRACE.into();
        for (line, sku) in graces.data.lines.iter_mut().zip(GRACE_SKUS) {
            line.sku = sku.into();
        }
        let cancel = cancelled(grace);
        self.producer.send(&twice).await?;
        self.producer.send(&twice).await?;
        self.producer.send(&graces).await?;
        self.producer.send(&cancel).await?;
        self.producer.send(&cancel).await?;
        Ok((ada, grace))
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.invoicing.service.stop().await?;
        self.shipping.service.stop().await
    }
}

fn owned<const N: usize>(rows: [(&str, &str, i64); N]) -> Vec<(String, String, i64)> {
    rows.iter()
        .map(|(a, b, n)| ((*a).to_owned(), (*b).to_owned(), *n))
        .collect()
}

fn skus<const N: usize>(rows: [(&str, i64); N]) -> Vec<(String, i64)> {
    rows.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_dedup_off_a_redelivery_fails_the_audit_of_the_running_figures()
-> anyhow::Result<()> {
    let consumers = Consumers::start(false).await?;
    let (ada, grace) = consumers.send_with_redeliveries().await?;
    // Every delivery applied: nothing recognised as a duplicate.
    consumers.wait_for(5, 0).await?;

    // The schema-guarded check sees nothing wrong: one invoice, one shipment per order.
    assert_eq!(consumers.rows_of(ada).await?, (1, 1));
    assert_eq!(consumers.rows_of(grace).await?, (1, 1));
    // The running figures counted each redelivery again.
    assert_eq!(
        consumers.balances().await?,
        owned([(EMAIL, "EUR", 2 * TOTAL), (GRACE, "EUR", -TOTAL)])
    );
    assert_eq!(
        consumers.pick_list().await?,
        skus([
            ("CASE.BLK_1", 2),
            (GRACE_SKUS[0], -2),
            (GRACE_SKUS[1], -1),
            ("IPOD-NANO", 4)
        ])
    );
    // And the audit says so, per customer and per SKU.
    let audit = consumers.audit().await?;
    assert_eq!(
        (audit.balances_off, audit.skus_off, audit.off()),
        (2, 4, 6),
        "{audit:?}"
    );
    assert!(
        audit.examples.iter().any(|e| e.contains(EMAIL)
            && e.contains(&format!("{} cents", 2 * TOTAL))
            && e.ends_with(&TOTAL.to_string())),
        "{audit:?}"
    );
    consumers.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_dedup_on_the_same_redeliveries_pass_the_audit() -> anyhow::Result<()> {
    let consumers = Consumers::start(true).await?;
    let (ada, grace) = consumers.send_with_redeliveries().await?;
    consumers.wait_for(3, 2).await?;

    assert_eq!(consumers.rows_of(ada).await?, (1, 1));
    assert_eq!(consumers.rows_of(grace).await?, (1, 1));
    assert_eq!(
        consumers.balances().await?,
        owned([(EMAIL, "EUR", TOTAL), (GRACE, "EUR", 0)])
    );
    assert_eq!(
        consumers.pick_list().await?,
        skus([
            ("CASE.BLK_1", 1),
            (GRACE_SKUS[0], 0),
            (GRACE_SKUS[1], 0),
            ("IPOD-NANO", 2)
        ])
    );
    assert_eq!(consumers.audit().await?, RunningFigures::default());
    consumers.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_figures_follow_cancellations_in_either_order_and_ignore_a_second_placement()
-> anyhow::Result<()> {
    let consumers = Consumers::start(true).await?;
    let (kept, cancelled_after, cancelled_before) =
        (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    consumers.producer.send(&placed(kept)).await?;
    consumers.producer.send(&placed(cancelled_after)).await?;
    consumers.producer.send(&cancelled(cancelled_after)).await?;
    // A cancellation that overtakes its order lowers nothing, and the order
    // it overtook raises nothing.
    consumers
        .producer
        .send(&cancelled(cancelled_before))
        .await?;
    consumers.producer.send(&placed(cancelled_before)).await?;
    // Another OrderPlaced of a placed order (a new event id, another
    // customer): no second invoice, so no balance of its own either.
    let mut again = placed(kept);
    again.data.customer.email = GRACE.into();
    consumers.producer.send(&again).await?;
    consumers.wait_for(6, 0).await?;

    assert_eq!(consumers.balances().await?, owned([(EMAIL, "EUR", TOTAL)]));
    assert_eq!(
        consumers.pick_list().await?,
        skus([("CASE.BLK_1", 1), ("IPOD-NANO", 2)])
    );
    assert_eq!(consumers.audit().await?, RunningFigures::default());

    // Narrowed and paged.
    let invoicing = &consumers.invoicing;
    assert_eq!(
        invoicing
            .items(&format!("/balances?customer={EMAIL}&currency=EUR"))
            .await?,
        vec![json!({ "customer_email": EMAIL, "currency": "EUR", "open_cents": TOTAL })]
    );
    assert!(invoicing.items("/balances?currency=USD").await?.is_empty());
    let shipping = &consumers.shipping;
    let first = shipping.service.get_ok("/pick-list?limit=1").await?;
    assert_eq!(first["items"], json!([{ "sku": "CASE.BLK_1", "units": 1 }]));
    let cursor = first["next_cursor"].as_str().context("a next page")?;
    let second = shipping
        .service
        .get_ok(&format!("/pick-list?limit=1&cursor={cursor}"))
        .await?;
    assert_eq!(second["items"], json!([{ "sku": "IPOD-NANO", "units": 2 }]));
    assert!(second["next_cursor"].is_null(), "{second}");
    assert_eq!(
        shipping.items("/pick-list?sku=IPOD-NANO").await?,
        vec![json!({ "sku": "IPOD-NANO", "units": 2 })]
    );

    // Bad queries: a 400 problem naming the part, on the API and on the pages.
    for (consumer, path, named) in [
        (invoicing, "/balances?currency=eur", "currency"),
        (invoicing, "/balances?customer=a%00b", "customer"),
        (invoicing, "/balances?cursor=zz", "cursor"),
        (shipping, "/pick-list?limit=0", "limit"),
        (shipping, "/pick-list?cursor=IPOD-NANO", "cursor"),
    ] {
        let (status, content_type, body) = consumer.service.get(path).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(content_type, "application/problem+json", "{path}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.starts_with(named), "{path}: {body}");
    }
    for (consumer, page, shows) in [
        (invoicing, "/open-balances", "EUR 317.99"),
        (shipping, "/to-pick", "IPOD-NANO"),
    ] {
        let response = reqwest::get(format!("{}{page}", consumer.service.base_url())).await?;
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        let html = response.text().await?;
        assert!(html.contains(shows), "{page} shows {shows}: {html}");
        let bad = reqwest::get(format!("{}{page}?limit=0", consumer.service.base_url())).await?;
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "{page}?limit=0");
    }
    consumers.stop().await
}

/// How often PostgreSQL planned the prepared statement that starts with
/// `prefix` on `conn`: (generic plans used, custom plans made).
async fn plans_of(conn: &mut sqlx::PgConnection, prefix: &str) -> anyhow::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements
         WHERE statement LIKE $1 || '%'",
    )
    .bind(prefix)
    .fetch_optional(conn)
    .await?
    .with_context(|| format!("no prepared statement starting with {prefix:?}"))
}

/// The failure this guards against: the consumers' pools let PostgreSQL
/// switch each statement to a generic plan after five executions, costed on
/// the tables of that moment. A service started on an empty database cached
/// plans for empty tables, and the running figures' join of a batch's
/// orders with `shipments` (or `invoices`) became a loop over the whole
/// table for each record: `cargo xtask bench` logged the pick list's
/// statement at 1.1-1.8 s per batch of 500 at 500 orders/s, and the
/// consumers' lag grew until the rate was "not sustained". On the old pools
/// this test found 3 generic plans of 8 executions for each statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumers_batch_statements_are_planned_for_each_batch_not_cached_on_empty_tables()
-> anyhow::Result<()> {
    const BATCHES: i64 = 8;
    init_logs();
    let infra = TestInfra::acquire().await?;
    let topic = infra.fresh_topic(1).await?;
    let cancelled = [Uuid::new_v4()];

    let (url, _) = infra.fresh_database(&SHIPPING_SERVICE).await?;
    let config = consumer_config::<Shipping>(&infra, &url, &topic, &fresh_group("plans"));
    let shipping = consumer_kit::prepare(&config, Shipping).await?;
    let mut conn = shipping.pool.acquire().await?;
    for _ in 0..BATCHES {
        shipping_service::pick_list::apply(&mut conn, &[], &cancelled).await?;
    }
    let (generic, custom) = plans_of(&mut conn, "INSERT INTO pick_list").await?;
    assert_eq!(
        (generic, custom),
        (0, BATCHES),
        "the pick list's statement: (generic plans, custom plans)"
    );

    let (url, _) = infra.fresh_database(&INVOICING_SERVICE).await?;
    let config = consumer_config::<Invoicing>(&infra, &url, &topic, &fresh_group("plans"));
    let invoicing = consumer_kit::prepare(&config, Invoicing).await?;
    let mut conn = invoicing.pool.acquire().await?;
    for _ in 0..BATCHES {
        invoicing_service::balance::apply(&mut conn, &[], &cancelled).await?;
    }
    let (generic, custom) = plans_of(&mut conn, "INSERT INTO customer_balances").await?;
    assert_eq!(
        (generic, custom),
        (0, BATCHES),
        "the balances' statement: (generic plans, custom plans)"
    );
    Ok(())
}

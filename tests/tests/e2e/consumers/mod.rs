//! The consuming services (invoicing and shipping) against real Kafka and
//! PostgreSQL: what each makes of an order, exactly-once effects under
//! duplicates and crashes, dead-lettering, cancellation in either order,
//! rebuilding a view from the topic, and scaling out within one group.
//!
//! Every test produces its events straight onto its own fresh topic (as the
//! relay would: key = order id, value = the envelope's JSON) and runs the
//! services in this process on fresh databases in fresh consumer groups.

mod dead_letters;
mod exactly_once;
mod groups;
mod read_apis;

use anyhow::{Context as _, ensure};
use chrono::{DateTime, Utc};
use e2e::TestInfra;
use e2e::services::ConsumerUnderTest;
use e2e::services::{
    EventProducer, ServiceUnderTest, consumer_config, fresh_group, init_logs, wait_until,
};
use invoicing_service::Invoicing;
use platform::services::{INVOICING_SERVICE, SHIPPING_SERVICE, ServiceFacts};
use serde_json::Value;
use shipping_service::Shipping;
use sqlx::PgPool;
use uuid::Uuid;

/// One service instance on its own database, in its own group.
pub(super) struct Instance {
    service: ServiceUnderTest,
    pool: PgPool,
    database_url: String,
    group: String,
}

impl Instance {
    /// Starts `S` on a fresh database in a fresh group, consuming `topic`.
    pub(super) async fn start<S: ConsumerUnderTest>(
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
    pub(super) async fn of_order(
        &self,
        collection: &str,
        order_id: Uuid,
    ) -> anyhow::Result<Vec<Value>> {
        let page = self
            .service
            .get_ok(&format!("/{collection}?order_id={order_id}"))
            .await?;
        Ok(page["items"].as_array().cloned().unwrap_or_default())
    }

    /// Every item of `GET /<collection>` (one page of at most 500).
    pub(super) async fn all(&self, collection: &str) -> anyhow::Result<Vec<Value>> {
        let page = self
            .service
            .get_ok(&format!("/{collection}?limit=500"))
            .await?;
        ensure!(page["next_cursor"].is_null(), "more than one page");
        Ok(page["items"].as_array().cloned().unwrap_or_default())
    }

    /// `SELECT count(*) FROM <table>`.
    pub(super) async fn count(&self, table: &'static str) -> anyhow::Result<i64> {
        let sql = match table {
            "invoices" => "SELECT count(*) FROM invoices",
            "shipments" => "SELECT count(*) FROM shipments",
            other => anyhow::bail!("no count query for {other}"),
        };
        Ok(sqlx::query_scalar(sql).fetch_one(&self.pool).await?)
    }
}

/// A fresh topic with invoicing and shipping consuming it.
pub(super) struct Flow {
    infra: TestInfra,
    topic: String,
    producer: EventProducer,
    invoicing: Instance,
    shipping: Instance,
}

impl Flow {
    pub(super) async fn start(partitions: i32) -> anyhow::Result<Self> {
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
    pub(super) async fn wait_for(
        &self,
        order_id: Uuid,
        invoice: &str,
        shipment: &str,
    ) -> anyhow::Result<()> {
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

    pub(super) async fn stop(self) -> anyhow::Result<()> {
        self.invoicing.service.stop().await?;
        self.shipping.service.stop().await
    }
}

/// A view without its surrogate ids and commit timestamps, in order id order.
pub(super) async fn view(
    instance: &Instance,
    collection: &str,
    at: &str,
) -> anyhow::Result<Vec<Value>> {
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
pub(super) async fn records_handled(instance: &Instance) -> anyhow::Result<u64> {
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

/// Checks `id` and the timestamp `at`, then removes them: what is left is
/// the part of a view that does not depend on when or where it was built.
pub(super) fn without_id_and_time(mut item: Value, at: &str) -> anyhow::Result<Value> {
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

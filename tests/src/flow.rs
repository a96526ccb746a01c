//! The whole order flow in one test process: [`TestFlow`].
//!
//! A test that needs the flow end to end (an order placed over HTTP reaching
//! the consumers through the outbox, the relay and Kafka) starts it here
//! instead of wiring the services itself: [`TestFlow::start`] takes a fresh
//! topic and starts order-service, relay included, on a fresh database;
//! [`TestFlow::add_consumer`] starts a consuming service on a fresh database
//! in a fresh consumer group, each built exactly as its binary builds it.
//! Every piece is the test's own, so flows of parallel tests never meet.
//! [`TestFlow::stop`] stops the consumers, then order-service; dropping the
//! flow stops everything too, without waiting.

use anyhow::{Context as _, bail};
use consumer_kit::{Consumer, ConsumerConfig};
use platform::services::ORDER_SERVICE;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::TestInfra;
use crate::services::{ServiceUnderTest, consumer_config, fresh_group};

/// order-service (with its relay) and the consumers a test added, on one
/// fresh topic; stopped when dropped.
pub struct TestFlow {
    infra: TestInfra,
    topic: String,
    orders: OrderServiceUnderTest,
    /// Each consumer by its service name, in the order the test added them.
    consumers: Vec<(&'static str, ServiceUnderTest)>,
}

/// The running order-service of a flow.
struct OrderServiceUnderTest {
    base_url: String,
    pool: PgPool,
    stop: CancellationToken,
    task: JoinHandle<Result<(), order_service::RunError>>,
    _stop_on_drop: DropGuard,
}

impl TestFlow {
    /// A fresh topic of `partitions` partitions and order-service, relay
    /// included, on a fresh database; no consumers yet.
    pub async fn start(infra: &TestInfra, partitions: i32) -> anyhow::Result<Self> {
        Self::start_with(infra, partitions, |_| {}).await
    }

    /// As [`TestFlow::start`], with `adjust` applied to order-service's
    /// configuration first (its address or page links, say).
    pub async fn start_with(
        infra: &TestInfra,
        partitions: i32,
        adjust: impl FnOnce(&mut order_service::Config),
    ) -> anyhow::Result<Self> {
        crate::services::init_logs();
        let topic = infra.fresh_topic(partitions).await?;
        let (url, pool) = infra.fresh_database(&ORDER_SERVICE).await?;
        let mut config = order_service::Config::for_flow(
            url,
            crate::admin_kafka(infra.kafka_bootstrap_servers(), &topic),
        );
        adjust(&mut config);
        let app = order_service::build(config)
            .await
            .with_context(|| format!("starting order-service on topic {topic}"))?;
        let base_url = format!("http://{}", app.local_addr());
        let stop = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(stop.clone()));
        Ok(TestFlow {
            infra: infra.clone(),
            topic,
            orders: OrderServiceUnderTest {
                base_url,
                pool,
                _stop_on_drop: stop.clone().drop_guard(),
                stop,
                task,
            },
            consumers: Vec::new(),
        })
    }

    /// The flow with consumer `C` added ([`TestFlow::add_consumer`]).
    pub async fn with_consumer<C: Consumer>(mut self) -> anyhow::Result<Self> {
        self.add_consumer::<C>().await?;
        Ok(self)
    }

    /// Starts consumer `C` on the flow's topic, on a fresh database, in a
    /// fresh consumer group.
    pub async fn add_consumer<C: Consumer>(&mut self) -> anyhow::Result<&ServiceUnderTest> {
        self.add_consumer_with::<C>(|_| {}).await
    }

    /// As [`TestFlow::add_consumer`], with `adjust` applied to the
    /// consumer's configuration first.
    pub async fn add_consumer_with<C: Consumer>(
        &mut self,
        adjust: impl FnOnce(&mut ConsumerConfig),
    ) -> anyhow::Result<&ServiceUnderTest> {
        let name = C::SERVICE.name;
        if self.consumers.iter().any(|(n, _)| *n == name) {
            bail!("{name} already runs in this flow");
        }
        let (url, _pool) = self.infra.fresh_database(&C::SERVICE).await?;
        let group = fresh_group(C::SERVICE.short);
        let mut config = consumer_config::<C>(&self.infra, &url, &self.topic, &group);
        adjust(&mut config);
        let service = ServiceUnderTest::start::<C>(config).await?;
        self.consumers.push((name, service));
        Ok(&self.consumers.last().expect("just pushed").1)
    }

    /// The running consumer `C`; fails if the test did not add it.
    pub fn consumer<C: Consumer>(&self) -> anyhow::Result<&ServiceUnderTest> {
        self.consumers
            .iter()
            .find(|(name, _)| *name == C::SERVICE.name)
            .map(|(_, service)| service)
            .with_context(|| format!("{} does not run in this flow", C::SERVICE.name))
    }

    /// `http://<address>` of order-service.
    pub fn order_base_url(&self) -> &str {
        &self.orders.base_url
    }

    /// A pool on order-service's database (orders, outbox, idempotency keys).
    pub fn orders_pool(&self) -> &PgPool {
        &self.orders.pool
    }

    /// The flow's topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The infrastructure the flow runs on.
    pub fn infra(&self) -> &TestInfra {
        &self.infra
    }

    /// Stops the consumers, then order-service (draining HTTP, letting the
    /// relay finish its batch); fails if any of them failed.
    pub async fn stop(self) -> anyhow::Result<()> {
        for (_, service) in self.consumers {
            service.stop().await?;
        }
        self.orders.stop.cancel();
        self.orders.task.await??;
        Ok(())
    }
}

//! Support for the end-to-end tests of the consuming services (invoicing and
//! shipping).
//!
//! [`ServiceUnderTest`] runs one instance of a service in this process, built
//! exactly as its binary builds it, on the test's own database, topic and
//! consumer group ([`consumer_config`], [`fresh_group`]). [`EventProducer`]
//! puts records on the topic the way the relay does (key = order id, value =
//! the envelope's JSON); [`read_records`] reads a topic back (the dead-letter
//! topics); [`group_members`] shows who is in a consumer group. Conditions
//! are awaited with [`wait_until`], which polls until a deadline: no test
//! sleeps in place of a condition.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use consumer_kit::ConsumerConfig;
use platform_web::app::RunError;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::Value;
use shared_events::Envelope;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

use crate::TestInfra;

/// How long a test waits for something that should happen within seconds.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// How often [`wait_until`] looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Polls `check` until it returns `true`; fails, naming `what`, when
/// [`PATIENCE`] has passed first, or as soon as `check` fails.
pub async fn wait_until<F, Fut>(what: &str, check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    wait_until_within(PATIENCE, what, check).await
}

/// [`wait_until`] with a patience of its own, for a condition whose bound
/// is a protocol's timeout rather than "seconds".
pub async fn wait_until_within<F, Fut>(
    patience: Duration,
    what: &str,
    mut check: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + patience;
    loop {
        if check().await.with_context(|| format!("checking {what}"))? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("gave up after {patience:?} waiting for: {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A consumer group name no other test uses, e.g. `invoicing-3f2a...`.
pub fn fresh_group(service: &str) -> String {
    format!("{service}-{}", Uuid::new_v4().simple())
}

/// A consuming service, as the tests start it: the kit's [`Consumer`]
/// (its facts, and [`consumer_kit::build`] builds it as its binary does).
pub use consumer_kit::Consumer as ConsumerUnderTest;

/// A service's configuration for one test: `database_url`, `topic`, consumer
/// group `group`, a free port, a small pool, short retry delays and a
/// one-partition dead-letter topic.
pub fn consumer_config<S: ConsumerUnderTest>(
    infra: &TestInfra,
    database_url: &str,
    topic: &str,
    group: &str,
) -> ConsumerConfig {
    let mut kafka = infra.kafka_settings(topic);
    // Only the dead-letter topic is created from these settings (the test
    // made `topic`); one partition is plenty and spares the broker.
    kafka.partitions = 1;
    let mut config = ConsumerConfig::for_test(&S::SERVICE, database_url, kafka);
    config.database.max_connections = 4;
    config.inbox.group_id = group.to_owned();
    config.inbox.max_backoff = Duration::from_secs(1);
    config
}

/// Writes service logs to the test output when `TEST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        platform::telemetry::init();
    }
}

/// One running instance of a consuming service; stopped when dropped.
pub struct ServiceUnderTest {
    base_url: String,
    client: reqwest::Client,
    stop: CancellationToken,
    task: JoinHandle<Result<(), RunError>>,
    _stop_on_drop: DropGuard,
}

impl ServiceUnderTest {
    /// Builds the service from `config` (pool, migrations, listener) and runs it.
    pub async fn start<S: ConsumerUnderTest>(config: ConsumerConfig) -> anyhow::Result<Self> {
        let group = config.inbox.group_id.clone();
        let app = consumer_kit::build::<S>(config)
            .await
            .with_context(|| format!("starting {} in group {group}", S::SERVICE.name))?;
        let base_url = format!("http://{}", app.local_addr());
        let stop = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(stop.clone()));
        Ok(ServiceUnderTest {
            base_url,
            client: reqwest::Client::new(),
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
            task,
        })
    }

    /// `http://<address>` of the running service.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET path`: the status, the `content-type` and the body as JSON (`Null` if it is not).
    pub async fn get(&self, path: &str) -> anyhow::Result<(StatusCode, String, Value)> {
        let response = self
            .client
            .get(format!("{}{path}", self.base_url))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = response.bytes().await?;
        Ok((
            status,
            content_type,
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        ))
    }

    /// `GET path`, which must answer 200 with JSON.
    pub async fn get_ok(&self, path: &str) -> anyhow::Result<Value> {
        match self.get(path).await? {
            (StatusCode::OK, _, body) => Ok(body),
            (status, _, body) => bail!("GET {path} answered {status}: {body}"),
        }
    }

    /// The value of the counter or gauge `name` on `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> anyhow::Result<u64> {
        metric(&self.client, &self.base_url, name).await
    }

    /// Asks the service to stop and waits until it has drained; fails if it
    /// stopped with an error.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.stopped()
            .await?
            .context("the service stopped with an error")
    }

    /// Waits until the service stops by itself, and returns how it stopped.
    pub async fn stopped(self) -> anyhow::Result<Result<(), RunError>> {
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .map_err(|_| anyhow!("the service did not stop within {PATIENCE:?}"))?
            .context("the service's task panicked")
    }
}

/// Puts records on a topic as the relay does: idempotent, `acks=all`.
pub struct EventProducer {
    producer: FutureProducer,
    topic: String,
}

impl EventProducer {
    /// A producer for `topic`.
    pub fn new(infra: &TestInfra, topic: &str) -> anyhow::Result<Self> {
        let producer = infra
            .kafka_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", shared_events::topics::PARTITIONER)
            .create()
            .context("creating the test producer")?;
        Ok(EventProducer {
            producer,
            topic: topic.to_owned(),
        })
    }

    /// Produces `envelope` as JSON with the order id as key; returns its
    /// partition and offset once acknowledged.
    pub async fn send<T: Serialize>(&self, envelope: &Envelope<T>) -> anyhow::Result<(i32, i64)> {
        let value = serde_json::to_vec(envelope)?;
        self.send_raw(&envelope.order_id.to_string(), &value).await
    }

    /// Produces `value` as it is under `key`; returns its partition and offset.
    pub async fn send_raw(&self, key: &str, value: &[u8]) -> anyhow::Result<(i32, i64)> {
        let delivery = self
            .producer
            .send(
                FutureRecord::to(&self.topic).key(key).payload(value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .with_context(|| format!("producing to {}", self.topic))?;
        Ok((delivery.partition, delivery.offset))
    }
}

/// Reads `topic` from the start in a new group until `count` different
/// records (partition and offset) have arrived; fails after [`PATIENCE`].
///
/// A record that comes a second time is skipped: the group commits nothing,
/// so a rebalance while it reads (a coordinator still loading on a broker
/// that has just started, say) starts its partitions from the beginning
/// again, and the repeats would take the places of records not read yet.
pub async fn read_records(
    infra: &TestInfra,
    topic: &str,
    count: usize,
) -> anyhow::Result<Vec<OwnedMessage>> {
    let consumer: StreamConsumer = infra
        .kafka_config()
        .set("group.id", fresh_group("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the test consumer")?;
    consumer.subscribe(&[topic])?;
    let deadline = Instant::now() + PATIENCE;
    let mut records = Vec::with_capacity(count);
    let mut seen = std::collections::HashSet::new();
    while records.len() < count {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .map_err(|_| anyhow!("{topic}: {} of {count} records", records.len()))?
            .with_context(|| format!("reading {topic}"))?;
        if seen.insert((message.partition(), message.offset())) {
            records.push(message.detach());
        }
    }
    Ok(records)
}

/// The state of consumer group `group` (e.g. `Stable`) and how many members it has.
pub async fn group_members(infra: &TestInfra, group: &str) -> anyhow::Result<(String, usize)> {
    let found = describe_group(infra, group, |g| (g.state().to_owned(), g.members().len())).await?;
    Ok(found.unwrap_or_default())
}

/// `describe` of consumer group `group`, if the brokers know it.
async fn describe_group<T: Send + 'static>(
    infra: &TestInfra,
    group: &str,
    describe: impl FnOnce(&rdkafka::groups::GroupInfo) -> T + Send + 'static,
) -> anyhow::Result<Option<T>> {
    let config = infra.kafka_config();
    let group = group.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.create()?;
        let groups = consumer.fetch_group_list(Some(&group), Duration::from_secs(5))?;
        Ok(groups
            .groups()
            .iter()
            .find(|g| g.name() == group)
            .map(describe))
    })
    .await?
}

/// The `client.id` of each member of consumer group `group`, as
/// `kafka-consumer-groups --describe` shows them.
pub async fn group_client_ids(infra: &TestInfra, group: &str) -> anyhow::Result<Vec<String>> {
    let found = describe_group(infra, group, |g| {
        g.members()
            .iter()
            .map(|m| m.client_id().to_owned())
            .collect()
    })
    .await?;
    Ok(found.unwrap_or_default())
}

/// The value of the counter or gauge `name` (or a histogram's `name_count`,
/// `name_sum`) on the `/metrics` of the service at `base_url` (0 when absent).
pub async fn metric(client: &reqwest::Client, base_url: &str, name: &str) -> anyhow::Result<u64> {
    let text = client
        .get(format!("{base_url}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let sample = text.lines().find_map(|line| {
        let (metric, value) = line.split_once(' ')?;
        (metric == name || metric == format!("{name}_total")).then_some(value)
    });
    match sample {
        None => Ok(0),
        Some(value) => value
            .trim()
            .parse::<f64>()
            .map(|v| v as u64)
            .map_err(|e| anyhow!("metric {name} = {value:?}: {e}")),
    }
}

/// The value of header `name` of `record`, as text.
pub fn header(record: &OwnedMessage, name: &str) -> Option<String> {
    use rdkafka::message::Headers as _;
    let headers = record.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

//! What the chaos run reads from and writes to Kafka directly: end offsets,
//! consumer-group lag, the records of a scenario (to count redeliveries), the
//! duplicates and poison it injects, and the cluster's replica state.
//!
//! rdkafka's metadata and offset calls block, so each runs on the blocking pool.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::ChaosError;

/// How long one metadata or offset request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// End offset (high watermark) per partition.
pub(crate) type EndOffsets = BTreeMap<i32, i64>;

fn client_config(bootstrap: &str) -> ClientConfig {
    // The chaos run's clients are tools: the administrative principal.
    let mut config = devinfra::kafka::access::admin_client_config(bootstrap);
    config
        .set("enable.auto.commit", "false")
        .set("log_level", "3");
    config
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ChaosError> + Send + 'static,
) -> Result<T, ChaosError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ChaosError::Scenario(format!("a Kafka task failed: {e}")))?
}

/// How long a metadata or offset read is retried while the cluster settles
/// (a topic just created has no leader yet; a restarted broker is electing).
const SETTLE_RETRY: Duration = Duration::from_secs(60);

/// Runs `read` until it succeeds or [`SETTLE_RETRY`] passes (then its last error).
async fn retrying<T: Send + 'static>(
    read: impl Fn() -> Result<T, ChaosError> + Send + Sync + Clone + 'static,
) -> Result<T, ChaosError> {
    let started = std::time::Instant::now();
    loop {
        match blocking(read.clone()).await {
            Ok(value) => return Ok(value),
            Err(ChaosError::Kafka(_)) if started.elapsed() < SETTLE_RETRY => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>, ChaosError> {
    let metadata = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    Ok(partitions)
}

/// The end offset of every partition of `topic` (empty if the topic does not exist yet).
pub(crate) async fn end_offsets(bootstrap: &str, topic: &str) -> Result<EndOffsets, ChaosError> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    retrying(move || {
        let consumer: BaseConsumer = client_config(&bootstrap).create()?;
        let mut ends = EndOffsets::new();
        for partition in partitions(&consumer, &topic)? {
            let (_, high) = consumer.fetch_watermarks(&topic, partition, REQUEST_TIMEOUT)?;
            ends.insert(partition, high);
        }
        Ok(ends)
    })
    .await
}

/// Reads consumer groups' lag on a topic, with one client per group made
/// once (a settle loop asks every half second).
#[derive(Clone)]
pub(crate) struct LagReader {
    consumers: Arc<Vec<BaseConsumer>>,
    topic: String,
}

impl LagReader {
    /// A reader for `groups` on `topic`; reading a group's committed offsets
    /// does not join the group.
    pub(crate) fn new(bootstrap: &str, groups: &[&str], topic: &str) -> Result<Self, ChaosError> {
        let consumers = groups
            .iter()
            .map(|group| client_config(bootstrap).set("group.id", *group).create())
            .collect::<Result<Vec<BaseConsumer>, _>>()?;
        Ok(LagReader {
            consumers: Arc::new(consumers),
            topic: topic.to_owned(),
        })
    }

    /// Records each group has yet to commit, summed over partitions, in the order of `new`'s groups.
    pub(crate) async fn lags(&self) -> Result<Vec<i64>, ChaosError> {
        let reader = self.clone();
        retrying(move || {
            reader
                .consumers
                .iter()
                .map(|consumer| {
                    Ok(devinfra::kafka::group_lag(
                        consumer,
                        &reader.topic,
                        REQUEST_TIMEOUT,
                    )?)
                })
                .collect()
        })
        .await
    }
}

/// The records of `topic` between `from` and `to` (per partition, `to`
/// exclusive) that are still in the log.
pub(crate) async fn read_range(
    bootstrap: &str,
    topic: &str,
    from: &EndOffsets,
    to: &EndOffsets,
) -> Result<Vec<OwnedMessage>, ChaosError> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    let (from, to) = (from.clone(), to.clone());
    blocking(move || {
        let consumer: BaseConsumer = client_config(&bootstrap)
            .set("group.id", "chaos-audit")
            .create()?;
        let mut assignment = TopicPartitionList::new();
        let mut remaining = 0;
        for (&partition, &end) in &to {
            // Records retention (or a scenario) deleted are not read back.
            let (low, _) = consumer.fetch_watermarks(&topic, partition, REQUEST_TIMEOUT)?;
            let start = from.get(&partition).copied().unwrap_or(0).max(low);
            if end > start {
                assignment.add_partition_offset(&topic, partition, Offset::Offset(start))?;
                remaining += end - start;
            }
        }
        let mut records = Vec::new();
        if remaining == 0 {
            return Ok(records);
        }
        consumer.assign(&assignment)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while remaining > 0 {
            if std::time::Instant::now() > deadline {
                return Err(ChaosError::Scenario(format!(
                    "reading back topic {topic}: {remaining} records still missing after 60 s"
                )));
            }
            let Some(message) = consumer.poll(Duration::from_millis(500)) else {
                continue;
            };
            let message = message?;
            let end = to.get(&message.partition()).copied().unwrap_or(0);
            if message.offset() < end {
                records.push(message.detach());
                remaining -= 1;
            }
        }
        Ok(records)
    })
    .await
}

/// Records in `records` beyond the first carrying the same `event_id` header.
pub(crate) fn republished(records: &[OwnedMessage]) -> usize {
    let mut seen = HashSet::new();
    records
        .iter()
        .filter_map(|r| header(r, "event_id"))
        .filter(|id| !seen.insert(id.clone()))
        .count()
}

/// The value of header `name` as text.
pub(crate) fn header(record: &OwnedMessage, name: &str) -> Option<String> {
    record.headers().and_then(|headers| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    })
}

/// A producer for injected records (acks=all, idempotent, keys partitioned like the relay's).
pub(crate) fn producer(bootstrap: &str) -> Result<FutureProducer, ChaosError> {
    Ok(client_config(bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("partitioner", shared_events::topics::PARTITIONER)
        .create()?)
}

/// Sends `records` again, each to its own partition, with key, headers and value unchanged.
pub(crate) async fn reproduce(
    producer: &FutureProducer,
    records: &[OwnedMessage],
) -> Result<(), ChaosError> {
    for record in records {
        let mut copy = FutureRecord::<[u8], [u8]>::to(record.topic()).partition(record.partition());
        if let Some(key) = record.key() {
            copy = copy.key(key);
        }
        if let Some(value) = record.payload() {
            copy = copy.payload(value);
        }
        if let Some(headers) = record.headers() {
            copy = copy.headers(headers.clone());
        }
        producer
            .send(copy, REQUEST_TIMEOUT)
            .await
            .map_err(|(e, _)| ChaosError::Kafka(e))?;
    }
    Ok(())
}

/// Sends one poison record keyed `key` (so it lands among that order's events).
pub(crate) async fn send_poison(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    value: Option<&[u8]>,
) -> Result<(), ChaosError> {
    let mut record =
        FutureRecord::<str, [u8]>::to(topic)
            .key(key)
            .headers(OwnedHeaders::new().insert(rdkafka::message::Header {
                key: "content-type",
                value: Some("application/json"),
            }));
    if let Some(value) = value {
        record = record.payload(value);
    }
    producer
        .send(record, REQUEST_TIMEOUT)
        .await
        .map_err(|(e, _)| ChaosError::Kafka(e))?;
    Ok(())
}

/// Per partition of `topic`: its replicas and in-sync replicas.
pub(crate) async fn replica_state(
    bootstrap: &str,
    topic: &str,
) -> Result<Vec<(usize, usize)>, ChaosError> {
    partition_metadata(bootstrap, topic, |p| {
        Some((p.replicas().len(), p.isr().len()))
    })
    .await
}

/// Partition `partition` of `topic` as the metadata says: its leader and
/// its replicas, the preferred leader first; `None` while it has no leader.
pub(crate) async fn partition_replicas(
    bootstrap: &str,
    topic: &str,
    partition: i32,
) -> Result<Option<(i32, Vec<i32>)>, ChaosError> {
    let found = partition_metadata(bootstrap, topic, move |p| {
        (p.id() == partition && p.leader() >= 0).then(|| (p.leader(), p.replicas().to_vec()))
    })
    .await?;
    Ok(found.into_iter().next())
}

/// `pick` of each partition of `topic` in the metadata, where it gives one.
async fn partition_metadata<T: Send + 'static>(
    bootstrap: &str,
    topic: &str,
    pick: impl Fn(&rdkafka::metadata::MetadataPartition) -> Option<T> + Send + Sync + Clone + 'static,
) -> Result<Vec<T>, ChaosError> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    retrying(move || {
        let consumer: BaseConsumer = client_config(&bootstrap).create()?;
        let metadata = consumer.fetch_metadata(Some(&topic), REQUEST_TIMEOUT)?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions())
            .filter_map(&pick)
            .collect())
    })
    .await
}

/// What the cluster says about a topic's replication: per partition its
/// replicas and in-sync replicas, and the topic's `min.insync.replicas`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplicationState {
    /// (replicas, in-sync replicas) per partition.
    pub(crate) partitions: Vec<(usize, usize)>,
    /// The topic's `min.insync.replicas`, as the brokers report it.
    pub(crate) min_insync: Option<String>,
}

impl ReplicationState {
    /// Whether the answering node knew the topic: partitions, each with
    /// replicas, and its configuration.
    fn known(&self) -> bool {
        !self.partitions.is_empty()
            && self.partitions.iter().all(|&(replicas, _)| replicas > 0)
            && self.min_insync.is_some()
    }
}

/// The replication of `topic` once the cluster knows it: a node that has not
/// yet applied the topic's creation from the metadata log answers without its
/// partitions or its configuration, so this asks again until the answer
/// holds both or `limit` passes (then it returns the last answer, to be
/// judged as it is).
pub(crate) async fn known_replication(
    bootstrap: &str,
    topic: &str,
    limit: Duration,
) -> Result<ReplicationState, ChaosError> {
    let started = std::time::Instant::now();
    loop {
        let state = ReplicationState {
            partitions: replica_state(bootstrap, topic).await?,
            min_insync: topic_config(bootstrap, topic, "min.insync.replicas").await?,
        };
        if state.known() || started.elapsed() >= limit {
            return Ok(state);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The value of topic config `name` on `topic`, as the brokers report it.
pub(crate) async fn topic_config(
    bootstrap: &str,
    topic: &str,
    name: &str,
) -> Result<Option<String>, ChaosError> {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap).create()?;
    let results = admin
        .describe_configs(
            &[ResourceSpecifier::Topic(topic)],
            &AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT)),
        )
        .await?;
    for result in results {
        let resource = result
            .map_err(|code| ChaosError::Scenario(format!("describing topic {topic}: {code}")))?;
        if let Some(entry) = resource.get(name) {
            return Ok(entry.value.clone());
        }
    }
    Ok(None)
}

/// Sets topic config `name` on `topic` to `value`, or back to the broker's
/// default with `None`, keeping the topic's other dynamic settings (the
/// AlterConfigs request replaces the whole set, so they are read first).
pub(crate) async fn set_topic_config(
    bootstrap: &str,
    topic: &str,
    name: &str,
    value: Option<&str>,
) -> Result<(), ChaosError> {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap).create()?;
    let options = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &options)
        .await?;
    let mut kept: Vec<(String, String)> = Vec::new();
    for result in described {
        let resource = result
            .map_err(|code| ChaosError::Scenario(format!("describing topic {topic}: {code}")))?;
        kept.extend(
            resource
                .entries
                .into_iter()
                .filter(|e| {
                    e.source == rdkafka::admin::ConfigSource::DynamicTopic && e.name != name
                })
                .filter_map(|e| e.value.map(|v| (e.name, v))),
        );
    }
    let mut alter = rdkafka::admin::AlterConfig::new(ResourceSpecifier::Topic(topic));
    for (key, v) in &kept {
        alter = alter.set(key, v);
    }
    if let Some(value) = value {
        alter = alter.set(name, value);
    }
    for result in admin.alter_configs([&alter], &options).await? {
        result.map_err(|(_, code)| {
            ChaosError::Scenario(format!("setting {name} on topic {topic}: {code}"))
        })?;
    }
    Ok(())
}

/// The records of `topic` keyed `key` between `from` and `to`, in partition order.
pub(crate) async fn records_of(
    bootstrap: &str,
    topic: &str,
    key: &str,
    from: &EndOffsets,
    to: &EndOffsets,
) -> Result<Vec<OwnedMessage>, ChaosError> {
    let mut records = read_range(bootstrap, topic, from, to).await?;
    records.retain(|r| r.key() == Some(key.as_bytes()));
    records.sort_by_key(|r| (r.partition(), r.offset()));
    Ok(records)
}

/// Deletes `topic` (an operator's mistake the run reproduces).
pub(crate) async fn delete_topic(bootstrap: &str, topic: &str) -> Result<(), ChaosError> {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap).create()?;
    let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    for result in admin.delete_topics(&[topic], &options).await? {
        result.map_err(|(topic, code)| {
            ChaosError::Scenario(format!("deleting topic {topic}: {code}"))
        })?;
    }
    Ok(())
}

/// Creates `topic` with `partitions` partitions (replication as the broker's
/// default), as an operator would to put a deleted topic back.
pub(crate) async fn create_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> Result<(), ChaosError> {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap).create()?;
    let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let new = rdkafka::admin::NewTopic::new(
        topic,
        partitions,
        rdkafka::admin::TopicReplication::Fixed(-1),
    );
    for result in admin.create_topics(&[new], &options).await? {
        result.map_err(|(topic, code)| {
            ChaosError::Scenario(format!("creating topic {topic}: {code}"))
        })?;
    }
    Ok(())
}

/// Deletes the records of `topic` before `before` (per partition), as
/// retention would.
pub(crate) async fn delete_records_before(
    bootstrap: &str,
    topic: &str,
    before: &EndOffsets,
) -> Result<(), ChaosError> {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap).create()?;
    let mut offsets = TopicPartitionList::new();
    for (&partition, &offset) in before {
        offsets.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    }
    let deleted = admin.delete_records(&offsets, &AdminOptions::new()).await?;
    for element in deleted.elements() {
        element.error()?;
    }
    Ok(())
}

/// Commits `offsets` on `topic` for consumer group `group`, which must have
/// no member: what `kafka-consumer-groups --reset-offsets --execute` does.
pub(crate) async fn commit_offsets(
    bootstrap: &str,
    group: &str,
    topic: &str,
    offsets: &EndOffsets,
) -> Result<(), ChaosError> {
    let (bootstrap, group, topic, offsets) = (
        bootstrap.to_owned(),
        group.to_owned(),
        topic.to_owned(),
        offsets.clone(),
    );
    blocking(move || {
        let consumer: BaseConsumer = client_config(&bootstrap).set("group.id", &group).create()?;
        let mut list = TopicPartitionList::new();
        for (&partition, &offset) in &offsets {
            list.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
        }
        consumer.commit(&list, rdkafka::consumer::CommitMode::Sync)?;
        Ok(())
    })
    .await
}

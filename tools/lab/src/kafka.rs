//! The Kafka calls the scenarios share: clients, topics made explicitly with
//! their settings, a topic read whole, offsets, replicas and group lag.
//!
//! librdkafka's blocking calls (metadata, watermarks, synchronous commits)
//! run on tokio's blocking pool, so a scenario's other tasks (a producer at
//! a steady rate, a lag sampler) keep their pace meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::error::{LabError, Step};
use crate::progress::{self, Seen, Ticker};

/// How long one metadata, watermark or commit request may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A client configuration for the brokers at `bootstrap`.
pub(crate) fn client(bootstrap: &str) -> ClientConfig {
    // The lab's clients are tools: the administrative principal.
    let mut config = devinfra::kafka::access::admin_client_config(bootstrap);
    config
        // A killed or restarted broker of the lab is retried within a second.
        .set("reconnect.backoff.max.ms", "1000");
    config
}

/// A producer: `acks=all`, no linger, plus `settings`.
pub(crate) fn producer(
    bootstrap: &str,
    settings: &[(&str, &str)],
) -> Result<FutureProducer, LabError> {
    let mut config = client(bootstrap);
    config.set("acks", "all").set("linger.ms", "0");
    for (key, value) in settings {
        config.set(*key, *value);
    }
    config.create().step("creating a producer")
}

/// A consumer in `group` that commits only when told (`enable.auto.commit`
/// false), reports the end of each partition, and reads a new group's
/// partitions from the start; `settings` come last.
pub(crate) fn consumer(
    bootstrap: &str,
    group: &str,
    settings: &[(&str, &str)],
) -> Result<StreamConsumer, LabError> {
    let mut config = client(bootstrap);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        // Members notice a rebalance within 300 ms instead of librdkafka's 3 s.
        .set("heartbeat.interval.ms", "300")
        .set("session.timeout.ms", "6000");
    for (key, value) in settings {
        config.set(*key, *value);
    }
    config
        .create()
        .step(format!("creating a consumer in {group}"))
}

/// Sends one record and waits for its acknowledgement: (partition, offset).
pub(crate) async fn send(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    value: &str,
) -> Result<(i32, i64), KafkaError> {
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(value),
            Duration::from_secs(10),
        )
        .await
        .map(|delivery| (delivery.partition, delivery.offset))
        .map_err(|(error, _)| error)
}

/// A topic to create, with its settings.
#[derive(Debug, Clone)]
pub(crate) struct TopicPlan {
    name: String,
    partitions: i32,
    replication: i32,
    assignment: Option<Vec<Vec<i32>>>,
    configs: Vec<(String, String)>,
}

impl TopicPlan {
    /// `name` with `partitions` partitions on one replica.
    pub(crate) fn new(name: &str, partitions: i32) -> Self {
        TopicPlan {
            name: name.to_owned(),
            partitions,
            replication: 1,
            assignment: None,
            configs: Vec::new(),
        }
    }

    /// With `factor` replicas of every partition.
    pub(crate) fn replication(mut self, factor: i32) -> Self {
        self.replication = factor;
        self
    }

    /// With each partition's replicas on these brokers, the first one its
    /// preferred leader (one list per partition, replacing the partition
    /// count and replication factor).
    pub(crate) fn assignment(mut self, replicas: &[&[i32]]) -> Self {
        self.partitions = i32::try_from(replicas.len()).unwrap_or(i32::MAX);
        self.assignment = Some(replicas.iter().map(|r| r.to_vec()).collect());
        self
    }

    /// With the topic setting `key` = `value`.
    pub(crate) fn config(mut self, key: &str, value: impl ToString) -> Self {
        self.configs.push((key.to_owned(), value.to_string()));
        self
    }
}

/// Creates the topic of `plan` and waits until every partition has a leader.
pub(crate) async fn create_topic(bootstrap: &str, plan: &TopicPlan) -> Result<(), LabError> {
    let step = format!("creating topic {}", plan.name);
    let admin: AdminClient<DefaultClientContext> = client(bootstrap).create().step(&step)?;
    let assignment: Option<Vec<&[i32]>> = plan
        .assignment
        .as_ref()
        .map(|partitions| partitions.iter().map(Vec::as_slice).collect());
    let replication = match &assignment {
        Some(replicas) => TopicReplication::Variable(replicas),
        None => TopicReplication::Fixed(plan.replication),
    };
    let mut topic = NewTopic::new(&plan.name, plan.partitions, replication);
    for (key, value) in &plan.configs {
        topic = topic.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let results = admin.create_topics([&topic], &options).await.step(&step)?;
    for result in results {
        if let Err((_, code)) = result {
            return Err(KafkaError::AdminOp(code)).step(&step);
        }
    }
    let inspector = Inspector::new(bootstrap)?;
    let partitions = plan.partitions;
    progress::until(
        &format!("topic {} to have a leader for every partition", plan.name),
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let led = match inspector.partitions(&plan.name).await {
                Ok(found) => found.iter().filter(|p| p.leader >= 0).count(),
                Err(_) => 0,
            };
            Ok(if led == usize::try_from(partitions).unwrap_or(0) {
                Seen::Ready(())
            } else {
                Seen::NotYet(format!("{led} of {partitions} partitions have a leader"))
            })
        },
    )
    .await
}

/// One record as read, key and value as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its key.
    pub key: Option<String>,
    /// Its value (`None` for a tombstone).
    pub value: Option<String>,
}

impl Record {
    fn from_message(message: &BorrowedMessage<'_>) -> Self {
        let text = |bytes: Option<&[u8]>| bytes.map(|b| String::from_utf8_lossy(b).into_owned());
        Record {
            partition: message.partition(),
            offset: message.offset(),
            key: text(message.key()),
            value: text(message.payload()),
        }
    }
}

/// What a consumer's next poll brought.
#[derive(Debug)]
pub(crate) enum Next {
    /// A record.
    Record(Record),
    /// The end of this partition was reached.
    Eof(i32),
    /// Nothing within the wait.
    Idle,
}

/// The consumer's next record or partition end, waiting at most `wait`.
pub(crate) async fn next(
    consumer: &StreamConsumer,
    wait: Duration,
    step: &str,
) -> Result<Next, LabError> {
    match tokio::time::timeout(wait, consumer.recv()).await {
        Err(_) => Ok(Next::Idle),
        Ok(Ok(message)) => Ok(Next::Record(Record::from_message(&message))),
        Ok(Err(KafkaError::PartitionEOF(partition))) => Ok(Next::Eof(partition)),
        Ok(Err(e)) => Err(e).step(step),
    }
}

/// Every record of `topic` from its first offset to its end (the end as it
/// was when the read began, or later), without a group; `read_committed`
/// hides the records of open and aborted transactions.
pub(crate) async fn read_all(
    bootstrap: &str,
    topic: &str,
    read_committed: bool,
) -> Result<Vec<Record>, LabError> {
    let step = format!("reading {topic} whole");
    let isolation = if read_committed {
        "read_committed"
    } else {
        "read_uncommitted"
    };
    let consumer = consumer(
        bootstrap,
        &format!("lab-reader-{}", uuid::Uuid::new_v4()),
        &[("isolation.level", isolation)],
    )?;
    let marks = Inspector::new(bootstrap)?.watermarks(topic).await?;
    let mut assignment = TopicPartitionList::new();
    for partition in marks.keys() {
        assignment
            .add_partition_offset(topic, *partition, Offset::Beginning)
            .step(&step)?;
    }
    consumer.assign(&assignment).step(&step)?;
    // A partition is done when the reader reached its end: the end offset
    // seen before reading (a topic still being written never looks ended),
    // or an end of partition reported by the client (after the control
    // records of transactions, which the reader never gets).
    let mut pending: BTreeSet<i32> = marks
        .iter()
        .filter(|(_, (low, high))| high > low)
        .map(|(partition, _)| *partition)
        .collect();
    let mut records = Vec::new();
    let mut ticker = Ticker::new(&step);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pending.is_empty() {
        progress::check_deadline(&step, &ticker, deadline, || {
            format!(
                "{} records, partitions {pending:?} not at their end",
                records.len()
            )
        })?;
        match next(&consumer, Duration::from_millis(500), &step).await? {
            Next::Record(record) => {
                if marks
                    .get(&record.partition)
                    .is_some_and(|(_, high)| record.offset + 1 >= *high)
                {
                    pending.remove(&record.partition);
                }
                records.push(record);
            }
            Next::Eof(partition) => {
                pending.remove(&partition);
            }
            Next::Idle => ticker.tick(|| format!("{} records so far", records.len())),
        }
    }
    Ok(records)
}

/// What a [`GroupReader`] has read so far.
#[derive(Debug, Default)]
pub(crate) struct ReaderState {
    /// Every record, in the order read.
    pub records: Vec<Record>,
    /// Partitions whose end the reader has reached at least once.
    pub ended: BTreeSet<i32>,
    /// The last error the consumer reported (it keeps reading).
    pub last_error: Option<String>,
}

/// A member of a consumer group reading `topic` in the background and
/// keeping what it read; dropping it drops the consumer (it leaves the group).
pub(crate) struct GroupReader {
    group: String,
    state: Arc<std::sync::Mutex<ReaderState>>,
    task: tokio::task::JoinHandle<()>,
}

impl GroupReader {
    /// Joins `group` and reads `topic` (settings as for [`consumer`]).
    pub(crate) fn start(
        bootstrap: &str,
        group: &str,
        topic: &str,
        settings: &[(&str, &str)],
    ) -> Result<Self, LabError> {
        let consumer = consumer(bootstrap, group, settings)?;
        consumer
            .subscribe(&[topic])
            .step(format!("subscribing {group} to {topic}"))?;
        let state = Arc::new(std::sync::Mutex::new(ReaderState::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let next = next(&consumer, Duration::from_secs(1), "reading").await;
                let mut state = shared.lock().unwrap_or_else(|e| e.into_inner());
                match next {
                    Ok(Next::Record(record)) => state.records.push(record),
                    Ok(Next::Eof(partition)) => {
                        state.ended.insert(partition);
                    }
                    Ok(Next::Idle) => {}
                    Err(e) => state.last_error = Some(platform::error::chain(&e)),
                }
            }
        });
        Ok(GroupReader {
            group: group.to_owned(),
            state,
            task,
        })
    }

    /// Runs `f` on what was read so far.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&ReaderState) -> T) -> T {
        f(&self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Records read so far.
    pub(crate) fn count(&self) -> usize {
        self.with(|s| s.records.len())
    }

    /// Waits until the reader has read `count` records.
    pub(crate) async fn wait_for(&self, count: usize, timeout: Duration) -> Result<(), LabError> {
        self.wait(&format!("{count} records"), timeout, |s| {
            (s.records.len() >= count).then_some(())
        })
        .await
    }

    /// Waits until the reader has reached the end of `partitions` partitions.
    pub(crate) async fn wait_ended(
        &self,
        partitions: usize,
        timeout: Duration,
    ) -> Result<(), LabError> {
        self.wait("the end of every partition", timeout, |s| {
            (s.ended.len() >= partitions).then_some(())
        })
        .await
    }

    /// Waits until `reached` holds for what the reader has read.
    async fn wait(
        &self,
        goal: &str,
        timeout: Duration,
        reached: impl Fn(&ReaderState) -> Option<()>,
    ) -> Result<(), LabError> {
        progress::until(
            &format!("group {} to read {goal}", self.group),
            timeout,
            Duration::from_millis(100),
            || async {
                Ok(self.with(|s| match reached(s) {
                    Some(()) => Seen::Ready(()),
                    None => Seen::NotYet(format!(
                        "{} records read, {} partitions ended{}",
                        s.records.len(),
                        s.ended.len(),
                        s.last_error
                            .as_ref()
                            .map(|e| format!("; last error: {e}"))
                            .unwrap_or_default()
                    )),
                }))
            },
        )
        .await
    }
}

impl Drop for GroupReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Commits `offsets` (the next offset to read, per partition) synchronously.
pub(crate) async fn commit(
    consumer: &Arc<StreamConsumer>,
    offsets: &BTreeMap<i32, i64>,
    topic: &str,
) -> Result<(), LabError> {
    let mut list = TopicPartitionList::new();
    for (partition, offset) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .step("listing offsets to commit")?;
    }
    let consumer = consumer.clone();
    tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync))
        .await
        .step("committing offsets")?
        .step("committing offsets")
}

/// One partition as the cluster's metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartitionInfo {
    /// The partition.
    pub id: i32,
    /// The broker leading it (-1: none).
    pub leader: i32,
    /// The brokers holding a replica.
    pub replicas: Vec<i32>,
    /// The replicas in sync with the leader.
    pub isr: Vec<i32>,
}

/// One client for repeated metadata, watermark and lag questions.
#[derive(Clone)]
pub(crate) struct Inspector {
    consumer: Arc<BaseConsumer>,
}

impl Inspector {
    /// An inspector of the cluster at `bootstrap`.
    pub(crate) fn new(bootstrap: &str) -> Result<Self, LabError> {
        Self::for_group(bootstrap, "lab-inspector")
    }

    /// An inspector that reads `group`'s committed offsets (without joining it).
    pub(crate) fn for_group(bootstrap: &str, group: &str) -> Result<Self, LabError> {
        let consumer: BaseConsumer = client(bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .step("creating a metadata client")?;
        Ok(Inspector {
            consumer: Arc::new(consumer),
        })
    }

    /// The partitions of `topic`, in partition order.
    pub(crate) async fn partitions(&self, topic: &str) -> Result<Vec<PartitionInfo>, LabError> {
        let consumer = self.consumer.clone();
        let name = topic.to_owned();
        let metadata = tokio::task::spawn_blocking(move || {
            consumer.fetch_metadata(Some(&name), REQUEST_TIMEOUT)
        })
        .await
        .step("fetching metadata")?
        .step(format!("fetching the metadata of {topic}"))?;
        let mut partitions: Vec<PartitionInfo> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions())
            .map(|p| {
                let mut isr = p.isr().to_vec();
                isr.sort_unstable();
                let mut replicas = p.replicas().to_vec();
                replicas.sort_unstable();
                PartitionInfo {
                    id: p.id(),
                    leader: p.leader(),
                    replicas,
                    isr,
                }
            })
            .collect();
        partitions.sort_by_key(|p| p.id);
        Ok(partitions)
    }

    /// (first offset, end offset) of each partition of `topic`, by partition.
    pub(crate) async fn watermarks(
        &self,
        topic: &str,
    ) -> Result<BTreeMap<i32, (i64, i64)>, LabError> {
        let partitions = self.partitions(topic).await?;
        let consumer = self.consumer.clone();
        let name = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            partitions
                .iter()
                .map(|p| {
                    consumer
                        .fetch_watermarks(&name, p.id, REQUEST_TIMEOUT)
                        .map(|marks| (p.id, marks))
                })
                .collect::<Result<BTreeMap<_, _>, _>>()
        })
        .await
        .step("fetching watermarks")?
        .step(format!("fetching the watermarks of {topic}"))
    }

    /// Records of `topic` this inspector's group has not committed yet.
    pub(crate) async fn group_lag(&self, topic: &str) -> Result<i64, LabError> {
        let consumer = self.consumer.clone();
        let name = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            devinfra::kafka::group_lag(&consumer, &name, REQUEST_TIMEOUT)
        })
        .await
        .step("measuring lag")?
        .step(format!("measuring the lag on {topic}"))
    }

    /// Waits until `group` is stable with `members` members (any number if
    /// `None`) and every partition of a `partitions`-partition topic assigned
    /// to exactly one of them; returns each member's partitions.
    pub(crate) async fn stable_group(
        &self,
        group: &str,
        partitions: usize,
        members: Option<usize>,
    ) -> Result<Vec<Vec<i32>>, LabError> {
        let all: Vec<i32> = (0..i32::try_from(partitions).unwrap_or(i32::MAX)).collect();
        progress::until(
            &format!("group {group} to be stable"),
            Duration::from_secs(60),
            Duration::from_millis(200),
            || async {
                let (state, assignments) = match self.group_assignments(group).await {
                    Ok(found) => found,
                    // A coordinator answers COORDINATOR_LOAD_IN_PROGRESS until it has loaded its offsets.
                    Err(e) => return Ok(Seen::NotYet(platform::error::chain(&e))),
                };
                let mut assigned: Vec<i32> = assignments.iter().flatten().copied().collect();
                assigned.sort_unstable();
                let complete = members.is_none_or(|n| assignments.len() == n) && assigned == all;
                Ok(if state == "Stable" && complete {
                    Seen::Ready(assignments)
                } else {
                    Seen::NotYet(format!(
                        "{state}, {} members, partitions assigned {assigned:?}",
                        assignments.len()
                    ))
                })
            },
        )
        .await
    }

    /// The members of `group` and the partitions the coordinator assigned to
    /// each (the group's DescribeGroups answer), with the group's state.
    pub(crate) async fn group_assignments(
        &self,
        group: &str,
    ) -> Result<(String, Vec<Vec<i32>>), LabError> {
        let consumer = self.consumer.clone();
        let name = group.to_owned();
        tokio::task::spawn_blocking(move || {
            let groups = consumer.fetch_group_list(Some(&name), REQUEST_TIMEOUT)?;
            let Some(info) = groups.groups().iter().find(|g| g.name() == name) else {
                return Ok::<_, KafkaError>((String::from("Unknown"), Vec::new()));
            };
            let members = info
                .members()
                .iter()
                .map(|m| m.assignment().map(assigned_partitions).unwrap_or_default())
                .collect();
            Ok((info.state().to_owned(), members))
        })
        .await
        .step("describing a group")?
        .step(format!("describing group {group}"))
    }
}

/// The partitions in a consumer protocol assignment (`ConsumerProtocolAssignment`:
/// version, then an array of (topic, partitions), then user data); what
/// cannot be read counts as nothing assigned.
pub(crate) fn assigned_partitions(bytes: &[u8]) -> Vec<i32> {
    fn take<const N: usize>(bytes: &mut &[u8]) -> Option<[u8; N]> {
        let (head, rest) = bytes.split_first_chunk::<N>()?;
        *bytes = rest;
        Some(*head)
    }
    fn read(mut bytes: &[u8]) -> Option<Vec<i32>> {
        let bytes = &mut bytes;
        let _version = i16::from_be_bytes(take::<2>(bytes)?);
        let topics = i32::from_be_bytes(take::<4>(bytes)?);
        let mut partitions = Vec::new();
        for _ in 0..topics.max(0) {
            let name_len = usize::try_from(i16::from_be_bytes(take::<2>(bytes)?)).ok()?;
            *bytes = bytes.get(name_len..)?;
            let count = i32::from_be_bytes(take::<4>(bytes)?);
            for _ in 0..count.max(0) {
                partitions.push(i32::from_be_bytes(take::<4>(bytes)?));
            }
        }
        partitions.sort_unstable();
        Some(partitions)
    }
    read(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assignment_lists_its_partitions() {
        let mut bytes = vec![0, 1, 0, 0, 0, 1, 0, 6];
        bytes.extend_from_slice(b"orders");
        bytes.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 1]);
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(assigned_partitions(&bytes), vec![1, 4]);
        assert_eq!(assigned_partitions(&[0, 1, 0, 0, 0, 0]), Vec::<i32>::new());
        assert_eq!(assigned_partitions(&[0, 1, 0]), Vec::<i32>::new());
    }
}

//! Dead letters: read a consumer's dead-letter topic, replay records to the
//! consumer's retry topic, and watch the consumer group take them.
//!
//! A dead letter carries the refused record (key, value, headers) and the
//! `dlq.*` headers the inbox adds: why, where the record was read from, and
//! its origin (the record first refused). One the dead-letter topic refused
//! whole has no value (`dlq.value.omitted`); replaying it reads the original
//! from the source topic at the offset the headers name, while retention
//! still holds it.
//!
//! A replay goes to `<topic>.retry.<group>`, which only the refusing group
//! reads: the other consumers never see it. It carries its origin, so a
//! replay refused again is dead-lettered under the same origin, and
//! [`latest_per_origin`] replays each origin once, with its latest copy,
//! however many earlier replays were refused: dead letters never multiply.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use platform::config::KafkaAuth;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use shared_events::headers;
use uuid::Uuid;

use crate::AdminError;

/// How long one metadata, offset or fetch request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One record of a dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Where it is in the dead-letter topic.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// When it was written, if the broker says.
    pub written_at: Option<DateTime<Utc>>,
    /// The original record's key.
    pub key: Option<Vec<u8>>,
    /// The original value; `None` if the record had none or it was omitted.
    pub value: Option<Vec<u8>>,
    /// Why the value was left out, when it was.
    pub value_omitted: Option<String>,
    /// The event id, from the headers or else from the value.
    pub event_id: Option<Uuid>,
    /// The event type, from the headers or else from the value.
    pub event_type: Option<String>,
    /// Why the consumer refused it.
    pub reason: String,
    /// The topic it was read from.
    pub source_topic: Option<String>,
    /// The partition it was read from.
    pub source_partition: Option<i32>,
    /// The offset it was read from.
    pub source_offset: Option<i64>,
    /// The record first refused, `<topic>/<partition>/<offset>`: the same
    /// for every dead letter of one refusal and its replays.
    pub origin: Option<String>,
    /// The original headers, without the `dlq.*` ones.
    pub original_headers: Vec<(String, Option<Vec<u8>>)>,
}

impl DeadLetter {
    /// Reads a dead letter from its record.
    pub fn from_record(record: &OwnedMessage) -> Self {
        let mut dlq: BTreeMap<String, String> = BTreeMap::new();
        let mut original_headers = Vec::new();
        if let Some(found) = record.headers() {
            for h in found.iter() {
                if h.key.starts_with("dlq.") {
                    dlq.insert(
                        h.key.to_owned(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    );
                } else {
                    original_headers.push((h.key.to_owned(), h.value.map(<[u8]>::to_vec)));
                }
            }
        }
        let header = |name: &str| {
            original_headers
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.as_deref())
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let value = record.payload().map(<[u8]>::to_vec);
        // Poison records often lack the headers; the envelope may still say.
        let envelope = value
            .as_deref()
            .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok());
        let from_value = |field: &str| {
            envelope
                .as_ref()
                .and_then(|e| e.get(field))
                .and_then(|f| f.as_str())
                .map(str::to_owned)
        };
        DeadLetter {
            partition: record.partition(),
            offset: record.offset(),
            written_at: record
                .timestamp()
                .to_millis()
                .and_then(DateTime::from_timestamp_millis),
            key: record.key().map(<[u8]>::to_vec),
            value,
            value_omitted: dlq.get(headers::DLQ_VALUE_OMITTED).cloned(),
            event_id: header(headers::EVENT_ID)
                .or_else(|| from_value("event_id"))
                .and_then(|id| id.parse().ok()),
            event_type: header(headers::EVENT_TYPE).or_else(|| from_value("event_type")),
            reason: dlq.get(headers::DLQ_ERROR).cloned().unwrap_or_default(),
            source_topic: dlq.get(headers::DLQ_SOURCE_TOPIC).cloned(),
            source_partition: dlq
                .get(headers::DLQ_SOURCE_PARTITION)
                .and_then(|p| p.parse().ok()),
            source_offset: dlq
                .get(headers::DLQ_SOURCE_OFFSET)
                .and_then(|o| o.parse().ok()),
            origin: dlq.get(headers::DLQ_ORIGIN).cloned(),
            original_headers,
        }
        .with_origin()
    }

    /// Dead letters written before origins were recorded count their
    /// source as their origin.
    fn with_origin(mut self) -> Self {
        if self.origin.is_none()
            && let (Some(topic), Some(partition), Some(offset)) = (
                &self.source_topic,
                self.source_partition,
                self.source_offset,
            )
        {
            self.origin = Some(headers::origin(topic, partition, offset));
        }
        self
    }

    /// `topic[partition]@offset` of the record it came from, as far as known.
    pub fn source(&self) -> String {
        format!(
            "{}[{}]@{}",
            self.source_topic.as_deref().unwrap_or("?"),
            self.source_partition
                .map_or_else(|| "?".to_owned(), |p| p.to_string()),
            self.source_offset
                .map_or_else(|| "?".to_owned(), |o| o.to_string())
        )
    }
}

/// The latest dead letter of each origin among `letters` (in topic order),
/// in the order of those latest ones: what a replay takes, so that each
/// refusal is replayed once however often earlier replays of it were
/// refused. A dead letter without an origin is its own.
pub fn latest_per_origin(letters: Vec<DeadLetter>) -> Vec<DeadLetter> {
    let mut latest: Vec<DeadLetter> = Vec::with_capacity(letters.len());
    for letter in letters {
        match latest
            .iter()
            .position(|l| l.origin.is_some() && l.origin == letter.origin)
        {
            Some(earlier) => {
                latest.remove(earlier);
                latest.push(letter);
            }
            None => latest.push(letter),
        }
    }
    latest
}

/// A record republished to a retry topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The event id, if the dead letter had one.
    pub event_id: Option<Uuid>,
    /// Where it landed.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
}

/// How far a consumer group got with replayed records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Replayed records the group has committed past (applied, or skipped as
    /// already applied, or dead-lettered again).
    pub passed: usize,
    /// Replayed records whose event id came back to the dead-letter topic.
    pub dead_lettered_again: usize,
}

/// Reaches the brokers of one environment.
#[derive(Debug, Clone)]
pub struct Cluster {
    bootstrap_servers: String,
    auth: KafkaAuth,
}

impl Cluster {
    /// The brokers at `bootstrap_servers`, authenticated with `auth`.
    pub fn new(bootstrap_servers: impl Into<String>, auth: &KafkaAuth) -> Self {
        Cluster {
            bootstrap_servers: bootstrap_servers.into(),
            auth: auth.clone(),
        }
    }

    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in self.auth.client_properties() {
            config.set(key, value);
        }
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", "orderflow-admin")
            .set("log_level", "3");
        config
    }

    /// The end offset of each partition of `topic`.
    pub async fn end_offsets(&self, topic: &str) -> Result<BTreeMap<i32, i64>, AdminError> {
        let (config, topic) = (self.config(), topic.to_owned());
        blocking(move || {
            let consumer: BaseConsumer = config
                .create()
                .map_err(AdminError::kafka("creating a Kafka client"))?;
            let mut ends = BTreeMap::new();
            for partition in partitions(&consumer, &topic)? {
                let (_, high) = consumer
                    .fetch_watermarks(&topic, partition, REQUEST_TIMEOUT)
                    .map_err(AdminError::kafka(format!(
                        "reading the end of {topic}[{partition}]"
                    )))?;
                ends.insert(partition, high);
            }
            Ok(ends)
        })
        .await
    }

    /// Every record of `topic` from `from` (per partition; the start where
    /// absent) up to its end now, in partition and offset order.
    pub async fn read(
        &self,
        topic: &str,
        from: &BTreeMap<i32, i64>,
    ) -> Result<Vec<OwnedMessage>, AdminError> {
        let (config, topic, from) = (self.config(), topic.to_owned(), from.clone());
        blocking(move || {
            let consumer: BaseConsumer = config
                .clone()
                .set("group.id", "orderflow-admin")
                .set("enable.auto.commit", "false")
                .create()
                .map_err(AdminError::kafka("creating a Kafka consumer"))?;
            let mut assignment = TopicPartitionList::new();
            let mut remaining: BTreeMap<i32, i64> = BTreeMap::new();
            for partition in partitions(&consumer, &topic)? {
                let (low, high) = consumer
                    .fetch_watermarks(&topic, partition, REQUEST_TIMEOUT)
                    .map_err(AdminError::kafka(format!(
                        "reading the offsets of {topic}[{partition}]"
                    )))?;
                let start = from.get(&partition).copied().unwrap_or(low).max(low);
                if high > start {
                    assignment
                        .add_partition_offset(&topic, partition, Offset::Offset(start))
                        .map_err(AdminError::kafka("assigning partitions"))?;
                    remaining.insert(partition, high);
                }
            }
            let mut records = Vec::new();
            if remaining.is_empty() {
                return Ok(records);
            }
            consumer
                .assign(&assignment)
                .map_err(AdminError::kafka(format!("reading {topic}")))?;
            let deadline = Instant::now() + Duration::from_secs(60);
            while !remaining.is_empty() {
                if Instant::now() > deadline {
                    return Err(AdminError::Refused(format!(
                        "reading {topic}: partitions {:?} not read to their end within 60 s",
                        remaining.keys().collect::<Vec<_>>()
                    )));
                }
                let Some(message) = consumer.poll(Duration::from_millis(500)) else {
                    continue;
                };
                let message = message.map_err(AdminError::kafka(format!("reading {topic}")))?;
                let partition = message.partition();
                if let Some(&end) = remaining.get(&partition) {
                    if message.offset() < end {
                        records.push(message.detach());
                    }
                    if message.offset() + 1 >= end {
                        remaining.remove(&partition);
                    }
                }
            }
            records.sort_by_key(|r| (r.partition(), r.offset()));
            Ok(records)
        })
        .await
    }

    /// The record of `topic` at `partition` and `offset`, if still there.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Option<OwnedMessage>, AdminError> {
        let from = BTreeMap::from([(partition, offset)]);
        let records = self.read(topic, &from).await?;
        Ok(records
            .into_iter()
            .find(|r| r.partition() == partition && r.offset() == offset))
    }

    /// The dead letters in `dead_letter_topic`, oldest first per partition.
    pub async fn dead_letters(
        &self,
        dead_letter_topic: &str,
    ) -> Result<Vec<DeadLetter>, AdminError> {
        let records = self.read(dead_letter_topic, &BTreeMap::new()).await?;
        Ok(records.iter().map(DeadLetter::from_record).collect())
    }

    /// Republishes each dead letter's record to `topic` (the group's retry
    /// topic) with its key, value and original headers, plus
    /// `dlq.replayed.from` and its `dlq.origin`; waits for Kafka to
    /// acknowledge each. A dead letter without its value is replayed from the
    /// source topic's copy. Refused if `topic` does not exist.
    pub async fn replay(
        &self,
        topic: &str,
        dead_letter_topic: &str,
        letters: &[DeadLetter],
    ) -> Result<Vec<Replayed>, AdminError> {
        {
            let (config, topic) = (self.config(), topic.to_owned());
            blocking(move || {
                let consumer: BaseConsumer = config
                    .create()
                    .map_err(AdminError::kafka("creating a Kafka client"))?;
                partitions(&consumer, &topic).map(|_| ()).map_err(|_| {
                    AdminError::Refused(format!(
                        "the retry topic {topic} does not exist; the consumer creates it when it \
                         starts: start (or upgrade) the consumer, then replay"
                    ))
                })
            })
            .await?;
        }
        let producer: FutureProducer = self
            .config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // By key, as the services publish: the record joins its order's partition.
            .set("partitioner", shared_events::topics::PARTITIONER)
            .create()
            .map_err(AdminError::kafka("creating a Kafka producer"))?;
        let mut replayed = Vec::with_capacity(letters.len());
        for letter in letters {
            let value = match (&letter.value, &letter.value_omitted) {
                (_, Some(_)) => self.original_value(letter).await?,
                (value, None) => value.clone(),
            };
            let from = format!("{dead_letter_topic}/{}/{}", letter.partition, letter.offset);
            let mut headers = OwnedHeaders::new();
            for (key, value) in &letter.original_headers {
                headers = headers.insert(Header {
                    key: key.as_str(),
                    value: value.as_deref(),
                });
            }
            let mut headers = headers.insert(Header {
                key: headers::DLQ_REPLAYED_FROM,
                value: Some(from.as_str()),
            });
            if let Some(origin) = &letter.origin {
                headers = headers.insert(Header {
                    key: headers::DLQ_ORIGIN,
                    value: Some(origin.as_str()),
                });
            }
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
            if let Some(key) = &letter.key {
                record = record.key(key);
            }
            if let Some(value) = &value {
                record = record.payload(value);
            }
            let delivered = producer
                .send(record, REQUEST_TIMEOUT)
                .await
                .map_err(|(e, _)| {
                    AdminError::kafka(format!("republishing {from} to {topic}"))(e)
                })?;
            replayed.push(Replayed {
                event_id: letter.event_id,
                partition: delivered.partition,
                offset: delivered.offset,
            });
        }
        Ok(replayed)
    }

    async fn original_value(&self, letter: &DeadLetter) -> Result<Option<Vec<u8>>, AdminError> {
        let (Some(topic), Some(partition), Some(offset)) = (
            &letter.source_topic,
            letter.source_partition,
            letter.source_offset,
        ) else {
            return Err(AdminError::Refused(format!(
                "dead letter {}@{} has neither its value nor its source coordinates",
                letter.partition, letter.offset
            )));
        };
        match self.fetch(topic, partition, offset).await? {
            Some(original) => Ok(original.payload().map(<[u8]>::to_vec)),
            None => Err(AdminError::Refused(format!(
                "dead letter {}@{} was written without its value, and {topic}[{partition}]@{offset} \
                 is no longer in the source topic (retention): it cannot be replayed",
                letter.partition, letter.offset
            ))),
        }
    }

    /// Waits up to `timeout` until `group` has committed past every replayed
    /// record, then counts which of them `dead_letter_topic` received again
    /// since `dead_letters_from`.
    pub async fn wait_until_taken(
        &self,
        group: &str,
        topic: &str,
        replayed: &[Replayed],
        dead_letter_topic: &str,
        dead_letters_from: &BTreeMap<i32, i64>,
        timeout: Duration,
    ) -> Result<Progress, AdminError> {
        let started = Instant::now();
        let passed = loop {
            let committed = self.committed(group, topic).await?;
            let passed = replayed
                .iter()
                .filter(|r| committed.get(&r.partition).is_some_and(|&c| c > r.offset))
                .count();
            if passed == replayed.len() || started.elapsed() >= timeout {
                break passed;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        // A new dead letter names the record it came from: a replayed one is
        // recognised by where the replay put it, whether or not its value
        // was an event with an id.
        let again = self.read(dead_letter_topic, dead_letters_from).await?;
        let dead_lettered_again = again
            .iter()
            .map(DeadLetter::from_record)
            .filter(|l| {
                l.source_topic.as_deref() == Some(topic)
                    && replayed.iter().any(|r| {
                        l.source_partition == Some(r.partition) && l.source_offset == Some(r.offset)
                    })
            })
            .count();
        Ok(Progress {
            passed,
            dead_lettered_again,
        })
    }

    /// The offsets `group` has committed on `topic`, per partition.
    async fn committed(&self, group: &str, topic: &str) -> Result<BTreeMap<i32, i64>, AdminError> {
        let (config, group, topic) = (self.config(), group.to_owned(), topic.to_owned());
        blocking(move || {
            let consumer: BaseConsumer = config
                .clone()
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .create()
                .map_err(AdminError::kafka("creating a Kafka client"))?;
            let mut list = TopicPartitionList::new();
            for partition in partitions(&consumer, &topic)? {
                list.add_partition(&topic, partition);
            }
            let committed =
                consumer
                    .committed_offsets(list, REQUEST_TIMEOUT)
                    .map_err(AdminError::kafka(format!(
                        "reading group {group}'s offsets"
                    )))?;
            Ok(committed
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some((e.partition(), o)),
                    _ => None,
                })
                .collect())
        })
        .await
    }
}

fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>, AdminError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(AdminError::kafka(format!(
            "reading the metadata of {topic}"
        )))?;
    let found = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .ok_or_else(|| AdminError::Refused(format!("topic {topic} does not exist")))?;
    Ok(found.partitions().iter().map(|p| p.id()).collect())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AdminError> + Send + 'static,
) -> Result<T, AdminError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AdminError::Refused(format!("a Kafka task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use rdkafka::Timestamp;

    use super::*;

    fn record(headers: &[(&str, &str)], value: Option<&[u8]>) -> OwnedMessage {
        let mut owned = OwnedHeaders::new();
        for (key, value) in headers {
            owned = owned.insert(Header {
                key,
                value: Some(*value),
            });
        }
        OwnedMessage::new(
            value.map(<[u8]>::to_vec),
            Some(b"order-1".to_vec()),
            "orders.dlq.invoicing".into(),
            Timestamp::CreateTime(1_764_000_000_000),
            0,
            7,
            Some(owned),
        )
    }

    #[test]
    fn a_dead_letter_reads_its_reason_source_and_event_from_the_headers() {
        let letter = DeadLetter::from_record(&record(
            &[
                ("event_id", "01933b5e-8f3a-7c4e-9d2b-5a6f7e8d9c0b"),
                ("event_type", "OrderPlaced"),
                ("dlq.error", "lines[0].quantity: must be 1 or more"),
                ("dlq.source.topic", "orders"),
                ("dlq.source.partition", "2"),
                ("dlq.source.offset", "17"),
            ],
            Some(b"{}"),
        ));
        assert_eq!(letter.event_type.as_deref(), Some("OrderPlaced"));
        assert_eq!(
            letter.event_id.map(|id| id.to_string()).as_deref(),
            Some("01933b5e-8f3a-7c4e-9d2b-5a6f7e8d9c0b")
        );
        assert_eq!(letter.reason, "lines[0].quantity: must be 1 or more");
        assert_eq!(letter.source(), "orders[2]@17");
        assert_eq!(
            letter.original_headers.len(),
            2,
            "the dlq.* headers are not original"
        );
        assert!(letter.written_at.is_some());
    }

    #[test]
    fn a_replay_takes_each_origin_once_by_its_latest_dead_letter() {
        let letter = |offset: i64, origin: Option<&str>| {
            let mut headers = vec![("dlq.error", "bad")];
            if let Some(origin) = origin {
                headers.push(("dlq.origin", origin));
            }
            let mut letter = DeadLetter::from_record(&record(&headers, Some(b"{}")));
            letter.offset = offset;
            letter
        };
        // One refusal and two refused replays of it, another refusal, and a
        // dead letter from before origins (no origin, no source): its own.
        let letters = vec![
            letter(0, Some("orders/1/5")),
            letter(1, Some("orders/2/9")),
            letter(2, Some("orders/1/5")),
            letter(3, None),
            letter(4, Some("orders/1/5")),
        ];
        let offsets: Vec<i64> = latest_per_origin(letters)
            .iter()
            .map(|l| l.offset)
            .collect();
        assert_eq!(offsets, [1, 3, 4]);
    }

    #[test]
    fn a_dead_letter_without_an_origin_counts_its_source_as_its_origin() {
        let letter = DeadLetter::from_record(&record(
            &[
                ("dlq.source.topic", "orders"),
                ("dlq.source.partition", "2"),
                ("dlq.source.offset", "17"),
            ],
            None,
        ));
        assert_eq!(letter.origin.as_deref(), Some("orders/2/17"));
    }

    #[test]
    fn without_headers_the_event_is_read_from_the_value() {
        let value =
            br#"{"event_id":"01933b5e-8f3a-7c4e-9d2b-5a6f7e8d9c0b","event_type":"OrderCancelled"}"#;
        let letter = DeadLetter::from_record(&record(&[("dlq.error", "bad")], Some(value)));
        assert_eq!(letter.event_type.as_deref(), Some("OrderCancelled"));
        assert!(letter.event_id.is_some());
        assert_eq!(letter.source(), "?[?]@?");
    }
}
